"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification.

Invariants:

- Hashing is exactly RFC 9162 2.1.1: the empty tree hashes to SHA-256(""), a leaf to
  SHA-256(0x00 || data), an interior node to SHA-256(0x01 || left || right), and a tree of n > 1
  leaves splits at k, the largest power of two strictly below n. Nothing is padded or duplicated.
- Every hash that enters a computation is exactly 32 bytes; anything else is rejected.
- ``reference_*`` functions are the RFC 6962 2.1 recursive definitions written for clarity, not
  speed (O(n log n) hashing); tests use them as ground truth for the SQL store.
- ``verify_*`` raise (``InclusionProofError`` / ``ConsistencyError``) with a message saying what
  is wrong, and return None on success. The verifiers are the iterative RFC 9162 2.1.3.2 and
  2.1.4.2 algorithms.
- Edge cases the RFC leaves open, decided here: a consistency proof between equal sizes must be
  empty with equal roots; a proof from the empty tree (old size 0) must be empty and the old root
  must be ``EMPTY_ROOT``, because the empty tree is a prefix of every tree (as C2SP tlog-witness
  accepts it; transparency-dev/merkle rejects it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ledger.errors import ConsistencyError, InclusionProofError, InputError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "leaf_hash",
    "node_hash",
    "reference_consistency_proof",
    "reference_inclusion_proof",
    "reference_root",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
# RFC 9162 2.1.1: MTH({}) = HASH(), the hash of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 2.1.1: MTH({d0}) = HASH(0x00 || d0)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 2.1.1: HASH(0x01 || MTH(left subtree) || MTH(right subtree))."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2): k < n <= 2k."""
    return 1 << ((n - 1).bit_length() - 1)


# -- Reference implementations (RFC 6962 2.1, recursive) ----------------------------------------


def reference_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over already-hashed leaves (RFC 6962 2.1)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(reference_root(leaf_hashes[:k]), reference_root(leaf_hashes[k:]))


def reference_inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 2.1.1: the audit path of leaf ``index``, leaf side first.

    Raises:
        InputError: ``index`` is not in ``[0, n)``.
    """
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise InputError(f"leaf index {index} is outside a tree of size {n}")
    if n == 1:
        # RFC 6962 2.1.1: PATH(0, {d0}) = {}.
        return []
    k = _split(n)
    if index < k:
        # PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) for m < k.
        return [*reference_inclusion_proof(index, leaf_hashes[:k]), reference_root(leaf_hashes[k:])]
    # PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k]) for m >= k.
    return [
        *reference_inclusion_proof(index - k, leaf_hashes[k:]),
        reference_root(leaf_hashes[:k]),
    ]


def reference_consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 6962 2.1.2 for ``m = old_size``.

    The RFC defines 0 < m < n; for m == n and m == 0 this returns the empty proof, which is what
    ``verify_consistency`` expects in those cases.

    Raises:
        InputError: ``old_size`` is not in ``[0, n]``.
    """
    n = len(leaf_hashes)
    if not 0 <= old_size <= n:
        raise InputError(f"old size {old_size} is outside [0, {n}]")
    if old_size in (0, n):
        return []
    return _subproof(old_size, leaf_hashes, complete=True)


def _subproof(m: int, leaves: Sequence[bytes], *, complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 6962 2.1.2; ``complete`` is the flag b."""
    n = len(leaves)
    if m == n:
        # SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}.
        return [] if complete else [reference_root(leaves)]
    k = _split(n)
    if m <= k:
        # m <= k: SUBPROOF(m, D[0:k], b) : MTH(D[k:n]).
        return [*_subproof(m, leaves[:k], complete=complete), reference_root(leaves[k:])]
    # m > k: SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]).
    return [*_subproof(m - k, leaves[k:], complete=False), reference_root(leaves[:k])]


# -- Verification (RFC 9162 2.1.3.2 and 2.1.4.2, iterative) -------------------------------------


def _check_hash(
    value: bytes, what: str, error: type[InclusionProofError] | type[ConsistencyError]
) -> None:
    if len(value) != HASH_SIZE:
        raise error(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` leads to from leaf ``index`` in a tree of ``size`` leaves.

    Raises:
        InclusionProofError: the index is not below the size, a hash is not 32 bytes, or the
            proof is too long or too short for this (index, size).
    """
    err = InclusionProofError
    # RFC 9162 2.1.3.2 step 1: leaf_index must be below tree_size.
    if index < 0 or size < 0:
        raise err(f"negative leaf index {index} or tree size {size}")
    if index >= size:
        raise err(f"leaf index {index} is not below tree size {size}")
    _check_hash(leaf_hash, "leaf hash", err)
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]", err)
    # Step 2: fn = leaf_index, sn = tree_size - 1, r = leaf_hash.
    fn, sn, r = index, size - 1, leaf_hash
    # Step 3: walk the path from the leaf upwards.
    for i, p in enumerate(proof):
        # Step 3a: a proof longer than the path to the root.
        if sn == 0:
            raise err(
                f"proof has {len(proof)} hashes but leaf {index} of a tree of size {size} "
                f"needs only {i}"
            )
        # Step 3b: p is a left sibling when fn is a right child or the last node of its level.
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # Then skip the levels where fn is a left child with no right sibling (the tree's
            # right edge): shift until LSB(fn) is set or fn is 0.
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        # Step 3c: up one level.
        fn >>= 1
        sn >>= 1
    # Step 4: sn == 0 means the path reached the root.
    if sn != 0:
        raise err(
            f"proof has {len(proof)} hashes, too few for leaf {index} of a tree of size {size}"
        )
    return r


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf ``index`` with hash ``leaf_hash`` is in the tree of ``size`` with ``root``.

    Raises:
        InclusionProofError: the proof is malformed or leads to a different root.

    Example:
        >>> leaves = [leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")]
        >>> root = reference_root(leaves)
        >>> verify_inclusion(2, 3, leaves[2], reference_inclusion_proof(2, leaves), root)
    """
    _check_hash(root, "root hash", InclusionProofError)
    computed = root_from_inclusion_proof(index, size, leaf_hash, proof)
    # RFC 9162 2.1.3.2 step 4: compare r with root_hash.
    if computed != root:
        raise InclusionProofError(
            f"inclusion proof for leaf {index} of a tree of size {size} leads to root "
            f"{computed.hex()}, expected {root.hex()}"
        )


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Check that the tree of ``old_size`` with ``old_root`` is a prefix of the newer tree.

    Raises:
        ConsistencyError: the proof is malformed or the trees are not consistent.

    Example:
        >>> leaves = [leaf_hash(bytes([i])) for i in range(5)]
        >>> old, new = reference_root(leaves[:3]), reference_root(leaves)
        >>> verify_consistency(3, 5, reference_consistency_proof(3, leaves), old, new)
    """
    err = ConsistencyError
    if old_size < 0 or new_size < 0:
        raise err(f"negative tree size: old {old_size}, new {new_size}")
    if old_size > new_size:
        raise err(f"old size {old_size} is larger than new size {new_size}: the log shrank")
    _check_hash(old_root, "old root", err)
    _check_hash(new_root, "new root", err)
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]", err)
    if old_size == new_size:
        # Equal sizes: nothing to prove, the roots themselves must match.
        if proof:
            raise err(f"sizes are equal ({old_size}) but the proof has {len(proof)} hashes")
        if old_root != new_root:
            raise err(f"different roots for the same tree size {old_size}: the log forked")
        return
    if old_size == 0:
        # The empty tree is a prefix of every tree; only its root is checkable.
        if proof:
            raise err(f"proof from the empty tree must be empty, got {len(proof)} hashes")
        if old_root != EMPTY_ROOT:
            raise err("old size is 0 but the old root is not the empty-tree hash")
        return
    # RFC 9162 2.1.4.2 step 1: an empty proof proves nothing when 0 < first < second.
    if not proof:
        raise err(f"empty consistency proof from size {old_size} to {new_size}")
    path = list(proof)
    # Step 2: if first is an exact power of 2, prepend first_hash to the path.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # Step 3: fn = first - 1, sn = second - 1.
    fn, sn = old_size - 1, new_size - 1
    # Step 4: if LSB(fn) is set, shift fn and sn right until it is not.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5: fr and sr start at the first path element.
    fr = sr = path[0]
    # Step 6: for each subsequent element c.
    for c in path[1:]:
        # Step 6a: a proof longer than the path to the new root.
        if sn == 0:
            raise err(f"consistency proof from {old_size} to {new_size} has too many hashes")
        # Step 6b: c is a left sibling: it feeds both roots.
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            # Otherwise c is a right sibling that only exists in the new tree.
            sr = node_hash(sr, c)
        # Step 6c: up one level.
        fn >>= 1
        sn >>= 1
    # Step 7: sn == 0, fr == first_hash and sr == second_hash.
    if sn != 0:
        raise err(f"consistency proof from {old_size} to {new_size} has too few hashes")
    if fr != old_root:
        raise err(
            f"consistency proof leads to old root {fr.hex()}, expected {old_root.hex()} "
            f"(size {old_size})"
        )
    if sr != new_root:
        raise err(
            f"consistency proof leads to new root {sr.hex()}, expected {new_root.hex()} "
            f"(size {new_size})"
        )
