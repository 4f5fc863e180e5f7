"""The SQL store of the Merkle log: serialized appends, reads, proofs and checkpoints.

Invariants:

* The store appends and reads; it has no update or delete operation.
* Appends run in :func:`write_transaction`, which serializes all writers (threads, processes
  and, on PostgreSQL, machines). Inside it the store reads the committed tree size, assigns
  the next leaf indexes and inserts the leaves and every stored hash they complete, in one
  transaction: many entries per commit (group commit), and a crash leaves either all of a
  batch or none of it.
* The right edge of the tree (:class:`TreeFrontier`) is cached between appends; it is checked
  against the committed size at the start of every write transaction and reloaded from the
  stored hashes (O(log n) rows) when another writer moved the log on.
* Proofs and past roots read only the O(log n) stored hashes they need, in one query.
* An entry id that is already in the log is not stored again: its first receipt is returned.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from ledger.crypto import multiproof, tree
from ledger.crypto.canonical import parse_json
from ledger.crypto.merkle import verify_consistency
from ledger.crypto.tree import TreeFrontier
from ledger.errors import (
    AppendOnlyViolationError,
    ConsistencyError,
    InputError,
    NotFoundError,
    StoreError,
)
from ledger.log import core_tables
from ledger.log.records import INDEXED_COLUMNS, PreparedEntry, Receipt, StoredEntry
from ledger.log.schema import redact_url, sqlite_path, write_transaction

__all__ = [
    "VERDICT_COLUMNS",
    "VERIFY_COLUMNS",
    "Annex",
    "CheckpointRecord",
    "KeyRecord",
    "LogStore",
    "VerdictRow",
]

# The Core tables (not the SQLModel models): a read needs no ORM, pydantic or SQLModel.
ENTRIES = core_tables.ENTRIES
HASHES = core_tables.TREE_HASHES
CHECKPOINTS = core_tables.CHECKPOINTS
KEYS = core_tables.KEYS
META = core_tables.LEDGER_META
VERDICTS = core_tables.VERDICTS
DOCUMENTS = core_tables.VERDICT_DOCUMENTS

# Most bind parameters one IN (...) query uses; SQLite's default limit is 32766.
_IN_CHUNK = 900


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """A checkpoint the log signed."""

    seq: int
    tree_size: int
    root_hash: bytes
    note: str
    signed_at: datetime


@dataclass(frozen=True, slots=True)
class VerdictRow:
    """A stored verdict on one entry; ``document`` is opaque JSON to the log."""

    leaf_index: int
    purpose: str
    policy_digest: str
    facts_digest: str
    verdict: str
    document_sha256: str
    evaluated_at: datetime
    document: str


# Turns freshly stored (entry, receipt) pairs into verdict rows for the same transaction.
Annex = Callable[[Sequence[tuple[PreparedEntry, Receipt]]], Sequence[VerdictRow]]


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A public key the ledger has used."""

    seq: int
    kind: str
    key_id: str
    name: str
    public_key: bytes
    created_at: datetime


