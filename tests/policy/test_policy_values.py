"""Value objects and lookups: call facts from entry bodies, declared facts and their merging,
verdict round trips, the policy digest, and conduct_rules for the conduct detectors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from ledger.errors import InputError
from ledger.policy import (
    CONDUCT_KINDS,
    CallFacts,
    DeclaredFacts,
    RuleRef,
    Verdict,
    conduct_rules,
    evaluate,
    load_facts_file,
    policy_digest,
)
from ledger.policy.verdict import PolicyVersionRef

BODY = {
    "v": 1,
    "provider": "openai",
    "endpoint": {"scheme": "https", "host": "api.openai.com", "port": 443, "path": "/v1/chat"},
    "request_model": "gpt-4o",
    "response_model": "gpt-4o-2024-08-06",
    "started_at": "2025-07-01T12:00:00.000000Z",
    "recorded_at": "2025-07-01T12:00:01.500000Z",
    "output_modality": "text",
}


def test_call_facts_from_entry_body() -> None:
    call = CallFacts.from_entry_body(BODY)
    assert call.provider == "openai"
    assert call.host == "api.openai.com"
    assert call.model == "gpt-4o-2024-08-06"
    assert call.at == datetime(2025, 7, 1, 12, tzinfo=UTC)
    assert call.output_modality == "text"


def test_call_facts_fall_back_and_stay_unknown() -> None:
    call = CallFacts.from_entry_body(
        {"provider": None, "request_model": "m", "recorded_at": "2025-01-02T00:00:00Z"}
    )
    assert (call.provider, call.model, call.host) == ("unknown", "m", None)
    assert call.at == datetime(2025, 1, 2, tzinfo=UTC)
    assert CallFacts.from_entry_body({"provider": "openai"}).at is None
    with pytest.raises(InputError, match="timestamp"):
        CallFacts.from_entry_body({"provider": "openai", "started_at": "yesterday"})
    with pytest.raises(InputError):
        CallFacts.from_entry_body({"provider": "openai", "output_modality": "smell"})


def test_call_time_is_normalized_to_utc_and_must_be_aware() -> None:
    plus2 = timezone(timedelta(hours=2))
    call = CallFacts(provider="openai", at=datetime(2025, 5, 31, 1, tzinfo=plus2))
    assert call.at == datetime(2025, 5, 30, 23, tzinfo=UTC)
    # The UTC day decides the version: 01:00+02:00 on 05-31 is still 05-30 in UTC.
    verdict = evaluate(call, "evaluate")
    assert verdict.policy_versions[0].version == "business-terms-2023-11-14-up-2025-01-29"
    with pytest.raises(ValueError, match="time zone"):
        CallFacts(provider="openai", at=datetime(2025, 1, 1))


def test_evaluate_reads_an_entry_body() -> None:
    verdict = evaluate(BODY, "train-model", {"competes_with_provider": "no"})
    assert verdict.verdict == "allowed"
    assert verdict.call["model"] == "gpt-4o-2024-08-06"


def test_declared_facts_merge_in_order() -> None:
    profile = DeclaredFacts(competes_with_provider="no", distributed=False, region="fr")
    assert profile.region == "FR"
    merged = profile.merged({"distributed": True}, None, DeclaredFacts(student_kind="llm"))
    assert merged.declared() == {
        "competes_with_provider": "no",
        "distributed": True,
        "region": "FR",
        "student_kind": "llm",
    }
    # None never overrides a declared value.
    assert profile.merged(DeclaredFacts()).declared() == profile.declared()


def test_declared_facts_refuse_unknown_names_and_bad_values() -> None:
    with pytest.raises(InputError, match="compete: Extra inputs"):
        DeclaredFacts.coerce({"compete": "yes"})
    with pytest.raises(InputError):
        DeclaredFacts.coerce({"student_kind": "robot"})
    with pytest.raises(InputError, match="not key=value"):
        DeclaredFacts.parse_pairs(["distributed"])
    with pytest.raises(InputError, match="yes or no"):
        DeclaredFacts.parse_pairs(["distributed=perhaps"])
    with pytest.raises(InputError, match="whole number"):
        DeclaredFacts.parse_pairs(["monthly_active_users=many"])
    parsed = DeclaredFacts.parse_pairs(
        ["distributed=yes", "monthly-active-users=1_000_000", "region=us", "commercial=false"]
    )
    assert parsed.declared() == {
        "distributed": True,
        "monthly_active_users": 1_000_000,
        "region": "US",
        "commercial": False,
    }


def test_facts_file(tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text("competes_with_provider: unsure\nmonthly_active_users: 5000\n")
    assert load_facts_file(path).declared() == {
        "competes_with_provider": "unsure",
        "monthly_active_users": 5000,
    }
    path.write_text("- a list\n")
    with pytest.raises(InputError, match="mapping"):
        load_facts_file(path)
    path.write_text("colour: blue\n")
    with pytest.raises(InputError, match="colour"):
        load_facts_file(path)
    with pytest.raises(InputError, match="cannot read"):
        load_facts_file(tmp_path / "absent.yaml")


def test_unknown_purpose_is_refused() -> None:
    with pytest.raises(InputError, match="unknown purpose"):
        evaluate(CallFacts(provider="openai"), "sell")


@pytest.mark.parametrize(
    ("provider", "model", "purpose", "facts"),
    [
        ("openai", "gpt-4o", "train-model", {}),
        (
            "self-hosted",
            "meta-llama/Llama-3.1-8B-Instruct",
            "train-model",
            {"distributed": True, "monthly_active_users": 3},
        ),
        ("aws.bedrock", "anthropic.claude-3-haiku", "red-team", {"written_permission": False}),
        ("acme", "x", "evaluate", {}),
    ],
)
def test_verdict_round_trips(
    provider: str, model: str, purpose: str, facts: dict[str, object]
) -> None:
    call = CallFacts(provider=provider, model=model, at=datetime(2025, 10, 30, tzinfo=UTC))
    verdict = evaluate(call, purpose, facts)
    data = verdict.to_dict()
    assert set(data) >= {"verdict", "rules", "duties", "policy_versions", "policy_digest"}
    again = Verdict.from_dict(data)
    assert again == verdict
    assert again.to_dict() == data


def test_verdict_from_dict_checks_the_digest() -> None:
    call = CallFacts(provider="openai", model="gpt-4o", at=datetime(2025, 7, 1, tzinfo=UTC))
    data = evaluate(call, "evaluate").to_dict()
    data["policy_digest"] = "0" * 64
    with pytest.raises(InputError, match="digest"):
        Verdict.from_dict(data)
    with pytest.raises(InputError):
        Verdict.from_dict({"verdict": "fine", "purpose": "evaluate", "layers": []})


def test_policy_digest_is_stable_and_order_free() -> None:
    a = PolicyVersionRef("openai", "osa-2025-05-31", "ab" * 32, "time")
    b = PolicyVersionRef("llama", "llama-3.1", "cd" * 32, "model")
    assert policy_digest([a, b]) == policy_digest([b, a])
    assert policy_digest([a]) != policy_digest([b])
    changed = PolicyVersionRef("openai", "osa-2025-05-31", "ef" * 32, "time")
    assert policy_digest([a]) != policy_digest([changed])
    # Two calls under the same versions share a digest; a call under other versions does not.
    day = datetime(2025, 7, 1, tzinfo=UTC)
    first = evaluate(CallFacts(provider="openai", model="gpt-4o", at=day), "evaluate")
    second = evaluate(CallFacts(provider="openai", model="o3", at=day), "research")
    later = evaluate(
        CallFacts(provider="openai", model="gpt-4o", at=day + timedelta(days=200)), "evaluate"
    )
    assert first.policy_digest == second.policy_digest != later.policy_digest


def test_conduct_rules_cite_the_clause_in_force() -> None:
    (tou,) = conduct_rules("openai", "key-sharing", datetime(2024, 1, 1, tzinfo=UTC))
    assert tou.rule_id == "openai/tou-2023-03-14/key-transfer"
    # The Business Terms text was not read: their clause is cited, but as reported only.
    (business,) = conduct_rules("openai", "key-sharing", datetime(2024, 6, 1, tzinfo=UTC))
    assert business.version_id == "business-terms-2023-11-14"
    assert not business.verified
    after = conduct_rules("openai", "key-sharing", datetime(2025, 7, 1, tzinfo=UTC))
    (ref,) = after
    assert isinstance(ref, RuleRef)
    assert ref.rule_id == "openai/osa-2025-05-31/key-transfer"
    assert ref.provider == "openai"
    assert ref.version_id == "osa-2025-05-31"
    assert ref.source_url.startswith("https://openai.com/")
    assert ref.confidence == "P"
    with pytest.raises(AttributeError):
        ref.rule_id = "x"  # type: ignore[misc]  # frozen


def test_conduct_rules_every_kind_somewhere() -> None:
    day = datetime(2026, 9, 1, tzinfo=UTC)
    providers = ["openai", "anthropic", "gcp.gemini", "google", "mistral_ai", "x_ai", "deepseek"]
    for kind in CONDUCT_KINDS:
        assert any(conduct_rules(p, kind, day) for p in providers), kind


def test_conduct_rules_edges() -> None:
    day = datetime(2025, 7, 1, tzinfo=UTC)
    assert conduct_rules("acme", "key-sharing", day) == []
    assert conduct_rules("self-hosted", "safety-bypass", day) == []
    assert conduct_rules("anthropic", "multi-account", datetime(2024, 6, 5, tzinfo=UTC)) == []
    assert conduct_rules("anthropic", "multi-account", datetime(2024, 6, 6, tzinfo=UTC))
    with pytest.raises(InputError, match="conduct kind"):
        conduct_rules("openai", "loitering", day)
    with pytest.raises(InputError, match="timezone"):
        conduct_rules("openai", "key-sharing", datetime(2025, 7, 1))


def test_policy_package_exports() -> None:
    import ledger.policy as policy

    assert set(policy.__all__) >= {
        "evaluate",
        "conduct_rules",
        "Verdict",
        "CallFacts",
        "DeclaredFacts",
        "load_policies",
        "policy_digest",
        "PURPOSES",
        "CONDUCT_KINDS",
        "RuleRef",
    }
    for name in policy.__all__:
        assert getattr(policy, name) is not None, name
    assert policy.PURPOSES == (
        "train-model",
        "evaluate",
        "research",
        "product-feature",
        "publish-dataset",
        "red-team",
    )
