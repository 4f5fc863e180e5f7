"""Recomputing the tree from the stored entries, in aligned chunks spread over all cores.

The log is cut into chunks of ``CHUNK`` = 2**CHUNK_LEVEL leaves aligned on multiples of
``CHUNK``. Each chunk is one task for a worker process, which reads the chunk's entries and
the stored hashes those leaves created (a contiguous index range, see
:func:`ledger.crypto.tree.stored_count`), checks every entry (canonical form, id, signature),
recomputes every leaf hash and every subtree hash up to ``CHUNK_LEVEL`` and compares them with
the stored ones, and returns only the chunk's peaks (one 32-byte root for a full chunk). The
main process folds those roots into the levels above ``CHUNK_LEVEL`` and compares the few
stored hashes there (about one in two thousand).

Invariants:

* Every stored hash of the tree is compared with a recomputed one exactly once: levels up to
  ``CHUNK_LEVEL`` by the worker of the chunk whose last leaf completed them, higher levels by
  the main process.
* A mismatch over leaves that already showed a problem of their own (a leaf hash that differs)
  is a consequence, not news, and is not reported again; a mismatch over leaves that all checked
  out means the stored hash itself was changed.
* Entries never cross a process boundary; workers open their own database connections.
  Workers are child interpreters of :mod:`ledger.log.workers`, so a caller's unguarded script
  is never imported again.
* The first missing leaf ends the rebuild (the tree beyond it is not defined); entry checks
  still run to the end.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.engine import URL

from ledger.crypto import tree
from ledger.crypto.canonical import canonical_json, fast_canonical_json_parsed, parse_json
from ledger.crypto.keys import VerifyingKey
from ledger.crypto.merkle import EMPTY_ROOT, leaf_hash
from ledger.crypto.tree import TreeFrontier
from ledger.errors import LedgerError
from ledger.log.records import (
    INDEXED_COLUMNS,
    indexed_values,
    parse_timestamp,
    signed_entry_bytes,
)
from ledger.log.schema import make_engine
from ledger.log.store import LogStore
from ledger.log.workers import WorkerError, WorkerPool

__all__ = ["CHUNK", "CHUNK_LEVEL", "Rebuilt", "rebuild"]

log = logging.getLogger(__name__)

CHUNK_LEVEL = 11
CHUNK = 1 << CHUNK_LEVEL
_INLINE_LIMIT = 2 * CHUNK  # below this, worker processes cost more than they save

# A problem as workers report it: (leaf index or None, what, stage). Stage 0: the entry
# itself; 1: its leaf hash or a subtree hash over it (see Problem.stage).
RawProblem = tuple[int | None, str, int]
# Called with (leaves checked so far, all leaves).
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class _ChunkResult:
    start: int
    leaves: int  # contiguous leaves found from start
    missing: int | None  # first missing leaf in the chunk, if any
    peaks: list[bytes]  # peaks of the leaves found, relative to start
    peaks_at: dict[int, list[bytes]]  # for wanted sizes inside the chunk
    problems: list[RawProblem]


@dataclass(slots=True)
class Rebuilt:
    """What the rebuild found: the contiguous size, roots at the wanted sizes, problems."""

    size: int = 0
    roots: dict[int, bytes] = field(default_factory=dict)
    problems: list[RawProblem] = field(default_factory=list)


# -- worker side ---------------------------------------------------------------------------

_worker_keys: dict[str, VerifyingKey] = {}
_worker_store: list[LogStore] = []


def _init_worker(recorder_keys: Mapping[str, bytes], url: str | None) -> None:
    _worker_keys.clear()
    _worker_keys.update({kid: VerifyingKey.from_raw(raw) for kid, raw in recorder_keys.items()})
    if url is not None:
        _worker_store[:] = [LogStore(make_engine(url, pool_size=1))]


def _check_chunk(task: tuple[int, int, tuple[int, ...]]) -> _ChunkResult:
    start, stop, wanted = task
    store = _worker_store[0]
    stored = dict(store.raw_hashes_between(tree.stored_count(start), tree.stored_count(stop)))
    frontier = TreeFrontier()
    problems: list[RawProblem] = []
    peaks_at: dict[int, list[bytes]] = {}
    missing = None
    last_bad = -1
    for row in store.verify_rows(start, stop):
        leaf_index, data, stored_leaf_hash = row[0], bytes(row[1]), bytes(row[2])
        what = _check_entry(data, row)
        if what is not None:
            problems.append((leaf_index, what, 0))
        expected = start + frontier.size
        if missing is not None:
            continue
        if leaf_index != expected:
            missing = expected
            problems.append(
                (expected, f"leaf {expected} is missing: the next stored leaf is {leaf_index}", 1)
            )
            continue
        computed = leaf_hash(data)
        if computed != stored_leaf_hash:
            problems.append((leaf_index, "stored leaf hash does not match the entry", 1))
            last_bad = leaf_index
        first_idx = tree.stored_count(leaf_index)
        for level, created in enumerate(frontier.append(computed)):
            idx = first_idx + level
            found = stored.get(idx)
            if found is None:
                problems.append((leaf_index, f"stored subtree hash {idx} is missing", 1))
                last_bad = leaf_index
            elif found != created:
                first = leaf_index + 1 - (1 << level)
                if last_bad < first:
                    problems.append((first, _mismatch(idx, level, first, leaf_index + 1), 1))
                    last_bad = leaf_index
        if start + frontier.size in wanted:
            peaks_at[start + frontier.size] = list(frontier.peaks)
    if missing is None and start + frontier.size < stop:
        missing = start + frontier.size
        problems.append((missing, f"leaf {missing} is missing", 1))
    return _ChunkResult(start, frontier.size, missing, list(frontier.peaks), peaks_at, problems)


def _mismatch(idx: int, level: int, first: int, end: int) -> str:
    return (
        f"stored subtree hash {idx} (level {level}, leaves {first}..{end - 1}) differs from "
        "the recomputed one"
    )


def _check_entry(data: bytes, row: Sequence[Any]) -> str | None:
    """What is wrong with one stored row (``VERIFY_COLUMNS`` order), or None."""
    parts = _read_entry(data)
    if isinstance(parts, str):
        return parts
    body, key_id, sig, body_bytes = parts
    entry_id = row[3]
    if body.get("id") != entry_id:
        return f"body id {body.get('id')!r} does not match the indexed entry id {entry_id!r}"
    # Filters and reports read these columns: each must say what the signed entry says.
    if row[4] != key_id:
        return f"indexed key_id {row[4]!r} differs from the signed entry's {key_id!r}"
    if not _same_moment(row[5], body.get("recorded_at")):
        return (
            f"indexed recorded_at {row[5]!s} differs from the signed entry's "
            f"{body.get('recorded_at')!r}"
        )
    for name, stored, signed in zip(INDEXED_COLUMNS, row[6:], indexed_values(body), strict=True):
        if stored != signed:
            return f"indexed {name} {stored!r} differs from the signed entry's {signed!r}"
    key = _worker_keys.get(key_id)
    if key is None:
        return f"signed by unknown recorder key {key_id!r}"
    try:
        signature = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError):
        return "signature is not base64"
    if not key.is_valid(signature, body_bytes):
        return f"signature does not verify under recorder key {key.key_id[:16]}"
    return None


def _same_moment(column: object, stamp: object) -> bool:
    """Whether a stored ``recorded_at`` column is the instant the body's timestamp names."""
    if not isinstance(stamp, str):
        return False
    if (
        type(column) is str
        and len(stamp) == 27
        and stamp[26] == "Z"
        and column == f"{stamp[:10]} {stamp[11:26]}"
    ):
        return True  # the recorder's own form, as SQLite keeps it: no parsing needed
    try:
        signed = parse_timestamp(stamp)
    except LedgerError:
        return False
    if isinstance(column, str):  # SQLite keeps UTC text
        try:
            column = datetime.fromisoformat(column)
        except ValueError:
            return False
    if not isinstance(column, datetime):
        return False
    if column.tzinfo is None:
        column = column.replace(tzinfo=UTC)
    return column == signed