class LogStore:
    """Append-only Merkle log over one SQLAlchemy engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._frontier: TreeFrontier | None = None
        # A SQLite file deleted or replaced under an open connection keeps accepting writes
        # into the unlinked inode, which are then lost: remember which file we opened.
        self._sqlite_path = _sqlite_file(engine)
        self._sqlite_identity = _file_identity(self._sqlite_path) if self._sqlite_path else None
        self._driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error

    def after_fork(self) -> None:
        """Make this store usable in a forked child (fresh lock, no inherited connections)."""
        self._lock = threading.Lock()
        self.engine.dispose(close=False)

    def _check_database_file(self) -> None:
        if self._sqlite_path is None:
            return
        identity = _file_identity(self._sqlite_path)
        if identity is None or identity != self._sqlite_identity:
            raise StoreError(
                f"the SQLite database {self._sqlite_path} was deleted or replaced while open"
            )

    # -- errors ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _mapped_errors(self, doing: str) -> Iterator[None]:
        self._check_database_file()
        try:
            yield
        except IntegrityError as exc:
            if "append-only" in str(exc.orig):
                raise AppendOnlyViolationError(f"{doing}: {exc.orig}") from exc
            raise StoreError(f"{doing}: {_first_line(exc)}") from exc
        except DBAPIError as exc:
            if "append-only" in str(exc.orig):
                raise AppendOnlyViolationError(f"{doing}: {_first_line(exc)}") from exc
            url = redact_url(str(self.engine.url))
            raise StoreError(f"{doing} on {url}: {_first_line(exc)}") from exc
        except UnicodeDecodeError as exc:  # sqlite3 decoding a TEXT column of a damaged page
            url = redact_url(str(self.engine.url))
            raise StoreError(
                f"{doing} on {url}: a text column is not UTF-8 ({exc.reason})"
            ) from exc
        except self._driver_error as exc:
            # Bulk reads go straight to the driver (see _select), so its own errors arrive
            # here unwrapped: a damaged page, an undecodable column, a dropped table.
            url = redact_url(str(self.engine.url))
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StoreError(f"{doing} on {url}: {text}") from exc

    # -- appends -----------------------------------------------------------------------------

    def append(self, items: Sequence[PreparedEntry], annex: Annex | None = None) -> list[Receipt]:
        """Append prepared entries in one transaction; return one receipt per item, in order.

        ``annex`` turns the newly stored (entry, receipt) pairs into verdict rows that are
        written in the same transaction, so an entry and its verdict commit together (one
        commit, one fsync).
        """
        if not items:
            return []
        with self._lock, self._mapped_errors("appending to the log"):
            with write_transaction(self.engine) as conn:
                frontier = self._current_frontier(conn)
                work = TreeFrontier(frontier.size, list(frontier.peaks))
                existing = self._existing(conn, [item.entry_id for item in items])
                receipts: list[Receipt] = []
                entry_rows: list[tuple[Any, ...]] = []
                hash_rows: list[tuple[int, bytes]] = []
                next_hash = tree.stored_count(work.size)
                sqlite = self.engine.dialect.name == "sqlite"
                for item in items:
                    known = existing.get(item.entry_id)
                    if known is not None:
                        receipts.append(known)
                        continue
                    index = work.size
                    for created in work.append(item.leaf_hash):
                        hash_rows.append((next_hash, created))
                        next_hash += 1
                    entry_rows.append(
                        (
                            index,
                            item.entry_id,
                            item.leaf_hash,
                            item.data,
                            item.key_id,
                            _sqlite_datetime(item.recorded_at) if sqlite else item.recorded_at,
                            *item.columns,
                        )
                    )
                    receipt = Receipt(index, item.entry_id, item.leaf_hash)
                    existing[item.entry_id] = receipt  # a duplicate inside the batch too
                    receipts.append(receipt)
                if entry_rows:
                    # Straight to the driver's executemany: SQLAlchemy's per-row parameter
                    # processing cost more than the inserts themselves at group-commit sizes.
                    mark = self._mark()
                    conn.exec_driver_sql(_insert_sql("entries", _ENTRY_COLUMNS, mark), entry_rows)
                    conn.exec_driver_sql(
                        _insert_sql("tree_hashes", ("idx", "hash"), mark), hash_rows
                    )
                    if annex is not None:
                        # Pairs whose leaf this batch created (not re-sent ids).
                        fresh = [
                            (item, receipt)
                            for item, receipt in zip(items, receipts, strict=True)
                            if receipt.leaf_index >= frontier.size
                            and receipt.leaf_hash == item.leaf_hash
                        ]
                        self._insert_verdicts(conn, annex(fresh))
            # Committed: only now does the cache move on.
            self._frontier = work
        return receipts

    def _current_frontier(self, conn: Connection) -> TreeFrontier:
        size = self._size(conn)
        cached = self._frontier
        if cached is not None and cached.size == size:
            return cached
        indexes = TreeFrontier.peak_indexes(size)
        peaks = self._read_hashes(conn, indexes)
        frontier = TreeFrontier(size, peaks)
        self._frontier = frontier
        return frontier

    def _existing(self, conn: Connection, ids: Sequence[str]) -> dict[str, Receipt]:
        found: dict[str, Receipt] = {}
        unique = list(dict.fromkeys(ids))
        mark = self._mark()
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start : start + _IN_CHUNK]
            # Driver-level SQL on the append path: SQLAlchemy's statement compilation cost
            # more than the indexed lookup itself for a single append.
            sql = (
                "SELECT leaf_index, entry_id, leaf_hash FROM entries WHERE entry_id IN ("  # noqa: S608 - placeholders only
                + ", ".join([mark] * len(chunk))
                + ")"
            )
            for leaf_index, entry_id, leaf_hash in conn.exec_driver_sql(sql, tuple(chunk)):
                found[entry_id] = Receipt(int(leaf_index), entry_id, bytes(leaf_hash))
        return found

    # -- reads -------------------------------------------------------------------------------

    @staticmethod
    def _size(conn: Connection) -> int:
        value = conn.exec_driver_sql("SELECT MAX(leaf_index) FROM entries").scalar()
        return 0 if value is None else int(value) + 1

    def size(self) -> int:
        """Number of leaves committed."""
        with self._mapped_errors("reading the log size"), self.engine.connect() as conn:
            return self._size(conn)

    def entry(self, leaf_index: int) -> StoredEntry:
        """The entry at ``leaf_index``."""
        _check_index(leaf_index, "leaf index")
        with self._mapped_errors("reading an entry"), self.engine.connect() as conn:
            row = conn.execute(
                select(ENTRIES.c.entry, ENTRIES.c.leaf_hash).where(
                    ENTRIES.c.leaf_index == leaf_index
                )
            ).first()
        if row is None:
            raise NotFoundError(f"no entry at leaf index {leaf_index}")
        return StoredEntry(leaf_index, parse_json(row[0]), bytes(row[1]))

    def entry_by_id(self, entry_id: str) -> StoredEntry:
        """The entry whose body ``id`` is ``entry_id``."""
        with self._mapped_errors("reading an entry"), self.engine.connect() as conn:
            row = conn.execute(
                select(ENTRIES.c.leaf_index, ENTRIES.c.entry, ENTRIES.c.leaf_hash).where(
                    ENTRIES.c.entry_id == entry_id
                )
            ).first()
        if row is None:
            raise NotFoundError(f"no entry with id {entry_id}")
        return StoredEntry(int(row[0]), parse_json(row[1]), bytes(row[2]))

    def raw_entries(
        self,
        start: int = 0,
        stop: int | None = None,
        *,
        batch: int = 5_000,
        filters: Mapping[str, str] | None = None,
    ) -> Iterator[tuple[int, bytes, bytes, str]]:
        """``(leaf_index, leaf data, stored leaf hash, entry id)`` in leaf order, paged.

        Straight to the driver: verification reads every row of the log through here, and
        SQLAlchemy's result processing cost more per row than the database did. The SQL has a
        lower bound and a LIMIT but no upper bound (see ``_select``); ``stop`` is applied
        here.
        """
        for row in self._paged(_RAW_COLUMNS, start, stop, batch, filters):
            yield row[0], bytes(row[1]), bytes(row[2]), row[3]

    def verify_rows(
        self, start: int = 0, stop: int | None = None, *, batch: int = 5_000
    ) -> Iterator[tuple[Any, ...]]:
        """Every stored column of ``[start, stop)``, in :data:`VERIFY_COLUMNS` order, paged.

        Verification compares each indexed column with what the signed entry says, so that a
        filter or report that reads a column sees what was signed. ``recorded_at`` comes as the
        driver gives it (SQLite: the text written by ``_sqlite_datetime``; PostgreSQL: an aware
        datetime).
        """
        return self._paged(VERIFY_COLUMNS, start, stop, batch, None)

    def _paged(
        self,
        columns: Sequence[str],
        start: int,
        stop: int | None,
        batch: int,
        filters: Mapping[str, str] | None,
    ) -> Iterator[tuple[Any, ...]]:
        mark = self._mark()
        conditions = [f"leaf_index >= {mark}"]
        fixed: list[object] = []
        for column, value in (filters or {}).items():
            if column not in INDEXED_COLUMNS:
                raise InputError(f"cannot filter entries on {column!r}")
            conditions.append(f"{column} = {mark}")
            fixed.append(value)
        sql = (
            f"SELECT {', '.join(columns)} FROM entries WHERE "  # noqa: S608 - fixed names
            + " AND ".join(conditions)
            + f" ORDER BY leaf_index LIMIT {mark}"
        )
        position = start
        while stop is None or position < stop:
            limit = batch if stop is None else min(batch, stop - position)
            with self._mapped_errors("reading entries"), self.engine.connect() as conn:
                rows = self._select(conn, sql, (position, *fixed, limit))
            if not rows:
                return
            for row in rows:
                if stop is not None and row[0] >= stop:
                    return
                yield tuple(row)
            position = rows[-1][0] + 1

    def entries(
        self, start: int = 0, stop: int | None = None, filters: Mapping[str, str] | None = None
    ) -> Iterator[StoredEntry]:
        """Parsed entries in leaf order, optionally filtered on indexed columns."""
        for leaf_index, data, stored_hash, _ in self.raw_entries(start, stop, filters=filters):
            yield StoredEntry(leaf_index, parse_json(data), stored_hash)

    def raw_hashes(self, start: int = 0, *, batch: int = 20_000) -> Iterator[tuple[int, bytes]]:
        """Every stored hash ``(idx, hash)`` in index order, paged (straight to the driver)."""
        mark = self._mark()
        sql = f"SELECT idx, hash FROM tree_hashes WHERE idx >= {mark} ORDER BY idx LIMIT {mark}"  # noqa: S608 - fixed names
        position = start
        while True:
            with self._mapped_errors("reading stored hashes"), self.engine.connect() as conn:
                rows = self._select(conn, sql, (position, batch))
            if not rows:
                return
            for idx, value in rows:
                yield idx, bytes(value)
            position = rows[-1][0] + 1

    def raw_hashes_between(self, low: int, high: int) -> list[tuple[int, bytes]]:
        """Stored hashes with ``low <= idx < high``, in index order (one query; see ``_select``)."""
        if high <= low:
            return []
        mark = self._mark()
        sql = f"SELECT idx, hash FROM tree_hashes WHERE idx >= {mark} ORDER BY idx LIMIT {mark}"  # noqa: S608 - fixed names
        with self._mapped_errors("reading stored hashes"), self.engine.connect() as conn:
            rows = self._select(conn, sql, (low, high - low))
        return [(idx, bytes(value)) for idx, value in rows if idx < high]

    def hashes_by_index(self, indexes: Sequence[int]) -> dict[int, bytes]:
        """The stored hashes at ``indexes`` that exist (missing ones are simply absent)."""
        with self._mapped_errors("reading stored hashes"), self.engine.connect() as conn:
            return self._fetch_hashes(conn, indexes)

    def max_stored_index(self) -> int | None:
        """The highest stored hash index, or None when there is none."""
        with self._mapped_errors("reading stored hashes"), self.engine.connect() as conn:
            value = conn.execute(select(func.max(HASHES.c.idx))).scalar()
        return None if value is None else int(value)

    def _select(self, conn: Connection, sql: str, params: tuple[object, ...]) -> list[Any]:
        """Rows of a bulk read, straight from the driver.

        SQLAlchemy's result rows cost more per row than SQLite took to produce them (4,000
        stored hashes: 15 ms through ``exec_driver_sql``, 2.5 ms from the cursor). On PostgreSQL
        the rows come in binary format: bytea columns (entries, hashes) in the text format
        travel as hex and cost more than twice as much to fetch and decode.

        Bulk reads ask for ``key >= start ORDER BY key LIMIT n``, never for a closed range:
        without fresh statistics (autovacuum off, or just after a bulk load) PostgreSQL plans a
        closed range as a bitmap heap scan and a sort that spills to disk, 30 ms for a chunk of
        2,048 entries against 1 ms for the index scan it picks for the open form.
        """
        driver = conn.connection.driver_connection
        if self.engine.dialect.name == "postgresql":
            with driver.cursor(binary=True) as cursor:  # type: ignore[union-attr]  # psycopg
                cursor.execute(sql, params)
                return list(cursor.fetchall())
        cursor = driver.cursor()  # type: ignore[union-attr]  # sqlite3
        try:
            return list(cursor.execute(sql, params).fetchall())
        finally:
            cursor.close()

    def _mark(self) -> str:
        # The driver's positional placeholder: sqlite3 takes ?, psycopg takes %s.
        return "?" if self.engine.dialect.name == "sqlite" else "%s"

    @staticmethod
    def _fetch_hashes(conn: Connection, indexes: Sequence[int]) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        for start in range(0, len(indexes), _IN_CHUNK):
            chunk = indexes[start : start + _IN_CHUNK]
            for idx, value in conn.execute(
                select(HASHES.c.idx, HASHES.c.hash).where(HASHES.c.idx.in_(chunk))
            ):
                found[int(idx)] = bytes(value)
        return found

    def _read_hashes(self, conn: Connection, indexes: Sequence[int]) -> list[bytes]:
        found = self._fetch_hashes(conn, indexes)
        missing = [i for i in indexes if i not in found]
        if missing:
            level, first, end = tree.subtree_range(missing[0])
            raise StoreError(
                f"stored hash {missing[0]} (level {level}, leaves {first}..{end - 1}) is missing"
            )
        return [found[i] for i in indexes]

    def _with_hashes(self, size: int, compute: Callable[[tree.HashReader], Any]) -> Any:
        """Run a tree computation at ``size`` with the stored hashes it needs.

        One connection, two indexed queries: the committed size (a proof past the end of the
        log is an input error, not a missing hash) and the O(log n) hashes, in one IN (...).
        """
        if size < 0:
            raise InputError("tree size must not be negative")
        needed = tree.plan(compute)
        with self._mapped_errors("reading stored hashes"), self.engine.connect() as conn:
            current = self._size(conn)
            if size > current:
                raise InputError(f"tree size {size} is larger than the log ({current} entries)")
            values = dict(zip(needed, self._read_hashes(conn, needed), strict=True))
        return compute(lambda indexes: [values[i] for i in indexes])

    def root(self, size: int | None = None) -> bytes:
        """Root hash at ``size`` (default: now)."""
        if size is None:
            size = self.size()
        _check_index(size, "tree size")
        tree_size = size
        return cast(bytes, self._with_hashes(tree_size, lambda read: tree.root(tree_size, read)))

    def inclusion_proof(self, leaf_index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of ``leaf_index`` in the tree of ``size`` leaves."""
        _check_index(size, "tree size")
        if not 0 <= leaf_index < size:
            raise InputError(f"leaf {leaf_index} is not in a tree of size {size}")
        return cast(
            list[bytes],
            self._with_hashes(size, lambda read: tree.inclusion_proof(leaf_index, size, read)),
        )

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """RFC 9162 consistency proof from tree size ``first`` to ``second``."""
        _check_index(second, "tree size")
        if not 0 <= first <= second:
            raise InputError(f"no consistency proof from size {first} to size {second}")
        return cast(
            list[bytes],
            self._with_hashes(second, lambda read: tree.consistency_proof(first, second, read)),
        )

    def multiproof(self, leaf_indexes: Sequence[int], size: int) -> multiproof.MultiProof:
        """One deduplicated proof of every leaf in ``leaf_indexes`` in the tree of ``size``.

        The proof's structure depends only on the indexes, so the stored hashes it needs are
        read in one pass (chunked IN queries) on the connection that checked the size.
        """
        _check_index(size, "tree size")
        for leaf in leaf_indexes:
            if not 0 <= leaf < size:
                raise InputError(f"leaf {leaf} is not in a tree of size {size}")
        with self._mapped_errors("reading stored hashes"), self.engine.connect() as conn:
            current = self._size(conn)
            if size > current:
                raise InputError(f"tree size {size} is larger than the log ({current} entries)")
            return multiproof.build(size, leaf_indexes, lambda idx: self._read_hashes(conn, idx))

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoints(self) -> list[CheckpointRecord]:
        """Every checkpoint the log signed, oldest first."""
        with self._mapped_errors("reading checkpoints"), self.engine.connect() as conn:
            rows = conn.execute(select(CHECKPOINTS).order_by(CHECKPOINTS.c.seq)).all()
        return [_checkpoint(row) for row in rows]

    def latest_checkpoint(self) -> CheckpointRecord | None:
        """The newest checkpoint, or None."""
        with self._mapped_errors("reading checkpoints"), self.engine.connect() as conn:
            row = conn.execute(
                select(CHECKPOINTS).order_by(CHECKPOINTS.c.seq.desc()).limit(1)
            ).first()
        return None if row is None else _checkpoint(row)

    def add_checkpoint(
        self,
        sign: Callable[[int, bytes], str],
        *,
        reusable: Callable[[CheckpointRecord], bool] | None = None,
    ) -> CheckpointRecord:
        """Sign the current tree head with ``sign(size, root) -> note`` and store it.

        Runs under the append lock, so no entry lands between reading the head and storing the
        note. Refuses (ConsistencyError) to sign a head that is not an extension of the last
        checkpoint: a log that shrank or whose stored hashes were rewritten never gets a second,
        inconsistent signature. When the log did not grow, the latest checkpoint is returned,
        unless ``reusable(latest)`` says otherwise (it was signed by a key since retired).
        """
        with self._lock, self._mapped_errors("signing a checkpoint"):
            with write_transaction(self.engine) as conn:
                frontier = self._current_frontier(conn)
                size, root_hash = frontier.size, frontier.root()
                last = conn.execute(
                    select(CHECKPOINTS).order_by(CHECKPOINTS.c.seq.desc()).limit(1)
                ).first()
                previous = None if last is None else _checkpoint(last)
                if previous is not None:
                    unchanged = previous.tree_size == size and previous.root_hash == root_hash
                    if unchanged and (reusable is None or reusable(previous)):
                        return previous
                    self._check_extends(conn, previous, size, root_hash)
                record = CheckpointRecord(
                    seq=0 if previous is None else previous.seq + 1,
                    tree_size=size,
                    root_hash=root_hash,
                    note=sign(size, root_hash),
                    signed_at=datetime.now(UTC),
                )
                conn.execute(
                    insert(CHECKPOINTS),
                    [
                        {
                            "seq": record.seq,
                            "tree_size": record.tree_size,
                            "root_hash": record.root_hash,
                            "note": record.note,
                            "signed_at": record.signed_at,
                        }
                    ],
                )
        return record

    def _check_extends(
        self, conn: Connection, previous: CheckpointRecord, size: int, root_hash: bytes
    ) -> None:
        if size < previous.tree_size:
            raise ConsistencyError(
                f"refusing to sign: the log has {size} entries but checkpoint {previous.seq} "
                f"already covers {previous.tree_size}"
            )

        def compute(read: tree.HashReader) -> list[bytes]:
            return tree.consistency_proof(previous.tree_size, size, read)

        needed = tree.plan(compute)
        values = dict(zip(needed, self._read_hashes(conn, needed), strict=True))
        proof = compute(lambda indexes: [values[i] for i in indexes])
        try:
            verify_consistency(previous.tree_size, size, proof, previous.root_hash, root_hash)
        except ConsistencyError as exc:
            raise ConsistencyError(
                f"refusing to sign: the log at size {size} is not consistent with checkpoint "
                f"{previous.seq} (size {previous.tree_size}): {exc}"
            ) from exc

    # -- verdicts ----------------------------------------------------------------------------

    def add_verdicts(self, rows: Sequence[VerdictRow]) -> None:
        """Store verdicts and their documents, skipping what is already there:
        re-evaluating under unchanged policies and facts adds nothing."""
        if rows:
            with self._mapped_errors("storing verdicts"), self.engine.begin() as conn:
                self._insert_verdicts(conn, rows)

    def _insert_verdicts(self, conn: Connection, rows: Sequence[VerdictRow]) -> None:
        if not rows:
            return
        sqlite = self.engine.dialect.name == "sqlite"
        mark = self._mark()
        documents = {r.document_sha256: r.document for r in rows}  # a few per batch
        stamps = {r.evaluated_at for r in rows}  # usually one per batch
        when = {t: _sqlite_datetime(t) if sqlite else t for t in stamps}
        params = [
            (
                r.leaf_index, r.purpose, r.policy_digest, r.facts_digest, r.verdict,
                r.document_sha256, when[r.evaluated_at],
            )
            for r in rows
        ]  # fmt: skip
        conn.exec_driver_sql(
            _insert_sql("verdict_documents", ("sha256", "document"), mark)
            + " ON CONFLICT DO NOTHING",
            list(documents.items()),
        )
        conn.exec_driver_sql(
            _insert_sql("verdicts", _VERDICT_COLUMNS, mark) + " ON CONFLICT DO NOTHING", params
        )

    def verdicts(self, start: int, stop: int | None = None) -> list[VerdictRow]:
        """Every stored verdict on leaves ``[start, stop)``, oldest evaluation first."""
        query = select(VERDICTS, DOCUMENTS.c.document).join(
            DOCUMENTS, DOCUMENTS.c.sha256 == VERDICTS.c.document_sha256
        )
        query = query.where(VERDICTS.c.leaf_index >= start)
        if stop is not None:
            query = query.where(VERDICTS.c.leaf_index < stop)
        query = query.order_by(VERDICTS.c.leaf_index, VERDICTS.c.evaluated_at)
        with self._mapped_errors("reading verdicts"), self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            VerdictRow(
                int(r.leaf_index), r.purpose, r.policy_digest, r.facts_digest, r.verdict,
                r.document_sha256, _aware(r.evaluated_at), r.document,
            )
            for r in rows
        ]  # fmt: skip

    def verdict_rows(self, *, batch: int = 20_000) -> Iterator[tuple[Any, ...]]:
        """Every verdict row without its document, in :data:`VERDICT_COLUMNS` order, paged.

        Verification reads all of them; the documents they share are read once apart
        (:meth:`verdict_documents`), since a million rows may reference a handful.
        """
        mark = self._mark()
        columns = ", ".join(VERDICT_COLUMNS)
        sql = (
            f"SELECT {columns} FROM verdicts WHERE (leaf_index, purpose, policy_digest, "  # noqa: S608
            f"facts_digest) > ({mark}, {mark}, {mark}, {mark}) ORDER BY leaf_index, purpose, "
            f"policy_digest, facts_digest LIMIT {mark}"
        )
        after: tuple[object, ...] = (-1, "", "", "")
        while True:
            with self._mapped_errors("reading verdicts"), self.engine.connect() as conn:
                rows = self._select(conn, sql, (*after, batch))
            if not rows:
                return
            yield from (tuple(row) for row in rows)
            after = tuple(rows[-1][:4])

    def verdict_documents(self) -> dict[str, str]:
        """Every stored verdict document by its recorded SHA-256."""
        with self._mapped_errors("reading verdicts"), self.engine.connect() as conn:
            rows = conn.execute(select(DOCUMENTS.c.sha256, DOCUMENTS.c.document)).all()
        return {str(sha): str(document) for sha, document in rows}

    # -- keys and meta -----------------------------------------------------------------------

    def keys(self) -> list[KeyRecord]:
        """Every public key the ledger has registered, oldest first."""
        with self._mapped_errors("reading keys"), self.engine.connect() as conn:
            rows = conn.execute(select(KEYS).order_by(KEYS.c.seq)).all()
        return [
            KeyRecord(
                int(r.seq), r.kind, r.key_id, r.name, bytes(r.public_key), _aware(r.created_at)
            )
            for r in rows
        ]

    def register_key(self, kind: str, key_id: str, name: str, public_key: bytes) -> bool:
        """Make this key the active one of ``kind`` unless it already is; True if added."""
        with self._lock, self._mapped_errors("registering a key"):
            with write_transaction(self.engine) as conn:
                latest = conn.execute(
                    select(KEYS.c.key_id, KEYS.c.name)
                    .where(KEYS.c.kind == kind)
                    .order_by(KEYS.c.seq.desc())
                    .limit(1)
                ).first()
                if latest is not None and latest[0] == key_id and latest[1] == name:
                    return False
                seq = conn.execute(select(func.max(KEYS.c.seq))).scalar()
                conn.execute(
                    insert(KEYS),
                    [
                        {
                            "seq": 0 if seq is None else int(seq) + 1,
                            "kind": kind,
                            "key_id": key_id,
                            "name": name,
                            "public_key": public_key,
                            "created_at": datetime.now(UTC),
                        }
                    ],
                )
        return True

    def meta(self) -> dict[str, str]:
        """The facts fixed when the ledger was created."""
        with self._mapped_errors("reading ledger metadata"), self.engine.connect() as conn:
            rows = conn.execute(select(META.c.name, META.c.value)).all()
        return {str(name): str(value) for name, value in rows}


