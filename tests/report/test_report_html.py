"""The report and verify.html without a browser: the sections are there, nothing is loaded from
elsewhere, the pack is embedded byte for byte, and the verifier page's hash is pinned."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.crypto.canonical import canonical_json
from ledger.manifest.pack import ENTRIES, MANIFEST, PROOF
from ledger.report import (
    EMBEDDED_MEMBERS,
    ReportPack,
    render_dataset_report,
    verify_html,
    verify_html_sha256,
)
from tests.report.conftest import BuiltPack

SECTIONS = (
    "summary", "teachers", "duties", "conduct", "unlinked", "policy-basis", "eu-template-2-5",
    "ledger-verifier", "not-legal-advice",
)  # fmt: skip
ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


class _Page(HTMLParser):
    """Collects element ids, attributes that can load something, and script/style texts."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.loads: list[tuple[str, str, str]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: dict[str, list[str]] = {"script": [], "style": []}
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append((tag, found))
        if found.get("id"):
            self.ids.add(str(found["id"]))
        for name in ("src", "srcset", "poster", "data", "action", "formaction"):
            if found.get(name):
                self.loads.append((tag, name, str(found[name])))
        if tag == "link" and found.get("href"):
            self.loads.append((tag, "href", str(found["href"])))
        if tag in self.texts:
            self._in = tag

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self.texts[self._in].append(data)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _self_contained(page: _Page) -> None:
    assert page.loads == []  # no src=, no <link href>, nothing fetched on load
    csp = [a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv")]
    assert csp, "no Content-Security-Policy"
    assert "default-src 'none'" in str(csp[0])
    for text in page.texts["style"]:
        assert not re.search(r"url\(|@import", text)
    for text in page.texts["script"]:
        assert not re.search(r"\bfetch\(|XMLHttpRequest|WebSocket|import\(|sendBeacon", text)


def _report(built: BuiltPack) -> str:
    return render_dataset_report(built.result.audit, ReportPack.from_pack(built.path))


def test_report_has_every_section_and_loads_nothing(built: BuiltPack) -> None:
    html = _report(built)
    page = _parse(html)
    assert set(SECTIONS) <= page.ids
    _self_contained(page)
    assert "It does\n    not say what is lawful" in html
    assert "reports what dated terms say, not what is lawful" in html
    assert "@media print" in "".join(page.texts["style"])


def test_report_shows_the_audit(built: BuiltPack) -> None:
    audit = built.result.audit
    summary = audit.summary()
    html = _report(built)
    # Charts: one bar per verdict plus "unlinked", one per link class, counts from the audit.
    bars = re.findall(r'<g class="bar" data-label="([a-z]+)" data-count="(\d+)">', html)
    counts = dict(bars[:5])
    assert counts == {
        **{k: str(v) for k, v in summary["by_verdict"].items()},
        "unlinked": str(summary["unlinked"]),
    }
    assert dict(bars[5:]) == {k: str(summary["by_match"].get(k, 0)) for k, _ in bars[5:]}
    assert summary["unlinked"] == 1  # the hand-written row of the scenario
    unlinked = next(r for r in audit.results if not r.linked)
    assert f'<td class="num">{unlinked.line}</td>' in html
    # Teacher inventory: the fake provider's model, its calls and tokens from the entries.
    lines = gzip.decompress((built.path / ENTRIES).read_bytes()).splitlines()
    bodies = [json.loads(line)["entry"]["body"] for line in lines]
    output_tokens = sum(b["usage"]["output_tokens"] for b in bodies)
    assert re.search(rf'<td class="num">{len(bodies)}</td><td class="num">\d+</td>\s*'
                     rf'<td class="num">{output_tokens}</td>', html)  # fmt: skip
    assert "openai-platform@" in html or "openai" in html


def test_report_policy_basis_marks_unverified_clauses(built: BuiltPack) -> None:
    html = _report(built)
    basis = html[html.index('id="policy-basis"') : html.index('id="eu-template-2-5"')]
    statement = built.statement()
    for ref in statement["predicate"]["policies"]["versions"]:
        assert f"<code>{ref['version']}</code>" in basis
        assert ref["sha256"] in basis
    assert "https://" in basis  # each version's documents with their URL
    rows = re.findall(r"<td>([PCSU])( <span class=\"unverified\">UNVERIFIED</span>)?</td></tr>",
                      basis)  # fmt: skip
    assert rows, "no rule rows"
    for confidence, marked in rows:
        assert bool(marked) == (confidence in "SU"), (confidence, marked)


def test_report_eu_section_marks_unknown_fields(built: BuiltPack) -> None:
    html = _report(built)
    section = html[html.index('id="eu-template-2-5"') : html.index('id="ledger-verifier"')]
    assert "text" in section
    assert "gpt-4o" in section
    assert section.count('class="placeholder"') >= 3
    summary = built.result.audit.summary()
    assert f"{summary['linked']} of {summary['examples']} examples" in section


def test_report_embeds_the_pack_byte_for_byte(built: BuiltPack) -> None:
    html = _report(built)
    match = re.search(r'<script type="application/json" id="ledger-pack-data">(.*?)</script>',
                      html, re.S)  # fmt: skip
    assert match is not None
    data = json.loads(match.group(1))
    assert sorted(data["files"]) == sorted(EMBEDDED_MEMBERS)
    for name, b64 in data["files"].items():
        assert base64.b64decode(b64) == (built.path / name).read_bytes()


def test_report_values_are_escaped(built: BuiltPack) -> None:
    pack = ReportPack.from_pack(built.path)
    html = render_dataset_report(built.result.audit, pack, title="<img src=x onerror=alert(1)>")
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_report_without_the_manifest_still_renders(built: BuiltPack) -> None:
    # As written into a pack before the statement that lists it is signed.
    members = {n: (built.path / n).read_bytes() for n in (PROOF, ENTRIES, "verdicts.json")}
    html = render_dataset_report(built.result.audit, ReportPack.from_members(members))
    page = _parse(html)
    assert set(SECTIONS) <= page.ids
    assert (
        MANIFEST
        not in json.loads(
            re.search(r'id="ledger-pack-data">(.*?)</script>', html, re.S).group(1)  # type: ignore[union-attr]
        )["files"]
    )


def test_verify_html_is_fixed_self_contained_and_pinned() -> None:
    page_bytes = verify_html()
    assert verify_html() == page_bytes
    assert hashlib.sha256(page_bytes).hexdigest() == verify_html_sha256()
    page = _parse(page_bytes.decode())
    _self_contained(page)
    assert {"ledger-verifier", "ledger-checks", "ledger-drop", "ledger-vkey"} <= page.ids
    assert "ledger-pack-data" not in page.ids  # standalone: no data inside
    assert verify_html_sha256() in README.read_text(encoding="utf-8")


def test_version_json_prints_the_verifier_hash() -> None:
    # --json first: both options are eager and --version prints as soon as it is parsed.
    result = CliRunner().invoke(app, ["--json", "--version"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["verify_html_sha256"] == verify_html_sha256()


def test_signed_entries_are_stored_canonical_so_the_body_is_a_substring(
    built: BuiltPack,
) -> None:
    # What verify.js relies on: the stored entry is RFC 8785, so the body's canonical bytes
    # (what the recorder signed) are the text between '{"body":' and the last ',"key_id":'.
    checked = 0
    for stored in built.lg.store.raw_entries(0, built.lg.size):
        data = stored[1]
        entry: dict[str, Any] = json.loads(data)
        assert canonical_json(entry) == data
        assert data.startswith(b'{"body":')
        assert data[8 : data.rindex(b',"key_id":')] == canonical_json(entry["body"])
        checked += 1
    assert checked == built.lg.size > 0


def test_small_order_list_in_the_verifier_is_the_small_order_points() -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    script = (ROOT / "ledger/report/static/verify.js").read_text(encoding="utf-8")
    block = script[
        script.index("const SMALL_ORDER") : script.index("]);", script.index("SMALL_ORDER"))
    ]
    listed = re.findall(r'"([0-9a-f]{64})"', block)
    assert len(set(listed)) == 8
    trivial = bytes([1]) + bytes(63)  # R = identity, S = 0
    for encoding in listed:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(encoding))
        hits = 0
        for n in range(64):
            try:
                key.verify(trivial, b"message %d" % n)
                hits += 1
            except InvalidSignature:
                continue
        # [k]A is the identity whenever the order of A divides k: for a point of order <= 8
        # that happens for about 1 in 8 messages; for a real key, never.
        assert hits > 0, encoding


def test_large_members_are_named_not_inlined_and_the_tables_still_read_them(
    built: BuiltPack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A limit below the entries file's size: as a pack of a million examples would be.
    from ledger.report import render

    small = (built.path / MANIFEST).stat().st_size + (built.path / PROOF).stat().st_size
    monkeypatch.setattr(render, "EMBED_LIMIT", small)
    html = _report(built)
    match = re.search(r'id="ledger-pack-data">(.*?)</script>', html, re.S)
    assert match is not None
    assert sorted(json.loads(match.group(1))["files"]) == sorted([MANIFEST, PROOF])
    note = html[html.index('id="not-embedded"') :]
    size_mb = f"{(built.path / ENTRIES).stat().st_size / 1e6:,.1f} MB"
    assert f"<code>{ENTRIES}</code> ({size_mb})" in note[: note.index("</p>")]
    # The teacher inventory comes from the entries file all the same (read as a stream).
    lines = gzip.decompress((built.path / ENTRIES).read_bytes()).splitlines()
    output_tokens = sum(json.loads(line)["entry"]["body"]["usage"]["output_tokens"]
                        for line in lines)  # fmt: skip
    assert f'<td class="num">{output_tokens}</td>' in html
    assert "not-embedded" not in _report_unlimited(built, monkeypatch)


def _report_unlimited(built: BuiltPack, monkeypatch: pytest.MonkeyPatch) -> str:
    from ledger.report import render

    monkeypatch.setattr(render, "EMBED_LIMIT", 1 << 30)
    return _report(built)


def test_verdict_leaves_are_read_pair_by_pair_or_parsed_whole(built: BuiltPack) -> None:
    from ledger.report.render import _verdict_parts

    stored = json.loads((built.path / "verdicts.json").read_bytes())
    expected = {int(k): v for k, v in stored["leaves"].items()}
    documents, pairs = _verdict_parts(ReportPack.from_pack(built.path))
    assert dict(pairs) == expected
    assert documents == stored["documents"]
    # Another layout (indented, keys in another order) takes the whole-file path: same answer.
    other = json.dumps({"purpose": stored["purpose"], "leaves": stored["leaves"],
                        "documents": stored["documents"]}, indent=2).encode()  # fmt: skip
    documents, pairs = _verdict_parts(ReportPack.from_members({"verdicts.json": other}))
    assert dict(pairs) == expected
    assert documents == stored["documents"]
