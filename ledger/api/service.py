"""What the routes stand on: the ledgers one service process holds, checkpoints, pages, proofs.

Invariants:

* Reads go through a ledger opened without keys on an engine that cannot write (SQLite
  ``mode=ro``, PostgreSQL read-only sessions). A writable ledger exists only when the service
  is not read-only; it alone records, signs checkpoints and manages tokens and keys.
* Every answer that carries entries is served against one signed checkpoint and carries only
  entries below its tree size, with the proof of those entries against its root (an RFC 9162
  inclusion proof for one entry, a DESIGN.md multiproof for a page). Leaf hashes are computed
  here from the stored leaf bytes, and the entries go out as those exact bytes, so what a
  client hashes is what the log holds.
* A writable service signs a fresh checkpoint for a read only when the latest one is older than
  ``api_checkpoint_age`` seconds and the log has grown past it, so a busy service adds at most
  one checkpoint per that interval (and :meth:`Ledger.checkpoint` never signs a duplicate).
* A dataset-scoped token sees only entries whose ``dataset`` is in its scope.
* What does not change between requests is kept in memory: the checkpoint reads are served
  against, for at most ``api_checkpoint_age`` seconds (0: looked up on every read, as
  before), so an answer's checkpoint is never older than that bound allows; stored subtree
  hashes, which never change once written (:mod:`ledger.crypto.tree`), in a bounded cache;
  accepted tokens (:class:`~ledger.api.tokens.TokenCache`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ARRAY, Engine, Integer, String, and_, any_, bindparam, event, exists, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import SQLModel

from ledger._ledger import Ledger
from ledger.api.reads import HashCache, driver_rows, drop_if_closed, postgres_rows
from ledger.api.settings import ApiSettings
from ledger.api.tokens import TokenCache
from ledger.crypto import multiproof, tree
from ledger.crypto.multiproof import MultiProof
from ledger.crypto.note import verifier_key_string
from ledger.errors import ConfigError, InputError, NotFoundError, StoreError
from ledger.log import schema, tables
from ledger.log.store import CheckpointRecord

__all__ = ["EntryFilters", "Page", "Service", "checkpoint_json"]

del tables  # imported to register the tables on SQLModel.metadata
_ENTRIES = SQLModel.metadata.tables["entries"]
_VERDICTS = SQLModel.metadata.tables["verdicts"]
VERDICTS = ("allowed", "conditional", "prohibited", "unknown")


@dataclass(frozen=True, slots=True)
class EntryFilters:
    """The filters of an entry listing; ``datasets`` is the token's scope (None: all)."""

    dataset: str | None = None
    provider: str | None = None
    model: str | None = None
    account: str | None = None
    purpose: str | None = None
    verdict: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str) and "\x00" in value:
                # A database text value cannot hold NUL (PostgreSQL refuses it outright).
                raise InputError(f"the {f.name} filter contains a NUL character")

    def digest(self) -> str:
        """A short digest binding a cursor to the filters it was issued for."""
        values = {f.name: _plain(getattr(self, f.name)) for f in fields(self)}
        text = json.dumps(values, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


@dataclass(frozen=True, slots=True)
class Page:
    """Entries ``(leaf_index, leaf bytes)`` of a page, their proof, and where the next starts."""

    checkpoint: CheckpointRecord
    rows: list[tuple[int, bytes]]
    next_start: int | None
    proof: MultiProof  # of ``rows`` against ``checkpoint``


def checkpoint_json(record: CheckpointRecord) -> dict[str, Any]:
    """The checkpoint as served: the signed note (what clients verify) and its plain fields."""
    return {
        "tree_size": record.tree_size,
        "root_hash": record.root_hash.hex(),
        "note": record.note,
        "signed_at": record.signed_at.isoformat(),
    }


def encode_cursor(start: int, filters: EntryFilters) -> str:
    raw = f"v1:{start}:{filters.digest()}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, filters: EntryFilters) -> int:
    """The leaf index a cursor resumes at (InputError for a foreign or damaged cursor)."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, start, digest = text.split(":")
        position = int(start)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError("malformed cursor") from exc
    if version != "v1" or not 0 <= position < 1 << 63:
        raise InputError("malformed cursor")
    if digest != filters.digest():
        raise InputError("the cursor belongs to a listing with other filters")
    return position


class Service:
    """The ledgers and caches of one service process."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.writer: Ledger | None = None
        if not settings.api_read_only:
            self.writer = Ledger.from_settings(settings, create=False)
        try:
            self.reader = self._open_reader()
            if self.writer is not None:
                self.writer.checkpoint()  # a signed head from the first request on
        except BaseException:
            if self.writer is not None:
                self.writer.close()
            raise
        self._checkpoint_lock = threading.Lock()
        self._head: tuple[CheckpointRecord, float] | None = None  # (record, monotonic when read)
        self._refreshing: asyncio.Future[CheckpointRecord] | None = None
        self._hashes = HashCache(settings.api_hash_cache_bytes)
        self._page_queries: dict[frozenset[str], Any] = {}
        self.tokens = TokenCache(self.engine, settings.api_token_cache_seconds)
        self._policies: Any = None
        self._conduct = self._load_conduct_config()

    def _open_reader(self) -> Ledger:
        settings = self.settings
        url = settings.resolved_database_url()
        path = schema.sqlite_path(url)
        if path is not None and (self.writer is not None or os.access(path.parent, os.W_OK)):
            # read_only_url opens a file whose write-ahead log is empty as immutable, which
            # never sees a later commit: right for a frozen copy, wrong for a live ledger (this
            # process's writer, or a recorder beside a read-only service). mode=ro follows
            # the log; it needs a folder where SQLite can keep the shared-memory file.
            quoted = urllib.parse.quote(str(path.resolve()))
            url = f"sqlite:///file:{quoted}?mode=ro&uri=true"
        else:
            url = schema.read_only_url(url)
        # Autocommit on PostgreSQL: in a transaction psycopg sends BEGIN before a request's
        # first read and the pool's reset sends ROLLBACK after its last, two round trips per
        # request; and a rollback makes psycopg forget the statements it was counting towards
        # preparing, so no read was ever prepared and PostgreSQL planned each one afresh. The
        # reads are of rows below a signed tree size and of stored hashes, which never change
        # once written: one snapshot per statement reads the same as one per request.
        engine = schema.make_engine(
            url, sqlite_busy_timeout=settings.sqlite_busy_timeout, pre_ping=False, autocommit=True
        )
        if engine.dialect.name == "postgresql":
            event.listen(engine, "checkout", drop_if_closed)
        try:
            schema.require_schema(engine)
            return Ledger(engine, None, origin=settings.origin, judge=False, home=settings.home)
        except BaseException:
            engine.dispose()
            raise

    def close(self) -> None:
        self.reader.close()
        if self.writer is not None:
            self.writer.close()

    @property
    def engine(self) -> Engine:
        """The read-only engine (tokens are checked through it)."""
        return self.reader.store.engine

    def writable(self) -> Ledger:
        """The writable ledger (ReadOnlyError from a read-only service)."""
        if self.writer is None:
            from ledger.errors import ReadOnlyError

            raise ReadOnlyError("this service is read-only: it does not record or manage")
        return self.writer

    # -- checkpoints ---------------------------------------------------------------------

    def fresh_checkpoint(self) -> CheckpointRecord | None:
        """The checkpoint reads are served against when it is known without any I/O (looked
        up less than ``api_checkpoint_age`` ago), else None: then :meth:`checkpoint`, which
        may read the database or sign a new one, is the way."""
        head = self._head
        if head is not None and time.monotonic() - head[1] < self.settings.api_checkpoint_age:
            return head[0]
        return None

    async def served_checkpoint(self) -> CheckpointRecord:
        """:meth:`checkpoint` for a request on the event loop: from memory while fresh, else
        looked up in the thread pool, once for all the requests that ask meanwhile.

        When the head expires, every request in flight would otherwise start its own lookup
        (16 threads at once per worker with 32 clients): p99 went from 7 to 90 ms.
        """
        from starlette.concurrency import run_in_threadpool

        fresh = self.fresh_checkpoint()
        if fresh is not None:
            return fresh
        if self.settings.api_checkpoint_age <= 0:
            # No age allowed: a lookup started before this request arrived may predate an
            # append it must see, so every request looks up its own.
            return await run_in_threadpool(self.checkpoint)
        pending = self._refreshing
        # A lookup is shared on the loop that started it (one per worker; a test client runs
        # its own).
        if pending is None or pending.get_loop() is not asyncio.get_running_loop():
            pending = asyncio.ensure_future(run_in_threadpool(self.checkpoint))
            self._refreshing = pending

            def done(finished: asyncio.Future[CheckpointRecord]) -> None:
                if self._refreshing is finished:
                    self._refreshing = None

            pending.add_done_callback(done)
        return await asyncio.shield(pending)

    def checkpoint(self) -> CheckpointRecord:
        """The checkpoint reads are served against (see the module docstring)."""
        max_age = self.settings.api_checkpoint_age
        fresh = self.fresh_checkpoint()
        if fresh is not None:
            return fresh
        looked_up = time.monotonic()
        record = self._current_checkpoint()
        if max_age > 0:
            self._head = (record, looked_up)
        return record

    def _current_checkpoint(self) -> CheckpointRecord:
        latest = self.reader.latest_checkpoint()
        if self.writer is None:
            if latest is None:
                raise NotFoundError("the log has no signed checkpoint yet")
            return latest
        if latest is not None:
            age = (datetime.now(UTC) - latest.signed_at).total_seconds()
            if age < self.settings.api_checkpoint_age or self.reader.size <= latest.tree_size:
                return latest
        with self._checkpoint_lock:
            return self.writer.checkpoint()

    # -- keys ----------------------------------------------------------------------------

    def keys(self) -> dict[str, Any]:
        records = self.reader.keys()
        active = {kind: [r for r in records if r.kind == kind][-1:] for kind in ("log", "recorder")}
        log_keys, recorder_keys = [], []
        seen: set[str] = set()
        for r in records:
            if r.kind == "log":
                log_keys.append(
                    {
                        "key_id": r.key_id,
                        "name": r.name,
                        "verifier_key": verifier_key_string(r.name, r.public_key),
                        "created_at": r.created_at.isoformat(),
                        "active": r in active["log"],
                    }
                )
            elif r.kind == "recorder" and r.key_id not in seen:
                seen.add(r.key_id)
                recorder_keys.append(
                    {
                        "key_id": r.key_id,
                        "name": r.name,
                        "public_key": base64.b64encode(r.public_key).decode(),
                        "created_at": r.created_at.isoformat(),
                        "active": bool(active["recorder"])
                        and r.key_id == active["recorder"][0].key_id,
                    }
                )
        return {
            "ledger_id": self.reader.install_id,
            "origin": self.reader.origin,
            "verifier_key": log_keys[-1]["verifier_key"] if log_keys else None,
            "log_keys": log_keys,
            "recorder_keys": recorder_keys,
        }

    # -- entries -------------------------------------------------------------------------

    def entry(
        self,
        leaf_index: int,
        scope: Sequence[str] | None,
        checkpoint: CheckpointRecord | None = None,
    ) -> tuple[CheckpointRecord, bytes, list[bytes]]:
        """One entry below the checkpoint (``checkpoint``, else :meth:`checkpoint`'s), its leaf
        bytes and its inclusion proof."""
        record = checkpoint if checkpoint is not None else self.checkpoint()
        if leaf_index < 0 or leaf_index >= record.tree_size:
            raise NotFoundError(
                f"no entry at leaf index {leaf_index} under checkpoint size {record.tree_size}"
            )
        size = record.tree_size
        needed = tree.plan(lambda read: tree.inclusion_proof(leaf_index, size, read))
        with _db(self.engine, "reading an entry"), self.engine.connect() as conn:
            rows = driver_rows(
                conn, "SELECT entry, dataset FROM entries WHERE leaf_index = ?", [leaf_index]
            )
            if not rows or (scope is not None and rows[0][1] not in scope):
                # Out of scope reads as absent: a scoped token learns nothing of other datasets.
                raise NotFoundError(f"no entry at leaf index {leaf_index}")
            values = dict(zip(needed, self._hashes.read(conn, needed), strict=True))
        proof = tree.inclusion_proof(leaf_index, size, lambda idx: [values[i] for i in idx])
        return record, bytes(rows[0][0]), proof

    def page(
        self,
        filters: EntryFilters,
        scope: Sequence[str] | None,
        start: int,
        limit: int,
        checkpoint: CheckpointRecord | None = None,
    ) -> Page:
        """Entries matching ``filters`` from leaf ``start`` on, at most ``limit`` of them, below
        ``checkpoint`` (default: :meth:`checkpoint`'s)."""
        record = checkpoint if checkpoint is not None else self.checkpoint()
        params: dict[str, Any] = {"start": start, "size": record.tree_size, "limit": limit + 1}
        named = {
            "dataset": filters.dataset,
            "provider": filters.provider,
            "request_model": filters.model,
            "account": filters.account,
            "purpose": filters.purpose,
        }
        params.update({name: value for name, value in named.items() if value is not None})
        if scope is not None:
            params["scope"] = list(scope)
        if filters.since is not None:
            params["since"] = self._db_time(filters.since)
        if filters.until is not None:
            params["until"] = self._db_time(filters.until)
        if filters.verdict is not None:
            if filters.verdict not in VERDICTS:
                raise InputError(
                    f"unknown verdict {filters.verdict!r}: expected one of {', '.join(VERDICTS)}"
                )
            params["verdict"] = filters.verdict
        query = self._page_query(frozenset(params))
        with _db(self.engine, "listing entries"), self.engine.connect() as conn:
            found = (
                postgres_rows(conn, query, params)
                if isinstance(query, str)
                else conn.execute(query, params)
            )
            rows = [(int(r[0]), bytes(r[1])) for r in found]
            shown = rows[:limit]
            # The page's multiproof, read on the same connection (stored hashes never change).
            proof = multiproof.build(
                record.tree_size, [i for i, _ in shown], lambda idx: self._hashes.read(conn, idx)
            )
        next_start = rows[limit][0] if len(rows) > limit else None
        return Page(record, shown, next_start, proof)

    def _page_query(self, shape: frozenset[str]) -> Any:
        """The page statement for the filters in ``shape``, built once and then reused.

        Building a select and its cache key cost about a millisecond of CPU per page; the
        same statement object with new bound values skips both (SQLAlchemy memoizes the key
        on the object and keeps the compiled form in its cache). On PostgreSQL it is the
        compiled text instead, run on the driver with binary results
        (:func:`~ledger.api.reads.postgres_rows`).
        """
        cached = self._page_queries.get(shape)
        if cached is not None:
            return cached
        conditions: list[ColumnElement[bool]] = [
            _ENTRIES.c.leaf_index >= bindparam("start"),
            _ENTRIES.c.leaf_index < bindparam("size"),
        ]
        for name in ("dataset", "provider", "request_model", "account", "purpose"):
            if name in shape:
                conditions.append(self._filter_column(name) == bindparam(name))
        if "scope" in shape:
            dataset = self._filter_column("dataset")
            if self.engine.dialect.name == "postgresql":
                # One array parameter: the statement's text does not depend on the scope's size.
                scope = bindparam("scope", type_=ARRAY(String))
                conditions.append(dataset == any_(scope))
            else:
                conditions.append(dataset.in_(bindparam("scope", expanding=True)))
        recorded = _ENTRIES.c.recorded_at
        if "since" in shape:
            conditions.append(recorded >= bindparam("since", type_=recorded.type))
        if "until" in shape:
            conditions.append(recorded < bindparam("until", type_=recorded.type))
        if "verdict" in shape:
            conditions.append(self._latest_verdict_is(bindparam("verdict")))
        query: Any = (
            select(_ENTRIES.c.leaf_index, _ENTRIES.c.entry)
            .where(and_(*conditions))
            .order_by(_ENTRIES.c.leaf_index)
            .limit(bindparam("limit", type_=Integer))
        )
        if self.engine.dialect.name == "postgresql":
            # Run on the driver (see reads.postgres_rows): compiled once, to psycopg's marks.
            query = str(query.compile(dialect=self.engine.dialect))
        self._page_queries[shape] = query
        return query

    def _filter_column(self, name: str) -> ColumnElement[Any]:
        """A filter column, kept off its index on SQLite so pages are read in leaf order.

        SQLite (no statistics) answered ``provider = ? ORDER BY leaf_index LIMIT 101`` from
        the provider index: every matching row looked up and sorted (13 ms at 20,000 entries,
        growing with the log) where a walk of the primary key from the cursor reads about
        one page of rows. ``column || ''`` keeps the comparison and hides the index; a
        filter that matches very few entries then costs a longer walk, which is the price.
        PostgreSQL plans with statistics and gets the plain column.
        """
        column = _ENTRIES.c[name]
        if self.engine.dialect.name == "sqlite":
            return column.concat("")
        return column

    def _db_time(self, moment: datetime) -> datetime:
        utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        # SQLite stores recorded_at as UTC text without a zone (see LogStore).
        return utc.replace(tzinfo=None) if self.engine.dialect.name == "sqlite" else utc

    @staticmethod
    def _latest_verdict_is(verdict: Any) -> ColumnElement[bool]:
        """The entry's most recent stored verdict (any purpose) is ``verdict`` (a bound value)."""
        v = _VERDICTS.alias("v")
        later = _VERDICTS.alias("w")
        newer = exists().where(
            and_(later.c.leaf_index == v.c.leaf_index, later.c.evaluated_at > v.c.evaluated_at)
        )
        return exists().where(
            and_(v.c.leaf_index == _ENTRIES.c.leaf_index, v.c.verdict == verdict, ~newer)
        )

    def page_proof(self, page: Page) -> dict[str, Any]:
        """The page's multiproof against its checkpoint (DESIGN.md, Multiproof)."""
        return page.proof.to_dict()

    def all_entries(
        self, scope: Sequence[str] | None, filters: Mapping[str, str]
    ) -> list[tuple[int, Mapping[str, Any]]]:
        """Every visible entry below the checkpoint as ``(leaf_index, body)`` (for audits)."""
        record = self.checkpoint()
        out: list[tuple[int, Mapping[str, Any]]] = []
        for stored in self.reader.store.entries(0, record.tree_size, dict(filters)):
            body = stored.body
            if scope is not None and body.get("dataset") not in scope:
                continue
            out.append((stored.leaf_index, body))
        return out

    def _load_conduct_config(self) -> tuple[Any, dict[str, frozenset[str]] | None]:
        """Thresholds and official hosts from ``conduct_config`` (read once, at start-up)."""
        from ledger.policy.conduct import ConductThresholds, load_conduct_config

        path = self.settings.conduct_config
        if path is None:
            return ConductThresholds(), None
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            if data is None:
                return ConductThresholds(), None
            if not isinstance(data, Mapping):
                raise ConfigError(f"conduct config {path} must be a mapping of threshold names")
            return load_conduct_config(data)
        except OSError as exc:
            raise ConfigError(f"cannot read conduct config {path}: {exc.strerror}") from exc
        except (yaml.YAMLError, InputError) as exc:
            raise ConfigError(f"conduct config {path} is not usable: {exc}") from exc

    def conduct_config(self) -> tuple[Any, dict[str, frozenset[str]] | None]:
        return self._conduct

    def policies(self) -> Any:
        if self._policies is None:
            from ledger.policy.loader import default_policies

            self._policies = default_policies()
        return self._policies


@contextlib.contextmanager
def _db(engine: Engine, doing: str) -> Iterator[None]:
    """Driver errors of the service's own queries as StoreError (a 503, never a traceback)."""
    try:
        yield
    except DBAPIError as exc:
        orig = getattr(exc, "orig", None) or exc
        first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        raise StoreError(f"{doing} on {schema.redact_url(str(engine.url))}: {first}") from exc
