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
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup, escape

from ledger.entry_body import read_call
from ledger.errors import InputError, LedgerError
from ledger.policy.verdict import UNVERIFIED, VERDICTS
from ledger.report.verifier import environment, inline_assets

if TYPE_CHECKING:
    from ledger.audit import DatasetAudit
    from ledger.policy import PolicySet

__all__ = ["EMBEDDED_MEMBERS", "REPORT_HTML", "ReportPack", "pack_pages", "render_dataset_report"]

# The pack members the report embeds for its verifier (the rest are not needed to verify).
EMBEDDED_MEMBERS = ("manifest.dsse.json", "proof.json", "entries.jsonl.gz")
_OPTIONAL_MEMBERS = ("verdicts.json",)
REPORT_HTML = "report.html"
_UNLINKED_SHOWN = 200
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
    _bodies: dict[int, dict[str, Any]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    @classmethod
    def from_members(
        cls, members: Mapping[str, bytes], verifier_key: str | None = None
    ) -> ReportPack:
        """Keep the members the report needs out of a pack's ``{name: bytes}``."""
        wanted = (*EMBEDDED_MEMBERS, *_OPTIONAL_MEMBERS)
        return cls({n: bytes(members[n]) for n in wanted if n in members}, verifier_key)

    @classmethod
    def from_pack(cls, path: str | Path, verifier_key: str | None = None) -> ReportPack:
        """Read the members from a pack folder or zip.

        Raises:
            InputError: not a pack, or a member is unreadable.
        """
        from ledger.manifest.pack import Pack

        pack = Pack(Path(path))
        wanted = (*EMBEDDED_MEMBERS, *_OPTIONAL_MEMBERS)
        return cls({n: pack.read(n) for n in wanted if pack.has(n)}, verifier_key)

    def statement(self) -> dict[str, Any] | None:
        """The in-toto statement inside the envelope, parsed but NOT verified (display only)."""
        raw = self.files.get("manifest.dsse.json")
        if raw is None:
            return None
        try:
            envelope = json.loads(raw)
            parsed = json.loads(base64.b64decode(envelope["payload"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"manifest.dsse.json is not a DSSE envelope: {exc}") from exc
        return parsed if isinstance(parsed, dict) else None

    def bodies(self) -> dict[int, dict[str, Any]]:
        """Entry bodies by leaf index, from ``entries.jsonl.gz`` (parsed once)."""
        if not self._bodies and "entries.jsonl.gz" in self.files:
            try:
                text = gzip.decompress(self.files["entries.jsonl.gz"])
                for line in text.splitlines():
                    if line:
                        item = json.loads(line)
                        self._bodies[int(item["leaf_index"])] = item["entry"]["body"]
            except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
                raise InputError(f"entries.jsonl.gz is not an entries file: {exc}") from exc
        return self._bodies

    def verdicts(self) -> dict[str, Any]:
        """``verdicts.json`` (``documents`` and ``leaves``), or empty when absent."""
        raw = self.files.get("verdicts.json")
        if raw is None:
            return {}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise InputError(f"verdicts.json is not JSON: {exc}") from exc
        return data if isinstance(data, dict) else {}

    def embedded(self) -> dict[str, Any]:
        """The JSON object the page's verifier loads (members as base64)."""
        files = {
            n: base64.b64encode(self.files[n]).decode("ascii")
            for n in EMBEDDED_MEMBERS
            if n in self.files
        }
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


def _model_of(body: Mapping[str, Any]) -> tuple[str, str]:
    view = read_call(body)
    return view.provider, view.model or "(unknown model)"


def _teachers(
    audit: DatasetAudit, bodies: Mapping[int, Mapping[str, Any]], verdicts: Mapping[str, Any]
) -> list[dict[str, Any]]:
    documents = verdicts.get("documents", {})
    by_leaf = verdicts.get("leaves", {})
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for leaf in sorted({link.leaf_index for r in audit.results for link in r.links}):
        body = bodies.get(leaf)
        if body is None:
            continue
        key = _model_of(body)
        row = rows.setdefault(key, {
            "provider": key[0], "model": key[1], "calls": 0, "input_tokens": 0,
            "output_tokens": 0, "first": None, "last": None, "versions": {}, "examples": 0,
        })  # fmt: skip
        row["calls"] += 1
        raw_usage = body.get("usage")
        usage: Mapping[str, Any] = raw_usage if isinstance(raw_usage, Mapping) else {}
        for name in ("input_tokens", "output_tokens"):
            value = usage.get(name)
            row[name] += value if isinstance(value, int) else 0
        at = read_call(body).at
        if at is not None:
            stamp = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
            row["first"] = stamp if row["first"] is None else min(row["first"], stamp)
            row["last"] = stamp if row["last"] is None else max(row["last"], stamp)
        document = documents.get(by_leaf.get(str(leaf), ""), {})
        for ref in document.get("policy_versions", []):
            row["versions"][f"{ref['policy']}@{ref['version']}"] = None
    for result in audit.results:
        seen = {_model_of(bodies[link.leaf_index]) for link in result.links
                if link.leaf_index in bodies and result.linked}  # fmt: skip
        for key in seen:
            rows[key]["examples"] += 1
    out = []
    for key in sorted(rows):
        row = rows[key]
        row["versions"] = list(row["versions"])
        row["first"] = row["first"] or "?"
        row["last"] = row["last"] or "?"
        out.append(row)
    return out


def _used_versions(
    statement: Mapping[str, Any] | None, verdicts: Mapping[str, Any]
) -> list[tuple[str, str, str]]:
    found: dict[tuple[str, str, str], None] = {}
    if statement is not None:
        for ref in statement.get("predicate", {}).get("policies", {}).get("versions", []):
            found[(ref["policy"], ref["version"], ref["sha256"])] = None
    for document in verdicts.get("documents", {}).values():
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
    for finding in audit.conduct:
        leaves = list(finding.leaf_indexes)
        shown = ", ".join(str(n) for n in leaves[:20]) + (" ..." if len(leaves) > 20 else "")
        out.append({
            "kind": finding.kind, "severity": finding.severity, "summary": finding.summary,
            "provider": finding.provider, "leaves": shown, "clauses_note": finding.clauses_note,
            "clauses": [{"rule_id": c.rule_id, "clause": c.clause,
                         "unverified": c.confidence in UNVERIFIED} for c in finding.clauses],
        })  # fmt: skip
    return out


def _eu_section(
    audit: DatasetAudit, teachers: Sequence[Mapping[str, Any]], bodies: Mapping[int, Any]
) -> dict[str, Any]:
    linked = {link.leaf_index for r in audit.results if r.linked for link in r.links}
    modalities = sorted(
        {
            str(read_call(bodies[leaf]).output_modality or "text")
            for leaf in linked
            if leaf in bodies
        }
    )
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
    bodies = pack.bodies()
    verdicts = pack.verdicts()
    summary = audit.summary()
    teachers = _teachers(audit, bodies, verdicts)

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
        for r in audit.results
        if not r.linked
    ][:_UNLINKED_SHOWN]
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
            unlinked=unlinked,
            policy_basis=_policy_basis(_used_versions(statement, verdicts), policies),
            eu=_eu_section(audit, teachers, bodies),
            pack_data=pack.embedded(),
            version=__version__,
            generated_at=(generated_at or datetime.now(UTC)).isoformat(timespec="seconds"),
            **inline_assets(),
        )
    )
    return page


def pack_pages(
    audit: DatasetAudit,
    members: Mapping[str, bytes],
    *,
    policies: PolicySet | None = None,
    title: str | None = None,
    generated_at: datetime | None = None,
) -> dict[str, bytes]:
    """``report.html`` and ``verify.html`` for a pack being built, as members to add to it.

    Call it once every other member is written and before the statement is signed, so that
    both pages are listed in the statement's digests like every other member. The report then
    embeds ``proof.json`` and ``entries.jsonl.gz`` but not ``manifest.dsse.json`` (it does not
    exist yet): a reader drops that one file onto the page to finish the checks.

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
