"""Conduct detectors on real entry bodies: a true positive and a near-miss for each detector.

Bodies have every version-1 field the recorder writes; client identities come from the
installed SDKs, so a "genuine SDK" near-miss is what the real SDK sends. Clauses come from the
shipped policy files through the real ``conduct_rules``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import openai
import pytest
from google import genai

from ledger.policy import conduct_rules
from ledger.policy.conduct import ConductThresholds, Finding, detect
from ledger.recorder import uuid7

T0 = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)

HOSTS = {
    "openai": "api.openai.com",
    "anthropic": "api.anthropic.com",
    "gcp.gemini": "generativelanguage.googleapis.com",
    "unknown": "llm.example.net",
    "self-hosted": "10.0.0.5",
}
OPERATIONS = {"openai": "chat", "anthropic": "messages", "gcp.gemini": "generate_content"}


def _identity(headers: dict[str, Any]) -> tuple[str, dict[str, str]]:
    lowered = {k.lower(): v for k, v in headers.items() if isinstance(v, str)}
    agent = lowered.pop("user-agent")
    kept = {
        k: v
        for k, v in lowered.items()
        if k.startswith("x-stainless-") or k in ("x-goog-api-client", "anthropic-version")
    }
    return agent, kept


OPENAI_UA, OPENAI_HEADERS = _identity(dict(openai.OpenAI(api_key="sk-test").default_headers))
ANTHROPIC_UA, ANTHROPIC_HEADERS = _identity(
    dict(anthropic.Anthropic(api_key="sk-ant-test").default_headers)
)
GEMINI_UA, GEMINI_HEADERS = _identity(
    dict(genai.Client(api_key="g-test")._api_client._http_options.headers or {})
)
IDENTITIES = {
    "openai": (OPENAI_UA, OPENAI_HEADERS),
    "anthropic": (ANTHROPIC_UA, ANTHROPIC_HEADERS),
    "gcp.gemini": (GEMINI_UA, GEMINI_HEADERS),
}


def account(name: str) -> str:
    """A fingerprint shaped like the ledger's (lowercase hex HMAC-SHA256)."""
    return hashlib.sha256(f"credential-{name}".encode()).hexdigest()


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def body(
    seconds: float,
    *,
    provider: str = "openai",
    acct: str | None = "a",
    model: str | None = "gpt-4o",
    host: str | None = None,
    status: int | None = 200,
    org: dict[str, str] | None = None,
    recorder: str = "rec1",
    rate_limit: dict[str, str] | None = None,
    finish: tuple[str, ...] = ("stop",),
    user_agent: str | None = None,
    client_headers: dict[str, str] | None = None,
    request: str = "prompt",
) -> dict[str, Any]:
    """One entry body as the recorder writes it; keyword arguments change what tests vary."""
    agent, headers = IDENTITIES.get(provider, ("python-httpx/0.28.1", {}))
    started = ts(seconds)
    return {
        "v": 1,
        "id": uuid7(),
        "recorded_at": started,
        "started_at": started,
        "duration_ms": 812.5,
        "recorder": recorder,
        "provider": provider,
        "operation": OPERATIONS.get(provider, "chat"),
        "endpoint": {
            "scheme": "https",
            "host": host or HOSTS.get(provider, "api.example.com"),
            "port": 443,
            "path": "/v1/chat/completions",
        },
        "request_model": model,
        "response_model": model,
        "response_id": f"resp-{seconds}",
        "provider_request_id": f"req-{seconds}",
        "account": account(acct) if acct else None,
        "org_headers": dict(org or {}),
        "client": {
            "user_agent": agent if user_agent is None else user_agent,
            "headers": dict(headers if client_headers is None else client_headers),
        },
        "status": status,
        "outcome": "complete" if status is not None else "error",
        "error": None,
        "stream": False,
        "finish_reasons": list(finish) if status == 200 else [],
        "usage": {"input_tokens": 20, "output_tokens": 50},
        "output_modality": "text",
        "request_sha256": hashlib.sha256(request.encode()).hexdigest(),
        "response_sha256": hashlib.sha256(f"response {seconds}".encode()).hexdigest(),
        "content_encoding": None,
        "output_sha256": [],
        "rate_limit": dict(rate_limit or {}),
        "purpose": "train-model",
        "dataset": "distill-v1",
        "tags": [],
    }


