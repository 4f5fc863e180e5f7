"""Full verification of a ledger, recomputed from the stored entries.

What is checked, in one pass in leaf order:

1. leaf indexes run 0..n-1 without a gap;
2. every entry is the RFC 8785 form of a signed entry ``{"body", "key_id", "sig"}``, its body
   ``id`` matches the indexed ``entry_id`` column, and its Ed25519 signature verifies under a
   recorder key registered in the ``keys`` table;
3. the stored leaf hash equals SHA-256(0x00 || entry);
4. the tree is rebuilt from those leaf hashes and every stored subtree hash is compared with
   the recomputed one (and no stored hash lies beyond the tree);
5. every checkpoint's signed note verifies under a registered log key, says what its row says,
   and its root equals the recomputed root at its size; consecutive checkpoints are also
   checked with a consistency proof served from the stored hashes;
6. optionally, checkpoints obtained earlier by an auditor (``trusted``): their size must not
   exceed the log and their root must equal the recomputed root, which catches a rollback or a
   fork even when the attacker re-signed everything with the log's own key.

Signature checks dominate the cost, so steps 2 run in worker processes on every core while
the main process reads rows and rebuilds the tree. The report names every problem; the first
one (lowest leaf index, then checkpoints) is the headline.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

from ledger.crypto import tree
from ledger.crypto.canonical import canonical_json
from ledger.crypto.keys import VerifyingKey
from ledger.crypto.merkle import leaf_hash, verify_consistency
from ledger.crypto.note import Checkpoint, NoteVerifier, verifier_key_string, verify_checkpoint
from ledger.crypto.tree import TreeFrontier
from ledger.errors import LedgerError
from ledger.log.records import signed_entry_bytes
from ledger.log.schema import make_engine
from ledger.log.store import CheckpointRecord, LogStore

__all__ = ["Problem", "VerifyReport", "verify_log"]

_CHUNK = 2_000
_INLINE_LIMIT = 4_000  # below this many entries, worker processes cost more than they save


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that is wrong, located as precisely as the check allows."""

    what: str
    leaf_index: int | None = None
    checkpoint: int | None = None
    # Within one leaf, problems with the entry itself (signature, form) come first: they are
    # the cause when the tree hashes over that leaf differ too.
    stage: int = 1

    def sort_key(self) -> tuple[int, int, int]:
        if self.leaf_index is not None:
            return (0, self.leaf_index, self.stage)
        return (1, self.checkpoint if self.checkpoint is not None else 1 << 62, 0)

    def __str__(self) -> str:
        if self.leaf_index is not None:
            return f"leaf {self.leaf_index}: {self.what}"
        if self.checkpoint is not None:
            return f"checkpoint {self.checkpoint}: {self.what}"
        return self.what

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "leaf_index": self.leaf_index, "checkpoint": self.checkpoint}


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What :func:`verify_log` found."""

    entries: int
    root: bytes
    checkpoints: int
    trusted_checkpoints: int
    seconds: float
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "root": self.root.hex(),
            "checkpoints": self.checkpoints,
            "trusted_checkpoints": self.trusted_checkpoints,
            "seconds": round(self.seconds, 3),
            "entries_per_second": round(self.entries / self.seconds) if self.seconds else None,
            "first_problem": None if self.first_problem is None else str(self.first_problem),
            "problems": [p.to_dict() for p in self.problems],
        }


# -- entry checks (run in worker processes) ----------------------------------------------------

_worker_keys: dict[str, VerifyingKey] = {}
_worker_store: list[LogStore] = []

# What a worker returns for a range of leaves: the leaf indexes it found, the leaf hash it
# computed for each, and its problems as (leaf index, what, stage).
RangeResult = tuple[list[int], list[bytes], list[tuple[int, str, int]]]


def _init_worker(recorder_keys: Mapping[str, bytes], url: str | None) -> None:
    _worker_keys.clear()
    _worker_keys.update({kid: VerifyingKey.from_raw(raw) for kid, raw in recorder_keys.items()})
    if url is not None:
        _worker_store[:] = [LogStore(make_engine(url, pool_size=1))]


def _check_range(bounds: tuple[int, int]) -> RangeResult:
    """Read leaves ``[start, stop)`` and check each one; runs in a worker process.

    The worker reads the rows itself, so entries never cross a process boundary: only 32-byte
    leaf hashes come back for the main process to rebuild the tree with.
    """
    start, stop = bounds
    indexes: list[int] = []
    hashes: list[bytes] = []
    problems: list[tuple[int, str, int]] = []
    for leaf_index, data, stored_leaf_hash, entry_id in _worker_store[0].raw_entries(start, stop):
        indexes.append(leaf_index)
        computed = leaf_hash(data)
        hashes.append(computed)
        what = _check_entry(data, entry_id)
        if what is not None:
            problems.append((leaf_index, what, 0))
        if computed != stored_leaf_hash:
            problems.append((leaf_index, "stored leaf hash does not match the entry", 1))
    return indexes, hashes, problems


def _check_entry(data: bytes, entry_id: str) -> str | None:
    try:
        signed = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return "entry is not valid JSON"
    if not isinstance(signed, dict) or set(signed) != {"body", "key_id", "sig"}:
        return "entry is not a signed entry object {body, key_id, sig}"
    body = signed["body"]
    if not isinstance(body, dict):
        return "entry body is not a JSON object"
    key_id, sig = signed["key_id"], signed["sig"]
    if not isinstance(key_id, str) or not isinstance(sig, str):
        return "entry key_id and sig must be strings"
    try:
        body_bytes = canonical_json(body)
    except LedgerError as exc:
        return f"entry cannot be canonicalized: {exc}"
    if signed_entry_bytes(body_bytes, key_id, sig) != data:
        return "entry bytes are not in RFC 8785 canonical form"
    if body.get("id") != entry_id:
        return f"body id {body.get('id')!r} does not match the indexed entry id {entry_id!r}"
    key = _worker_keys.get(key_id)
    if key is None:
        return f"signed by unknown recorder key {key_id!r}"
    try:
        signature = base64.b64decode(sig, validate=True)
    except (binascii.Error, TypeError, ValueError):
        return "signature is not base64"
    if not key.is_valid(signature, body_bytes):
        return f"signature does not verify under recorder key {key.key_id[:16]}"
    return None


# -- the pass over the log ---------------------------------------------------------------------


def verify_log(
    store: LogStore,
    *,
    trusted: Sequence[Checkpoint] = (),
    workers: int | None = None,
) -> VerifyReport:
    """Verify everything in ``store``; see the module docstring for the list of checks."""
    started = time.perf_counter()
    keys = store.keys()
    recorder_keys = {k.key_id: k.public_key for k in keys if k.kind == "recorder"}
    log_verifiers = [
        NoteVerifier.from_string(verifier_key_string(k.name, k.public_key))
        for k in keys
        if k.kind == "log"
    ]
    checkpoints = store.checkpoints()
    problems: list[Problem] = []
    # Sizes at which the recomputed root must be known.
    wanted: dict[int, bytes | None] = {c.tree_size: None for c in checkpoints}
    wanted.update({t.size: None for t in trusted})

    size, roots = _walk(store, recorder_keys, wanted, problems, workers)
    final_root = roots.get(size) or b""
    problems.extend(_check_checkpoints(store, checkpoints, log_verifiers, roots, size))
    for number, auditor in enumerate(trusted):
        where = f"auditor checkpoint {number} (size {auditor.size})"
        if auditor.size > size:
            problems.append(
                Problem(f"{where} is beyond the log's {size} entries: the log was rolled back")
            )
        elif roots.get(auditor.size) != auditor.root_hash:
            problems.append(
                Problem(f"{where}: the log's root at that size differs: the log was forked")
            )
    problems.sort(key=Problem.sort_key)
    return VerifyReport(
        entries=size,
        root=final_root,
        checkpoints=len(checkpoints),
        trusted_checkpoints=len(trusted),
        seconds=time.perf_counter() - started,
        problems=tuple(problems),
    )


def _walk(
    store: LogStore,
    recorder_keys: Mapping[str, bytes],
    wanted: dict[int, bytes | None],
    problems: list[Problem],
    workers: int | None,
) -> tuple[int, dict[int, bytes]]:
    total = store.size()
    ranges = [(start, min(start + _CHUNK, total)) for start in range(0, total, _CHUNK)]
    if total > _INLINE_LIMIT and (workers is None or workers > 1):
        url = store.engine.url.render_as_string(hide_password=False)
        with ProcessPoolExecutor(
            max_workers=workers or os.cpu_count() or 1,
            mp_context=get_context("spawn"),
            initializer=_init_worker,
            initargs=(dict(recorder_keys), url),
        ) as pool:
            # map() hands results back in range order while the workers run ahead.
            return _rebuild(store, pool.map(_check_range, ranges), wanted, problems, total)
    _init_worker(recorder_keys, None)
    _worker_store[:] = [store]
    try:
        return _rebuild(store, map(_check_range, ranges), wanted, problems, total)
    finally:
        _worker_store.clear()


def _rebuild(
    store: LogStore,
    results: Iterable[RangeResult],
    wanted: dict[int, bytes | None],
    problems: list[Problem],
    total: int,
) -> tuple[int, dict[int, bytes]]:
    """Rebuild the tree from the checked leaf hashes, comparing every stored subtree hash."""
    frontier = TreeFrontier()
    roots: dict[int, bytes] = {0: frontier.root()} if 0 in wanted else {}
    stored = store.raw_hashes()
    next_stored = _next(stored)
    expected_idx = 0
    last_bad_leaf = -1
    gap = False
    for indexes, hashes, range_problems in results:
        for leaf_index, what, stage in range_problems:
            problems.append(Problem(what, leaf_index=leaf_index, stage=stage))
            if stage:
                last_bad_leaf = max(last_bad_leaf, leaf_index)
        if gap:
            continue
        for leaf_index, computed in zip(indexes, hashes, strict=True):
            if leaf_index != frontier.size:
                problems.append(
                    Problem(
                        f"leaf {frontier.size} is missing: the next stored leaf is {leaf_index}",
                        leaf_index=frontier.size,
                    )
                )
                gap = True
                break
            for created in frontier.append(computed):
                if next_stored is None or next_stored[0] != expected_idx:
                    problems.append(
                        Problem(
                            f"stored subtree hash {expected_idx} is missing", leaf_index=leaf_index
                        )
                    )
                    next_stored = None
                elif next_stored[1] != created:
                    level, first, end = tree.subtree_range(expected_idx)
                    # A subtree over a leaf already reported differs as a consequence; only
                    # a mismatch whose leaves all checked out is news (the hash itself changed).
                    if last_bad_leaf < first:
                        problems.append(
                            Problem(
                                f"stored subtree hash {expected_idx} (level {level}, leaves "
                                f"{first}..{end - 1}) differs from the recomputed one",
                                leaf_index=first,
                            )
                        )
                        last_bad_leaf = end - 1
                if next_stored is not None:
                    next_stored = _next(stored)
                expected_idx += 1
            if frontier.size in wanted:
                roots[frontier.size] = frontier.root()
    if not gap and frontier.size < total:
        problems.append(Problem(f"leaf {frontier.size} is missing", leaf_index=frontier.size))
    if next_stored is not None and next_stored[0] >= expected_idx and frontier.size == total:
        problems.append(
            Problem(
                f"stored subtree hash {next_stored[0]} lies beyond the {frontier.size}-leaf tree"
            )
        )
    roots[frontier.size] = frontier.root()
    return frontier.size, roots


def _next(it: Iterator[tuple[int, bytes]]) -> tuple[int, bytes] | None:
    return next(it, None)


def _check_checkpoints(
    store: LogStore,
    checkpoints: Sequence[CheckpointRecord],
    verifiers: Sequence[NoteVerifier],
    roots: Mapping[int, bytes],
    size: int,
) -> list[Problem]:
    problems: list[Problem] = []
    previous: CheckpointRecord | None = None
    for record in checkpoints:
        where = f"size {record.tree_size}"
        parsed = _open_checkpoint(record, verifiers)
        if isinstance(parsed, str):
            problems.append(Problem(parsed, checkpoint=record.seq))
        elif parsed.size != record.tree_size or parsed.root_hash != record.root_hash:
            problems.append(
                Problem(
                    "signed note does not match the stored size and root", checkpoint=record.seq
                )
            )
        if record.tree_size > size:
            problems.append(
                Problem(
                    f"{where} is beyond the log's {size} entries: the log was truncated",
                    checkpoint=record.seq,
                )
            )
        elif roots.get(record.tree_size) != record.root_hash:
            problems.append(
                Problem(
                    f"root at {where} differs from the root recomputed from the entries",
                    checkpoint=record.seq,
                )
            )
        if previous is not None and record.tree_size <= size:
            if record.tree_size < previous.tree_size:
                problems.append(
                    Problem(
                        f"{where} is smaller than checkpoint {previous.seq}", checkpoint=record.seq
                    )
                )
            else:
                try:
                    proof = store.consistency_proof(previous.tree_size, record.tree_size)
                    verify_consistency(
                        previous.tree_size,
                        record.tree_size,
                        proof,
                        previous.root_hash,
                        record.root_hash,
                    )
                except LedgerError as exc:
                    problems.append(
                        Problem(
                            f"not consistent with checkpoint {previous.seq}: {exc}",
                            checkpoint=record.seq,
                        )
                    )
        previous = record
    return problems


def _open_checkpoint(
    record: CheckpointRecord, verifiers: Sequence[NoteVerifier]
) -> Checkpoint | str:
    last_error = "no log key is registered"
    for verifier in verifiers:
        try:
            return verify_checkpoint(record.note, verifier)
        except LedgerError as exc:
            last_error = f"signed note does not verify: {exc}"
    return last_error
