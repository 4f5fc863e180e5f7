"""Proofs and roots of an RFC 6962 tree computed from stored complete-subtree hashes.

Invariants:

* A *stored hash* is the hash of a complete, aligned subtree: level ``L``, index ``k`` covers
  leaves ``[k * 2**L, (k + 1) * 2**L)``. It becomes known when its last leaf is appended and
  never changes afterwards, so it can live in an append-only table.
* Stored hashes are numbered in the order they become known (the layout of Go's sumdb
  ``tlog`` package): appending leaf ``n`` stores the leaf hash and then every subtree that the
  leaf completes, lowest level first. :func:`stored_index` gives the position of ``(L, k)``;
  a tree of ``n`` leaves has exactly :func:`stored_count` ``(n)`` stored hashes.
* Every function here reads hashes through a ``HashReader`` that takes a list of stored
  indexes and returns their hashes in the same order. The control flow of each algorithm never
  depends on hash values, so :func:`plan` runs it once with a recording reader to learn which
  indexes it needs; the caller fetches them in one batch (O(log n) rows) and runs it again.
  Nothing here ever rehashes the log.

The proof shapes are those of RFC 9162 section 2.1.3.1 (inclusion) and 2.1.4.1 (consistency).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ledger.crypto.merkle import EMPTY_ROOT, node_hash

__all__ = [
    "HashReader",
    "TreeFrontier",
    "consistency_proof",
    "inclusion_proof",
    "plan",
    "root",
    "stored_count",
    "stored_index",
    "subtree_range",
]

HashReader = Callable[[Sequence[int]], Sequence[bytes]]


def stored_index(level: int, index: int) -> int:
    """Position of the stored hash of subtree ``(level, index)`` in append order."""
    # The subtree completes when leaf m = (index + 1) * 2**level - 1 is appended. Leaves 0..m-1
    # stored 2m - popcount(m) hashes between them (each leaf i stores 1 + trailing_zeros(i + 1)
    # hashes, and those trailing zeros add up to m - popcount(m)); leaf m then stores its own
    # hash first and the completed levels 1..level after it.
    last_leaf = ((index + 1) << level) - 1
    return 2 * last_leaf - last_leaf.bit_count() + level


def stored_count(size: int) -> int:
    """How many stored hashes a tree of ``size`` leaves has."""
    return 2 * size - size.bit_count()


def subtree_range(stored: int) -> tuple[int, int, int]:
    """Inverse of :func:`stored_index`: ``(level, first_leaf, end_leaf)`` of a stored hash."""
    # Find the leaf whose append stored this hash: the largest m with stored_index(0, m) <= i.
    lo, hi = 0, stored + 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if stored_index(0, mid) <= stored:
            lo = mid
        else:
            hi = mid - 1
    level = stored - stored_index(0, lo)
    first = lo + 1 - (1 << level)
    return level, first, lo + 1


def _largest_power_of_two_below(n: int) -> int:
    # RFC 9162 2.1.1: k is the largest power of two smaller than n (n > 1).
    return 1 << ((n - 1).bit_length() - 1)


class _Tree:
    """Evaluates subtree hashes of ranges through a reader, one stored hash per aligned block."""

    __slots__ = ("_reader",)

    def __init__(self, reader: HashReader) -> None:
        self._reader = reader

    def range_hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a range that starts on a multiple of a power of two >= its size."""
        size = end - start
        if size & (size - 1) == 0:
            level = size.bit_length() - 1
            return self._reader([stored_index(level, start >> level)])[0]
        k = _largest_power_of_two_below(size)
        return node_hash(self.range_hash(start, start + k), self.range_hash(start + k, end))

    def path(self, leaf: int, start: int, end: int) -> list[bytes]:
        # RFC 9162 2.1.3.1: PATH(m, D[n]).
        if end - start == 1:
            return []
        k = _largest_power_of_two_below(end - start)
        if leaf - start < k:
            return [*self.path(leaf, start, start + k), self.range_hash(start + k, end)]
        return [*self.path(leaf, start + k, end), self.range_hash(start, start + k)]

    def subproof(self, old_end: int, start: int, end: int, whole: bool) -> list[bytes]:
        # RFC 9162 2.1.4.1: SUBPROOF(m, D[n], b), with m = old_end - start.
        if old_end == end:
            return [] if whole else [self.range_hash(start, end)]
        k = _largest_power_of_two_below(end - start)
        if old_end - start <= k:
            return [
                *self.subproof(old_end, start, start + k, whole),
                self.range_hash(start + k, end),
            ]
        return [*self.subproof(old_end, start + k, end, False), self.range_hash(start, start + k)]


def plan(compute: Callable[[HashReader], object]) -> list[int]:
    """Stored indexes that ``compute`` will read, in first-use order, without duplicates."""
    wanted: dict[int, None] = {}
    dummy = bytes(32)

    def recording_reader(indexes: Sequence[int]) -> Sequence[bytes]:
        for i in indexes:
            wanted.setdefault(i)
        return [dummy] * len(indexes)

    compute(recording_reader)
    return list(wanted)


def root(size: int, reader: HashReader) -> bytes:
    """Root hash of the first ``size`` leaves (RFC 9162 2.1.1 MTH)."""
    if size == 0:
        return EMPTY_ROOT
    return _Tree(reader).range_hash(0, size)


def inclusion_proof(leaf: int, size: int, reader: HashReader) -> list[bytes]:
    """Audit path of ``leaf`` in the tree of ``size`` leaves (RFC 9162 2.1.3.1)."""
    if not 0 <= leaf < size:
        raise ValueError(f"leaf {leaf} is not in a tree of size {size}")
    return _Tree(reader).path(leaf, 0, size)


def consistency_proof(old_size: int, new_size: int, reader: HashReader) -> list[bytes]:
    """Proof that the tree of ``old_size`` leaves is a prefix of ``new_size`` (RFC 9162 2.1.4.1)."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    return _Tree(reader).subproof(old_size, 0, new_size, True)


@dataclass(slots=True)
class TreeFrontier:
    """The right edge of a growing tree: the roots of its maximal complete subtrees.

    Appending a leaf hash yields the stored hashes it creates, in stored-index order, so the
    writer can insert them without reading anything back.
    """

    size: int = 0
    peaks: list[bytes] = field(default_factory=list)

    def append(self, leaf_hash: bytes) -> list[bytes]:
        """Add one leaf; return the new stored hashes (leaf hash first, then completed parents)."""
        created = [leaf_hash]
        node = leaf_hash
        n = self.size
        # Each trailing 1 bit of the old size is a complete left sibling waiting for a partner.
        while n & 1:
            node = node_hash(self.peaks.pop(), node)
            created.append(node)
            n >>= 1
        self.peaks.append(node)
        self.size += 1
        return created

    def root(self) -> bytes:
        """Root hash of the tree so far."""
        if not self.peaks:
            return EMPTY_ROOT
        acc = self.peaks[-1]
        for peak in reversed(self.peaks[:-1]):
            acc = node_hash(peak, acc)
        return acc

    @staticmethod
    def peak_indexes(size: int) -> list[int]:
        """Stored indexes of the peaks of a tree of ``size`` leaves, left to right."""
        indexes = []
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                indexes.append(stored_index(level, start >> level))
                start += 1 << level
        return indexes