def _read_entry(data: bytes) -> tuple[dict[str, Any], str, str, bytes] | str:
    """The body, key id and signature in ``data`` with the body's RFC 8785 bytes, or what is wrong.

    The fast path (``orjson`` both ways) accepts only when ``data`` is exactly the canonical
    form of what it parsed, and every number in it is one ``parse_json`` reads the same way;
    anything else, including every faulty entry, goes through the exact path, which also names
    the problem.
    """
    try:
        signed = orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    else:
        if type(signed) is dict and len(signed) == 3:
            body, key_id, sig = signed.get("body"), signed.get("key_id"), signed.get("sig")
            if type(body) is dict and type(key_id) is str and type(sig) is str:
                body_bytes = fast_canonical_json_parsed(body, data)
                if body_bytes is not None and signed_entry_bytes(body_bytes, key_id, sig) == data:
                    return body, key_id, sig, body_bytes
    try:
        signed = parse_json(data)
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
    return body, key_id, sig, body_bytes


# -- main side -----------------------------------------------------------------------------


def rebuild(
    store: LogStore,
    recorder_keys: Mapping[str, bytes],
    wanted: Iterable[int],
    workers: int | None = None,
    progress: Progress | None = None,
) -> Rebuilt:
    """Check every entry and stored hash; return the roots at the ``wanted`` sizes.

    ``progress(done, total)`` is called after each chunk of leaves, in leaf order.
    """
    total = store.size()
    wanted_sizes = sorted(set(wanted))
    tasks = []
    for start in range(0, total, CHUNK):
        stop = min(start + CHUNK, total)
        inside = tuple(s for s in wanted_sizes if start < s < stop)
        tasks.append((start, stop, inside))
    if total > _INLINE_LIMIT and (workers is None or workers > 1) and _shared(store.engine.url):
        url = store.engine.url.render_as_string(hide_password=False)
        try:
            pool = WorkerPool(
                workers or os.cpu_count() or 1,
                f"{__name__}:_check_chunk",
                f"{__name__}:_init_worker",
                (dict(recorder_keys), url),
            )
        except WorkerError as exc:
            log.warning("ledger: verifying in one process: %s", exc)
        else:
            with pool:
                # map() hands results back in chunk order while the workers run ahead.
                results = _reporting(pool.map(tasks), progress, total)
                return _fold(store, results, wanted_sizes, total)
    _init_worker(recorder_keys, None)
    _worker_store[:] = [store]
    try:
        results = _reporting(map(_check_chunk, tasks), progress, total)
        return _fold(store, results, wanted_sizes, total)
    finally:
        _worker_store.clear()


