"""One contract for the store, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from ledger.crypto.canonical import canonical_json
from ledger.crypto.keys import VerifyingKey
from ledger.crypto.merkle import (
    reference_consistency_proof,
    reference_inclusion_proof,
    reference_root,
    verify_consistency,
    verify_inclusion,
)
from ledger.crypto.note import verify_checkpoint
from ledger.crypto.tree import stored_index
from ledger.entry_body import ENTRY_VERSION
from ledger.errors import ConfigError, ConsistencyError, InputError, NotFoundError, StoreError
from ledger.log import schema, tables  # noqa: F401 - registers the tables
from ledger.log.records import uuid7
from tests.conftest import LedgerFactory

APPEND_ONLY = [
    "entries", "tree_hashes", "checkpoints", "keys", "ledger_meta", "verdicts", "verdict_documents",
]  # fmt: skip


def body(n: int, **extra: object) -> dict[str, object]:
    return {"provider": "openai", "request_model": f"m-{n}", "n": n, "dataset": "d1", **extra}


def test_append_assigns_contiguous_indexes_and_signs(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    first = lg.append(body(0))
    rest = lg.append_many([body(i) for i in range(1, 6)])
    assert [r.leaf_index for r in [first, *rest]] == list(range(6))
    assert lg.size == 6
    stored = lg.entry(3)
    assert stored.body["n"] == 3
    assert stored.leaf_hash == rest[2].leaf_hash
    # The ledger filled in its fields, and the signature covers the canonical body.
    assert stored.body["v"] == ENTRY_VERSION
    assert stored.body["recorder"] == lg.recorder_key_id
    assert stored.body["recorded_at"].endswith("Z")
    key = VerifyingKey.from_raw(lg.recorder_key.public_key.raw)
    key.verify(base64.b64decode(stored.entry["sig"]), canonical_json(stored.body))
    assert [e.leaf_index for e in lg.entries(2, 4)] == [2, 3]
    assert [e.body["n"] for e in lg.entries(dataset="d1")][:2] == [0, 1]
    with pytest.raises(NotFoundError):
        lg.entry(6)


def test_leaf_data_is_canonical_signed_entry(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    lg.append(body(0, text="é\u2028\U0001f600", nested={"b": [1, None, True], "a": "x"}))
    row = next(lg.store.raw_entries())
    stored = lg.entry(0)
    assert row[1] == canonical_json(stored.entry)


def test_idempotent_by_entry_id(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    entry_id = uuid7()
    first = lg.append(body(0, id=entry_id))
    again = lg.append(body(1, id=entry_id))
    batch = lg.append_many([body(2, id="same"), body(3, id="same"), body(4, id=entry_id)])
    assert again == first
    assert batch[0] == batch[1]
    assert batch[2] == first
    assert lg.size == 2
    assert lg.entry(0).body["n"] == 0


def test_submit_group_commits_in_background(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    futures = [lg.submit(body(i)) for i in range(300)]
    assert lg.flush(timeout=30)
    indexes = sorted(f.result().leaf_index for f in futures)
    assert indexes == list(range(300))
    bad = lg.submit({"id": 12})  # an id must be a string: only this future fails
    good = lg.submit(body(300))
    lg.flush(timeout=30)
    with pytest.raises(InputError):
        bad.result()
    assert good.result().leaf_index == 300


def test_proofs_at_every_size(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    leaves: list[bytes] = []
    for n in range(1, 34):
        leaves.append(lg.append(body(n)).leaf_hash)
        assert lg.root(n) == reference_root(leaves)
    for n in range(1, 34):
        root = reference_root(leaves[:n])
        for m in range(n):
            proof = lg.inclusion_proof(m, n)
            assert proof == reference_inclusion_proof(m, leaves[:n])
            verify_inclusion(m, n, leaves[m], proof, root)
        for m in range(1, n):
            proof = lg.consistency_proof(m, n)
            assert proof == reference_consistency_proof(m, leaves[:n])
            verify_consistency(m, n, proof, reference_root(leaves[:m]), root)
    with pytest.raises(InputError):
        lg.inclusion_proof(40, 50)
    with pytest.raises(InputError):
        lg.consistency_proof(5, 4)


def test_checkpoints_are_signed_and_consistent(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    lg.append_many([body(i) for i in range(5)])
    first = lg.checkpoint()
    assert lg.checkpoint() == first  # nothing new: no second signature
    lg.append_many([body(i) for i in range(5, 12)])
    second = lg.checkpoint()
    assert (first.seq, second.seq) == (0, 1)
    parsed = verify_checkpoint(second.note, lg.verifier_key)
    assert (parsed.size, parsed.root_hash) == (12, lg.root(12))
    verify_consistency(5, 12, lg.consistency_proof(5, 12), first.root_hash, second.root_hash)
    assert [c.tree_size for c in lg.checkpoints()] == [5, 12]


def test_automatic_checkpoint_every_n(make_ledger: LedgerFactory) -> None:
    lg = make_ledger(checkpoint_every=10)
    for i in range(25):
        lg.submit(body(i))
    lg.flush(timeout=30)
    sizes = [c.tree_size for c in lg.checkpoints()]
    assert sizes
    assert sizes[-1] >= 20
    assert all(s >= 10 for s in sizes)


def test_automatic_checkpoint_after_interval(make_ledger: LedgerFactory) -> None:
    lg = make_ledger(checkpoint_interval=0.2)
    lg.submit(body(0))
    lg.flush(timeout=30)
    deadline = time.monotonic() + 10
    while not lg.checkpoints() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [c.tree_size for c in lg.checkpoints()] == [1]


def test_automatic_checkpoint_after_interval_with_append(make_ledger: LedgerFactory) -> None:
    # append commits in the caller's thread; the time-based checkpoint must still come after
    # the last call, with no further call to trigger it.
    lg = make_ledger(checkpoint_interval=0.2)
    lg.append(body(0))
    lg.append(body(1))
    deadline = time.monotonic() + 10
    while not lg.checkpoints() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [c.tree_size for c in lg.checkpoints()] == [2]


def test_append_waits_behind_submitted_bodies(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    for i in range(200):
        lg.submit(body(i))
    receipt = lg.append(body(200))
    assert receipt.leaf_index == 200
    assert lg.entry(200).body["n"] == 200


def test_concurrent_appends_share_commits(make_ledger: LedgerFactory) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import event

    lg = make_ledger()
    commits = []
    event.listen(lg.store.engine, "commit", lambda conn: commits.append(1))
    with ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(lambda n: lg.append(body(n)), range(400)))
    assert sorted(r.leaf_index for r in receipts) == list(range(400))
    assert len({r.entry_id for r in receipts}) == 400
    # One caller at a time commits in its own thread; the others share the writer's commits.
    assert len(commits) < 400
    assert lg.verify().ok


def test_append_on_a_closed_ledger_fails_cleanly(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    lg.append(body(0))
    lg.close()
    with pytest.raises(StoreError, match="closed"):
        lg.append(body(1))
    with pytest.raises(InputError, match="JSON object"):
        make_ledger().append(["not", "an", "object"])  # type: ignore[arg-type]


def test_refuses_to_sign_inconsistent_checkpoint(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    lg.append_many([body(i) for i in range(8)])
    lg.checkpoint()
    lg.append_many([body(i) for i in range(8, 10)])
    drop_triggers(lg)
    with lg.store.engine.begin() as conn:
        # The stored root of leaves 0..7: both the old checkpoint and the new head depend on it.
        conn.execute(
            text("UPDATE tree_hashes SET hash = :h WHERE idx = :i"),
            {"h": b"\x07" * 32, "i": stored_index(3, 0)},
        )
    lg.store._frontier = None  # as a fresh process would: reload the edge from storage
    with pytest.raises(ConsistencyError, match="refusing to sign"):
        lg.checkpoint()
    assert len(lg.checkpoints()) == 1


@pytest.mark.parametrize("table", APPEND_ONLY)
def test_append_only_triggers(make_ledger: LedgerFactory, table: str) -> None:
    lg = make_ledger()
    lg.append(body(0, purpose="evaluate"))
    lg.checkpoint()
    column = inspect(lg.store.engine).get_pk_constraint(table)["constrained_columns"][0]
    for statement in (f"UPDATE {table} SET {column} = {column}", f"DELETE FROM {table}"):
        with pytest.raises(DBAPIError, match="append-only"), lg.store.engine.begin() as conn:
            conn.execute(text(statement))
    with lg.store.engine.connect() as conn:
        assert conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar()


def test_migration_down_and_up_and_models_agree(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    engine = lg.store.engine
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
    schema.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    schema.migrate(engine)
    assert set(APPEND_ONLY) <= set(inspect(engine).get_table_names())
    assert schema.current_revision(engine) == schema.head_revision()


def test_newer_schema_is_refused_without_writing(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    lg.append(body(0))
    with lg.store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    lg.close()
    with pytest.raises(ConfigError, match="newer than this ledger"):
        make_ledger()


def drop_triggers(lg: object) -> None:
    """Switch off the append-only triggers, as an attacker with database access would."""
    engine = lg.store.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        for table in APPEND_ONLY:
            if engine.dialect.name == "postgresql":
                conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            else:
                for action in ("update", "delete"):
                    conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{action}"))
