"""Where the terms-layer rules come from: the right documents; each names a snapshot."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from ledger.policy import conduct_rules
from ledger.policy.loader import default_policies
from ledger.policy.schema import CONDUCT_KINDS

TERMS_FILES = sorted(p.id for p in default_policies().policies if p.layer != "licence")


def _days(start: date, end: date, step: int = 15) -> list[datetime]:
    out: list[datetime] = []
    day = start
    while day <= end:
        out.append(datetime(day.year, day.month, day.day, 12, tzinfo=UTC))
        day += timedelta(days=step)
    return out


def test_anthropic_api_calls_never_cite_the_consumer_terms() -> None:
    policy = default_policies().get("anthropic")
    assert policy is not None
    for version in policy.versions:
        for doc in version.documents:
            assert "consumer" not in doc.title.lower(), (version.id, doc.id)
            assert "consumer-terms" not in doc.url, (version.id, doc.id)
    for at in _days(date(2024, 1, 1), date(2027, 1, 1)):
        for kind in CONDUCT_KINDS:
            for ref in conduct_rules("anthropic", kind, at):
                assert "Consumer" not in ref.clause, (at, kind, ref.rule_id)


@pytest.mark.parametrize("policy_id", TERMS_FILES)
def test_every_terms_document_names_its_snapshot(policy_id: str) -> None:
    policy = default_policies().get(policy_id)
    assert policy is not None
    for version in policy.versions:
        for doc in version.documents:
            assert doc.evidence, f"{policy_id}/{version.id}/{doc.id} has no evidence"


@pytest.mark.parametrize("policy_id", TERMS_FILES)
def test_primary_documents_cite_an_archive_commit_or_page(policy_id: str) -> None:
    policy = default_policies().get(policy_id)
    assert policy is not None
    for version in policy.versions:
        for doc in version.documents:
            if doc.confidence != "P":
                continue
            evidence = doc.evidence or ""
            assert "commit" in evidence or "stored" in evidence or "page" in evidence, (
                f"{policy_id}/{version.id}/{doc.id}: a primary read names its snapshot"
            )


@pytest.mark.parametrize("policy_id", TERMS_FILES)
def test_a_version_with_an_unread_document_proves_nothing_by_silence(policy_id: str) -> None:
    # silence: allowed claims the documents were read and say nothing; an S or U document
    # was not read, so its version must answer unknown for a purpose no rule names.
    policy = default_policies().get(policy_id)
    assert policy is not None
    for version in policy.versions:
        weak = [d.id for d in version.documents if d.confidence in ("S", "U")]
        if weak:
            assert version.silence == "unknown", (version.id, weak)
