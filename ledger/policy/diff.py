"""What changed in a time-picked policy between two days: the rules added, removed and reworded.

Invariants:

- Each day selects the version in force on it (the same choice the engine makes for a call on
  that day); either may be ``None`` when no version covers the day, and then every rule of the
  other side counts as added or removed.
- Rules are matched by id within the policy. A rule present on both sides is *reworded* when any
  field a verdict or a citation rests on differs: type, purposes or conduct kind, constraints,
  duties, exceptions, cited source, clause, paraphrase or confidence. The fields that differ are
  listed, so a team can tell a new condition from a corrected citation.
- Source documents are compared by id too (added, removed, or a changed title, date, URL or
  confidence). A document change with no rule change is reported but does not count as
  ``changed``: the verdicts it yields are the same, only their citation moved.
- Pure: reads policy objects only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ledger.policy.schema import PolicyFile, PolicyVersion, Rule

__all__ = [
    "DOCUMENT_FIELDS",
    "RULE_FIELDS",
    "DocumentChange",
    "PolicyDiff",
    "RuleChange",
    "diff_policy",
]

DOCUMENT_FIELDS: tuple[str, ...] = ("title", "url", "date", "confidence")
"""The source-document fields compared."""

RULE_FIELDS: tuple[str, ...] = (
    "type",
    "purposes",
    "conduct",
    "constraints",
    "duties",
    "exception_to",
    "source",
    "clause",
    "paraphrase",
    "confidence",
)
"""The rule fields compared, in the order a change lists them."""


@dataclass(frozen=True, slots=True)
class RuleChange:
    """One rule that differs between the two versions."""

    rule_id: str
    change: str  # "added", "removed" or "reworded"
    fields: tuple[str, ...] = ()
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "rule_id": self.rule_id,
            "change": self.change,
            "fields": list(self.fields),
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True, slots=True)
class DocumentChange:
    """One source document that differs between the two versions."""

    document_id: str
    change: str  # "added", "removed" or "revised"
    fields: tuple[str, ...] = ()
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "document_id": self.document_id,
            "change": self.change,
            "fields": list(self.fields),
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    """The rule changes of one policy between the versions in force on two days."""

    policy: str
    from_day: dt.date
    to_day: dt.date
    from_version: str | None
    to_version: str | None
    changes: tuple[RuleChange, ...] = field(default=())
    documents: tuple[DocumentChange, ...] = field(default=())

    @property
    def changed(self) -> bool:
        """Whether anything a verdict or citation rests on changed."""
        return bool(self.changes) or (self.from_version is None) != (self.to_version is None)

    def of_kind(self, change: str) -> list[RuleChange]:
        """The changes of one kind (``added``, ``removed``, ``reworded``)."""
        return [c for c in self.changes if c.change == change]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, changes grouped by kind."""
        return {
            "policy": self.policy,
            "from": {"date": self.from_day.isoformat(), "version": self.from_version},
            "to": {"date": self.to_day.isoformat(), "version": self.to_version},
            "changed": self.changed,
            "added": [c.to_dict() for c in self.of_kind("added")],
            "removed": [c.to_dict() for c in self.of_kind("removed")],
            "reworded": [c.to_dict() for c in self.of_kind("reworded")],
            "documents": [d.to_dict() for d in self.documents],
        }


def _in_force(policy: PolicyFile, day: dt.date) -> PolicyVersion | None:
    return next((v for v in policy.versions if v.in_force(day)), None)


def _rule_view(rule: Rule) -> dict[str, Any]:
    dumped = rule.model_dump(mode="json")
    return {name: dumped[name] for name in ("id", *RULE_FIELDS)}


def _document_changes(
    before: PolicyVersion | None, after: PolicyVersion | None
) -> tuple[DocumentChange, ...]:
    def view(version: PolicyVersion | None) -> dict[str, dict[str, Any]]:
        if version is None:
            return {}
        return {
            d.id: {name: d.model_dump(mode="json")[name] for name in ("id", *DOCUMENT_FIELDS)}
            for d in version.documents
        }

    old, new = view(before), view(after)
    changes = [DocumentChange(i, "removed", before=old[i]) for i in old if i not in new]
    for doc_id, now in new.items():
        if doc_id not in old:
            changes.append(DocumentChange(doc_id, "added", after=now))
            continue
        fields = tuple(name for name in DOCUMENT_FIELDS if old[doc_id][name] != now[name])
        if fields:
            changes.append(DocumentChange(doc_id, "revised", fields, old[doc_id], now))
    return tuple(changes)


def diff_policy(policy: PolicyFile, from_day: dt.date, to_day: dt.date) -> PolicyDiff:
    """Compare the versions of ``policy`` in force on ``from_day`` and on ``to_day``.

    Example:
        >>> d = diff_policy(openai, dt.date(2024, 6, 1), dt.date(2025, 7, 1))
        >>> [c.rule_id for c in d.of_kind("added")]
    """
    before = _in_force(policy, from_day)
    after = _in_force(policy, to_day)
    old = {r.id: r for r in before.rules} if before else {}
    new = {r.id: r for r in after.rules} if after else {}
    changes: list[RuleChange] = []
    for rule_id, rule in old.items():
        if rule_id not in new:
            changes.append(RuleChange(rule_id, "removed", before=_rule_view(rule)))
    for rule_id, rule in new.items():
        if rule_id not in old:
            changes.append(RuleChange(rule_id, "added", after=_rule_view(rule)))
            continue
        was, now = _rule_view(old[rule_id]), _rule_view(rule)
        fields = tuple(name for name in RULE_FIELDS if was[name] != now[name])
        if fields:
            changes.append(RuleChange(rule_id, "reworded", fields, before=was, after=now))
    return PolicyDiff(
        policy=policy.id,
        from_day=from_day,
        to_day=to_day,
        from_version=before.id if before else None,
        to_version=after.id if after else None,
        changes=tuple(changes),
        documents=_document_changes(before, after),
    )
