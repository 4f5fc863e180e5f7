"""Proofs and roots from stored subtree hashes agree with the RFC's recursive definitions."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.crypto import tree
from ledger.crypto.merkle import (
    leaf_hash,
    reference_consistency_proof,
    reference_inclusion_proof,
    reference_root,
    verify_consistency,
    verify_inclusion,
)
from ledger.crypto.tree import TreeFrontier


def build(size: int) -> tuple[list[bytes], list[bytes]]:
    """Leaf hashes of a tree and its stored hashes, produced by the frontier."""
    leaves = [leaf_hash(hashlib.sha256(i.to_bytes(8, "big")).digest()) for i in range(size)]
    frontier = TreeFrontier()
    stored: list[bytes] = []
    for h in leaves:
        stored.extend(frontier.append(h))
    return leaves, stored


def reader_over(stored: Sequence[bytes]) -> tree.HashReader:
    return lambda indexes: [stored[i] for i in indexes]


def test_stored_index_matches_append_order() -> None:
    _, stored = build(70)
    # Level-0 hashes sit where stored_index says, and counts agree with the formula.
    leaves, _ = build(70)
    for i, h in enumerate(leaves):
        assert stored[tree.stored_index(0, i)] == h
    for n in range(71):
        assert len(build(n)[1]) == tree.stored_count(n)


def test_subtree_range_inverts_stored_index() -> None:
    for level in range(6):
        for k in range(20):
            idx = tree.stored_index(level, k)
            assert tree.subtree_range(idx) == (level, k << level, (k + 1) << level)


@settings(max_examples=300, deadline=None)
@given(size=st.integers(min_value=0, max_value=300), data=st.data())
def test_root_and_proofs_match_reference(size: int, data: st.DataObject) -> None:
    leaves, stored = build(size)
    read = reader_over(stored)
    assert tree.root(size, read) == reference_root(leaves)
    for n in {size, data.draw(st.integers(min_value=0, max_value=size))}:
        assert tree.root(n, read) == reference_root(leaves[:n])
    if size == 0:
        return
    leaf = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = tree.inclusion_proof(leaf, size, read)
    assert proof == reference_inclusion_proof(leaf, leaves)
    verify_inclusion(leaf, size, leaves[leaf], proof, reference_root(leaves))
    old = data.draw(st.integers(min_value=0, max_value=size))
    cproof = tree.consistency_proof(old, size, read)
    assert cproof == reference_consistency_proof(old, leaves) if 0 < old < size else cproof == []
    verify_consistency(old, size, cproof, reference_root(leaves[:old]), reference_root(leaves))


def test_every_proof_for_all_sizes_up_to_64() -> None:
    leaves, stored = build(64)
    read = reader_over(stored)
    for n in range(1, 65):
        for m in range(n):
            assert tree.inclusion_proof(m, n, read) == reference_inclusion_proof(m, leaves[:n])
        for m in range(1, n):
            assert tree.consistency_proof(m, n, read) == reference_consistency_proof(m, leaves[:n])


def test_plan_reads_logarithmically_many_hashes() -> None:
    size = 1_000_000
    needed = tree.plan(lambda read: tree.inclusion_proof(123_457, size, read))
    assert 0 < len(needed) <= 2 * size.bit_length()
    needed = tree.plan(lambda read: tree.consistency_proof(999_999 - 65_537, size, read))
    assert 0 < len(needed) <= 3 * size.bit_length()
    assert len(tree.plan(lambda read: tree.root(size, read))) == size.bit_count()


def test_frontier_root_and_peaks() -> None:
    leaves, stored = build(37)
    frontier = TreeFrontier()
    for h in leaves:
        frontier.append(h)
    assert frontier.root() == reference_root(leaves)
    peaks = [stored[i] for i in TreeFrontier.peak_indexes(37)]
    assert TreeFrontier(37, peaks).root() == reference_root(leaves)
