"""Judging a call: which layers of terms apply, what each says about a purpose, and the result.

Invariants:

- Every layer that applies is judged and reported; the overall verdict is the strictest layer
  verdict (``prohibited`` > ``unknown`` > ``conditional`` > ``allowed``).
- Layers: the host's own terms (picked by the call's time), a marketplace's terms and the
  seller's terms it passes through (by time), and the open-weight licence of the model (by the
  model id of the artifact, whatever the call's time). ``self-hosted`` calls have only the
  licence layer.
- Nothing unknown becomes ``allowed``: an unknown provider, an unrecognised model where a
  licence or seller must be found, a call time before the first known version or absent, and a
  fact a deciding rule needs but nobody declared all give ``unknown`` with a reason saying so.
- A purpose no rule speaks to is ``allowed`` with a ``silent`` reason only when the version's
  documents were read (``silence: allowed``); otherwise ``unknown`` with ``unreviewed``.
- A recorded provider name that no policy governs but that is a known alias (``xai``,
  ``bedrock``, written by a user's ``hosts=`` mapping, say) is judged under its canonical slug
  (:func:`ledger.vocabulary.resolve_provider`); an unplaceable name stays unknown.
- Evaluation is pure: it reads policies and facts, never the environment or the database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from ledger.errors import InputError
from ledger.policy.facts import CallFacts, DeclaredFacts
from ledger.policy.loader import PolicySet, default_policies
from ledger.policy.schema import (
    CONDUCT_KINDS,
    CONFIDENCE_LEVELS,
    PURPOSES,
    Constraint,
    PolicyFile,
    PolicyVersion,
)
from ledger.policy.verdict import (
    DutyRef,
    LayerResult,
    PolicyVersionRef,
    Reason,
    RuleRef,
    Verdict,
    VerdictKind,
    strictest,
)
from ledger.vocabulary import resolve_provider

__all__ = ["conduct_rules", "evaluate", "rule_ref", "version_at"]

SELF_HOSTED = "self-hosted"
_Status = Literal["holds", "fails", "open"]


def rule_ref(policy: PolicyFile, version: PolicyVersion, rule_id: str) -> RuleRef:
    """The citable reference of rule ``rule_id`` of ``version``."""
    rule = next(r for r in version.rules if r.id == rule_id)
    source = next(d for d in version.documents if d.id == rule.source)
    clause = f"{source.title}, {rule.clause}"
    return RuleRef(
        rule_id=f"{policy.id}/{version.id}/{rule.id}",
        provider=policy.providers[0] if policy.providers else policy.id,
        version_id=version.id,
        clause=clause,
        source_url=source.url,
        paraphrase=rule.paraphrase,
        confidence=rule.confidence,
    )


def version_at(policy: PolicyFile, at: datetime) -> PolicyVersion | None:
    """The version of a time-picked policy in force on the UTC day of ``at``."""
    day = at.astimezone(UTC).date()
    return next((v for v in policy.versions if v.in_force(day)), None)


def _version_ref(
    policies: PolicySet, policy: PolicyFile, version: PolicyVersion, selected_by: str
) -> PolicyVersionRef:
    return PolicyVersionRef(policy.id, version.id, policies.digest(policy, version), selected_by)


def conduct_rules(
    provider: str, kind: str, at: datetime, *, policies: PolicySet | None = None
) -> list[RuleRef]:
    """The clauses of ``provider``'s terms in force at ``at`` that forbid conduct ``kind``.

    Args:
        provider: provider slug as recorded (``openai``, ``anthropic``, ``gcp.gemini``...).
        kind: one of :data:`~ledger.policy.schema.CONDUCT_KINDS`.
        at: timezone-aware time of the conduct.
        policies: the policy set to search (default: the shipped policies).

    Returns:
        The citable rules, possibly empty (unknown provider, no version in force, or terms
        silent on that conduct).

    Raises:
        InputError: ``kind`` is not a conduct kind, or ``at`` is naive.

    Example:
        >>> refs = conduct_rules("openai", "key-sharing", datetime(2025, 7, 1, tzinfo=UTC))
    """
    if kind not in CONDUCT_KINDS:
        raise InputError(f"unknown conduct kind {kind!r} (known: {', '.join(CONDUCT_KINDS)})")
    if at.tzinfo is None or at.utcoffset() is None:
        raise InputError("conduct_rules needs a timezone-aware time")
    found: list[RuleRef] = []
    policy_set = policies or default_policies()
    for policy in policy_set.for_provider(_canonical_provider(policy_set, provider)):
        version = version_at(policy, at)
        if version is None:
            continue
        found.extend(
            _with_provider(rule_ref(policy, version, rule.id), provider)
            for rule in version.rules
            if rule.conduct == kind
        )
    return found


def _with_provider(ref: RuleRef, provider: str) -> RuleRef:
    return RuleRef(
        ref.rule_id,
        provider,
        ref.version_id,
        ref.clause,
        ref.source_url,
        ref.paraphrase,
        ref.confidence,
    )


# --- constraint evaluation ---------------------------------------------------------------------


def _fact_value(name: str, call: CallFacts, facts: DeclaredFacts) -> object:
    if name == "model":
        return call.model.lower() if call.model else None
    if name == "host":
        return call.host.lower() if call.host else None
    if name == "output_modality":
        return call.output_modality
    value = getattr(facts, name)
    # "unsure" is a declaration that the user does not know: as good as undeclared for a rule.
    return None if value == "unsure" else value


def _check(constraint: Constraint, value: object) -> bool:
    target = constraint.value
    op = constraint.op
    if op == "eq":
        return value == target
    if op == "neq":
        return value != target
    if op == "in":
        return isinstance(target, list) and value in target
    if op == "not_in":
        return isinstance(target, list) and value not in target
    if op == "matches":
        return isinstance(value, str) and re.search(str(target), value) is not None
    if not isinstance(value, int) or not isinstance(target, int):
        return False
    return {
        "gt": value > target,
        "gteq": value >= target,
        "lt": value < target,
        "lteq": value <= target,
    }[op]


def _status(
    constraints: list[Constraint], call: CallFacts, facts: DeclaredFacts
) -> tuple[_Status, tuple[str, ...]]:
    """``fails`` if any constraint is false; else ``open`` if some fact is missing; else holds."""
    missing: list[str] = []
    for constraint in constraints:
        value = _fact_value(constraint.fact, call, facts)
        if value is None:
            missing.append(constraint.fact)
        elif not _check(constraint, value):
            return "fails", ()
    if missing:
        return "open", tuple(dict.fromkeys(missing))
    return "holds", ()


# --- one layer ---------------------------------------------------------------------------------


def _judge_version(
    policy: PolicyFile,
    version: PolicyVersion,
    purpose: str,
    call: CallFacts,
    facts: DeclaredFacts,
) -> tuple[VerdictKind, list[Reason], list[DutyRef]]:
    rules = [rule for rule in version.rules if rule.covers(purpose)]
    status = {rule.id: _status(rule.constraints, call, facts) for rule in rules}

    def ref(rule_id: str) -> RuleRef:
        return rule_ref(policy, version, rule_id)

    reasons: list[Reason] = []
    duties: list[DutyRef] = []
    prohibited = unknown = conditional = permitted = False
    for rule in rules:
        if rule.type != "prohibition":
            continue
        state, missing = status[rule.id]
        if state == "fails":
            reasons.append(Reason("does-not-apply", _NOT_APPLICABLE, ref(rule.id)))
            continue
        exceptions = [p for p in rules if rule.id in p.exception_to]
        holding = [p for p in exceptions if status[p.id][0] == "holds"]
        open_ = [p for p in exceptions if status[p.id][0] == "open"]
        if holding:
            reasons.append(
                Reason(
                    "excepted",
                    "this clause would forbid the use, but an exception carves it out",
                    ref(rule.id),
                )
            )
            reasons.append(
                Reason(
                    "excepts",
                    f"an exception carves this use out of {rule.id!r}",
                    ref(holding[0].id),
                )
            )
            permitted = True
            continue
        if state == "open":
            unknown = True
            reasons.append(
                Reason("needs-fact", _needs(missing), ref(rule.id), missing_facts=missing)
            )
        elif open_:
            unknown = True
            needed = tuple(dict.fromkeys(f for p in open_ for f in status[p.id][1]))
            reasons.append(
                Reason(
                    "needs-fact",
                    f"prohibited unless an exception applies; {_needs(needed)}",
                    ref(rule.id),
                    missing_facts=needed,
                )
            )
        else:
            prohibited = True
            reasons.append(Reason("prohibits", "this clause forbids the use", ref(rule.id)))
    for rule in rules:
        state, missing = status[rule.id]
        if rule.type == "duty" and state == "fails":
            reasons.append(Reason("does-not-apply", _NOT_APPLICABLE, ref(rule.id)))
        elif rule.type == "duty":
            if state == "open":
                unknown = True
                reasons.append(
                    Reason("needs-fact", _needs(missing), ref(rule.id), missing_facts=missing)
                )
            else:
                conditional = True
                reasons.append(Reason("requires", "the use carries duties", ref(rule.id)))
                qualified = ref(rule.id).rule_id
                for duty in rule.duties:
                    value = duty.value if isinstance(duty.value, list) else [duty.value]
                    duties.append(DutyRef(duty.action, tuple(v for v in value if v), qualified))
        elif rule.type == "permission" and not rule.exception_to and state == "holds":
            permitted = True
            reasons.append(Reason("permits", "this clause expressly allows the use", ref(rule.id)))
    if prohibited:
        return "prohibited", reasons, duties
    if unknown:
        return "unknown", reasons, duties
    if conditional:
        return "conditional", reasons, duties
    if permitted:
        return "allowed", reasons, duties
    if version.silence == "unknown":
        note = (
            f"the documents of {version.id!r} were not read in full, so their silence on "
            f"{purpose!r} proves nothing"
        )
        return "unknown", [*reasons, Reason("unreviewed", note)], duties
    if reasons:
        # Clauses speak to the purpose but none applies to the declared facts.
        return "allowed", reasons, duties
    note = f"no clause of {version.id!r} speaks to {purpose!r}: silent, not an express permission"
    weakest = max((d.confidence for d in version.documents), key=CONFIDENCE_LEVELS.index)
    if weakest in ("S", "U"):
        note += f" (unverified: some documents are known only at confidence {weakest})"
    return "allowed", [Reason("silent", note)], duties


_NOT_APPLICABLE = "this clause speaks to the purpose but its conditions do not hold for the facts"


def _needs(missing: tuple[str, ...]) -> str:
    return f"needs the fact(s) {', '.join(missing)}, which are undeclared (or declared unsure)"


def _layer(
    policies: PolicySet,
    layer: str,
    policy: PolicyFile,
    version: PolicyVersion,
    selected_by: str,
    purpose: str,
    call: CallFacts,
    facts: DeclaredFacts,
) -> LayerResult:
    verdict, reasons, duties = _judge_version(policy, version, purpose, call, facts)
    return LayerResult(
        layer=layer,
        policy=policy.id,
        version=_version_ref(policies, policy, version, selected_by),
        verdict=verdict,
        reasons=tuple(reasons),
        duties=tuple(duties),
    )


def _unknown(layer: str, policy: str, effect: str, note: str) -> LayerResult:
    return LayerResult(layer, policy, None, "unknown", (Reason(effect, note),))


def _timed_layer(
    policies: PolicySet,
    layer: str,
    policy: PolicyFile,
    purpose: str,
    call: CallFacts,
    facts: DeclaredFacts,
) -> LayerResult:
    if call.at is None:
        return _unknown(layer, policy.id, "no-version", "the call's time is not recorded")
    version = version_at(policy, call.at)
    if version is None:
        first = min(v.effective_from for v in policy.versions)
        day = call.at.date()
        where = "before the first known version" if day < first else "after the last version"
        note = f"no version of {policy.id!r} is known for {day} ({where}, first: {first})"
        return _unknown(layer, policy.id, "no-version", note)
    return _layer(policies, layer, policy, version, "time", purpose, call, facts)


def _canonical_provider(policies: PolicySet, provider: str) -> str:
    """``provider`` itself when a policy governs it, else its canonical slug if it is an alias."""
    if provider == SELF_HOSTED or policies.for_provider(provider):
        return provider
    try:
        return resolve_provider(provider)
    except InputError:
        # Not a name we know: judged as recorded, which yields a "no-policy" unknown layer.
        return provider


def _routes(policy: PolicyFile, model: str | None, policies: PolicySet) -> list[PolicyFile]:
    if policy.pass_through is None or model is None:
        return []
    needle = model.lower()
    sellers: list[PolicyFile] = []
    for route in policy.pass_through.routes:
        seller = policies.get(route.policy)
        if seller is not None and re.search(route.pattern, needle) and seller not in sellers:
            sellers.append(seller)
    return sellers


def evaluate(
    call: CallFacts | Mapping[str, Any],
    purpose: str,
    facts: DeclaredFacts | Mapping[str, Any] | None = None,
    *,
    policies: PolicySet | None = None,
) -> Verdict:
    """Judge one call for one declared purpose under every layer of terms that applies.

    Args:
        call: the call facts, or an entry body to read them from.
        purpose: one of :data:`~ledger.policy.schema.PURPOSES`.
        facts: declared facts (organization profile merged with any overrides).
        policies: the policy set (default: the shipped policies).

    Raises:
        InputError: unknown purpose, or malformed call or facts.

    Example:
        >>> call = CallFacts(provider="openai", model="gpt-4o", at=datetime.now(UTC))
        >>> evaluate(call, "train-model", {"competes_with_provider": "no"}).verdict
        'allowed'
    """
    if purpose not in PURPOSES:
        raise InputError(f"unknown purpose {purpose!r} (known: {', '.join(PURPOSES)})")
    if not isinstance(call, CallFacts):
        call = CallFacts.from_entry_body(call)
    declared = DeclaredFacts.coerce(facts)
    if purpose == "research" and declared.commercial is None:
        # The research purpose is defined as non-commercial research.
        declared = declared.merged({"commercial": False})
    policy_set = policies or default_policies()
    layers: list[LayerResult] = []

    licence = policy_set.licence_for(call.model) if call.model else None
    provider = _canonical_provider(policy_set, call.provider)
    needs_licence = provider == SELF_HOSTED
    if provider != SELF_HOSTED:
        hosts = policy_set.for_provider(provider)
        if not hosts:
            note = f"no policy is encoded for provider {call.provider!r}"
            layers.append(_unknown("terms", call.provider, "no-policy", note))
        for host in hosts:
            layers.append(_timed_layer(policy_set, host.layer, host, purpose, call, declared))
            sellers = _routes(host, call.model, policy_set)
            for seller in sellers:
                layers.append(
                    _timed_layer(policy_set, "pass-through", seller, purpose, call, declared)
                )
            own = call.model is not None and any(
                re.search(pattern, call.model.lower()) for pattern in host.own_models
            )
            if host.serves_third_party_models and not sellers and not own:
                needs_licence = True
    if licence is not None and provider in licence[0].first_party_providers:
        # The vendor's own API serves its model under its API terms, not the weights licence.
        licence = None
    if licence is not None:
        policy, version = licence
        layers.append(
            _layer(policy_set, "licence", policy, version, "model", purpose, call, declared)
        )
    elif needs_licence:
        note = (
            f"model {call.model!r} matches no encoded licence or seller, so its terms are unknown"
            if call.model
            else "the model id is not recorded, so its licence is unknown"
        )
        layers.append(_unknown("licence", call.model or "?", "unknown-model", note))

    return Verdict(
        verdict=strictest(layer.verdict for layer in layers),
        purpose=purpose,
        layers=tuple(layers),
        facts=declared.declared(),
        call=call.model_dump(mode="json"),
    )