def _reporting(
    results: Iterable[_ChunkResult], progress: Progress | None, total: int
) -> Iterator[_ChunkResult]:
    for result in results:
        yield result
        if progress is not None:
            progress(min(result.start + CHUNK, total), total)


def _shared(url: URL) -> bool:
    """Whether another process opening ``url`` sees this database (not an in-memory SQLite)."""
    if url.get_backend_name() != "sqlite":
        return True
    return url.database not in (None, "", ":memory:") and url.query.get("mode") != "memory"


def _fold(
    store: LogStore, results: Iterable[_ChunkResult], wanted: Sequence[int], total: int
) -> Rebuilt:
    out = Rebuilt()
    if 0 in wanted:
        out.roots[0] = EMPTY_ROOT
    chunk_roots = TreeFrontier()  # its leaves are the roots of full chunks
    high: list[tuple[int, bytes, int, int]] = []  # (stored idx, recomputed, first, end leaf)
    tail: list[bytes] = []
    gap = False
    for result in results:
        out.problems.extend(result.problems)
        if gap:
            continue
        for size, peaks in result.peaks_at.items():
            out.roots[size] = TreeFrontier(size, [*chunk_roots.peaks, *peaks]).root()
        end = result.start + result.leaves
        if result.missing is not None or result.leaves < CHUNK:
            tail = result.peaks
            out.size = end
            gap = result.missing is not None
            continue
        for step, created in enumerate(chunk_roots.append(result.peaks[0])[1:], start=1):
            level = CHUNK_LEVEL + step
            index = (end - 1) >> level
            high.append((tree.stored_index(level, index), created, index << level, end))
        out.size = end
        if end in wanted:
            out.roots[end] = chunk_roots.root()
    final = TreeFrontier(out.size, [*chunk_roots.peaks, *tail]).root()
    out.roots[out.size] = final
    out.problems.extend(_check_high(store, high, out.problems))
    if not gap and out.size == total:
        beyond = store.max_stored_index()
        if beyond is not None and beyond >= tree.stored_count(total):
            out.problems.append(
                (None, f"stored subtree hash {beyond} lies beyond the {total}-leaf tree", 1)
            )
    return out


def _check_high(
    store: LogStore, high: Sequence[tuple[int, bytes, int, int]], known: Sequence[RawProblem]
) -> list[RawProblem]:
    """Compare the stored hashes above the chunk level (one query per 900 of them)."""
    if not high:
        return []
    bad = sorted(leaf for leaf, _, stage in known if leaf is not None and stage == 1)
    stored = store.hashes_by_index([idx for idx, _, _, _ in high])
    problems: list[RawProblem] = []
    for idx, recomputed, first, end in high:
        found = stored.get(idx)
        covered = bisect.bisect_left(bad, first) < bisect.bisect_left(bad, end)
        if found is None:
            problems.append((first, f"stored subtree hash {idx} is missing", 1))
        elif found != recomputed and not covered:
            level = (end - first).bit_length() - 1
            problems.append((first, _mismatch(idx, level, first, end), 1))
            bisect.insort(bad, first)
    return problems
