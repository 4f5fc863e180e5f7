"""Reads of the audit service that bypass SQLAlchemy's per-row costs, and what keeps them safe.

Invariants:

* Only fixed SQL over integers (or a list of integers) goes through :func:`driver_rows`;
  driver errors come out as :class:`~ledger.errors.StoreError` (a 503), and a connection that
  died is invalidated so the pool never hands it out again.
* :class:`HashCache` holds stored subtree hashes, which never change once written (see
  :mod:`ledger.crypto.tree`), so nothing it returns is ever stale; its memory is bounded.
* :func:`drop_if_closed` (a pool ``checkout`` listener on PostgreSQL) refuses a connection
  that the server has closed, without the round trip of ``pool_pre_ping``.
"""

from __future__ import annotations

import contextlib
import select
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy.exc import DisconnectionError

from ledger.crypto import tree
from ledger.crypto.merkle import HASH_SIZE
from ledger.errors import StoreError
from ledger.log import schema

__all__ = ["HashCache", "driver_rows", "drop_if_closed", "postgres_rows"]


class HashCache:
    """Stored subtree hashes read from the database, by block where a read wants many
    neighbours and one by one where it does not, and then kept.

    A stored hash never changes once written (it covers a complete subtree), so a kept one is
    never stale. ``tree_hashes.idx`` runs in append order: the ~150 hashes a page's multiproof
    needs between its leaves lie in a few neighbouring blocks, and a block is one range scan
    of the primary key where lookups one by one cost an index descent each (11 buffer hits
    for a page's span against 552). An inclusion proof's ~20 hashes lie in as many blocks,
    one each: reading whole blocks for them read 128 times the rows (an entry cold on SQLite:
    0.13 -> 0.7 ms), so a block is read only when a request misses ``dense`` or more hashes
    in it, and other misses are read exactly and kept singly.

    Blocks are kept least recently used first out within ``max_bytes`` (at least one; the
    default holds every hash of a million-entry log, two million hashes, 61 MiB); the last
    block of a growing log is kept with what it held and read again when an index beyond it
    is asked for. Single hashes are kept in two generations of at most ``singles`` each: when
    the young one fills it becomes the old one, and a hash used from the old one moves back.
    """

    def __init__(
        self, max_bytes: int = 64 << 20, block: int = 128, dense: int = 4, singles: int = 1 << 16
    ) -> None:
        if block < 1 or block & (block - 1):
            raise ValueError(f"block must be a power of two, not {block}")
        self._block = block
        self._shift = block.bit_length() - 1
        self._dense = max(1, dense)
        self._max_blocks = max(1, max_bytes // (block * HASH_SIZE))
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._singles = max(1, singles)
        self._young: dict[int, bytes] = {}
        self._old: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def read(self, conn: Any, indexes: Sequence[int]) -> list[bytes]:
        """The hashes at ``indexes``, in order; what is not kept is read on ``conn``."""
        shift, mask = self._shift, self._block - 1
        found: dict[int, bytes] = {}
        misses: dict[int, list[int]] = {}  # block -> indexes missed in it
        with self._lock:
            blocks = self._blocks
            last = -1
            for i in indexes:
                if i in found:
                    continue
                key = i >> shift
                data = blocks.get(key)
                at = (i & mask) * HASH_SIZE
                if data is not None and len(data) >= at + HASH_SIZE:
                    found[i] = data[at : at + HASH_SIZE]
                    if key != last:
                        blocks.move_to_end(key)
                        last = key
                    continue
                value = self._young.get(i)
                if value is None:
                    value = self._old.get(i)
                    if value is not None:
                        self._keep_single(i, value)  # used again: back to the young one
                if value is not None:
                    found[i] = value
                else:
                    misses.setdefault(key, []).append(i)
        if misses:
            self._read_misses(conn, misses, found)
        out = []
        for i in indexes:
            value = found.get(i)
            if value is None:
                level, first, end = tree.subtree_range(i)
                raise StoreError(
                    f"stored hash {i} (level {level}, leaves {first}..{end - 1}) is missing"
                )
            out.append(value)
        return out

    def _read_misses(
        self, conn: Any, misses: dict[int, list[int]], found: dict[int, bytes]
    ) -> None:
        dense = sorted(key for key, missed in misses.items() if len(missed) >= self._dense)
        sparse = [i for key, missed in misses.items() if len(missed) < self._dense for i in missed]
        fresh = _fetch_blocks(conn, dense, self._block) if dense else {}
        singles = _fetch_hashes(conn, sparse) if sparse else {}
        mask = self._block - 1
        for key, data in fresh.items():
            for i in misses[key]:
                at = (i & mask) * HASH_SIZE
                if len(data) >= at + HASH_SIZE:
                    found[i] = data[at : at + HASH_SIZE]
        found.update(singles)
        with self._lock:
            for key, data in fresh.items():
                self._blocks[key] = data
                self._blocks.move_to_end(key)
            while len(self._blocks) > self._max_blocks:
                self._blocks.popitem(last=False)
            for i, value in singles.items():
                self._keep_single(i, value)

    def _keep_single(self, i: int, value: bytes) -> None:
        # Under the lock. A full young generation becomes the old one (the old one is dropped).
        if len(self._young) >= self._singles:
            self._old, self._young = self._young, {}
        self._young[i] = value


_IN_CHUNK = 500


def _fetch_hashes(conn: Any, indexes: Sequence[int]) -> dict[int, bytes]:
    """The stored hashes at ``indexes`` that exist, looked up one by one."""
    found: dict[int, bytes] = {}
    postgres = conn.dialect.name == "postgresql"
    for start in range(0, len(indexes), _IN_CHUNK):
        chunk = [int(i) for i in indexes[start : start + _IN_CHUNK]]
        if postgres:
            # One array parameter: the statement text is the same for every read, so psycopg
            # prepares it after a few uses (an IN list of as many marks as hashes was a new
            # statement nearly every time, planned afresh).
            rows = driver_rows(
                conn, "SELECT idx, hash FROM tree_hashes WHERE idx = ANY(?)", [chunk]
            )
        else:
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT idx, hash FROM tree_hashes WHERE idx IN ({marks})"  # noqa: S608 - marks only
            rows = driver_rows(conn, sql, chunk)
        for idx, value in rows:
            found[int(idx)] = bytes(value)
    return found


def _fetch_blocks(conn: Any, keys: Sequence[int], block: int) -> dict[int, bytes]:
    """Blocks ``keys`` (sorted) of ``block`` hashes each, as their hashes joined in index order,
    each cut where a hash is missing (the end of the log, or a damaged store)."""
    if conn.dialect.name == "postgresql":
        # One statement for all of them, one round trip however scattered the blocks are (a
        # proof's upper nodes are): a range scan of the primary key per block. The LIMIT is
        # for the planner: without it a range of unknown bounds is estimated at thousands of
        # rows a block, the plan's cost passes jit_above_cost, and compiling it took 3-20 ms
        # where the scans take a fraction of one.
        sql = (
            "SELECT h.idx, h.hash FROM unnest(?::bigint[]) AS b(k) CROSS JOIN LATERAL"  # noqa: S608 - block is an int
            f" (SELECT idx, hash FROM tree_hashes WHERE idx >= b.k * {block:d}"
            f" AND idx < (b.k + 1) * {block:d} ORDER BY idx LIMIT {block:d}) AS h ORDER BY h.idx"
        )
        rows = driver_rows(conn, sql, [list(keys)])
    else:  # in-process reads: one range per block
        sql = "SELECT idx, hash FROM tree_hashes WHERE idx >= ? AND idx < ? ORDER BY idx"
        rows = [row for k in keys for row in driver_rows(conn, sql, [k * block, (k + 1) * block])]
    found: dict[int, bytes] = {}
    parts: list[bytes] = []
    key, expect = -1, 0
    for idx, value in rows:
        idx = int(idx)
        if idx >> (block.bit_length() - 1) != key:
            if key >= 0:
                found[key] = b"".join(parts)
            key, expect, parts = idx >> (block.bit_length() - 1), idx - idx % block, []
        if idx == expect:  # hashes from the block's start up to the first one missing
            parts.append(bytes(value))
            expect += 1
    if key >= 0:
        found[key] = b"".join(parts)
    return {k: found.get(k, b"") for k in keys}


def driver_rows(conn: Any, sql: str, params: Sequence[int | list[int]]) -> list[Any]:
    """Rows of a fixed query over integers (or one list of them, on PostgreSQL), straight from
    the driver on ``conn``'s connection.

    SQLAlchemy's statement handling and result rows cost several times what the database took
    to answer: a page's 150 stored hashes took 18 ms of CPU through an expanding ``IN`` under
    profiling, a third of the page. ``sql`` uses ``?`` marks; on PostgreSQL they become
    psycopg's and results come in binary format (bytea as text travels as hex; see
    ``LogStore._select``). Reads run in autocommit: on SQLite as SQLAlchemy leaves a connection
    it has not begun, on PostgreSQL because the service's reader engine is in autocommit.
    """
    if conn.dialect.name == "postgresql":
        return postgres_rows(conn, sql.replace("?", "%s"), params)
    with _driver_errors(conn):
        cursor = conn.connection.driver_connection.cursor()
        try:
            return list(cursor.execute(sql, params).fetchall())
        finally:
            cursor.close()


def postgres_rows(conn: Any, sql: str, params: Mapping[str, Any] | Sequence[Any]) -> list[Any]:
    """Rows of a PostgreSQL statement in psycopg's marks (``%s``, or ``%(name)s`` as
    SQLAlchemy compiles them), run on the driver with results in binary format.

    A page of 100 entries through ``Connection.execute`` took 0.49 ms of CPU, 0.2 ms this way:
    SQLAlchemy reads results as text, where each entry's bytea travels as hex and is decoded
    in Python. ``sql`` must come from a statement the service built itself, never from input.
    """
    with _driver_errors(conn), conn.connection.driver_connection.cursor(binary=True) as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


@contextlib.contextmanager
def _driver_errors(conn: Any) -> Iterator[None]:
    try:
        yield
    except conn.dialect.loaded_dbapi.Error as exc:
        # Driver errors bypass SQLAlchemy here: map them as _db does, and drop a connection
        # that has died so that the pool does not hand it out again.
        if conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, None):
            conn.invalidate(exc)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StoreError(
            f"reading the log on {schema.redact_url(str(conn.engine.url))}: {first}"
        ) from exc


def drop_if_closed(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled PostgreSQL connection the server has closed, without a round trip.

    ``pool_pre_ping`` sends a query on every checkout: one round trip per read, on the reader
    that serves every request. Instead, an idle connection that the server closed (restart,
    ``pg_terminate_backend``, an idle timeout) has already been told so: its socket is
    readable (the termination notice, or end of file) while nothing was asked. Such a
    connection, or one libpq already knows is bad, raises DisconnectionError, which makes the
    pool discard it and check out another (SQLAlchemy's documented pessimistic-disconnect
    hook), so a closed connection never reaches a request. A connection cut without the
    server saying so (a network partition) is not seen here; the query on it fails and
    SQLAlchemy invalidates the pool, as it did before.
    """
    if dbapi_conn.closed or dbapi_conn.broken:
        raise DisconnectionError("the connection is closed")
    try:
        readable, _, _ = select.select([dbapi_conn.fileno()], [], [], 0)
    except (OSError, ValueError) as exc:
        raise DisconnectionError("the connection's socket is gone") from exc
    if readable:
        raise DisconnectionError("the server sent something to an idle connection: closed")