def indexed(bodies: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """``(leaf_index, body)`` pairs in list order."""
    return list(enumerate(bodies))


def of_kind(findings: list[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.kind == kind]


def interleaved(accounts: list[str], *, calls: int = 20, step: float = 30.0, **kw: Any) -> list:
    """Calls that rotate over ``accounts`` every ``step`` seconds (a round-robin key pool)."""
    return [body(i * step, acct=accounts[i % len(accounts)], **kw) for i in range(calls)]


# --- 1. multi-account ----------------------------------------------------------------------


def test_multi_account_overlapping_accounts_fire_low() -> None:
    findings = of_kind(detect(indexed(interleaved(["a", "b"]))), "multi-account")
    assert len(findings) == 1
    finding = findings[0]
    assert finding.severity == "low"
    assert finding.provider == "openai"
    assert finding.leaf_indexes == tuple(range(20))
    assert finding.evidence["accounts"] == 2
    assert finding.evidence["switches_after_exhaustion"] == 0
    assert finding.evidence["organization"] == "(ledger)"


def test_multi_account_three_accounts_fire_medium() -> None:
    findings = of_kind(detect(indexed(interleaved(["a", "b", "c"]))), "multi-account")
    assert [f.severity for f in findings] == ["medium"]
    assert findings[0].evidence["accounts"] == 3


def test_multi_account_switch_after_429_is_high() -> None:
    bodies = interleaved(["a", "b"], calls=10)
    bodies.append(body(95, acct="a", status=429, rate_limit={"retry-after": "20"}))
    bodies.append(body(100, acct="b"))
    (finding,) = of_kind(detect(indexed(bodies)), "multi-account")
    assert finding.severity == "high"
    assert finding.evidence["switches_after_exhaustion"] == 1
    assert finding.evidence["exhausted_calls"] == 1


def test_multi_account_switch_after_remaining_zero_is_high() -> None:
    exhausted = {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "0"}
    bodies = interleaved(["a", "b"], calls=10)
    bodies.append(body(95, acct="a", rate_limit=exhausted))
    bodies.append(body(100, acct="b"))
    (finding,) = of_kind(detect(indexed(bodies)), "multi-account")
    assert finding.severity == "high"


def test_multi_account_takeover_long_after_exhaustion_stays_low() -> None:
    # Account b's next call comes 140 s after a's 429: overlapping use, but no quick takeover.
    bodies = [body(0, acct="a"), body(15, acct="b"), body(30, acct="a")]
    bodies += [body(60, acct="a", status=429), body(200, acct="b"), body(230, acct="a")]
    (finding,) = of_kind(detect(indexed(bodies)), "multi-account")
    assert finding.severity == "low"
    assert finding.evidence["exhausted_calls"] == 1
    assert finding.evidence["switches_after_exhaustion"] == 0


def test_multi_account_azure_zero_limit_is_not_exhaustion() -> None:
    # Azure OpenAI may report remaining 0 with a limit of -1 on some APIs: not an exhaustion.
    quirk = {"x-ratelimit-limit-requests": "-1", "x-ratelimit-remaining-requests": "0"}
    bodies = interleaved(["a", "b"], calls=10)
    bodies.append(body(95, acct="a", rate_limit=quirk))
    bodies.append(body(100, acct="b"))
    (finding,) = of_kind(detect(indexed(bodies)), "multi-account")
    assert finding.severity == "low"


def test_multi_account_near_miss_accounts_in_separate_windows() -> None:
    morning = [body(i * 60, acct="a") for i in range(30)]  # 12:00-12:29
    afternoon = [body(7200 + i * 60, acct="b") for i in range(30)]  # 14:00-14:29
    assert of_kind(detect(indexed(morning + afternoon)), "multi-account") == []


def test_multi_account_near_miss_key_rotation() -> None:
    # The new key takes over 10 seconds after the old one's last call: one after the other.
    old = [body(i * 30, acct="a") for i in range(20)]
    new = [body(580 + i * 30, acct="b") for i in range(20)]
    assert of_kind(detect(indexed(old + new)), "multi-account") == []


def test_multi_account_near_miss_different_providers() -> None:
    bodies = [
        body(i * 30, acct="a") if i % 2 else body(i * 30, acct="b", provider="anthropic")
        for i in range(20)
    ]
    assert of_kind(detect(indexed(bodies)), "multi-account") == []


def test_multi_account_groups_by_organization_header() -> None:
    # Two organizations, each with its own account: one organization per account, no finding.
    bodies = [
        body(i * 30, acct="a", org={"openai-organization": "org-1"})
        if i % 2
        else body(i * 30, acct="b", org={"openai-organization": "org-2"})
        for i in range(20)
    ]
    assert of_kind(detect(indexed(bodies)), "multi-account") == []
    same_org = [
        body(i * 30, acct="ab"[i % 2], org={"openai-organization": "org-1"}) for i in range(20)
    ]
    (finding,) = of_kind(detect(indexed(same_org)), "multi-account")
    assert finding.evidence["organization"] == "org-1"


# --- 2. rate-limit-evasion -----------------------------------------------------------------


def test_rate_limit_evasion_switch_after_429_fires() -> None:
    bodies = [
        body(0, acct="a"),
        body(10, acct="a", status=429, rate_limit={"retry-after": "30"}),
        body(15, acct="b"),
        body(16, acct="b"),
    ]
    (finding,) = of_kind(detect(indexed(bodies)), "rate-limit-evasion")
    assert finding.severity == "medium"
    assert finding.leaf_indexes == (1, 2, 3)
    assert finding.evidence["rate_limited_calls_followed"] == 1
    assert finding.evidence["calls_on_other_accounts"] == 2
    assert finding.evidence["max_delay_seconds"] == 5.0
    assert finding.evidence["from_accounts"] == (account("a")[:12],)
    assert finding.evidence["to_accounts"] == (account("b")[:12],)


def test_rate_limit_evasion_repeated_is_high() -> None:
    bodies = []
    for k in range(3):
        base = k * 60
        bodies += [body(base, acct="a", status=429), body(base + 2, acct="b")]
    (finding,) = of_kind(detect(indexed(bodies)), "rate-limit-evasion")
    assert finding.severity == "high"
    assert finding.evidence["rate_limited_calls_followed"] == 3


def test_rate_limit_evasion_near_miss_same_account_after_retry_after() -> None:
    bodies = [
        body(0, acct="a", status=429, rate_limit={"retry-after": "20"}),
        body(21, acct="a"),
        body(22, acct="a"),
    ]
    assert detect(indexed(bodies)) == []


@pytest.mark.parametrize(
    "after",
    [
        {"seconds": 15, "model": "gpt-4o-mini"},  # another model: a different limit
        {"seconds": 15, "provider": "anthropic", "model": "claude-sonnet-4"},
        {"seconds": 300},  # long after the window
        {"seconds": 15, "status": 500},  # not a success
    ],
)
def test_rate_limit_evasion_near_misses(after: dict[str, Any]) -> None:
    seconds = after.pop("seconds")
    bodies = [body(0, acct="a", status=429), body(seconds, acct="b", **after)]
    assert of_kind(detect(indexed(bodies)), "rate-limit-evasion") == []


# --- 3. key-sharing ------------------------------------------------------------------------


def test_key_sharing_across_organizations_is_high() -> None:
    bodies = [
        body(0, org={"openai-organization": "org-1", "openai-project": "proj-1"}),
        body(3600, org={"openai-organization": "org-2"}),
        body(7200, org={"openai-organization": "org-2"}),
    ]
    (finding,) = of_kind(detect(indexed(bodies)), "key-sharing")
    assert finding.severity == "high"
    assert finding.evidence["organizations"] == ("org-1", "org-2")
    assert finding.evidence["projects"] == ("proj-1",)
    assert finding.leaf_indexes == (0, 1, 2)


def test_key_sharing_across_recorders_is_low() -> None:
    bodies = [body(i * 20, recorder=f"rec{i % 2}") for i in range(12)]
    (finding,) = of_kind(detect(indexed(bodies)), "key-sharing")
    assert finding.severity == "low"
    assert finding.evidence["recorders"] == ("rec0", "rec1")


def test_key_sharing_near_miss_one_org_one_recorder_two_processes() -> None:
    # Two worker processes of one recorder: same key id, interleaved calls, one organization.
    org = {"openai-organization": "org-1"}
    bodies = [body(i * 0.5, org=org, recorder="rec1") for i in range(40)]
    assert detect(indexed(bodies)) == []


def test_key_sharing_near_miss_rejected_call_and_projects() -> None:
    bodies = [
        body(0, org={"openai-organization": "org-1", "openai-project": "proj-1"}),
        body(10, org={"openai-organization": "org-1", "openai-project": "proj-2"}),
        body(20, org={"openai-organization": "org-2"}, status=401),  # the key did not work there
    ]
    assert of_kind(detect(indexed(bodies)), "key-sharing") == []


def test_key_sharing_near_miss_recorder_replaced() -> None:
    bodies = [body(i * 20, recorder="old") for i in range(6)]
    bodies += [body(3600 + i * 20, recorder="new") for i in range(6)]
    assert of_kind(detect(indexed(bodies)), "key-sharing") == []


# --- 4. unofficial-endpoint ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "severity", "host_class"),
    [
        ("chatgpt.com", "high", "consumer"),
        ("claude.ai", "high", "consumer"),
        ("api.cheap-gpt-reseller.example", "medium", "public"),
        ("localhost", "low", "private"),
        ("10.1.2.3", "low", "private"),
    ],
)
def test_unofficial_endpoint_fires(host: str, severity: str, host_class: str) -> None:
    provider = "anthropic" if host == "claude.ai" else "openai"
    bodies = [body(0, provider=provider, host=host), body(5, provider=provider, host=host)]
    (finding,) = of_kind(detect(indexed(bodies)), "unofficial-endpoint")
    assert finding.severity == severity
    assert finding.evidence["host"] == host
    assert finding.evidence["host_class"] == host_class
    assert finding.leaf_indexes == (0, 1)


@pytest.mark.parametrize(
    ("provider", "host"),
    [
        ("openai", "api.openai.com"),
        ("openai", "API.OpenAI.com."),
        ("openai", "eu.api.openai.com"),
        ("azure.ai.openai", "contoso.openai.azure.com"),
        ("anthropic", "api.anthropic.com"),
        ("gcp.gemini", "generativelanguage.googleapis.com"),
        ("gcp.gemini", "us-central1-aiplatform.googleapis.com"),
        ("self-hosted", "chatgpt.com"),  # never judged
        ("unknown", "chatgpt.com"),  # never judged
        ("some-new-provider", "api.some-new-provider.example"),  # not in the table
    ],
)
def test_unofficial_endpoint_near_miss_official_or_unjudged(provider: str, host: str) -> None:
    assert (
        of_kind(detect([(0, body(0, provider=provider, host=host))]), "unofficial-endpoint") == []
    )


def test_unofficial_endpoint_override_replaces_a_providers_hosts() -> None:
    bodies = [body(0, host="gateway.corp.example"), body(1, host="api.openai.com")]
    assert [
        f.evidence["host"] for f in of_kind(detect(indexed(bodies)), "unofficial-endpoint")
    ] == ["gateway.corp.example"]
    overridden = detect(indexed(bodies), official_hosts={"openai": {"Gateway.Corp.Example"}})
    assert [f.evidence["host"] for f in of_kind(overridden, "unofficial-endpoint")] == [
        "api.openai.com"
    ]


# --- 5. identity-spoofing ------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gcp.gemini"])
def test_identity_near_miss_genuine_sdk(provider: str) -> None:
    bodies = [body(i, provider=provider) for i in range(3)]
    assert of_kind(detect(indexed(bodies)), "identity-spoofing") == []


def test_identity_near_miss_plain_http_client_and_uncaptured_headers() -> None:
    plain = body(0, user_agent="python-httpx/0.28.1", client_headers={})
    uncaptured = body(1)
    uncaptured["client"] = {"user_agent": "OpenAI/Python 1.54.0"}  # no headers recorded
    assert of_kind(detect(indexed([plain, uncaptured])), "identity-spoofing") == []


@pytest.mark.parametrize(
    ("provider", "agent", "headers", "severity"),
    [
        ("openai", "OpenAI/Python 1.54.0", {}, "medium"),
        ("openai", OPENAI_UA, {**OPENAI_HEADERS, "x-stainless-package-version": "0.0.1"}, "high"),
        ("openai", OPENAI_UA, {**OPENAI_HEADERS, "x-stainless-lang": "js"}, "high"),
        (
            "anthropic",
            ANTHROPIC_UA,
            {k: v for k, v in ANTHROPIC_HEADERS.items() if k != "anthropic-version"},
            "medium",
        ),
        (
            "openai",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0",
            {},
            "medium",
        ),
        ("gcp.gemini", "google-genai-sdk/1.2.0 gl-python/3.11.7", {}, "medium"),
        (
            "gcp.gemini",
            "google-genai-sdk/1.2.0 gl-python/3.11.7",
            {"x-goog-api-client": "google-genai-sdk/1.3.0 gl-python/3.11.7"},
            "high",
        ),
        ("gcp.gemini", "python-requests/2.32.3", GEMINI_HEADERS, "high"),
    ],
)
def test_identity_spoofing_fires(
    provider: str, agent: str, headers: dict[str, str], severity: str
) -> None:
    bodies = [
        body(i, provider=provider, user_agent=agent, client_headers=headers) for i in range(4)
    ]
    (finding,) = of_kind(detect(indexed(bodies)), "identity-spoofing")
    assert finding.severity == severity
    assert finding.leaf_indexes == (0, 1, 2, 3)
    assert finding.evidence["user_agent"] == agent


def test_identity_near_miss_sdk_running_in_a_browser() -> None:
    browser = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15"
    headers = {
        "x-stainless-lang": "js",
        "x-stainless-package-version": "4.77.0",
        "x-stainless-runtime": "browser:safari",
        "x-stainless-runtime-version": "17.0",
    }
    bodies = [body(0, user_agent=browser, client_headers=headers)]
    assert of_kind(detect(indexed(bodies)), "identity-spoofing") == []


# --- 6. safety-bypass ----------------------------------------------------------------------


def refusal_then_retry(start: float, *, finish: str = "content_filter", **kw: Any) -> list:
    return [
        body(start, finish=(finish,), request=f"ask {start}", **kw),
        body(start + 20, request=f"ask again {start}", **kw),
    ]


@pytest.mark.parametrize(
    ("provider", "finish"),
    [("openai", "content_filter"), ("anthropic", "refusal"), ("gcp.gemini", "SAFETY")],
)
def test_safety_bypass_repeated_refusals_with_retries(provider: str, finish: str) -> None:
    bodies = [
        b for k in range(3) for b in refusal_then_retry(k * 100, finish=finish, provider=provider)
    ]
    (finding,) = of_kind(detect(indexed(bodies)), "safety-bypass")
    assert finding.severity == "medium"
    assert finding.provider == provider
    assert finding.leaf_indexes == tuple(range(6))
    assert finding.evidence["refusals_retried"] == 3
    assert finding.evidence["retries_changed_request"] == 3
    assert finding.evidence["retries_identical_request"] == 0


def test_safety_bypass_many_is_high_and_counts_identical_retries() -> None:
    bodies = []
    for k in range(10):
        bodies.append(body(k * 30, finish=("content_filter",), request="same"))
        bodies.append(body(k * 30 + 5, request="same"))
    (finding,) = of_kind(detect(indexed(bodies)), "safety-bypass")
    assert finding.severity == "high"
    assert finding.evidence["retries_identical_request"] == 10


def test_safety_bypass_near_miss_single_refusal_then_unrelated_call() -> None:
    bodies = [body(0, finish=("content_filter",)), body(30, model="text-embedding-3-small")]
    bodies += [body(600 + i * 10) for i in range(5)]
    assert detect(indexed(bodies)) == []


def test_safety_bypass_near_miss_refusals_far_apart() -> None:
    # Three refusals in a day, each retried only after 10 minutes: no retry pattern.
    bodies = []
    for k in range(3):
        bodies += [body(k * 7200, finish=("refusal",)), body(k * 7200 + 600)]
    assert detect(indexed(bodies)) == []


# --- clauses, summaries, inputs ------------------------------------------------------------


def test_findings_cite_the_clauses_in_force_at_their_first_entry() -> None:
    shared = [
        body(0, org={"openai-organization": "org-1"}),
        body(60, org={"openai-organization": "org-2"}),
    ]
    (finding,) = detect(indexed(shared))
    assert finding.kind == "key-sharing"
    expected = conduct_rules("openai", "key-sharing", T0)
    assert expected, "the shipped OpenAI policy names a key-sharing clause"
    assert finding.clauses == tuple(expected)
    assert finding.clauses_note is None
    assert "may breach" in finding.summary
    for ref in expected:
        assert ref.clause in finding.summary
        assert ref.rule_id in finding.summary


def test_clauses_follow_the_date_of_the_conduct() -> None:
    def pool_at(day: datetime) -> Finding:
        offset = (day - T0).total_seconds()
        bodies = [body(offset + i * 30, acct="ab"[i % 2]) for i in range(6)]
        (finding,) = detect(indexed(bodies))
        return finding

    early, late = datetime(2023, 6, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)
    first, second = pool_at(early), pool_at(late)
    assert first.clauses == tuple(conduct_rules("openai", "multi-account", early))
    assert second.clauses == tuple(conduct_rules("openai", "multi-account", late))
    assert {r.version_id for r in first.clauses} != {r.version_id for r in second.clauses}


def test_provider_without_clauses_gets_a_note() -> None:
    bodies = interleaved(["a", "b"], calls=6, provider="unknown")
    (finding,) = detect(indexed(bodies))
    assert finding.clauses == ()
    assert finding.clauses_note is not None
    assert "no multi-account clause found for unknown" in finding.clauses_note
    assert "may breach" in finding.summary


def test_input_order_does_not_matter_and_findings_sort_by_severity() -> None:
    bodies = [body(0, host="chatgpt.com"), *interleaved(["a", "b"], calls=6)]
    pairs = indexed(bodies)
    forward = detect(pairs)
    assert detect(list(reversed(pairs))) == forward
    assert [f.severity for f in forward] == ["high", "low"]


def test_stored_entries_are_accepted_and_the_key_id_stands_in_for_recorder() -> None:
    from ledger import StoredEntry

    stored = []
    for i in range(8):
        b = body(i * 20)
        del b["recorder"]
        entry = {"body": b, "key_id": f"key{i % 2}", "sig": "c2ln"}
        stored.append(StoredEntry(leaf_index=i, entry=entry, leaf_hash=b"\0" * 32))
    (finding,) = detect(stored)
    assert finding.kind == "key-sharing"
    assert finding.evidence["recorders"] == ("key0", "key1")


def test_entries_without_time_are_ignored_and_bad_bodies_rejected() -> None:
    timeless = body(0, host="chatgpt.com")
    del timeless["started_at"]
    del timeless["recorded_at"]
    assert detect([(0, timeless)]) == []
    from ledger.errors import InputError

    with pytest.raises(InputError, match="entry 3"):
        detect([(3, ["not", "an", "object"])])  # type: ignore[list-item]


def test_thresholds_change_what_fires() -> None:
    bodies = refusal_then_retry(0)
    assert detect(indexed(bodies)) == []
    (finding,) = detect(indexed(bodies), thresholds=ConductThresholds(safety_min_refusals=1))
    assert finding.kind == "safety-bypass"
