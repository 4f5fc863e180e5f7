"""The in-memory index of a ledger's output fingerprints, built from signed entry bodies.

Invariants:

- Built only from the bodies of signed entries as the log stores them (the ``body`` of the
  leaf data); there is no index table to drift from the log, so nothing unverified is trusted
  beyond what ``ledger verify`` checks.
- Compact: one lookup key is 64 bits (the first 16 hex digits of a 128-bit fingerprint, or of
  a SHA-256) and one value packs the leaf index, output index, dataset slot and kind into 64
  bits, both in ``array('Q')`` sorted by key: 16 bytes per fingerprint, so a million entries
  with a few segments each fit in well under 100 MB. Lookups bisect.
- A 64-bit key can collide by chance (about 2**-64 per pair); a hit is therefore only used
  together with the dataset slot whose key produced the query, and the record of a link says
  which kind of fingerprint matched.
- Kinds: ``answer``, ``reasoning`` (version 2 whole texts), ``join`` (version 2 reasoning and
  answer joins), ``segment`` (version 2 segments), ``v1`` (version 1 unkeyed ``output_sha256``
  of the normalized text) and ``id`` (the entry id itself, for rows that carry it).
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = [
    "ANSWER",
    "ID",
    "JOIN",
    "KIND_NAMES",
    "NO_DATASET",
    "REASONING",
    "SEGMENT",
    "V1",
    "FingerprintIndex",
    "Hit",
    "IndexBuilder",
    "id_key",
    "key64",
]

ANSWER, REASONING, JOIN, SEGMENT, V1, ID = range(6)
KIND_NAMES = ("answer", "reasoning", "join", "segment", "v1", "id")
NO_DATASET = 0xFFF  # dataset slot of unkeyed values (v1 hashes, ids)
MAX_DATASETS = NO_DATASET  # slots 0 .. 0xFFE
_BUCKET_BITS = 8
_WHOLE_FIELDS = (("answer", ANSWER), ("reasoning", REASONING))
_LIST_FIELDS = (("joins", JOIN), ("segments", SEGMENT))


def key64(hex_digest: str) -> int:
    """The 64-bit lookup key of a hex fingerprint or digest (its first 16 hex digits)."""
    return int(hex_digest[:16], 16)


def id_key(entry_id: str) -> int:
    """The 64-bit lookup key of an entry id.

    A UUID's last 64 bits (in UUIDv7, 62 of them random; its leading bits are a timestamp that
    many ids share); any other id string is hashed.
    """
    if len(entry_id) == 36 and entry_id[23] == "-":
        try:
            return int(entry_id[19:23] + entry_id[24:], 16)
        except ValueError:
            pass
    return int.from_bytes(hashlib.blake2b(entry_id.encode(), digest_size=8).digest(), "big")


class Hit(NamedTuple):
    """One indexed value a lookup found (a tuple: millions are made in one audit)."""

    leaf_index: int
    output: int
    dataset_slot: int
    kind: int


def _pack(leaf: int, output: int, slot: int, kind: int) -> int:
    return (leaf << 24) | (min(output, 255) << 16) | (slot << 4) | kind


def _unpack(value: int) -> Hit:
    return Hit(value >> 24, (value >> 16) & 0xFF, (value >> 4) & 0xFFF, value & 0xF)


class IndexBuilder:
    """Collects fingerprints entry by entry, then sorts them once into a :class:`FingerprintIndex`.

    Values go into per-bucket arrays as they arrive (16 bytes each), so building never holds
    more than one bucket's worth of Python integers.
    """

    def __init__(self) -> None:
        self._keys = [array("Q") for _ in range(1 << _BUCKET_BITS)]
        self._values = [array("Q") for _ in range(1 << _BUCKET_BITS)]
        self.datasets: dict[str | None, int] = {}
        self.entries = 0
        self.v2_entries = 0
        self.v1_entries = 0
        self.ids = 0

    def slot(self, dataset: str | None) -> int:
        """The slot number of a dataset name (assigned in order of first sight)."""
        found = self.datasets.get(dataset)
        if found is None:
            if len(self.datasets) >= MAX_DATASETS:
                raise ValueError("more than 4094 dataset names in one ledger")
            found = self.datasets[dataset] = len(self.datasets)
        return found

    def _add(self, key: int, value: int) -> None:
        bucket = key >> (64 - _BUCKET_BITS)
        self._keys[bucket].append(key)
        self._values[bucket].append(value)

    def add_entry(self, leaf: int, entry_id: str | None, body: Mapping[str, Any]) -> None:
        """Index one entry body's fingerprints (any version; unknown shapes add nothing)."""
        # The hot loop of an audit's first pass (once per entry, a million times): exact type
        # checks, locals and no helper objects.
        self.entries += 1
        add = self._add
        if entry_id:
            add(id_key(entry_id), (leaf << 24) | (NO_DATASET << 4) | ID)
            self.ids += 1
        outputs = body.get("outputs")
        if type(outputs) is list and outputs:
            dataset = body.get("dataset")
            slot = self.slot(dataset if type(dataset) is str else None)
            self.v2_entries += 1
            for position, record in enumerate(outputs):
                if type(record) is not dict:
                    continue
                out = record.get("index", position)
                if type(out) is not int or out < 0:
                    out = position
                base = (leaf << 24) | (min(out, 255) << 16) | (slot << 4)
                for name, kind in _WHOLE_FIELDS:
                    value = record.get(name)
                    if type(value) is str and len(value) >= 16:
                        add(int(value[:16], 16), base | kind)
                for name, kind in _LIST_FIELDS:
                    values = record.get(name)
                    if type(values) is list:
                        for value in values:
                            if type(value) is str and len(value) >= 16:
                                add(int(value[:16], 16), base | kind)
        hashes = body.get("output_sha256")
        if type(hashes) is list and hashes:
            self.v1_entries += 1
            for out, value in enumerate(hashes):
                if type(value) is str and len(value) >= 16:
                    add(key64(value), _pack(leaf, out, NO_DATASET, V1))

    def build(self) -> FingerprintIndex:
        """Sort everything collected; the builder is empty afterwards."""
        keys, values = array("Q"), array("Q")
        for bucket in range(len(self._keys)):
            pairs = sorted(zip(self._keys[bucket], self._values[bucket], strict=True))
            self._keys[bucket], self._values[bucket] = array("Q"), array("Q")
            keys.extend(k for k, _ in pairs)
            values.extend(v for _, v in pairs)
        names: dict[int, str | None] = {slot: name for name, slot in self.datasets.items()}
        return FingerprintIndex(keys, values, names, self.entries, has_v1=self.v1_entries > 0)


class FingerprintIndex:
    """Sorted 64-bit keys and their packed values; see the module docstring."""

    def __init__(
        self,
        keys: array[int],
        values: array[int],
        datasets: Mapping[int, str | None],
        entries: int,
        *,
        has_v1: bool = True,
    ) -> None:
        self._keys = keys
        self._values = values
        self.datasets = dict(datasets)  # slot -> dataset name
        self.entries = entries
        self.has_v1 = has_v1  # any version 1 hashes (else their lookups are skipped)

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, key: int) -> list[Hit]:
        """Every value stored under ``key``."""
        keys = self._keys
        position = bisect_left(keys, key)
        end = len(keys)
        if position >= end or keys[position] != key:
            return []
        found = []
        while position < end and keys[position] == key:
            found.append(_unpack(self._values[position]))
            position += 1
        return found

    def contains(self, key: int) -> bool:
        position = bisect_left(self._keys, key)
        return position < len(self._keys) and self._keys[position] == key
