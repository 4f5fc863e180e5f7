"""The service's cache of stored tree hashes: block reads give what the store holds, within
the memory budget, on a growing log, and a missing hash is named."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ledger.api.reads import HashCache
from ledger.crypto import tree
from ledger.errors import StoreError

from ..conftest import LedgerFactory


def _append(lg: object, n: int, start: int = 0) -> None:
    lg.append_many([{"purpose": "evaluate", "n": i} for i in range(start, start + n)])  # type: ignore[attr-defined]


def _stored(lg: object) -> dict[int, bytes]:
    return dict(lg.store.raw_hashes())  # type: ignore[attr-defined]


@pytest.fixture
def log300(make_ledger: LedgerFactory) -> tuple[Any, dict[int, bytes]]:
    """A ledger of 300 entries and its stored hashes by index."""
    lg = make_ledger(judge=False)
    _append(lg, 300)
    return lg, _stored(lg)


def test_reads_match_the_store_across_blocks_and_within_a_small_budget(
    log300: tuple[Any, dict[int, bytes]],
) -> None:
    lg, stored = log300
    assert len(stored) == tree.stored_count(300)
    # Blocks of 16 hashes and room for 3 of them: most reads need more blocks than are kept.
    cache = HashCache(max_bytes=3 * 16 * 32, block=16)
    rng = random.Random(4)  # noqa: S311 - test data, not a secret
    with lg.store.engine.connect() as conn:
        for _ in range(40):
            indexes = [rng.randrange(len(stored)) for _ in range(rng.randrange(1, 60))]
            assert cache.read(conn, indexes) == [stored[i] for i in indexes]
            assert len(cache._blocks) <= 3
        # An inclusion proof's reads (what the entry route asks for), twice: cold, then kept.
        wide = HashCache(block=16)
        needed = tree.plan(lambda read: tree.inclusion_proof(123, 300, read))
        for _ in range(2):
            assert wide.read(conn, needed) == [stored[i] for i in needed]


def test_the_last_block_is_read_again_once_the_log_has_grown(make_ledger: LedgerFactory) -> None:
    lg = make_ledger(judge=False)
    _append(lg, 10)  # 19 stored hashes: the second block of 16 holds 3
    cache = HashCache(block=16, dense=1)  # every miss reads its block
    with lg.store.engine.connect() as conn:
        last = tree.stored_count(10) - 1
        assert cache.read(conn, [last]) == [_stored(lg)[last]]
        with pytest.raises(StoreError, match=f"stored hash {last + 1} .* is missing"):
            cache.read(conn, [last + 1])
    _append(lg, 10, start=10)
    stored = _stored(lg)
    with lg.store.engine.connect() as conn:
        later = list(range(last - 2, tree.stored_count(20)))
        assert cache.read(conn, later) == [stored[i] for i in later]


def test_sparse_misses_are_read_singly_and_dense_ones_by_block(
    log300: tuple[Any, dict[int, bytes]],
) -> None:
    lg, stored = log300
    cache = HashCache(block=16, dense=4, singles=8)
    with lg.store.engine.connect() as conn:
        # An inclusion proof: one hash in each of its blocks, so no block is read.
        needed = tree.plan(lambda read: tree.inclusion_proof(200, 300, read))
        assert cache.read(conn, needed) == [stored[i] for i in needed]
        assert not cache._blocks
        # Four neighbours in block 5: that block is read and kept whole.
        run = [80, 81, 83, 90]
        assert cache.read(conn, run) == [stored[i] for i in run]
        assert list(cache._blocks) == [5]
        assert len(cache._blocks[5]) == 16 * 32
        # Singles stay within two generations of 8.
        scattered = list(range(100, 580, 16))
        assert cache.read(conn, scattered) == [stored[i] for i in scattered]
        assert len(cache._young) <= 8
        assert len(cache._old) <= 8


def test_block_size_must_be_a_power_of_two() -> None:
    with pytest.raises(ValueError, match="power of two"):
        HashCache(block=12)
