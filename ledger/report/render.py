"""The HTML dataset report: one self-contained page from a dataset audit and its evidence pack.

Invariants:

* One file, no external asset: styles, charts (inline SVG) and the verifier script are inlined,
  and the page's Content-Security-Policy forbids every fetch; it works from ``file://``.
* The report shows; it does not vouch. Everything it displays from the pack is read without
  being trusted, and the embedded verifier (the same script as ``verify.html``) checks the
  signatures and proofs on the reader's machine.
* Every value from the audit, the pack or a policy is autoescaped by Jinja2; only the shipped
  stylesheet and script and the charts built here (with escaped labels) are inlined as markup.
* It reports what dated terms say, not what is lawful: that sentence is at the top and the end.
* Its size and the memory to build it are bounded, not proportional to the dataset: pack
  members are embedded only up to ``EMBED_LIMIT`` bytes (a larger member is named, with its
  size, for the reader to drop onto the page), the tables list the first ``_UNLINKED_SHOWN``
  unlinked examples and ``_FINDINGS_SHOWN`` findings with a count of the rest, and the entries
  are read as a stream (from the pack's files when given paths), never held as parsed bodies.
"""

from __future__ import annotations

import base64
import gzip
import io
import itertools
import json
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson
from markupsafe import Markup, escape

from ledger.entry_body import read_call
from ledger.errors import InputError, LedgerError
from ledger.policy.verdict import UNVERIFIED, VERDICTS
from ledger.report.verifier import environment, inline_assets

if TYPE_CHECKING:
    from ledger.audit import DatasetAudit
    from ledger.policy import PolicySet

__all__ = [
    "EMBEDDED_MEMBERS",
    "EMBED_LIMIT",
    "REPORT_HTML",
    "ReportPack",
    "pack_pages",
    "render_dataset_report",
]

# The pack members the report embeds for its verifier (the rest are not needed to verify).
EMBEDDED_MEMBERS = ("manifest.dsse.json", "proof.json", "entries.jsonl.gz")
_OPTIONAL_MEMBERS = ("verdicts.json",)
REPORT_HTML = "report.html"
_UNLINKED_SHOWN = 200
_FINDINGS_SHOWN = 200
# Raw bytes of pack members the report may inline (base64 makes them a third larger). A pack
# of a million examples has an entries file of hundreds of MB: a page holding it would need
# gigabytes to build and would not open in a browser, so the reader drops such files instead.
EMBED_LIMIT = 32 << 20
_MATCH_ORDER = ("id", "exact", "template", "part", "near", "none")
_COLOURS = {
    "allowed": "#1a7f37",
    "conditional": "#bf8700",
    "unknown": "#7d8590",
    "prohibited": "#cf222e",
    "unlinked": "#d0d7de",
    "none": "#d0d7de",
}
_LINK_COLOUR = "#0969da"


