"""The multiproof agrees with a naive construction, verifies, and rejects every malformed shape."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.crypto import multiproof
from ledger.crypto.merkle import leaf_hash, reference_root
from ledger.crypto.multiproof import MultiProof, ProofNode
from ledger.crypto.tree import TreeFrontier
from ledger.errors import InclusionProofError, InputError
from tests.conftest import LedgerFactory


def tree_of(size: int) -> tuple[list[bytes], list[bytes]]:
    leaves = [leaf_hash(hashlib.sha256(i.to_bytes(8, "big")).digest()) for i in range(size)]
    frontier = TreeFrontier()
    stored: list[bytes] = []
    for h in leaves:
        stored.extend(frontier.append(h))
    return leaves, stored


class CountingReader:
    """A HashReader over a stored-hash list that records how it was called."""

    def __init__(self, stored: Sequence[bytes]) -> None:
        self.stored = stored
        self.calls: list[list[int]] = []

    def __call__(self, indexes: Sequence[int]) -> Sequence[bytes]:
        self.calls.append(list(indexes))
        return [self.stored[i] for i in indexes]


def naive_nodes(leaves: Sequence[bytes], listed: set[int]) -> list[tuple[int, int, bytes]]:
    """Every node of the recursion, top down; keep those with no listed leaf whose parent has one.

    Written independently of the module: it enumerates the whole tree breadth first and hashes
    each kept node from the leaves themselves.
    """
    n = len(leaves)
    if n == 0:
        return []
    kept = []
    level: list[tuple[int, int, bool]] = [(0, n, True)]  # (start, end, parent holds a leaf)
    while level:
        nxt: list[tuple[int, int, bool]] = []
        for start, end, parent_holds in level:
            holds = any(start <= i < end for i in listed)
            if not holds:
                if parent_holds:
                    kept.append((start, end, reference_root(leaves[start:end])))
                continue
            if end - start > 1:
                k = 1
                while k * 2 < end - start:
                    k *= 2
                nxt += [(start, start + k, True), (start + k, end, True)]
        level = nxt
    return sorted(kept)


def hashes_for(proof: MultiProof, leaves: Sequence[bytes]) -> dict[int, bytes]:
    return {i: leaves[i] for i in proof.leaf_indexes}


@settings(max_examples=300, deadline=None)
@given(size=st.integers(min_value=0, max_value=200), data=st.data())
def test_matches_naive_and_verifies(size: int, data: st.DataObject) -> None:
    leaves, stored = tree_of(size)
    wanted = (
        data.draw(st.lists(st.integers(min_value=0, max_value=size - 1), max_size=40))
        if size
        else []
    )
    reader = CountingReader(stored)
    proof = multiproof.build(size, wanted, reader)
    assert [(n.start, n.end, n.hash) for n in proof.nodes] == naive_nodes(leaves, set(wanted))
    assert proof.leaf_indexes == tuple(sorted(set(wanted)))
    assert len(reader.calls) <= 1  # one batch of stored hashes, never a walk over the log
    root = reference_root(leaves)
    multiproof.verify(proof, hashes_for(proof, leaves), root)
    if proof.leaf_indexes:
        # Any listed leaf with another hash leads elsewhere.
        victim = data.draw(st.sampled_from(proof.leaf_indexes))
        forged = {**hashes_for(proof, leaves), victim: leaf_hash(b"forged")}
        with pytest.raises(InclusionProofError, match="leads to root"):
            multiproof.verify(proof, forged, root)


@settings(max_examples=100, deadline=None)
@given(size=st.integers(min_value=2, max_value=150), data=st.data())
def test_dropping_or_adding_a_node_fails(size: int, data: st.DataObject) -> None:
    leaves, stored = tree_of(size)
    wanted = data.draw(st.lists(st.integers(min_value=0, max_value=size - 1), min_size=1))
    proof = multiproof.build(size, wanted, CountingReader(stored))
    root = reference_root(leaves)
    good = hashes_for(proof, leaves)
    if proof.nodes:
        drop = data.draw(st.integers(min_value=0, max_value=len(proof.nodes) - 1))
        short = MultiProof(
            proof.tree_size, proof.leaf_indexes, proof.nodes[:drop] + proof.nodes[drop + 1 :]
        )
        with pytest.raises(InclusionProofError, match="no node for leaves"):
            multiproof.verify(short, good, root)
    # A node over a listed leaf would stand in for it: refused even with the right hash.
    leaf = proof.leaf_indexes[0]
    cover = ProofNode(leaf, leaf + 1, leaves[leaf])
    with pytest.raises(InclusionProofError, match="covers listed leaf"):
        multiproof.verify(
            MultiProof(proof.tree_size, proof.leaf_indexes, (*proof.nodes, cover)), good, root
        )


def test_contiguous_run_costs_log_nodes() -> None:
    size = 1 << 12
    leaves, stored = tree_of(size + 77)
    for start, count in [(0, 1000), (1234, 2000), (3000, size + 77 - 3000), (5, 1)]:
        proof = multiproof.build(size + 77, range(start, start + count), CountingReader(stored))
        assert len(proof.nodes) <= 2 * (size + 77).bit_length()
        multiproof.verify(proof, hashes_for(proof, leaves), reference_root(leaves))


def test_right_edge_nodes_are_composed_from_stored_subtrees() -> None:
    # Size 13 = 8 + 4 + 1: proving leaf 0 needs [8, 13), which is not a stored subtree.
    leaves, stored = tree_of(13)
    reader = CountingReader(stored)
    proof = multiproof.build(13, [0], reader)
    spans = [(n.start, n.end) for n in proof.nodes]
    assert spans == [(1, 2), (2, 4), (4, 8), (8, 13)]
    assert proof.nodes[-1].hash == reference_root(leaves[8:13])
    # [8, 13) is read as the stored [8, 12) and [12, 13): five hashes in all, no leaf rehashed.
    assert len(reader.calls[0]) == 5


def test_round_trip_through_json() -> None:
    leaves, stored = tree_of(37)
    proof = multiproof.build(37, [3, 4, 30], CountingReader(stored))
    text = json.dumps(proof.to_dict())
    again = MultiProof.from_dict(json.loads(text))
    assert again == proof
    assert again.to_dict() == proof.to_dict()
    multiproof.verify(again, hashes_for(again, leaves), reference_root(leaves))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "JSON object"),
        ({"tree_size": "3", "leaf_indexes": [], "nodes": []}, "tree_size"),
        ({"tree_size": 3, "leaf_indexes": [True], "nodes": []}, "leaf_indexes"),
        ({"tree_size": 3, "leaf_indexes": [], "nodes": {}}, "nodes is not a list"),
        ({"tree_size": 3, "leaf_indexes": [], "nodes": [{"start": 0}]}, "node 0 needs"),
        (
            {"tree_size": 3, "leaf_indexes": [], "nodes": [{"start": 0, "end": 3, "hash": "zz"}]},
            "not hex",
        ),
    ],
)
def test_from_dict_rejects_bad_types(data: object, message: str) -> None:
    with pytest.raises(InclusionProofError, match=message):
        MultiProof.from_dict(data)  # type: ignore[arg-type]  # deliberately not a mapping


def test_shape_errors_are_named() -> None:
    leaves, stored = tree_of(8)
    root = reference_root(leaves)
    proof = multiproof.build(8, [2, 5], CountingReader(stored))
    good = hashes_for(proof, leaves)
    cases: list[tuple[MultiProof, dict[int, bytes], str]] = [
        (MultiProof(8, (5, 2), proof.nodes), good, "strictly increasing"),
        (MultiProof(8, (2, 9), proof.nodes), good, "not in a tree of size 8"),
        (proof, {2: leaves[2]}, "leaf 5 is listed but has no leaf hash"),
        (proof, {**good, 3: leaves[3]}, "leaf 3 has a hash but the proof does not list it"),
        (MultiProof(8, proof.leaf_indexes, (*proof.nodes, proof.nodes[0])), good, "twice"),
        (
            MultiProof(8, proof.leaf_indexes, (*proof.nodes, ProofNode(0, 3, bytes(32)))),
            good,
            "node [0, 3) is not part of this proof",
        ),
        (MultiProof(8, proof.leaf_indexes, proof.nodes), {**good, 2: b"short"}, "bytes"),
    ]
    for bad, hashes, message in cases:
        with pytest.raises(
            InclusionProofError, match=message.replace("[", r"\[").replace(")", r"\)")
        ):
            multiproof.verify(bad, hashes, root)
    with pytest.raises(InclusionProofError, match="root hash is 3 bytes"):
        multiproof.verify(proof, good, b"abc")
    with pytest.raises(InclusionProofError, match="not in a tree"):
        multiproof.build(8, [8], CountingReader(stored))
    with pytest.raises(InclusionProofError, match="negative"):
        multiproof.build(8, [-1], CountingReader(stored))


def test_empty_tree_and_no_leaves() -> None:
    empty = multiproof.build(0, [], CountingReader([]))
    multiproof.verify(empty, {}, hashlib.sha256(b"").digest())
    leaves, stored = tree_of(6)
    whole = multiproof.build(6, [], CountingReader(stored))
    assert [(n.start, n.end) for n in whole.nodes] == [(0, 6)]
    multiproof.verify(whole, {}, reference_root(leaves))


def test_store_multiproof(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    leaves = [
        r.leaf_hash for r in lg.append_many([{"provider": "openai", "n": n} for n in range(45)])
    ]
    for size, wanted in [(45, [0, 7, 8, 9, 44]), (30, list(range(10, 30))), (1, [0]), (45, [])]:
        proof = lg.multiproof(wanted, size)
        assert proof.tree_size == size
        multiproof.verify(proof, {i: leaves[i] for i in wanted}, reference_root(leaves[:size]))
    assert lg.multiproof([3]).tree_size == 45
    with pytest.raises(InputError, match="not in a tree"):
        lg.multiproof([45], 45)
    with pytest.raises(InputError, match="larger than the log"):
        lg.multiproof([1], 46)


@settings(max_examples=60, deadline=None)
@given(
    size=st.sampled_from([1023, 1024, 1025, 1536, 3000, 4097, 6143]),
    data=st.data(),
)
def test_large_trees_match_naive(size: int, data: st.DataObject) -> None:
    # The node finder covers gaps greedily instead of walking the recursion; near and past
    # powers of two the right edge's nodes are where a greedy cover could go wrong.
    leaves, stored = tree_of(size)
    run = data.draw(st.integers(min_value=0, max_value=size - 1))
    wanted = data.draw(
        st.lists(st.integers(min_value=0, max_value=size - 1), max_size=30)
        | st.just(list(range(run, min(size, run + 90), 3)))
    )
    proof = multiproof.build(size, wanted, CountingReader(stored))
    assert [(n.start, n.end, n.hash) for n in proof.nodes] == naive_nodes(leaves, set(wanted))
    multiproof.verify(proof, hashes_for(proof, leaves), reference_root(leaves))


@pytest.mark.parametrize("size", [*range(1, 70), 1023, 1024, 1025, 3000])
def test_a_fully_listed_tree_hashes_level_by_level_to_the_reference_root(size: int) -> None:
    # Every leaf listed: the verifier reduces the run a level at a time instead of recursing,
    # and that must be the RFC's tree (split at the largest power of two) for every size.
    leaves, stored = tree_of(size)
    everything = list(range(size))
    proof = multiproof.build(size, everything, CountingReader(stored))
    assert proof.nodes == ()
    multiproof.verify(proof, hashes_for(proof, leaves), reference_root(leaves))
    inner = (size // 3, size // 3 + 1)
    if size > 1:
        with pytest.raises(InclusionProofError, match=r"node \[\d+, \d+\) covers listed leaf"):
            multiproof.verify(
                MultiProof(size, proof.leaf_indexes, (ProofNode(*inner, leaves[inner[0]]),)),
                hashes_for(proof, leaves),
                reference_root(leaves),
            )
