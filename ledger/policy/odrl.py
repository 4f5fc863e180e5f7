"""W3C ODRL 2.2 JSON-LD export of policy versions, and the parser that reads it back.

Invariants:

- Every policy version becomes one ODRL ``Offer`` (the provider offers its terms) whose ``uid``
  is stable (``<base>/<policy>/<version>``), with ``profile`` set to our profile IRI and the
  provider as ``assigner``.
- Output-use rules have the ODRL action ``use`` and a ``purpose`` constraint over our purpose
  IRIs (no purpose constraint: every purpose). Conduct rules are prohibitions whose action is
  the conduct kind in our vocabulary. Duty rules become permissions carrying ``duty`` entries,
  the ODRL shape of a conditional permission. Facts are left operands in our vocabulary.
- Nothing is lost: :func:`version_from_odrl` rebuilds a version equal to the one exported
  (tests check this for every shipped version), so the export can be audited against the YAML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ledger.errors import InputError
from ledger.policy.loader import PolicySet
from ledger.policy.schema import Constraint, PolicyFile, PolicyVersion, Rule
from ledger.vocabulary import resolve_provider

__all__ = [
    "ODRL_CONTEXT",
    "POLICY_BASE",
    "PROFILE",
    "VOCAB",
    "export_odrl",
    "version_from_odrl",
    "version_to_odrl",
]

ODRL_CONTEXT = "http://www.w3.org/ns/odrl.jsonld"
PROFILE = "https://distill-ledger.dev/odrl/profile/v1"
"""Our ODRL profile: the purposes, conduct kinds, facts and duty actions below."""
VOCAB = "https://distill-ledger.dev/odrl/vocab#"
POLICY_BASE = "https://distill-ledger.dev/policies"
_DCT = "http://purl.org/dc/terms/"

# Our operators to ODRL operators; "matches" (regular expression) is defined by our profile.
_OPERATORS = {
    "eq": "eq",
    "neq": "neq",
    "in": "isAnyOf",
    "not_in": "isNoneOf",
    "gt": "gt",
    "gteq": "gteq",
    "lt": "lt",
    "lteq": "lteq",
    "matches": "dl:matches",
}
_OPERATORS_BACK = {odrl: ours for ours, odrl in _OPERATORS.items()}
# "attribute" is ODRL's common-vocabulary action for attribution; the rest are our profile's.
_DUTY_ACTIONS = {"display-label": "attribute"}
_DUTY_ACTIONS_BACK = {odrl: ours for ours, odrl in _DUTY_ACTIONS.items()}


def _iri(term: str) -> str:
    return f"dl:{term}"


def _term(iri: object, what: str) -> str:
    if not isinstance(iri, str) or not iri.startswith("dl:"):
        raise InputError(f"expected a dl: term for {what}, got {iri!r}")
    return iri.removeprefix("dl:")


def _constraint_to_odrl(constraint: Constraint) -> dict[str, Any]:
    return {
        "leftOperand": _iri(constraint.fact),
        "operator": _OPERATORS[constraint.op],
        "rightOperand": constraint.value,
    }


def _rule_to_odrl(
    policy: PolicyFile, version: PolicyVersion, rule: Rule, order: int
) -> dict[str, Any]:
    base = f"{POLICY_BASE}/{policy.id}/{version.id}"
    constraints: list[dict[str, Any]] = []
    if rule.purposes is not None and "*" not in rule.purposes:
        constraints.append(
            {
                "leftOperand": "purpose",
                "operator": "isAnyOf",
                "rightOperand": [{"@id": _iri(p)} for p in rule.purposes],
            }
        )
    constraints.extend(_constraint_to_odrl(c) for c in rule.constraints)
    out: dict[str, Any] = {
        "uid": f"{base}#{rule.id}",
        "target": f"{POLICY_BASE}/{policy.id}/outputs",
        "action": "use" if rule.conduct is None else _iri(rule.conduct),
        "dl:ruleType": rule.type,
        "dl:order": order,
        "dl:clause": rule.clause,
        "dl:source": rule.source,
        "dl:paraphrase": rule.paraphrase,
        "dl:confidence": rule.confidence,
    }
    if constraints:
        out["constraint"] = constraints
    if rule.duties:
        out["duty"] = [
            {
                "action": _DUTY_ACTIONS.get(duty.action, _iri(duty.action)),
                **({"dl:value": duty.value} if duty.value is not None else {}),
            }
            for duty in rule.duties
        ]
    if rule.exception_to:
        out["dl:exceptionTo"] = [f"{base}#{target}" for target in rule.exception_to]
    return out


def version_to_odrl(policy: PolicyFile, version: PolicyVersion) -> dict[str, Any]:
    """One policy version as an ODRL 2.2 ``Offer`` in JSON-LD."""
    permissions: list[dict[str, Any]] = []
    prohibitions: list[dict[str, Any]] = []
    for order, rule in enumerate(version.rules):
        target = prohibitions if rule.type == "prohibition" else permissions
        target.append(_rule_to_odrl(policy, version, rule, order))
    doc: dict[str, Any] = {
        "@context": [ODRL_CONTEXT, {"dl": VOCAB, "dct": _DCT}],
        "@type": "Offer",
        "uid": f"{POLICY_BASE}/{policy.id}/{version.id}",
        "profile": PROFILE,
        "assigner": {"@type": "Party", "uid": policy.assigner_url, "dct:title": policy.assigner},
        "dct:title": version.title,
        "dl:policy": policy.id,
        "dl:version": version.id,
        "dl:layer": policy.layer,
        "dl:providers": list(policy.providers),
        "dl:models": list(version.models),
        "dl:effectiveFrom": version.effective_from.isoformat(),
        "dl:effectiveUntil": (
            version.effective_until.isoformat() if version.effective_until else None
        ),
        "dl:dateBasis": version.date_basis,
        "dl:dateConfidence": version.date_confidence,
        "dl:silence": version.silence,
        "dl:notes": version.notes,
        "dct:source": [
            {
                "@id": doc.url,
                "dl:documentId": doc.id,
                "dct:title": doc.title,
                "dl:section": doc.section,
                "dct:date": doc.date.isoformat() if doc.date else None,
                "dl:confidence": doc.confidence,
                "dl:evidence": doc.evidence,
            }
            for doc in version.documents
        ],
        "permission": permissions,
        "prohibition": prohibitions,
    }
    return doc


def export_odrl(policies: PolicySet, policy_id: str | None = None) -> list[dict[str, Any]]:
    """Every version of every policy (or of one policy, by id or provider slug) as ODRL.

    Raises:
        InputError: ``policy_id`` names no policy and no provider.
    """
    if policy_id is None:
        chosen = list(policies.policies)
    else:
        found = policies.get(policy_id)
        if found is not None:
            chosen = [found]
        else:
            # A slug some loaded policy governs, else an alias (resolve_provider raises on a typo).
            chosen = policies.for_provider(policy_id) or policies.for_provider(
                resolve_provider(policy_id)
            )
        if not chosen:
            raise InputError(f"no policy or provider named {policy_id!r}")
    return [version_to_odrl(p, v) for p in chosen for v in p.versions]


def _rule_from_odrl(item: Mapping[str, Any], kind: str) -> Rule:
    uid = str(item["uid"])
    rule_id = uid.rpartition("#")[2]
    purposes: list[str] | None = None
    constraints: list[dict[str, Any]] = []
    for constraint in item.get("constraint", []):
        if constraint["leftOperand"] == "purpose":
            purposes = [_term(ref["@id"], "purpose") for ref in constraint["rightOperand"]]
            continue
        constraints.append(
            {
                "fact": _term(constraint["leftOperand"], "left operand"),
                "op": _OPERATORS_BACK[constraint["operator"]],
                "value": constraint["rightOperand"],
            }
        )
    action = item["action"]
    conduct = None if action == "use" else _term(action, "action")
    if conduct is None and purposes is None:
        purposes = ["*"]
    duties = [
        {
            "action": _DUTY_ACTIONS_BACK.get(d["action"], None) or _term(d["action"], "duty"),
            "value": d.get("dl:value"),
        }
        for d in item.get("duty", [])
    ]
    rule_type = item.get("dl:ruleType", kind)
    if (rule_type == "prohibition") != (kind == "prohibition"):
        raise InputError(f"rule {uid} of type {rule_type!r} is listed under {kind!r}")
    return Rule.model_validate(
        {
            "id": rule_id,
            "type": rule_type,
            "purposes": purposes,
            "conduct": conduct,
            "constraints": constraints,
            "duties": duties,
            "exception_to": [str(t).rpartition("#")[2] for t in item.get("dl:exceptionTo", [])],
            "source": item["dl:source"],
            "clause": item["dl:clause"],
            "paraphrase": item["dl:paraphrase"],
            "confidence": item["dl:confidence"],
        }
    )


def version_from_odrl(doc: Mapping[str, Any]) -> PolicyVersion:
    """Rebuild the policy version an ODRL document was exported from.

    Rules come back in their original order (kept in ``dl:order``), so the result equals the
    exported version.

    Raises:
        InputError: the document is not one of our exports.
    """
    if doc.get("profile") != PROFILE:
        raise InputError("not an ODRL document of the distill-ledger profile")
    try:
        items = [(item, "permission") for item in doc["permission"]]
        items.extend((item, "prohibition") for item in doc["prohibition"])
        items.sort(key=lambda pair: int(pair[0]["dl:order"]))
        rules = [_rule_from_odrl(item, kind) for item, kind in items]
        documents: Sequence[Mapping[str, Any]] = doc["dct:source"]
        return PolicyVersion.model_validate(
            {
                "id": doc["dl:version"],
                "title": doc.get("dct:title"),
                "effective_from": doc["dl:effectiveFrom"],
                "effective_until": doc.get("dl:effectiveUntil"),
                "date_basis": doc["dl:dateBasis"],
                "date_confidence": doc["dl:dateConfidence"],
                "silence": doc["dl:silence"],
                "notes": doc.get("dl:notes"),
                "models": doc.get("dl:models", []),
                "documents": [
                    {
                        "id": d["dl:documentId"],
                        "title": d["dct:title"],
                        "url": d["@id"],
                        "section": d.get("dl:section"),
                        "date": d.get("dct:date"),
                        "confidence": d["dl:confidence"],
                        "evidence": d.get("dl:evidence"),
                    }
                    for d in documents
                ],
                "rules": [rule.model_dump() for rule in rules],
            }
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"malformed ODRL policy document: {exc}") from exc
