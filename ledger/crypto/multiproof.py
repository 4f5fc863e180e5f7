"""One proof that many leaves are in an RFC 6962 tree: the deduplicated multiproof.

Invariants:

* The format is DESIGN.md's: ``{"tree_size": N, "leaf_indexes": [...], "nodes": [{"start": a,
  "end": b, "hash": hex}, ...]}``. Every node is ``MTH(D[a:b])`` for a node ``[a, b)`` of the
  RFC 6962 recursion of the tree of ``N`` leaves (split ``[a, b)`` at the largest power of two
  strictly below ``b - a``).
* The node set is the smallest one from which the root follows: exactly the maximal nodes of
  the recursion that hold none of the listed leaves, in left-to-right order. Nodes holding a
  listed leaf are recomputed by the verifier, so a contiguous run of leaves costs O(log n) nodes
  and ``k`` scattered leaves cost at most ``k * log2(n / k)`` or so.
* :func:`verify` accepts only that canonical shape: a node that is missing, duplicated, unused,
  not a node of the recursion, or that covers a listed leaf is an error. The last matters: a
  verifier that took a covering node as given would never look at the leaf it covers.
* :func:`build` reads stored hashes the way :mod:`ledger.crypto.tree` does (complete aligned
  subtrees through a ``HashReader``), in a single call, and never rehashes the log. A node of
  the recursion that is not an aligned power-of-two subtree (the right edge of the tree) is
  composed from the stored subtrees it splits into.
* Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeGuard

from ledger.crypto.merkle import EMPTY_ROOT, HASH_SIZE, node_hash
from ledger.crypto.tree import HashReader, stored_index
from ledger.errors import InclusionProofError

__all__ = ["MultiProof", "ProofNode", "build", "root_from_multiproof", "verify"]


def _split(n: int) -> int:
    # RFC 9162 2.1.1: k is the largest power of two strictly smaller than n (n >= 2).
    return 1 << ((n - 1).bit_length() - 1)


class ProofNode(NamedTuple):
    """``MTH(D[start:end])``: the hash of leaves ``[start, end)``.

    A named tuple, not a frozen dataclass: a page of the audit service makes a few hundred
    of them per request, and a frozen dataclass costs about a microsecond each to create.
    """

    start: int
    end: int
    hash: bytes

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "hash": self.hash.hex()}


@dataclass(frozen=True, slots=True)
class MultiProof:
    """Proof that every leaf in ``leaf_indexes`` is in the tree of ``tree_size`` leaves."""

    tree_size: int
    leaf_indexes: tuple[int, ...]
    nodes: tuple[ProofNode, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of DESIGN.md (hashes as lower-case hex)."""
        return {
            "tree_size": self.tree_size,
            "leaf_indexes": list(self.leaf_indexes),
            "nodes": [node.to_dict() for node in self.nodes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MultiProof:
        """Parse the JSON form, checking types only (:func:`verify` checks the shape).

        Raises:
            InclusionProofError: a field is missing or has the wrong type.
        """
        err = InclusionProofError
        if not isinstance(data, Mapping):
            raise err("a multiproof is a JSON object")
        size = data.get("tree_size")
        indexes = data.get("leaf_indexes")
        nodes = data.get("nodes")
        if not _is_int(size):
            raise err("multiproof tree_size is not an integer")
        # The type test first: a million indexes of type int pass it in C.
        if not isinstance(indexes, list) or (
            not set(map(type, indexes)) <= {int} and not all(_is_int(i) for i in indexes)
        ):
            raise err("multiproof leaf_indexes is not a list of integers")
        if not isinstance(nodes, list):
            raise err("multiproof nodes is not a list")
        parsed = []
        for n, node in enumerate(nodes):
            if not isinstance(node, Mapping):
                raise err(f"multiproof node {n} is not an object")
            start, end, value = node.get("start"), node.get("end"), node.get("hash")
            if not (_is_int(start) and _is_int(end) and isinstance(value, str)):
                raise err(f"multiproof node {n} needs integer start and end and a hex hash")
            try:
                digest = bytes.fromhex(value)
            except ValueError as exc:
                raise err(f"multiproof node {n} hash is not hex") from exc
            parsed.append(ProofNode(start, end, digest))
        return cls(size, tuple(indexes), tuple(parsed))


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _missing_nodes(size: int, leaves: Sequence[int]) -> list[tuple[int, int]]:
    """The maximal recursion nodes of a ``size``-leaf tree that hold none of ``leaves`` (sorted).

    They are, left to right, the coarsest covers of the gaps between listed leaves (and before
    the first and after the last) by recursion nodes. Every aligned power-of-two block inside
    the tree is a recursion node; the only others are the right edge's ``[s, size)`` for the
    starts ``s`` where the rest is no power of two. A gap is covered greedily: the right-edge
    node when the gap runs to the end from such a start, else the largest aligned block that
    starts here and fits (the test compares this with the recursion's own walk).
    """
    if not size:
        return []
    if not leaves:
        return [(0, size)]
    edge = set()
    start = 0
    while (rest := size - start) & (rest - 1):
        edge.add(start)
        start += 1 << ((rest - 1).bit_length() - 1)
    out: list[tuple[int, int]] = []
    add = out.append
    after = 0
    # The gaps before each listed leaf, then the one after the last (ending at size), each
    # covered in line: a page of the audit service has a hundred gaps per request.
    for end in (*leaves, size):
        at = after
        while at < end:
            if end == size and at in edge:
                add((at, size))
                break
            step = at & -at if at else 1 << end.bit_length()
            while at + step > end:
                step >>= 1
            add((at, at + step))
            at += step
        after = end + 1
    return out


def _aligned_pieces(start: int, end: int) -> list[tuple[int, int]]:
    """``(level, index)`` of the stored subtrees a recursion node splits into, left to right."""
    # A node of the recursion starts on a multiple of a power of two at least its size, so its
    # left part at every split is complete and aligned; only the right edge keeps splitting.
    pieces = []
    while True:
        size = end - start
        if size & (size - 1) == 0:
            level = size.bit_length() - 1
            pieces.append((level, start >> level))
            return pieces
        k = _split(size)
        level = k.bit_length() - 1
        pieces.append((level, start >> level))
        start += k


def _compose(hashes: Sequence[bytes]) -> bytes:
    # Pieces are [left, right-edge...]: MTH of the node is left folded onto the composed rest.
    acc = hashes[-1]
    for value in reversed(hashes[:-1]):
        acc = node_hash(value, acc)
    return acc


def _check_leaves(tree_size: int, leaf_indexes: Sequence[int]) -> None:
    if tree_size < 0:
        raise InclusionProofError(f"negative tree size {tree_size}")
    previous = -1
    for leaf in leaf_indexes:
        if leaf <= previous:
            raise InclusionProofError(
                f"leaf indexes must be strictly increasing: {leaf} follows {previous}"
            )
        if leaf >= tree_size:
            raise InclusionProofError(f"leaf {leaf} is not in a tree of size {tree_size}")
        previous = leaf


def build(tree_size: int, leaf_indexes: Sequence[int], read: HashReader) -> MultiProof:
    """The multiproof of ``leaf_indexes`` (any order, duplicates allowed) in ``tree_size`` leaves.

    ``read`` is called once, with every stored index the proof needs.

    Raises:
        InclusionProofError: a leaf index is negative or not below ``tree_size``.

    Example:
        >>> from ledger.crypto.merkle import leaf_hash
        >>> from ledger.crypto.tree import TreeFrontier
        >>> frontier, stored = TreeFrontier(), []
        >>> for i in range(5):
        ...     stored += frontier.append(leaf_hash(bytes([i])))
        >>> proof = build(5, [1, 2], lambda idx: [stored[i] for i in idx])
        >>> [(n.start, n.end) for n in proof.nodes]
        [(0, 1), (3, 4), (4, 5)]
    """
    leaves = sorted(set(leaf_indexes))
    if leaves and leaves[0] < 0:
        raise InclusionProofError(f"negative leaf index {leaves[0]}")
    if tree_size < 0:
        raise InclusionProofError(f"negative tree size {tree_size}")
    if leaves and leaves[-1] >= tree_size:  # sorted and distinct: only the last can be out
        raise InclusionProofError(f"leaf {leaves[-1]} is not in a tree of size {tree_size}")
    spans = _missing_nodes(tree_size, leaves)
    # Nearly every span is an aligned block (only the right edge's are not): one stored hash
    # each, at stored_index(level, start >> level), whose last leaf is end - 1 (written out
    # here: a page of the audit service builds ~170 of them per request).
    wanted: list[int] = []
    composed: dict[int, int] = {}  # span number -> how many stored hashes make it
    for n, (start, end) in enumerate(spans):
        width = end - start
        if width & (width - 1) == 0:
            last = end - 1
            wanted.append(2 * last - last.bit_count() + width.bit_length() - 1)
        else:  # the right edge: composed from the stored subtrees it splits into
            pieces = _aligned_pieces(start, end)
            wanted.extend(stored_index(level, index) for level, index in pieces)
            composed[n] = len(pieces)
    values = list(read(wanted)) if wanted else []
    if len(values) != len(wanted):
        raise InclusionProofError(f"hash reader returned {len(values)} of {len(wanted)} hashes")
    if composed:
        merged = []
        at = 0
        for n in range(len(spans)):
            count = composed.get(n, 1)
            merged.append(values[at] if count == 1 else _compose(values[at : at + count]))
            at += count
        values = merged
    nodes = [
        ProofNode(start, end, value) for (start, end), value in zip(spans, values, strict=True)
    ]
    return MultiProof(tree_size, tuple(leaves), tuple(nodes))


def _span_root(hashes: list[bytes]) -> bytes:
    """RFC 9162 root of consecutive leaf hashes (at least one), a level at a time: pairs from
    the left, an odd last node carried up unchanged, which is the same tree as splitting at
    the largest power of two below the size."""
    sha256 = hashlib.sha256
    level = hashes
    while len(level) > 1:
        paired = [
            sha256(b"\x01" + left + right).digest()
            for left, right in zip(level[0::2], level[1::2], strict=False)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def root_from_multiproof(proof: MultiProof, leaf_hashes: Mapping[int, bytes]) -> bytes:
    """The root that ``proof`` leads to when the listed leaves have ``leaf_hashes``.

    Raises:
        InclusionProofError: the proof is not in canonical shape, a listed leaf has no hash (or
            a hash is given for a leaf the proof does not list), or a hash is not 32 bytes.
    """
    err = InclusionProofError
    size = proof.tree_size
    leaves = list(proof.leaf_indexes)
    if leaves and leaves[0] < 0:
        raise err(f"negative leaf index {leaves[0]}")
    _check_leaves(size, leaves)
    # The leaves are strictly increasing (checked above): the same count, each one given,
    # means the same set; checked lazily, since a pack may list a million leaves.
    if len(leaf_hashes) != len(leaves) or not all(map(leaf_hashes.__contains__, leaves)):
        given, listed = set(leaf_hashes), set(leaves)
        stray = sorted(given - listed)
        if stray:
            raise err(f"leaf {stray[0]} has a hash but the proof does not list it")
        raise err(f"leaf {sorted(listed - given)[0]} is listed but has no leaf hash")
    if set(map(len, leaf_hashes.values())) != {HASH_SIZE} and leaves:  # else name the first
        for leaf in leaves:
            if len(leaf_hashes[leaf]) != HASH_SIZE:
                raise err(f"leaf {leaf} hash is {len(leaf_hashes[leaf])} bytes, not {HASH_SIZE}")
    by_span: dict[tuple[int, int], bytes] = {}
    for node in proof.nodes:
        span = (node.start, node.end)
        if span in by_span:
            raise err(f"node for leaves [{node.start}, {node.end}) appears twice")
        if len(node.hash) != HASH_SIZE:
            raise err(f"node [{node.start}, {node.end}) hash is {len(node.hash)} bytes")
        by_span[span] = node.hash
    if size == 0:
        if by_span:
            raise err("a proof in the empty tree has no nodes")
        return EMPTY_ROOT

    used = 0
    spans = sorted(by_span)

    def walk(start: int, end: int, lo: int, hi: int) -> bytes:
        nonlocal used
        if hi - lo == end - start > 1:
            # Every leaf of the span is listed (a contiguous run): no node may lie inside it,
            # and its root comes from the leaf hashes a level at a time.
            inside = bisect_left(spans, (start, -1))
            if inside < len(spans) and spans[inside][0] < end:
                first, last = spans[inside]
                raise err(f"node [{first}, {last}) covers listed leaf {first}")
            return _span_root([leaf_hashes[leaf] for leaf in range(start, end)])
        if lo == hi:
            value = by_span.get((start, end))
            if value is None:
                raise err(f"proof has no node for leaves [{start}, {end})")
            used += 1
            return value
        if (start, end) in by_span:
            # A node over a listed leaf would stand in for that leaf unchecked.
            raise err(f"node [{start}, {end}) covers listed leaf {leaves[lo]}")
        if end - start == 1:
            return leaf_hashes[start]
        mid_leaf = start + _split(end - start)
        mid = bisect_left(leaves, mid_leaf, lo, hi)
        return node_hash(walk(start, mid_leaf, lo, mid), walk(mid_leaf, end, mid, hi))

    computed = walk(0, size, 0, len(leaves))
    if used != len(by_span):
        # Every node the recursion asked for was found once, so the rest were never reached.
        extra = next(iter(sorted(by_span.keys() - set(_missing_nodes(size, leaves)))))
        raise err(f"node [{extra[0]}, {extra[1]}) is not part of this proof")
    return computed


def verify(proof: MultiProof, leaf_hashes: Mapping[int, bytes], root: bytes) -> None:
    """Check that every listed leaf, with its hash in ``leaf_hashes``, is in the tree ``root``.

    Raises:
        InclusionProofError: the proof is malformed or leads to another root.
    """
    if len(root) != HASH_SIZE:
        raise InclusionProofError(f"root hash is {len(root)} bytes, not {HASH_SIZE}")
    computed = root_from_multiproof(proof, leaf_hashes)
    if computed != root:
        raise InclusionProofError(
            f"multiproof of {len(proof.leaf_indexes)} leaves in a tree of size {proof.tree_size} "
            f"leads to root {computed.hex()}, expected {root.hex()}"
        )