_ENTRY_COLUMNS = ("leaf_index", "entry_id", "leaf_hash", "entry", "key_id", "recorded_at",
                  *INDEXED_COLUMNS)  # fmt: skip
_RAW_COLUMNS = ("leaf_index", "entry", "leaf_hash", "entry_id")
#: What :meth:`LogStore.verify_rows` yields, in order.
VERIFY_COLUMNS = (*_RAW_COLUMNS, "key_id", "recorded_at", *INDEXED_COLUMNS)


_VERDICT_COLUMNS = ("leaf_index", "purpose", "policy_digest", "facts_digest", "verdict",
                    "document_sha256", "evaluated_at")  # fmt: skip
#: What :meth:`LogStore.verdict_rows` yields, in order.
VERDICT_COLUMNS = _VERDICT_COLUMNS[:6]


# Leaf indexes and sizes are BIGINT columns: anything beyond cannot name a leaf.
_MAX_INDEX = (1 << 63) - 1


def _check_index(value: int, what: str) -> None:
    if not 0 <= value <= _MAX_INDEX:
        raise InputError(f"{what} {value} is out of range (0 to {_MAX_INDEX})")


def _insert_sql(table: str, columns: Sequence[str], mark: str) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"  # noqa: S608 - fixed names


def _sqlite_datetime(moment: datetime) -> str:
    # The form SQLAlchemy's SQLite DateTime type writes and parses back (UTC, no zone).
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", timespec="microseconds")


def _sqlite_file(engine: Engine) -> Path | None:
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    return None if path is None else path.resolve()


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_dev, stat.st_ino)


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every timestamp the ledger writes is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _checkpoint(row: Any) -> CheckpointRecord:
    return CheckpointRecord(
        int(row.seq), int(row.tree_size), bytes(row.root_hash), row.note, _aware(row.signed_at)
    )


def _first_line(exc: DBAPIError) -> str:
    orig = exc.orig if exc.orig is not None else exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]
