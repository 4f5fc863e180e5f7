"""Provider names: one canonical set shared by the policy files, the recorder and the CLI."""

from __future__ import annotations

import pytest

from ledger.errors import InputError
from ledger.policy.loader import default_policies
from ledger.recorder.providers import KNOWN_HOSTS
from ledger.vocabulary import PROVIDER_ALIASES, PROVIDERS, resolve_provider


def test_every_policy_slug_is_canonical() -> None:
    slugs = {slug for policy in default_policies().policies for slug in policy.providers}
    assert slugs, "the shipped policies name providers"
    assert slugs <= set(PROVIDERS), sorted(slugs - set(PROVIDERS))


def test_every_recorded_host_provider_is_canonical() -> None:
    assert set(KNOWN_HOSTS.values()) <= set(PROVIDERS)


def test_aliases_point_at_canonical_slugs() -> None:
    assert set(PROVIDER_ALIASES.values()) <= set(PROVIDERS)


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("xai", "x_ai"),
        ("x.ai", "x_ai"),
        ("X_AI", "x_ai"),
        ("grok", "x_ai"),
        ("mistral", "mistral_ai"),
        ("Mistral AI", "mistral_ai"),
        ("gemini", "gcp.gemini"),
        ("google", "google"),
        ("bedrock", "aws.bedrock"),
        ("azure", "azure.ai.openai"),
        ("claude", "anthropic"),
        ("vertex", "gcp.vertex_ai"),
        ("together-ai", "together"),
        ("openai", "openai"),
        ("  OpenAI ", "openai"),
        ("self-hosted", "self-hosted"),
        ("llama-api", "meta"),
    ],
)
def test_aliases_resolve(name: str, slug: str) -> None:
    assert resolve_provider(name) == slug


def test_every_canonical_slug_resolves_to_itself() -> None:
    for slug in PROVIDERS:
        assert resolve_provider(slug) == slug


@pytest.mark.parametrize(("name", "hint"), [("xaii", "x_ai"), ("openia", "openai")])
def test_unknown_name_suggests(name: str, hint: str) -> None:
    with pytest.raises(InputError, match=rf"unknown provider '{name}'; did you mean .*'{hint}'"):
        resolve_provider(name)


@pytest.mark.parametrize("name", ["", "   ", "zzzz-nothing"])
def test_unplaceable_name_is_refused(name: str) -> None:
    with pytest.raises(InputError):
        resolve_provider(name)


def test_an_alias_recorded_as_provider_is_judged_under_its_slug() -> None:
    # A user's hosts= mapping may record "xai"; the engine judges it under x_ai's terms.
    from datetime import UTC, datetime

    from ledger.policy import CallFacts, conduct_rules, evaluate

    at = datetime(2026, 9, 1, 12, tzinfo=UTC)
    verdict = evaluate(CallFacts(provider="xai", model="grok-4", at=at), "train-model", {})
    assert [layer.policy for layer in verdict.layers] == ["xai"]
    assert verdict.verdict == "prohibited"  # the 2026 AUP bans distilling outright
    by_alias = [r.rule_id for r in conduct_rules("xai", "rate-limit-evasion", at)]
    assert by_alias
    assert by_alias == [r.rule_id for r in conduct_rules("x_ai", "rate-limit-evasion", at)]
    unknown = evaluate(CallFacts(provider="zzzz-nothing", model="m", at=at), "evaluate", {})
    assert unknown.verdict == "unknown"
    assert unknown.layers[0].reasons[0].effect == "no-policy"