@dataclass(frozen=True, slots=True)
class ReportPack:
    """The evidence-pack members a report reads and embeds, by their names in the pack.

    ``manifest.dsse.json`` may be absent (a report written into the pack before the statement
    that lists it is signed): the reader then drops it onto the page to verify.
    """

    files: Mapping[str, bytes]
    verifier_key: str | None = None
    paths: Mapping[str, Path] = field(default_factory=dict)
    _bodies: dict[int, dict[str, Any]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    @classmethod
    def from_members(
        cls, members: Mapping[str, bytes | Path], verifier_key: str | None = None
    ) -> ReportPack:
        """Keep the members the report needs out of a pack's ``{name: bytes or file path}``
        (a path is read when needed, as a stream: nothing large is held)."""
        wanted = [n for n in (*EMBEDDED_MEMBERS, *_OPTIONAL_MEMBERS) if n in members]
        files = {n: bytes(v) for n in wanted if not isinstance(v := members[n], Path)}
        paths = {n: v for n in wanted if isinstance(v := members[n], Path)}
        return cls(files, verifier_key, paths)

    @classmethod
    def from_pack(cls, path: str | Path, verifier_key: str | None = None) -> ReportPack:
        """Take the members from a pack folder (by path) or zip (read).

        Raises:
            InputError: not a pack, or a member is unreadable.
        """
        from ledger.manifest.pack import Pack

        pack = Pack(Path(path))
        wanted = [n for n in (*EMBEDDED_MEMBERS, *_OPTIONAL_MEMBERS) if pack.has(n)]
        if Path(path).is_dir():
            return cls({}, verifier_key, {n: Path(path) / n for n in wanted})
        return cls({n: pack.read(n) for n in wanted}, verifier_key)

    def has(self, name: str) -> bool:
        return name in self.files or name in self.paths

    def size(self, name: str) -> int:
        """The member's size in bytes (0 when absent)."""
        if name in self.files:
            return len(self.files[name])
        path = self.paths.get(name)
        try:
            return path.stat().st_size if path is not None else 0
        except OSError as exc:
            raise InputError(f"cannot read {name}: {exc.strerror}") from exc

    def read(self, name: str) -> bytes | None:
        """The member's bytes, or None when absent."""
        if name in self.files:
            return self.files[name]
        path = self.paths.get(name)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {name}: {exc.strerror}") from exc

    def _open(self, name: str) -> IO[bytes]:
        if name in self.files:
            return io.BytesIO(self.files[name])
        try:
            return self.paths[name].open("rb")
        except OSError as exc:
            raise InputError(f"cannot read {name}: {exc.strerror}") from exc

    def entry_bodies(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(leaf index, body)`` of every entry in ``entries.jsonl.gz``, read as a stream.

        Raises:
            InputError: the member is not an entries file.
        """
        name = "entries.jsonl.gz"
        if not self.has(name):
            return
        try:
            with self._open(name) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                for line in stream:
                    if line.strip():
                        item = orjson.loads(line)
                        yield int(item["leaf_index"]), item["entry"]["body"]
        except (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"entries.jsonl.gz is not an entries file: {exc}") from exc

    def statement(self) -> dict[str, Any] | None:
        """The in-toto statement inside the envelope, parsed but NOT verified (display only)."""
        raw = self.read("manifest.dsse.json")
        if raw is None:
            return None
        try:
            envelope = json.loads(raw)
            parsed = json.loads(base64.b64decode(envelope["payload"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"manifest.dsse.json is not a DSSE envelope: {exc}") from exc
        return parsed if isinstance(parsed, dict) else None

    def bodies(self) -> dict[int, dict[str, Any]]:
        """Entry bodies by leaf index, parsed once and kept (small packs; the report itself
        reads :meth:`entry_bodies` as a stream)."""
        if not self._bodies:
            self._bodies.update(self.entry_bodies())
        return self._bodies

    def verdicts(self) -> dict[str, Any]:
        """``verdicts.json`` (``documents`` and ``leaves``), or empty when absent."""
        raw = self.read("verdicts.json")
        if raw is None:
            return {}
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"verdicts.json is not JSON: {exc}") from exc
        return data if isinstance(data, dict) else {}

    def embeddable(self) -> tuple[list[str], list[tuple[str, int]]]:
        """The members the page inlines, in order, within ``EMBED_LIMIT`` bytes in all, and
        the ones left for the reader to drop, with their sizes."""
        inlined, left, total = [], [], 0
        for name in EMBEDDED_MEMBERS:
            if not self.has(name):
                continue
            size = self.size(name)
            if total + size <= EMBED_LIMIT:
                inlined.append(name)
                total += size
            else:
                left.append((name, size))
        return inlined, left

    def embedded(self) -> dict[str, Any]:
        """The JSON object the page's verifier loads (members as base64)."""
        inlined, _ = self.embeddable()
        files = {}
        for name in inlined:
            data = self.read(name)
            if data is not None:
                files[name] = base64.b64encode(data).decode("ascii")
        return {"files": files, "verifier_key": self.verifier_key}


def _bar_chart(rows: Sequence[tuple[str, int, str]], title: str) -> Markup:
    """A horizontal bar chart as inline SVG: one bar per ``(label, count, colour)``."""
    width, label_w, bar_h, gap = 460, 110, 22, 6
    total = sum(count for _, count, _ in rows) or 1
    peak = max((count for _, count, _ in rows), default=0) or 1
    height = len(rows) * (bar_h + gap) + gap
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
    ]
    for n, (label, count, colour) in enumerate(rows):
        y = gap + n * (bar_h + gap)
        # Room on the right for the longest count text, "1000000 (100.0%)".
        length = round((width - label_w - 130) * count / peak)
        share = 100.0 * count / total
        parts.append(
            f'<g class="bar" data-label="{escape(label)}" data-count="{count}">'
            f'<text x="0" y="{y + 15}" font-size="13">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{max(length, 1)}" height="{bar_h}" '
            f'fill="{colour}"/>'
            f'<text x="{label_w + max(length, 1) + 6}" y="{y + 15}" font-size="13">'
            f"{count} ({share:.1f}%)</text></g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - labels escaped above, numbers are ints


_LEAVES_HEAD = re.compile(rb',\s*"leaves":\s*\{')
_LEAF_ITEM = re.compile(rb'\s*"(0|[1-9][0-9]*)":\s*"([0-9a-f]{64})"\s*(,|\})')


def _verdict_parts(pack: ReportPack) -> tuple[dict[str, Any], Iterator[tuple[int, str]]]:
    """``verdicts.json``'s documents and its ``(leaf, document digest)`` pairs.

    The builder writes ``{"documents": ..., "leaves": ..., "purpose": ...}`` (sorted keys):
    the few documents are parsed, the leaves (one per entry, a million in a large pack) are
    read pair by pair instead of becoming a dict. Any other layout is parsed whole.
    """
    raw = pack.read("verdicts.json")
    if raw is None:
        return {}, iter(())
    head = _LEAVES_HEAD.search(raw) if raw.startswith(b'{"documents":') else None
    if head is not None:
        try:
            documents = orjson.loads(raw[: head.start()] + b"}").get("documents")
        except orjson.JSONDecodeError:
            documents = None
        if isinstance(documents, dict):
            return documents, _leaf_pairs(raw, head.end(), pack)
    data = pack.verdicts()
    leaves = data.get("leaves")
    pairs = ((int(k), str(v)) for k, v in leaves.items()) if isinstance(leaves, dict) else ()
    documents = data.get("documents")
    return (documents if isinstance(documents, dict) else {}), iter(pairs)


def _leaf_pairs(raw: bytes, at: int, pack: ReportPack) -> Iterator[tuple[int, str]]:
    if raw[at:].lstrip().startswith(b"}"):
        return
    while True:
        item = _LEAF_ITEM.match(raw, at)
        if item is None:  # not the builder's layout after all: the whole file, parsed
            leaves = pack.verdicts().get("leaves")
            if isinstance(leaves, dict):
                yield from ((int(k), str(v)) for k, v in leaves.items())
            return
        yield int(item.group(1)), item.group(2).decode("ascii")
        if item.group(3) == b"}":
            return
        at = item.end()


@dataclass(slots=True)
class _Inventory:
    """What the report needs of the entries, gathered in one pass over them."""

    teachers: list[dict[str, Any]]
    modalities: list[str]


def _inventory(audit: DatasetAudit, pack: ReportPack) -> _Inventory:
    """Teacher rows (calls, tokens, period, terms versions, examples) and the modalities of
    the linked calls, from the entries as a stream: per leaf only a small row number is kept."""
    referenced = {link.leaf_index for r in audit.results for link in r.links}
    linked = {link.leaf_index for r in audit.results if r.linked for link in r.links}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    keys: list[tuple[str, str]] = []
    row_of: dict[int, int] = {}
    modalities: set[str] = set()
    for leaf, body in pack.entry_bodies():
        if leaf not in referenced or not isinstance(body, dict):
            continue
        view = read_call(body)
        key = (view.provider, view.model or "(unknown model)")
        row = rows.get(key)
        if row is None:
            row = rows[key] = {
                "provider": key[0], "model": key[1], "calls": 0, "input_tokens": 0,
                "output_tokens": 0, "first": None, "last": None, "versions": {},
                "examples": 0, "_documents": set(),
            }  # fmt: skip
            keys.append(key)
        row_of[leaf] = keys.index(key)
        row["calls"] += 1
        raw_usage = body.get("usage")
        usage: Mapping[str, Any] = raw_usage if isinstance(raw_usage, Mapping) else {}
        for name in ("input_tokens", "output_tokens"):
            value = usage.get(name)
            row[name] += value if isinstance(value, int) else 0
        if view.at is not None:
            stamp = view.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
            row["first"] = stamp if row["first"] is None else min(row["first"], stamp)
            row["last"] = stamp if row["last"] is None else max(row["last"], stamp)
        if leaf in linked:
            modalities.add(str(view.output_modality or "text"))
    del referenced
    documents, pairs = _verdict_parts(pack)
    for leaf, sha in pairs:
        number = row_of.get(leaf)
        if number is not None:
            rows[keys[number]]["_documents"].add(sha)
    for result in audit.results:
        if result.linked:
            seen = {row_of[x.leaf_index] for x in result.links if x.leaf_index in row_of}
            for number in seen:
                rows[keys[number]]["examples"] += 1
    out = []
    for key in sorted(rows):
        row = rows[key]
        for sha in sorted(row.pop("_documents")):
            for ref in documents.get(sha, {}).get("policy_versions", []):
                row["versions"][f"{ref['policy']}@{ref['version']}"] = None
        row["versions"] = list(row["versions"])
        row["first"] = row["first"] or "?"
        row["last"] = row["last"] or "?"
        out.append(row)
    return _Inventory(out, sorted(modalities))


def _used_versions(
    statement: Mapping[str, Any] | None, documents: Mapping[str, Any]
) -> list[tuple[str, str, str]]:
    found: dict[tuple[str, str, str], None] = {}
    if statement is not None:
        for ref in statement.get("predicate", {}).get("policies", {}).get("versions", []):
            found[(ref["policy"], ref["version"], ref["sha256"])] = None
    for document in documents.values():
        for ref in document.get("policy_versions", []):
            found[(ref["policy"], ref["version"], ref["sha256"])] = None
    return sorted(found)


def _policy_basis(versions: Iterable[tuple[str, str, str]], policies: PolicySet) -> list[Any]:
    basis: list[dict[str, Any]] = []
    for policy_id, version_id, digest in versions:
        policy = policies.get(policy_id)
        version = next((v for v in policy.versions if v.id == version_id), None) if policy else None
        if policy is None or version is None:
            basis.append({
                "title": policy_id, "version": version_id, "sha256": digest,
                "effective_from": "?", "effective_until": "?", "date_basis": "not in this "
                "policy set", "date_confidence": "U", "silence": "unknown", "rules": [],
                "documents": [],
            })  # fmt: skip
            continue
        basis.append({
            "title": policy.title, "version": version.id, "sha256": digest,
            "effective_from": version.effective_from.isoformat(),
            "effective_until": version.effective_until.isoformat()
            if version.effective_until else None,
            "date_basis": version.date_basis, "date_confidence": version.date_confidence,
            "silence": version.silence,
            "documents": [{
                "title": d.title, "url": d.url, "date": d.date.isoformat() if d.date else None,
                "confidence": d.confidence, "unverified": d.confidence in UNVERIFIED,
            } for d in version.documents],
            "rules": [{
                "id": r.id, "type": r.type, "clause": r.clause, "paraphrase": r.paraphrase,
                "confidence": r.confidence, "unverified": r.confidence in UNVERIFIED,
            } for r in version.rules],
        })  # fmt: skip
    return basis


def _conduct(audit: DatasetAudit) -> list[dict[str, Any]]:
    out = []
    for finding in itertools.islice(audit.conduct, _FINDINGS_SHOWN):
        leaves = list(finding.leaf_indexes[:21])
        shown = ", ".join(str(n) for n in leaves[:20]) + (" ..." if len(leaves) > 20 else "")
        out.append({
            "kind": finding.kind, "severity": finding.severity, "summary": finding.summary,
            "provider": finding.provider, "leaves": shown, "clauses_note": finding.clauses_note,
            "clauses": [{"rule_id": c.rule_id, "clause": c.clause,
                         "unverified": c.confidence in UNVERIFIED} for c in finding.clauses],
        })  # fmt: skip
    return out


def _eu_section(
    audit: DatasetAudit, teachers: Sequence[Mapping[str, Any]], modalities: Sequence[str]
) -> dict[str, Any]:
    summary = audit.summary()
    return {
        "modality": ", ".join(modalities)
        if modalities
        else Markup('<span class="placeholder">[to be completed: modality]</span>'),
        "models": [{"provider": t["provider"], "model": t["model"]} for t in teachers],
        "share": f"{summary['linked']} of {summary['examples']} examples "
        f"({summary['linked_percent']}%) are linked to recorded outputs of these models",
    }


def render_dataset_report(
    audit: DatasetAudit,
    pack: ReportPack,
    *,
    policies: PolicySet | None = None,
    title: str | None = None,
    generated_at: datetime | None = None,
) -> str:
    """The report page of ``audit`` with ``pack``'s members embedded for in-browser checks.

    Args:
        audit: the dataset audit (``Ledger.audit_dataset``).
        pack: the evidence-pack members (:meth:`ReportPack.from_pack` or ``from_members``).
        policies: the policy set the verdicts used (default: the shipped set).
        title: the page title (default: the build name, else the first file's name).
        generated_at: the time printed in the footer (default: now, UTC).

    Raises:
        InputError: a pack member is malformed.

    Example:
        >>> audit = lg.audit_dataset(["train.jsonl"])                       # doctest: +SKIP
        >>> html = render_dataset_report(audit, ReportPack.from_pack("pack"))  # doctest: +SKIP
    """
    from ledger import __version__
    from ledger.crypto.note import Checkpoint

    if policies is None:
        from ledger.policy.loader import default_policies

        policies = default_policies()
    statement = pack.statement()
    predicate = statement.get("predicate", {}) if statement else {}
    inventory = _inventory(audit, pack)
    documents, _ = _verdict_parts(pack)
    summary = audit.summary()
    teachers = inventory.teachers

    checkpoint = None
    note = predicate.get("ledger", {}).get("checkpoint")
    if isinstance(note, str) and "\n\n" in note:
        try:
            checkpoint = Checkpoint.from_text(note[: note.rfind("\n\n") + 1])
        except LedgerError:
            checkpoint = None
    digests = {s["name"]: s["digest"]["sha256"] for s in (statement or {}).get("subject", [])}
    files = [{"name": Path(f).name, "sha256": digests.get(Path(f).name)} for f in audit.files]
    build = predicate.get("build")
    name = title or (build or {}).get("name") or (files[0]["name"] if files else "dataset")

    verdict_rows: list[tuple[str, int, str]] = [
        (v, summary["by_verdict"].get(v, 0), _COLOURS[v]) for v in VERDICTS
    ]
    verdict_rows.append(("unlinked", summary["unlinked"], _COLOURS["unlinked"]))
    link_rows = [
        (m, summary["by_match"].get(m, 0), _COLOURS["none"] if m == "none" else _LINK_COLOUR)
        for m in _MATCH_ORDER
    ]
    unlinked = [
        {"index": r.row, "file": Path(r.file).name, "line": r.line}
        for r in itertools.islice((r for r in audit.results if not r.linked), _UNLINKED_SHOWN)
    ]
    _, left_out = pack.embeddable()
    page = (
        environment()
        .get_template("report.html.j2")
        .render(
            title=name,
            summary=summary,
            files=files,
            build=build,
            checkpoint=checkpoint,
            verdict_chart=_bar_chart(verdict_rows, "Examples by verdict"),
            link_chart=_bar_chart(link_rows, "Examples by link class"),
            teachers=teachers,
            duties=[d.to_dict() for d in audit.duties],
            conduct=_conduct(audit),
            conduct_count=len(audit.conduct),
            unlinked=unlinked,
            policy_basis=_policy_basis(_used_versions(statement, documents), policies),
            eu=_eu_section(audit, teachers, inventory.modalities),
            pack_data=pack.embedded(),
            not_embedded=[{"name": n, "mb": f"{size / 1e6:,.1f}"} for n, size in left_out],
            embed_limit_mb=EMBED_LIMIT >> 20,
            version=__version__,
            generated_at=(generated_at or datetime.now(UTC)).isoformat(timespec="seconds"),
            **inline_assets(),
        )
    )
    return page


def pack_pages(
    audit: DatasetAudit,
    members: Mapping[str, bytes | Path],
    *,
    policies: PolicySet | None = None,
    title: str | None = None,
    generated_at: datetime | None = None,
) -> dict[str, bytes]:
    """``report.html`` and ``verify.html`` for a pack being built, as members to add to it.

    Call it once every other member is written and before the statement is signed, so that
    both pages are listed in the statement's digests like every other member. The report then
    embeds ``proof.json`` and ``entries.jsonl.gz`` (within ``EMBED_LIMIT``) but not
    ``manifest.dsse.json`` (it does not exist yet): a reader drops that one file (and any
    member too large to embed) onto the page to finish the checks. Give members as file paths
    to keep a large pack out of memory.

    Example:
        >>> members.update(pack_pages(audit, members))  # doctest: +SKIP
    """
    from ledger.report.verifier import VERIFY_HTML, verify_html

    html = render_dataset_report(
        audit,
        ReportPack.from_members(members),
        policies=policies,
        title=title,
        generated_at=generated_at,
    )
    return {REPORT_HTML: html.encode("utf-8"), VERIFY_HTML: verify_html()}
