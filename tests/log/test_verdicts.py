"""Verdicts are stored per entry as it is appended, and re-evaluation keeps the earlier ones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from ledger.errors import InputError, NotFoundError
from ledger.policy import evaluate
from tests.conftest import LedgerFactory


def openai_call(n: int, purpose: str | None = "train-model", **extra: object) -> dict[str, object]:
    return {
        "provider": "openai",
        "endpoint": {"scheme": "https", "host": "api.openai.com", "port": 443, "path": "/v1/x"},
        "request_model": "gpt-4.1",
        "response_model": "gpt-4.1",
        "started_at": "2025-07-01T12:00:00.000000Z",
        "purpose": purpose,
        "n": n,
        **extra,
    }


def stored_verdicts(lg: object) -> list[tuple[int, str, str]]:
    engine = lg.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT leaf_index, purpose, verdict FROM verdicts ORDER BY leaf_index")
        ).all()
    return [(int(a), b, c) for a, b, c in rows]


def test_append_stores_a_verdict_per_entry(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    lg.append_many([openai_call(0), openai_call(1, purpose="evaluate"), openai_call(2, None)])
    lg.submit(openai_call(3, facts={"competes_with_provider": "no", "student_kind": "llm"}))
    lg.flush(timeout=30)
    rows = stored_verdicts(lg)
    # No purpose, no verdict; the others match the engine evaluated directly.
    assert [r[0] for r in rows] == [0, 1, 3]
    for leaf, purpose, verdict in rows:
        facts = lg.entry(leaf).body.get("facts")
        assert verdict == evaluate(lg.entry(leaf).body, purpose, facts).verdict
    assert rows[1][2] == "allowed"  # evaluation is a permitted use of OpenAI outputs
    got = lg.verdict(1)
    assert got.verdict == "allowed"
    assert got.policy_digest == evaluate(lg.entry(1).body, "evaluate").policy_digest


def test_reevaluation_keeps_earlier_verdicts(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    lg.append(openai_call(0))
    first = lg.verdict_history(0)
    assert len(first) == 1
    assert first[0].verdict == "unknown"  # whether the student competes was never declared
    assert "competes_with_provider" in first[0].missing_facts
    competing = {
        "competes_with_provider": "yes",
        "student_kind": "llm",
        "on_provider_platform": False,
    }
    judged = lg.reevaluate(facts=competing)
    assert judged == 1
    history = lg.verdict_history(0)
    assert [v.verdict for v in history] == ["unknown", "prohibited"]
    assert lg.reevaluate(facts=competing) == 1
    assert len(lg.verdict_history(0)) == 2  # same policies and facts: nothing new stored
    other = lg.verdict(0, purpose="evaluate")  # a query: nothing stored
    assert other.purpose == "evaluate"
    assert len(lg.verdict_history(0)) == 2
    assert lg.reevaluate(purpose="evaluate") == 1
    assert [v.purpose for v in lg.verdict_history(0)][-1] == "evaluate"


def test_verdict_needs_a_purpose(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    lg.append(openai_call(0, purpose=None))
    with pytest.raises(NotFoundError, match="declares no purpose"):
        lg.verdict(0)
    with pytest.raises(InputError, match="unknown purpose"):
        lg.verdict(0, purpose="world-domination")
    assert lg.verdict(0, purpose="red-team").purpose == "red-team"


def test_judging_can_be_switched_off(make_ledger: LedgerFactory) -> None:
    lg = make_ledger(judge=False)
    lg.append(openai_call(0))
    assert stored_verdicts(lg) == []
    assert lg.verdict(0).verdict in {"allowed", "conditional", "prohibited", "unknown"}


def test_bad_facts_in_a_body_do_not_block_the_append(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    receipt = lg.append(openai_call(0, facts={"no_such_fact": 1}))
    assert receipt.leaf_index == 0
    assert stored_verdicts(lg) == []
    assert datetime.now(UTC)  # the append itself committed
    assert lg.size == 1


def test_shared_documents_and_per_day_versions(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    before = openai_call(0, started_at="2025-05-30T23:59:59.000000Z")
    after = openai_call(1, started_at="2025-05-31T00:00:01.000000Z")
    lg.append_many([before, after, *(openai_call(n) for n in range(2, 12))])
    engine = lg.store.engine
    with engine.connect() as conn:
        documents = conn.execute(text("SELECT COUNT(*) FROM verdict_documents")).scalar()
        digests = conn.execute(
            text("SELECT leaf_index, policy_digest FROM verdicts ORDER BY leaf_index")
        ).all()
    # The Services Agreement took effect on 2025-05-31: the two sides of midnight are judged
    # under different versions; the calls of 2025-07-01 fall under the same version as the
    # second one, so all eleven share one stored document.
    assert digests[0][1] != digests[1][1]
    assert len({d for _, d in digests[1:]}) == 1
    assert documents == 2
    for leaf in (0, 1, 5):
        direct = evaluate(lg.entry(leaf).body, "train-model")
        stored = lg.verdict_history(leaf)[0]
        assert stored.policy_digest == direct.policy_digest
        assert stored.call == direct.call  # rebuilt from the entry, not from another call


def test_offset_timestamps_are_judged_by_their_utc_day(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    lg.append_many(
        [
            openai_call(0, started_at="2025-05-30T23:00:00.000000Z"),
            # The same instant written with an offset: still 2025-05-30 in UTC, and it must
            # not share a cache slot with the 2025-05-31 calls that follow.
            openai_call(1, started_at="2025-05-31T01:00:00+02:00"),
            openai_call(2, started_at="2025-05-31T00:00:01.000000Z"),
        ]
    )
    with lg.store.engine.connect() as conn:
        digests = [
            row[0]
            for row in conn.execute(
                text("SELECT policy_digest FROM verdicts ORDER BY leaf_index")
            ).all()
        ]
    assert digests[0] == digests[1] != digests[2]
