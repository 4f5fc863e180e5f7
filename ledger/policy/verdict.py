"""Verdict values: what a policy evaluation concluded, why, and under which policy versions.

Invariants:

- Every value here is frozen and round-trips exactly through ``to_dict``/``from_dict`` (plain
  JSON types only), so a verdict can be stored next to a ledger entry and read back unchanged.
- ``Verdict.verdict`` is the strictest of its layers' verdicts, in the order
  ``prohibited`` > ``unknown`` > ``conditional`` > ``allowed``.
- ``policy_digest`` depends only on the (policy id, version id, version digest) triples used,
  never on their order, so the same terms give the same digest on every machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ledger.crypto.canonical import canonical_json, sha256_hex
from ledger.errors import InputError

__all__ = [
    "VERDICTS",
    "DutyRef",
    "LayerResult",
    "PolicyVersionRef",
    "Reason",
    "RuleRef",
    "Verdict",
    "VerdictKind",
    "policy_digest",
    "strictest",
]

VerdictKind = Literal["allowed", "conditional", "prohibited", "unknown"]
VERDICTS: tuple[VerdictKind, ...] = ("allowed", "conditional", "unknown", "prohibited")
_RANK = {name: rank for rank, name in enumerate(VERDICTS)}
# Confidence levels below which a clause is shown as unverified.
UNVERIFIED = frozenset({"S", "U"})


def strictest(verdicts: Iterable[VerdictKind]) -> VerdictKind:
    """The strictest verdict of several (``allowed`` for none)."""
    return max(verdicts, key=_RANK.__getitem__, default="allowed")


@dataclass(frozen=True, slots=True)
class RuleRef:
    """A citable rule: which clause of which source, in our paraphrase, how well verified."""

    rule_id: str
    provider: str
    version_id: str
    clause: str
    source_url: str
    paraphrase: str
    confidence: str

    @property
    def verified(self) -> bool:
        """False when the clause text was only reported (S) or is unverified (U)."""
        return self.confidence not in UNVERIFIED

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "rule_id": self.rule_id,
            "provider": self.provider,
            "version_id": self.version_id,
            "clause": self.clause,
            "source_url": self.source_url,
            "paraphrase": self.paraphrase,
            "confidence": self.confidence,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleRef:
        """Inverse of :meth:`to_dict`."""
        return cls(**{name: str(data[name]) for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class DutyRef:
    """A duty the user must fulfil for a conditional verdict to hold."""

    action: str
    value: tuple[str, ...]
    rule_id: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {"action": self.action, "value": list(self.value), "rule_id": self.rule_id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DutyRef:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["action"]), tuple(data["value"]), str(data["rule_id"]))

    def describe(self) -> str:
        """One line for people."""
        values = " or ".join(f'"{v}"' for v in self.value)
        texts = {
            "name-prefix": f"start the student's name with {values}",
            "display-label": f"display {values}",
            "ship-licence-copy": "give recipients a copy of the licence agreement",
            "notice-file": "ship the required notice file",
            "mark-modified": "mark modified files as modified",
            "flow-down-restrictions": "make the licence's use restrictions binding on recipients",
            "comply-usage-policy": f"comply with the usage policy {values}".rstrip(),
        }
        return texts.get(self.action, self.action)


@dataclass(frozen=True, slots=True)
class Reason:
    """One step of the reasoning within a layer.

    ``effect`` is one of: ``prohibits``; ``permits`` (an explicit permission); ``excepted`` (a
    prohibition carved out by an exception) and ``excepts`` (that exception); ``requires``
    (duties); ``needs-fact`` (a rule that would decide but whose facts nobody declared);
    ``does-not-apply`` (a clause on the purpose whose conditions are false for the facts);
    ``silent`` (no clause speaks to the purpose); ``unreviewed`` (the documents were not read
    in full); ``no-policy``; ``no-version``; ``unknown-model``.
    """

    effect: str
    note: str
    rule: RuleRef | None = None
    missing_facts: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "effect": self.effect,
            "note": self.note,
            "rule": self.rule.to_dict() if self.rule else None,
            "missing_facts": list(self.missing_facts),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reason:
        """Inverse of :meth:`to_dict`."""
        rule = data.get("rule")
        return cls(
            effect=str(data["effect"]),
            note=str(data["note"]),
            rule=RuleRef.from_dict(rule) if rule else None,
            missing_facts=tuple(data.get("missing_facts", ())),
        )


@dataclass(frozen=True, slots=True)
class PolicyVersionRef:
    """Which version of which policy a verdict used, how it was picked, and its digest."""

    policy: str
    version: str
    sha256: str
    selected_by: str  # "time" (terms, marketplace) or "model" (weights licence)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "policy": self.policy,
            "version": self.version,
            "sha256": self.sha256,
            "selected_by": self.selected_by,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyVersionRef:
        """Inverse of :meth:`to_dict`."""
        return cls(**{name: str(data[name]) for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class LayerResult:
    """The verdict of one layer (host terms, marketplace, pass-through seller, licence)."""

    layer: str  # "terms" | "marketplace" | "pass-through" | "licence"
    policy: str
    version: PolicyVersionRef | None
    verdict: VerdictKind
    reasons: tuple[Reason, ...]
    duties: tuple[DutyRef, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "layer": self.layer,
            "policy": self.policy,
            "version": self.version.to_dict() if self.version else None,
            "verdict": self.verdict,
            "reasons": [reason.to_dict() for reason in self.reasons],
            "duties": [duty.to_dict() for duty in self.duties],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerResult:
        """Inverse of :meth:`to_dict`."""
        version = data.get("version")
        return cls(
            layer=str(data["layer"]),
            policy=str(data["policy"]),
            version=PolicyVersionRef.from_dict(version) if version else None,
            verdict=_verdict_kind(data["verdict"]),
            reasons=tuple(Reason.from_dict(r) for r in data["reasons"]),
            duties=tuple(DutyRef.from_dict(d) for d in data.get("duties", ())),
        )


def _verdict_kind(value: object) -> VerdictKind:
    for kind in VERDICTS:
        if value == kind:
            return kind
    raise InputError(f"unknown verdict {value!r}")


def policy_digest(versions: Iterable[PolicyVersionRef]) -> str:
    """SHA-256 hex over the sorted (policy, version, digest) triples a verdict used."""
    triples = sorted({(v.policy, v.version, v.sha256) for v in versions})
    return sha256_hex(canonical_json([list(triple) for triple in triples]))


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of judging one call for one purpose under every layer that applies."""

    verdict: VerdictKind
    purpose: str
    layers: tuple[LayerResult, ...]
    facts: Mapping[str, Any] = field(default_factory=dict)
    call: Mapping[str, Any] = field(default_factory=dict)

    @property
    def duties(self) -> tuple[DutyRef, ...]:
        """Every duty of every layer, in layer order, without repeats."""
        seen: dict[tuple[str, tuple[str, ...], str], DutyRef] = {}
        for layer in self.layers:
            for duty in layer.duties:
                seen.setdefault((duty.action, duty.value, duty.rule_id), duty)
        return tuple(seen.values())

    @property
    def rules(self) -> tuple[RuleRef, ...]:
        """The rules the layers' reasons cite, in order, without repeats."""
        seen: dict[str, RuleRef] = {}
        for layer in self.layers:
            for reason in layer.reasons:
                if reason.rule is not None:
                    seen.setdefault(reason.rule.rule_id, reason.rule)
        return tuple(seen.values())

    @property
    def missing_facts(self) -> tuple[str, ...]:
        """Facts that some rule needed and nobody declared."""
        names: dict[str, None] = {}
        for layer in self.layers:
            for reason in layer.reasons:
                names.update(dict.fromkeys(reason.missing_facts))
        return tuple(names)

    @property
    def policy_versions(self) -> tuple[PolicyVersionRef, ...]:
        """The policy versions the layers used."""
        return tuple(layer.version for layer in self.layers if layer.version is not None)

    @property
    def policy_digest(self) -> str:
        """Stable digest of :attr:`policy_versions` (see :func:`policy_digest`)."""
        return policy_digest(self.policy_versions)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form; ``rules``, ``duties`` and ``policy_versions`` are derived views."""
        return {
            "verdict": self.verdict,
            "purpose": self.purpose,
            "layers": [layer.to_dict() for layer in self.layers],
            "facts": dict(self.facts),
            "call": dict(self.call),
            "rules": [rule.to_dict() | {"verified": rule.verified} for rule in self.rules],
            "duties": [duty.to_dict() for duty in self.duties],
            "missing_facts": list(self.missing_facts),
            "policy_versions": [version.to_dict() for version in self.policy_versions],
            "policy_digest": self.policy_digest,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """Inverse of :meth:`to_dict` (the derived views are recomputed and checked).

        Raises:
            InputError: the data is not a verdict, or its stored digest does not match.
        """
        try:
            verdict = cls(
                verdict=_verdict_kind(data["verdict"]),
                purpose=str(data["purpose"]),
                layers=tuple(LayerResult.from_dict(layer) for layer in data["layers"]),
                facts=dict(data.get("facts", {})),
                call=dict(data.get("call", {})),
            )
        except (KeyError, TypeError) as exc:
            raise InputError(f"not a verdict: missing or bad field {exc}") from exc
        stored = data.get("policy_digest")
        if stored is not None and stored != verdict.policy_digest:
            raise InputError("verdict policy_digest does not match its policy versions")
        return verdict
