"""What a dataset audit found: per-example results and the dataset's summary.

Invariants:

- Every value is immutable (tuples and frozen dataclasses); an audit of a million rows holds a
  million :class:`ExampleResult` tuples, so they are tuples, not objects with a ``__dict__``.
- :meth:`DatasetAudit.summary` is the ``summary`` object of ``ledger audit dataset --json``; it
  always has ``examples``, ``linked``, ``unlinked``, ``by_match`` (every class of
  :data:`ledger.audit.matching.MATCH_CLASSES`) and ``by_verdict`` (every verdict kind).
- :meth:`DatasetAudit.passed` is the CLI's gate: unlinked rows (bad rows count as unlinked)
  within the tolerance, and every linked example ``allowed`` or ``conditional``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TextIO

import orjson

from ledger.audit.matching import Link
from ledger.audit.readers import BadRow
from ledger.policy.conduct import Finding
from ledger.policy.verdict import VERDICTS

__all__ = ["DatasetAudit", "DutySummary", "ExampleResult", "IdFinding"]

_FIRST_UNLINKED = 20


class ExampleResult(NamedTuple):
    """One example: how its turns linked, to which entries, and its verdict (an immutable
    tuple: an audit makes one per example, millions of them)."""

    row: int  # 0-based index of the row among all rows (``index`` in records)
    file: str
    line: int
    match: str
    links: tuple[Link, ...]
    verdict: str | None
    turns: int
    unlinked_turns: int = 0
    ambiguous: bool = False
    purpose_drift: tuple[str, ...] = ()

    @property
    def linked(self) -> bool:
        return self.match != "none"

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.row,
            "file": self.file,
            "line": self.line,
            "match": self.match,
            "links": [link.to_dict() for link in self.links],
            "verdict": self.verdict,
            "turns": self.turns,
            "unlinked_turns": self.unlinked_turns,
            "ambiguous": self.ambiguous,
            "purpose_drift": list(self.purpose_drift),
        }


@dataclass(frozen=True, slots=True)
class DutySummary:
    """A duty some linked examples' verdicts carry (deduplicated), with its rule."""

    action: str
    value: tuple[str, ...]
    rule_id: str
    description: str
    examples: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "value": list(self.value),
            "rule_id": self.rule_id,
            "description": self.description,
            "examples": self.examples,
        }


@dataclass(frozen=True, slots=True)
class IdFinding:
    """A row that names an entry id the ledger does not have, or whose entry lacks its text."""

    index: int
    file: str
    line: int
    entry_id: str | None
    problem: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "file": self.file,
            "line": self.line,
            "entry_id": self.entry_id,
            "problem": self.problem,
        }


@dataclass(frozen=True, slots=True)
class DatasetAudit:
    """What :func:`audit_dataset` found. ``results`` holds every example, in order."""

    purpose: str
    files: tuple[str, ...]
    results: tuple[ExampleResult, ...]
    bad_rows: tuple[BadRow, ...]
    by_match: Mapping[str, int]
    by_verdict: Mapping[str, int]
    by_provider: Mapping[str, int]
    by_model: Mapping[str, int]
    by_policy_version: Mapping[str, int]
    by_month: Mapping[str, int]
    drift_purposes: Mapping[str, int]
    duties: tuple[DutySummary, ...]
    conduct: tuple[Finding, ...]
    id_findings: tuple[IdFinding, ...]
    entries_indexed: int
    near_threshold: float
    seconds: float
    notes: tuple[str, ...] = field(default=())

    @property
    def examples(self) -> int:
        return len(self.results)

    @property
    def linked(self) -> int:
        return self.examples - self.by_match.get("none", 0)

    @property
    def unlinked(self) -> int:
        return self.by_match.get("none", 0)

    @property
    def ambiguous(self) -> int:
        return sum(1 for r in self.results if r.ambiguous)

    @property
    def purpose_drift(self) -> int:
        return sum(1 for r in self.results if r.purpose_drift)

    def unlinked_percent(self) -> float:
        """Unlinked examples and bad rows, as a percentage of all rows."""
        rows = self.examples + len(self.bad_rows)
        return 100.0 * (self.unlinked + len(self.bad_rows)) / rows if rows else 0.0

    def passed(self, max_unlinked_percent: float = 0.0) -> bool:
        """The gate: unlinked rows within the tolerance and every linked example allowed or
        conditional."""
        judged_ok = all(
            self.by_verdict.get(kind, 0) == 0 for kind in VERDICTS if kind not in _PASSING
        )
        return judged_ok and self.unlinked_percent() <= max_unlinked_percent + 1e-9

    def summary(self) -> dict[str, Any]:
        """The ``summary`` object of ``ledger audit dataset --json``."""
        examples = self.examples

        def percent(count: int) -> float:
            return round(100.0 * count / examples, 3) if examples else 0.0

        first = [r for r in self.results if not r.linked][:_FIRST_UNLINKED]
        return {
            "purpose": self.purpose,
            "files": list(self.files),
            "examples": examples,
            "linked": self.linked,
            "unlinked": self.unlinked,
            "linked_percent": percent(self.linked),
            "unlinked_percent": percent(self.unlinked),
            "bad_rows": len(self.bad_rows),
            "by_match": dict(self.by_match),
            "by_verdict": dict(self.by_verdict),
            "ambiguous": self.ambiguous,
            "purpose_drift": self.purpose_drift,
            "drift_purposes": dict(self.drift_purposes),
            "by_provider": dict(self.by_provider),
            "by_model": dict(self.by_model),
            "by_policy_version": dict(self.by_policy_version),
            "by_month": dict(self.by_month),
            "duties": [d.to_dict() for d in self.duties],
            "conduct_findings": len(self.conduct),
            "entries_indexed": self.entries_indexed,
            "near_threshold": self.near_threshold,
            "first_unlinked": [{"index": r.row, "file": r.file, "line": r.line} for r in first],
            "seconds": round(self.seconds, 3),
        }

    def to_dict(self) -> dict[str, Any]:
        """Summary, conduct findings, id findings, bad rows and notes (not the per-example
        records: :meth:`write_records` writes those)."""
        return {
            "summary": self.summary(),
            "conduct": [f.to_dict() for f in self.conduct],
            "id_findings": [f.to_dict() for f in self.id_findings],
            "bad_rows": [b.to_dict() for b in self.bad_rows],
            "notes": list(self.notes),
        }

    def write_records(self, out: TextIO) -> None:
        """One JSON line per example (see :meth:`ExampleResult.to_dict`)."""
        for result in self.results:
            out.write(orjson.dumps(result.to_dict()).decode())
            out.write("\n")


_PASSING = frozenset({"allowed", "conditional"})
