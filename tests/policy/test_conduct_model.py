"""Value objects of the conduct detectors: findings, thresholds and the configuration mapping."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ledger.errors import InputError
from ledger.policy import conduct_rules
from ledger.policy.conduct import (
    DEFAULT_OFFICIAL_HOSTS,
    ConductThresholds,
    Finding,
    detect,
    load_conduct_config,
)


def _finding() -> Finding:
    at = datetime(2025, 7, 1, tzinfo=UTC)
    clauses = tuple(conduct_rules("openai", "key-sharing", at))
    assert clauses, "the shipped OpenAI policy names a key-sharing clause"
    return Finding(
        kind="key-sharing",
        severity="high",
        summary="Account abc was used under 2 organizations, which may breach a clause.",
        leaf_indexes=(3, 7),
        provider="openai",
        clauses=clauses,
        evidence={"organizations": ("org-1", "org-2"), "calls": 2, "share": 0.5, "x": None},
        first_at="2025-07-01T00:00:00.000000Z",
        last_at="2025-07-01T00:01:00.000000Z",
    )


def test_finding_round_trips_through_json() -> None:
    finding = _finding()
    data = json.loads(json.dumps(finding.to_dict()))
    assert data["evidence"]["organizations"] == ["org-1", "org-2"]
    assert data["clauses"][0]["rule_id"] == finding.clauses[0].rule_id
    assert Finding.from_dict(data) == finding


def test_detected_findings_round_trip() -> None:
    bodies = [
        (
            i,
            {
                "provider": "openai",
                "started_at": f"2025-07-01T12:00:{i:02d}Z",
                "account": "ab"[i % 2],
            },
        )
        for i in range(6)
    ]
    findings = detect(bodies)
    assert [f.kind for f in findings] == ["multi-account"]
    assert [Finding.from_dict(json.loads(json.dumps(f.to_dict()))) for f in findings] == findings


@pytest.mark.parametrize(
    ("broken", "drop"),
    [({"severity": "critical"}, None), ({"leaf_indexes": ["x"]}, None), ({}, "kind")],
)
def test_finding_from_dict_rejects_malformed(broken: dict[str, object], drop: str | None) -> None:
    data = {**_finding().to_dict(), **broken}
    if drop is not None:
        del data[drop]
    with pytest.raises(InputError, match="malformed conduct finding"):
        Finding.from_dict(data)


def test_thresholds_defaults_and_round_trip() -> None:
    defaults = ConductThresholds()
    assert defaults.to_dict()["multi_account_gap_seconds"] == 900.0
    assert defaults.to_dict()["safety_min_refusals"] == 3
    assert ConductThresholds.from_dict(defaults.to_dict()) == defaults
    changed = ConductThresholds.from_dict({"evasion_window_seconds": 30})
    assert changed.evasion_window_seconds == 30
    assert changed.safety_min_refusals == defaults.safety_min_refusals


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"no_such_threshold": 1}, "unknown conduct threshold"),
        ({"evasion_window_seconds": 0}, "positive"),
        ({"safety_min_refusals": -2}, "positive"),
        ({"safety_min_refusals": 2.5}, "integer"),
        ({"evasion_window_seconds": "soon"}, "positive"),
        ({"multi_account_min_accounts": 1}, "at least 2"),
    ],
)
def test_thresholds_reject_bad_values(data: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        ConductThresholds.from_dict(data)


def test_load_conduct_config_reads_thresholds_and_hosts() -> None:
    thresholds, hosts = load_conduct_config(
        {"safety_min_refusals": 5, "official_hosts": {"openai": ["GW.corp.example"]}}
    )
    assert thresholds.safety_min_refusals == 5
    assert hosts == {"openai": frozenset({"gw.corp.example"})}
    assert load_conduct_config({}) == (ConductThresholds(), None)
    assert "api.openai.com" in DEFAULT_OFFICIAL_HOSTS["openai"]


@pytest.mark.parametrize(
    "data",
    [{"official_hosts": ["api.openai.com"]}, {"official_hosts": {"openai": "api.openai.com"}}],
)
def test_load_conduct_config_rejects_bad_hosts(data: dict[str, object]) -> None:
    with pytest.raises(InputError, match="official_hosts"):
        load_conduct_config(data)
