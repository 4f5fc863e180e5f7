"""RFC 6962 / RFC 9162 Merkle hashing, reference proofs and verifiers.

Ground truth comes from two places: the Certificate Transparency vectors republished in
transparency-dev/merkle (``tests/assets/``), and the RFC's recursive definitions
(``reference_*``), which the iterative verifiers must agree with on every tree shape.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.crypto.merkle import (
    EMPTY_ROOT,
    leaf_hash,
    node_hash,
    reference_consistency_proof,
    reference_inclusion_proof,
    reference_root,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from ledger.errors import ConsistencyError, InclusionProofError, InputError

ASSETS = Path(__file__).resolve().parent.parent / "assets"
ROOTS = json.loads((ASSETS / "rfc6962_roots.json").read_text())
PROBES = json.loads((ASSETS / "transparency_dev_merkle_probes.json").read_text())

VECTOR_LEAVES = [leaf_hash(bytes.fromhex(h)) for h in ROOTS["leaves_hex"]]
MAX_SIZE = 300
LEAVES = [leaf_hash(i.to_bytes(2, "big")) for i in range(MAX_SIZE)]

# Probes where our policy deliberately differs from transparency-dev/merkle. It skips hash length
# checks when both sizes are equal and accepts 12-byte "roots" there; we reject any hash that is
# not 32 bytes, everywhere (see the ledger.crypto.merkle docstring).
OUR_POLICY: dict[str, str] = {
    f"testdata/consistency/additional/{name}.json": "non-32-byte roots are rejected"
    for name in (
        "sizes-are-equal-and-proof-is-empty-where-both-sizes-are-one",
        "sizes-are-equal-and-proof-is-empty-where-both-sizes-are-zero",
        "sizes-are-equal-one-and-proof-is-empty",
        "sizes-are-equal-zero-and-proof-is-empty",
        "sizes-are-equal-and-proof-is-not-empty-where-both-sizes-are-one",
        "sizes-are-equal-and-proof-is-not-empty-where-both-sizes-are-zero",
    )
}


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _proof(raw: list[str] | None) -> list[bytes]:
    return [_b64(p) for p in raw or []]


def _raises(fn: Callable[[], None], error: type[Exception]) -> bool:
    try:
        fn()
    except error:
        return True
    return False


# -- Known answers -------------------------------------------------------------------------------


def test_empty_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == ROOTS["roots_hex"][0]
    assert reference_root([]) == EMPTY_ROOT


@pytest.mark.parametrize("size", range(9))
def test_reference_root_matches_vectors(size: int) -> None:
    assert reference_root(VECTOR_LEAVES[:size]).hex() == ROOTS["roots_hex"][size]


def test_leaf_and_node_hash_use_domain_prefixes() -> None:
    # transparency-dev constants: leaf hash of the empty leaf, and level-1 node 0.
    assert leaf_hash(b"").hex().startswith("6e340b9c")
    assert node_hash(VECTOR_LEAVES[0], VECTOR_LEAVES[1]).hex() == ROOTS["roots_hex"][2]


def _probe_id(probe: dict[str, Any]) -> str:
    return str(probe["source"]).removeprefix("testdata/").removesuffix(".json")


@pytest.mark.parametrize("probe", PROBES["inclusion"], ids=_probe_id)
def test_inclusion_probes(probe: dict[str, Any]) -> None:
    def check() -> None:
        verify_inclusion(
            probe["leafIdx"],
            probe["treeSize"],
            _b64(probe["leafHash"]),
            _proof(probe["proof"]),
            _b64(probe["root"]),
        )

    assert _raises(check, InclusionProofError) == probe["wantErr"]


@pytest.mark.parametrize("probe", PROBES["consistency"], ids=_probe_id)
def test_consistency_probes(probe: dict[str, Any]) -> None:
    def check() -> None:
        verify_consistency(
            probe["size1"],
            probe["size2"],
            _proof(probe["proof"]),
            _b64(probe["root1"]),
            _b64(probe["root2"]),
        )

    want_err = probe["wantErr"] or probe["source"] in OUR_POLICY
    assert _raises(check, ConsistencyError) == want_err


HAPPY_INCLUSION = [
    p for p in PROBES["inclusion"] if p["source"].endswith("happy-path.json") and p["treeSize"] > 1
]
HAPPY_CONSISTENCY = [
    p for p in PROBES["consistency"] if p["source"].endswith("happy-path.json") and p["proof"]
]


@pytest.mark.parametrize("probe", HAPPY_INCLUSION, ids=_probe_id)
def test_reference_inclusion_proof_matches_published(probe: dict[str, Any]) -> None:
    leaves = VECTOR_LEAVES[: probe["treeSize"]]
    assert leaves[probe["leafIdx"]] == _b64(probe["leafHash"])
    assert reference_inclusion_proof(probe["leafIdx"], leaves) == _proof(probe["proof"])


@pytest.mark.parametrize("probe", HAPPY_CONSISTENCY, ids=_probe_id)
def test_reference_consistency_proof_matches_published(probe: dict[str, Any]) -> None:
    leaves = VECTOR_LEAVES[: probe["size2"]]
    assert reference_root(leaves[: probe["size1"]]) == _b64(probe["root1"])
    assert reference_consistency_proof(probe["size1"], leaves) == _proof(probe["proof"])


# -- The probe mutations, re-derived for every published happy path ------------------------------

GARBAGE = bytes(range(32))


def _proof_mutations(proof: Sequence[bytes], root: bytes) -> list[tuple[str, list[bytes]]]:
    out: list[tuple[str, list[bytes]]] = [
        ("empty", []),
        ("preceding-garbage", [GARBAGE, *proof]),
        ("trailing-garbage", [*proof, GARBAGE]),
        ("preceding-root", [root, *proof]),
        ("trailing-root", [*proof, root]),
        ("short-element", [*proof[:-1], proof[-1][:-1]]),
    ]
    for i in range(len(proof)):
        out.append((f"removed[{i}]", [*proof[:i], *proof[i + 1 :]]))
        out.append((f"inserted[{i}]", [*proof[:i], GARBAGE, *proof[i:]]))
        out.append((f"duplicated[{i}]", [*proof[: i + 1], *proof[i:]]))
        flipped = bytes([proof[i][0] ^ 0x10]) + proof[i][1:]
        out.append((f"modified[{i}]", [*proof[:i], flipped, *proof[i + 1 :]]))
    return [(name, p) for name, p in out if p != list(proof)]


@pytest.mark.parametrize("probe", HAPPY_INCLUSION, ids=_probe_id)
def test_inclusion_mutations_fail(probe: dict[str, Any]) -> None:
    idx, size = probe["leafIdx"], probe["treeSize"]
    leaf, root, proof = _b64(probe["leafHash"]), _b64(probe["root"]), _proof(probe["proof"])
    cases: list[tuple[int, int, bytes, list[bytes], bytes]] = [
        (i, size, leaf, proof, root) for i in (idx + 1, idx - 1, idx ^ 2) if i != idx
    ]
    # Not size + 1: when the path shape is unchanged, RFC 9162 cannot tell the sizes apart.
    cases += [(idx, s, leaf, proof, root) for s in (size * 2, size // 2)]
    cases += [(idx, size, GARBAGE, proof, root), (idx, size, leaf, proof, GARBAGE)]
    cases += [(idx, size, leaf, proof, EMPTY_ROOT), (idx, size, b"", proof, root)]
    cases += [(idx, size, leaf, p, root) for _, p in _proof_mutations(proof, root)]
    for args in cases:
        with pytest.raises(InclusionProofError):
            verify_inclusion(*args)


@pytest.mark.parametrize("probe", HAPPY_CONSISTENCY, ids=_probe_id)
def test_consistency_mutations_fail(probe: dict[str, Any]) -> None:
    s1, s2 = probe["size1"], probe["size2"]
    r1, r2, proof = _b64(probe["root1"]), _b64(probe["root2"]), _proof(probe["proof"])
    cases: list[tuple[int, int, list[bytes], bytes, bytes]] = [
        (a, b, proof, r1, r2)
        for a, b in ((s1 + 1, s2), (s1 - 1, s2), (s1 ^ 2, s2), (s1, s2 * 2), (s1, s2 // 2))
    ]
    cases += [(s1, s2, proof, r2, r1), (s1, s2, proof, GARBAGE, r2), (s1, s2, proof, r1, GARBAGE)]
    cases += [(s1, s2, p, r1, r2) for _, p in _proof_mutations(proof, r2)]
    cases += [(s1, s2, [r1, *proof], r1, r2)]
    for args in cases:
        with pytest.raises(ConsistencyError):
            verify_consistency(*args)


# -- Edge cases named by RFC 9162 and our policy ---------------------------------------------------


def test_inclusion_index_not_below_size() -> None:
    with pytest.raises(InclusionProofError, match="not below tree size 3"):
        root_from_inclusion_proof(3, 3, LEAVES[0], [])
    with pytest.raises(InclusionProofError, match="not below tree size 0"):
        verify_inclusion(0, 0, LEAVES[0], [], EMPTY_ROOT)
    with pytest.raises(InclusionProofError, match="negative"):
        verify_inclusion(-1, 3, LEAVES[0], [], EMPTY_ROOT)


def test_inclusion_length_messages() -> None:
    leaves = LEAVES[:8]
    proof = reference_inclusion_proof(3, leaves)
    with pytest.raises(InclusionProofError, match="needs only 3"):
        root_from_inclusion_proof(3, 8, leaves[3], [*proof, GARBAGE])
    with pytest.raises(InclusionProofError, match="too few"):
        root_from_inclusion_proof(3, 8, leaves[3], proof[:-1])
    with pytest.raises(InclusionProofError, match=r"proof\[1\] is 31 bytes"):
        root_from_inclusion_proof(3, 8, leaves[3], [proof[0], proof[1][:31], proof[2]])
    with pytest.raises(InclusionProofError, match="expected"):
        verify_inclusion(3, 8, leaves[4], proof, reference_root(leaves))


def test_consistency_edge_cases() -> None:
    r5 = reference_root(LEAVES[:5])
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    verify_consistency(0, 5, [], EMPTY_ROOT, r5)
    verify_consistency(5, 5, [], r5, r5)
    with pytest.raises(ConsistencyError, match="must be empty"):
        verify_consistency(0, 5, [r5], EMPTY_ROOT, r5)
    with pytest.raises(ConsistencyError, match="not the empty-tree hash"):
        verify_consistency(0, 5, [], r5, r5)
    with pytest.raises(ConsistencyError, match="the log forked"):
        verify_consistency(5, 5, [], r5, EMPTY_ROOT)
    with pytest.raises(ConsistencyError, match="proof has 1 hashes"):
        verify_consistency(5, 5, [r5], r5, r5)
    with pytest.raises(ConsistencyError, match="the log shrank"):
        verify_consistency(6, 5, [], r5, r5)
    with pytest.raises(ConsistencyError, match="empty consistency proof"):
        verify_consistency(3, 5, [], reference_root(LEAVES[:3]), r5)
    with pytest.raises(ConsistencyError, match="negative"):
        verify_consistency(-1, 5, [], r5, r5)
    with pytest.raises(ConsistencyError, match="new root is 31 bytes"):
        verify_consistency(5, 5, [], r5, r5[:31])


def test_reference_proofs_reject_bad_arguments() -> None:
    with pytest.raises(InputError):
        reference_inclusion_proof(5, LEAVES[:5])
    with pytest.raises(InputError):
        reference_inclusion_proof(-1, LEAVES[:5])
    with pytest.raises(InputError):
        reference_consistency_proof(6, LEAVES[:5])
    assert reference_consistency_proof(5, LEAVES[:5]) == []
    assert reference_consistency_proof(0, LEAVES[:5]) == []


def test_exhaustive_small_trees() -> None:
    """Every (index, size) and (old, new) pair up to 32 leaves verifies."""
    for n in range(1, 33):
        leaves = LEAVES[:n]
        root = reference_root(leaves)
        for m in range(n):
            proof = reference_inclusion_proof(m, leaves)
            assert root_from_inclusion_proof(m, n, leaves[m], proof) == root
        for m in range(n + 1):
            proof = reference_consistency_proof(m, leaves)
            verify_consistency(m, n, proof, reference_root(leaves[:m]), root)


# -- Properties over sampled tree sizes 1..300 -----------------------------------------------------


def _bit_flips(proof: list[bytes]) -> list[list[bytes]]:
    """Every proof that differs from ``proof`` in exactly one bit."""
    out = []
    for i, element in enumerate(proof):
        for bit in range(len(element) * 8):
            changed = bytearray(element)
            changed[bit // 8] ^= 1 << (bit % 8)
            out.append([*proof[:i], bytes(changed), *proof[i + 1 :]])
    return out


def _element_mutations(proof: list[bytes]) -> list[list[bytes]]:
    """Proofs with one element removed, inserted, duplicated, or two neighbours swapped."""
    out = []
    for i in range(len(proof) + 1):
        out.append([*proof[:i], GARBAGE, *proof[i:]])
    for i in range(len(proof)):
        out.append([*proof[:i], *proof[i + 1 :]])
        out.append([*proof[: i + 1], *proof[i:]])
        if i + 1 < len(proof) and proof[i] != proof[i + 1]:
            out.append([*proof[:i], proof[i + 1], proof[i], *proof[i + 2 :]])
    return out


@st.composite
def _index_and_size(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(min_value=1, max_value=MAX_SIZE))
    return draw(st.integers(min_value=0, max_value=size - 1)), size


@settings(max_examples=60, deadline=None)
@given(_index_and_size())
def test_inclusion_property(case: tuple[int, int]) -> None:
    index, size = case
    leaves = LEAVES[:size]
    root = reference_root(leaves)
    proof = reference_inclusion_proof(index, leaves)
    verify_inclusion(index, size, leaves[index], proof, root)
    for bad in _bit_flips(proof) + _element_mutations(proof):
        with pytest.raises(InclusionProofError):
            verify_inclusion(index, size, leaves[index], bad, root)
    flipped_leaf = bytes([leaves[index][0] ^ 1]) + leaves[index][1:]
    with pytest.raises(InclusionProofError):
        verify_inclusion(index, size, flipped_leaf, proof, root)


@st.composite
def _old_and_new(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(min_value=2, max_value=MAX_SIZE))
    return draw(st.integers(min_value=1, max_value=new - 1)), new


@settings(max_examples=60, deadline=None)
@given(_old_and_new())
def test_consistency_property(case: tuple[int, int]) -> None:
    old, new = case
    leaves = LEAVES[:new]
    old_root, new_root = reference_root(leaves[:old]), reference_root(leaves)
    proof = reference_consistency_proof(old, leaves)
    verify_consistency(old, new, proof, old_root, new_root)
    for bad in _bit_flips(proof) + _element_mutations(proof):
        with pytest.raises(ConsistencyError):
            verify_consistency(old, new, bad, old_root, new_root)
    with pytest.raises(ConsistencyError):
        verify_consistency(old, new, proof, reference_root(leaves[: old - 1]), new_root)
    if old + 1 < new:
        with pytest.raises(ConsistencyError):
            verify_consistency(old, new, proof, old_root, reference_root(leaves[: new - 1]))
