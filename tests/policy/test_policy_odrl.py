"""ODRL 2.2 JSON-LD export: every shipped version is exported, parsed back from the JSON text,
checked against the ODRL information model and rebuilt into the very version it came from."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger.errors import InputError
from ledger.policy import load_policies
from ledger.policy.odrl import (
    ODRL_CONTEXT,
    PROFILE,
    export_odrl,
    version_from_odrl,
    version_to_odrl,
)
from ledger.policy.schema import CONDUCT_KINDS, FACT_NAMES, PURPOSES

POLICIES = load_policies()
VERSIONS = [(p, v) for p in POLICIES.policies for v in p.versions]
ODRL_OPERATORS = {"eq", "neq", "gt", "gteq", "lt", "lteq", "isAnyOf", "isNoneOf", "dl:matches"}


def parsed(doc: dict[str, Any]) -> dict[str, Any]:
    value = json.loads(json.dumps(doc))
    assert isinstance(value, dict)
    return value


@pytest.mark.parametrize(
    ("policy", "version"), VERSIONS, ids=[f"{p.id}/{v.id}" for p, v in VERSIONS]
)
def test_export_round_trips(policy: Any, version: Any) -> None:
    doc = parsed(version_to_odrl(policy, version))
    assert version_from_odrl(doc) == version


@pytest.mark.parametrize(
    ("policy", "version"), VERSIONS, ids=[f"{p.id}/{v.id}" for p, v in VERSIONS]
)
def test_export_follows_the_odrl_model(policy: Any, version: Any) -> None:
    doc = parsed(version_to_odrl(policy, version))
    assert doc["@context"][0] == ODRL_CONTEXT
    assert doc["@type"] == "Offer"
    assert doc["profile"] == PROFILE
    assert doc["uid"].endswith(f"/{policy.id}/{version.id}")
    # ODRL: an Offer names its assigner.
    assert doc["assigner"]["uid"] == policy.assigner_url
    rules = doc["permission"] + doc["prohibition"]
    assert len(rules) == len(version.rules)
    assert len({rule["uid"] for rule in rules}) == len(rules)
    for rule in rules:
        # ODRL: exactly one action per rule, and a target asset.
        action = rule["action"]
        assert isinstance(action, str)
        assert action == "use" or action.removeprefix("dl:") in CONDUCT_KINDS
        assert rule["target"]
        for constraint in rule.get("constraint", []):
            assert constraint["operator"] in ODRL_OPERATORS
            if constraint["leftOperand"] == "purpose":
                terms = [ref["@id"].removeprefix("dl:") for ref in constraint["rightOperand"]]
                assert set(terms) <= set(PURPOSES)
            else:
                assert constraint["leftOperand"].removeprefix("dl:") in FACT_NAMES
        for duty in rule.get("duty", []):
            assert isinstance(duty["action"], str)
    for rule in doc["prohibition"]:
        assert "duty" not in rule


def test_llama_duties_export_as_a_conditional_permission() -> None:
    llama = POLICIES.get("llama")
    assert llama is not None
    doc = parsed(version_to_odrl(llama, llama.version("llama-3")))
    (rule,) = [r for r in doc["permission"] if r["dl:ruleType"] == "duty"]
    actions = {d["action"]: d.get("dl:value") for d in rule["duty"]}
    assert actions["attribute"] == "Built with Meta Llama 3"
    assert actions["dl:name-prefix"] == "Llama 3"
    assert {"leftOperand": "dl:distributed", "operator": "eq", "rightOperand": True} in rule[
        "constraint"
    ]


def test_export_selects_by_policy_or_provider() -> None:
    everything = export_odrl(POLICIES)
    assert len(everything) == len(VERSIONS)
    by_provider = export_odrl(POLICIES, "gcp.gemini")
    assert {d["dl:policy"] for d in by_provider} == {"gemini-api"}
    with pytest.raises(InputError):
        export_odrl(POLICIES, "nobody")


def test_foreign_documents_are_refused() -> None:
    with pytest.raises(InputError, match="profile"):
        version_from_odrl({"@type": "Offer", "profile": "https://example.org/other"})
    openai = POLICIES.get("openai")
    assert openai is not None
    doc = parsed(version_to_odrl(openai, openai.versions[0]))
    del doc["dl:effectiveFrom"]
    with pytest.raises(InputError, match="malformed"):
        version_from_odrl(doc)
