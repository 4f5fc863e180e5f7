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
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy.exc import DisconnectionError

from ledger.crypto import tree
from ledger.errors import StoreError
from ledger.log import schema

__all__ = ["HashCache", "driver_rows", "drop_if_closed", "postgres_rows"]


class HashCache:
    """Stored subtree hashes by index, read from the database once and then kept.

    A stored hash never changes once written (it covers a complete subtree), so a cached one
    is never stale; the top of the tree is shared by every proof. Two generations bound the
    memory (about ``2 * size`` hashes): when the young one fills, it becomes the old one and
    a hash read from the old one moves back, so the hashes in use stay while the rest ages
    out.
    """

    def __init__(self, size: int = 1 << 16) -> None:
        self._size = size
        self._young: dict[int, bytes] = {}
        self._old: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def read(self, conn: Any, indexes: Sequence[int]) -> list[bytes]:
        """The hashes at ``indexes``, in order; misses are read on ``conn`` in one query."""
        found: dict[int, bytes] = {}
        missing = []
        young, old = self._young, self._old
        for i in indexes:
            value = young.get(i)
            if value is None:
                value = old.get(i)
            if value is None:
                missing.append(i)
            else:
                found[i] = value
        if missing:
            found.update(_fetch_hashes(conn, missing))
        gone = [i for i in indexes if i not in found]
        if gone:
            level, first, end = tree.subtree_range(gone[0])
            raise StoreError(
                f"stored hash {gone[0]} (level {level}, leaves {first}..{end - 1}) is missing"
            )
        with self._lock:
            if len(self._young) >= self._size:
                self._old, self._young = self._young, {}
            for i in indexes:  # new ones, and old ones moving back to the young generation
                self._young.setdefault(i, found[i])
        return [found[i] for i in indexes]


_IN_CHUNK = 500


def _fetch_hashes(conn: Any, indexes: Sequence[int]) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    postgres = conn.dialect.name == "postgresql"
    for start in range(0, len(indexes), _IN_CHUNK):
        chunk = [int(i) for i in indexes[start : start + _IN_CHUNK]]
        if postgres:
            # One array parameter: the statement text is the same for every read, so psycopg
            # converts it once and prepares it after a few uses. An IN list of as many marks
            # as hashes was a new statement nearly every time, parsed and planned afresh
            # (planning alone took twice the execution).
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
