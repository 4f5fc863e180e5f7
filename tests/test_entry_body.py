"""The one entry-body reader (issue 8 point 19) and the readers that now go through it.

Each rule is checked once on ``read_call`` and then on every layer that reads bodies (policy
facts, the judge's cache key, the conduct detectors, ``ledger audit conduct``'s time filter), so
that a layer drifting from the rule fails here. The organization ids Anthropic returns only in
its response are recorded through the real SDK and seen by the conduct detectors.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import pytest

import ledger
from ledger._judge import _fast_key
from ledger.cli.audit import _entry_time
from ledger.entry_body import ENTRY_VERSION, call_time, read_call
from ledger.errors import InputError
from ledger.log.records import ENTRY_VERSION as LOG_ENTRY_VERSION
from ledger.policy import CallFacts
from ledger.policy.conduct import detect
from ledger.policy.conduct.calls import normalize
from ledger.recorder import wrap
from ledger.testing import FakeProviderServer

V1 = {
    "v": 1,
    "id": "01900000-0000-7000-8000-000000000001",
    "provider": "anthropic",
    "operation": "messages",
    "endpoint": {"scheme": "https", "host": "API.Anthropic.com.", "port": 443, "path": "/v1/m"},
    "request_model": "claude-x",
    "response_model": "claude-x-20250101",
    "started_at": "2025-07-01T23:30:00.000000Z",
    "recorded_at": "2025-07-02T00:00:01.000000Z",
    "account": "acct",
    "org_headers": {"anthropic-workspace": "ws-1"},
    "client": {"user_agent": "Anthropic/Python", "headers": {"X-Stainless-Lang": "python"}},
    "status": 200,
    "finish_reasons": ["end_turn", 7],
    "output_modality": "text",
    "output_sha256": ["ab" * 32],
    "rate_limit": {},
    "purpose": "evaluate",
    "dataset": None,
}


def test_one_version_for_writer_and_log() -> None:
    assert ENTRY_VERSION == LOG_ENTRY_VERSION == 2


def test_model_precedence_one_rule_two_names() -> None:
    view = read_call(V1)
    assert view.model == "claude-x-20250101"  # what answered decides the terms
    assert view.requested_model == "claude-x"  # what was asked groups a caller's attempts
    error = {**V1, "response_model": None}  # a 429 names no answering model
    assert read_call(error).model == read_call(error).requested_model == "claude-x"
    assert read_call({**V1, "response_model": ""}).model == "claude-x"
    assert read_call({**V1, "request_model": 5, "response_model": None}).model is None
    # Every layer follows it.
    assert CallFacts.from_entry_body(V1).model == "claude-x-20250101"
    assert _fast_key(V1, "evaluate") == _fast_key({**V1, "request_model": "other"}, "evaluate")
    call = normalize((0, V1))
    assert call is not None
    assert call.model == "claude-x"


@pytest.mark.parametrize(
    ("started_at", "expected"),
    [
        ("2025-07-01T23:30:00.000000Z", datetime(2025, 7, 1, 23, 30, tzinfo=UTC)),
        ("2025-07-02T01:30:00+02:00", datetime(2025, 7, 1, 23, 30, tzinfo=UTC)),
        (None, datetime(2025, 7, 2, 0, 0, 1, tzinfo=UTC)),  # falls back to recorded_at
        ("", datetime(2025, 7, 2, 0, 0, 1, tzinfo=UTC)),
    ],
)
def test_times_are_aware_utc_everywhere(started_at: str | None, expected: datetime) -> None:
    body = {**V1, "started_at": started_at}
    at, error = call_time(body)
    assert (at, error) == (expected, None)
    assert at.tzinfo is UTC
    assert CallFacts.from_entry_body(body).at == expected
    assert _entry_time(body) == expected
    call = normalize((0, body))
    assert call is not None
    assert call.t == expected.timestamp()


@pytest.mark.parametrize(
    ("stamp", "message"),
    [
        ("2025-07-01T23:30:00", "no time zone"),  # not guessed as UTC, nor as local time
        ("yesterday", "not an ISO 8601 timestamp"),
        (1751412600, "not a string"),
    ],
)
def test_unusable_times_are_refused_or_skipped_never_guessed(stamp: object, message: str) -> None:
    body = {**V1, "started_at": stamp}
    view = read_call(body)
    assert view.at is None
    assert view.time_error is not None
    assert message in view.time_error
    with pytest.raises(InputError, match=message):
        CallFacts.from_entry_body(body)  # the policy facts refuse it
    assert normalize((0, body)) is None  # the detectors skip it
    assert _entry_time(body) is None  # `audit conduct --since` leaves it out
    assert _fast_key(body, "evaluate") is None  # the judge's shortcut does not take it


def test_no_time_at_all_is_not_an_error() -> None:
    body = {k: v for k, v in V1.items() if k not in ("started_at", "recorded_at")}
    assert call_time(body) == (None, None)
    assert CallFacts.from_entry_body(body).at is None


def test_read_call_is_total_on_malformed_fields() -> None:
    junk: dict[str, Any] = {
        "v": True,
        "provider": ["x"],
        "endpoint": "api",
        "org_headers": [1],
        "response_org_headers": None,
        "client": 3,
        "status": True,
        "finish_reasons": "stop",
        "rate_limit": [],
    }
    view = read_call(junk)
    assert (view.version, view.provider, view.host, view.status) == (1, "unknown", None, None)
    assert (view.organization, view.user_agent, view.sdk_headers) == (None, None, None)
    assert view.finish_reasons == ()
    assert dict(view.rate_limit) == {}


def test_v1_fields_read_as_before() -> None:
    view = read_call(V1)
    assert view.version == 1
    assert view.host == "api.anthropic.com"
    assert view.project == "ws-1"
    assert view.organization is None  # v1 never stored the response header
    assert view.finish_reasons == ("end_turn",)
    assert view.sdk_headers == {"x-stainless-lang": "python"}
    facts = CallFacts.from_entry_body(V1)
    assert (facts.provider, facts.host, facts.output_modality) == (
        "anthropic",
        "api.anthropic.com",
        "text",
    )


def test_organization_prefers_what_the_provider_returned() -> None:
    body = {
        **V1,
        "org_headers": {"openai-organization": "sent-org", "openai-project": "sent-proj"},
        "response_org_headers": {"anthropic-organization-id": "returned-org"},
    }
    view = read_call(body)
    assert (view.organization, view.project) == ("returned-org", "sent-proj")
    assert view.sent_organization == "sent-org"
    call = normalize((0, body))
    assert call is not None
    assert (call.org, call.sent_org, call.project) == ("returned-org", "sent-org", "sent-proj")


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def lg(tmp_path: Path) -> Iterator[ledger.Ledger]:
    home = tmp_path / "home"
    home.mkdir()
    lg = ledger.Ledger.from_settings(
        ledger.Settings(home=home, database_url=f"sqlite:///{home / 'ledger.db'}")
    )
    yield lg
    lg.close()


def test_the_detector_sees_anthropic_organizations(lg: ledger.Ledger) -> None:
    """Anthropic names the organization in a response header only; v2 records it."""
    with FakeProviderServer() as fake:
        for key, org in (("sk-ant-one", "org-a"), ("sk-ant-one", "org-b"), ("sk-ant-two", "org-a")):
            bare = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key=key, max_retries=0)
            with wrap(bare, ledger=lg, purpose="evaluate", durability="sync") as client:
                client.messages.create(
                    model="c",
                    max_tokens=16,
                    messages=[{"role": "user", "content": "Hi"}],
                    extra_headers={"x-fake-org": org},
                )
    stored = list(lg.entries())
    assert [e.body["response_org_headers"] for e in stored] == [
        {"anthropic-organization-id": "org-a"},
        {"anthropic-organization-id": "org-b"},
        {"anthropic-organization-id": "org-a"},
    ]
    assert all(e.body["org_headers"] == {} for e in stored)  # nothing of it was sent
    findings = detect(stored)
    shared = [f for f in findings if f.kind == "key-sharing" and "organizations" in f.evidence]
    assert len(shared) == 1
    assert shared[0].provider == "anthropic"
    assert shared[0].evidence["organizations"] == ("org-a", "org-b")
    assert "2 organizations (org-a, org-b)" in shared[0].summary


def test_personal_accounts_with_their_own_organizations_still_count_as_several(
    lg: ledger.Ledger,
) -> None:
    """Each account answers under its own organization id; that must not hide multi-account."""
    with FakeProviderServer() as fake:
        for key, org in (("sk-ant-one", "org-1"), ("sk-ant-two", "org-2"), ("sk-ant-one", "org-1")):
            bare = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key=key, max_retries=0)
            with wrap(bare, ledger=lg, purpose="evaluate", durability="sync") as client:
                client.messages.create(
                    model="c",
                    max_tokens=16,
                    messages=[{"role": "user", "content": "Hi"}],
                    extra_headers={"x-fake-org": org},
                )
    findings = [f for f in detect(list(lg.entries())) if f.kind == "multi-account"]
    assert len(findings) == 1
    assert findings[0].evidence["accounts"] == 2
    assert findings[0].leaf_indexes == (0, 1, 2)
