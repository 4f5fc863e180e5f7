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
    """Stored subtree hashes, read from the database a block at a time and then kept.

    A stored hash never changes once written (it covers a complete subtree), so a kept one is
    never stale. ``tree_hashes.idx`` runs in append order, so the hashes a page's multiproof
    needs between its leaves lie in one or two neighbouring blocks, and a block is one range
    scan of the primary key where single lookups cost an index descent each. Blocks are kept
    least recently used first out, within ``max_bytes`` (at least one block); the last block
    of a growing log is kept with what it held and read again when an index beyond that is
    asked for.

    The default budget holds every stored hash of a log of a million entries (two million
    hashes, 61 MiB); a larger log keeps its most used blocks, which the top of the tree,
    shared by every proof, always is.
    """

    def __init__(self, max_bytes: int = 64 << 20, block: int = 128) -> None:
        if block < 1 or block & (block - 1):
            raise ValueError(f"block must be a power of two, not {block}")
        self._block = block
        self._shift = block.bit_length() - 1
        self._max_blocks = max(1, max_bytes // (block * HASH_SIZE))
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, conn: Any, indexes: Sequence[int]) -> list[bytes]:
        """The hashes at ``indexes``, in order; blocks not kept are read on ``conn``."""
        shift, mask = self._shift, self._block - 1
        wanted: dict[int, int] = {}  # block -> highest offset asked for in it
        for i in indexes:
            key, offset = i >> shift, i & mask
            if wanted.get(key, -1) < offset:
                wanted[key] = offset
        held: dict[int, bytes] = {}
        short: list[int] = []
        with self._lock:
            blocks = self._blocks
            for key, offset in wanted.items():
                data = blocks.get(key)
                if data is not None and len(data) > offset * HASH_SIZE:
                    blocks.move_to_end(key)
                    held[key] = data
                else:
                    short.append(key)
        if short:
            fresh = _fetch_blocks(conn, sorted(short), self._block)
            held.update(fresh)
            with self._lock:
                for key, data in fresh.items():
                    self._blocks[key] = data
                    self._blocks.move_to_end(key)
                while len(self._blocks) > self._max_blocks:
                    self._blocks.popitem(last=False)
        out = []
        for i in indexes:
            at = (i & mask) * HASH_SIZE
            value = held[i >> shift][at : at + HASH_SIZE]
            if len(value) != HASH_SIZE:
                level, first, end = tree.subtree_range(i)
                raise StoreError(
                    f"stored hash {i} (level {level}, leaves {first}..{end - 1}) is missing"
                )
            out.append(value)
        return out


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
