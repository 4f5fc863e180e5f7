"""The terms-layer verdict cases (tests/assets/verdict_cases/terms.yaml) reach every dated version.

The cases themselves are run by test_verdict_cases.py; this file checks their coverage, so a
terms version that no case reaches (and could hold any rule unnoticed) fails here.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from ledger.policy import CallFacts, evaluate, load_policies

TERMS_CASES = Path(__file__).resolve().parents[1] / "assets" / "verdict_cases" / "terms.yaml"


def _cases() -> list[dict[str, Any]]:
    data = yaml.safe_load(TERMS_CASES.read_text(encoding="utf-8"))
    assert isinstance(data, list)
    return data


def _used_versions() -> set[str]:
    used: set[str] = set()
    for case in _cases():
        call = CallFacts(
            provider=case["provider"],
            model=case["model"],
            at=dt.datetime.combine(case["at"], dt.time(12), tzinfo=dt.UTC),
            output_modality=case.get("modality", "text"),
        )
        verdict = evaluate(call, case["purpose"], case["facts"])
        used |= {f"{v.policy}/{v.version}" for v in verdict.policy_versions}
    return used


def test_every_terms_and_marketplace_version_has_a_case() -> None:
    versions = {
        f"{policy.id}/{version.id}"
        for policy in load_policies().policies
        if policy.layer != "licence"
        for version in policy.versions
    }
    assert sorted(versions - _used_versions()) == []


def test_enough_cases_each_with_a_snapshot() -> None:
    cases = _cases()
    assert len(cases) >= 35
    for case in cases:
        source = case["source"]
        # Every expectation names where its sentence was read (archive commit, stored page,
        # copy) or says plainly that no primary text was read or opened.
        marks = ("ota-", "stored", "copy", "quoted", "read", "opened", "snapshot")
        assert any(mark in source.lower() for mark in marks), case["id"]
