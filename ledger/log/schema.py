"""Database engines and schema migration for the ledger.

Invariants:

* The schema is created and changed only by the Alembic migrations (``migrations/``).
* A database whose revision this code does not know (a newer ledger wrote it) is refused with
  a :class:`ConfigError` before anything is written.
* SQLite runs in WAL mode with ``synchronous=FULL`` by default (a committed entry survives
  power loss; ``normal`` is available where an fsync per commit costs too much),
  foreign pysqlite transaction handling is switched off so that a write transaction can start
  with ``BEGIN IMMEDIATE`` (see :func:`write_transaction`).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from ledger._resources import migrations_dir
from ledger.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "ADVISORY_LOCK_KEY",
    "alembic_config",
    "append_only_ddl",
    "current_revision",
    "downgrade",
    "drop_append_only_ddl",
    "head_revision",
    "make_engine",
    "migrate",
    "redact_url",
    "write_transaction",
]

# One constant lock id for appends; pg_advisory_xact_lock takes a signed 64-bit key.
ADVISORY_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"distill-ledger append").digest()[:8], "big", signed=True
)


def redact_url(url: str) -> str:
    """The URL with any password hidden, fit for an error message."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    sqlite_synchronous: str = "full",
    sqlite_busy_timeout: float = 30.0,
) -> Engine:
    """Create an engine for ``url`` configured for the ledger's locking discipline.

    ``sqlite_synchronous`` is SQLite's ``synchronous`` pragma: ``full`` (default) makes every
    commit survive power loss; ``normal`` survives a crash of the application but not of the
    machine, and saves one fsync per commit.
    """
    if sqlite_synchronous not in ("full", "normal"):
        raise ConfigError(f"sqlite_synchronous must be full or normal, not {sqlite_synchronous!r}")
    try:
        if url.startswith("sqlite"):
            engine = create_engine(
                url, connect_args={"timeout": sqlite_busy_timeout, "check_same_thread": False}
            )
            _configure_sqlite(engine, sqlite_synchronous.upper())
        else:
            kwargs: dict[str, Any] = {"pool_pre_ping": True}
            if not url.startswith("postgresql"):
                raise ConfigError(
                    f"unsupported database {redact_url(url)}: use sqlite:/// or postgresql+psycopg://"
                )
            kwargs["pool_size"] = pool_size
            engine = create_engine(url, **kwargs)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"cannot use database URL {redact_url(url)}: {exc}") from exc
    return engine


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Hand transaction control to us: pysqlite's implicit BEGIN would be DEFERRED, and a
        # deferred reader that later writes can deadlock with another writer.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.info.pop("ledger_begin", "BEGIN")
        conn.exec_driver_sql(mode)


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the log's single-writer lock until it commits.

    SQLite: ``BEGIN IMMEDIATE`` takes the database write lock at the start, so no other
    process can slip an append between our read of the tree size and our insert.
    PostgreSQL: ``pg_advisory_xact_lock`` serializes appenders across processes and machines
    and is released by COMMIT or ROLLBACK, so a crashed writer never leaves it held. In both
    cases sequence order equals commit order, which is what makes leaf indexes contiguous.
    """
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.info["ledger_begin"] = "BEGIN IMMEDIATE"
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
            yield conn


def append_only_ddl(dialect: str, tables: Sequence[str]) -> list[str]:
    """DDL that makes each table reject UPDATE and DELETE (and TRUNCATE on PostgreSQL).

    Used by the migrations; the trigger names are part of the schema (tests drop them by name
    to play an attacker with database access).
    """
    if dialect == "postgresql":
        statements = [
            """
            CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'ledger: % on % is forbidden: the table is append-only',
                    TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
            END;
            $$ LANGUAGE plpgsql
            """
        ]
        for table in tables:
            statements += [
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()",
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only()",
            ]
        return statements
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'ledger: {action} on {table} is forbidden: "
            "the table is append-only'); END"
            for table in tables
            for action in ("UPDATE", "DELETE")
        ]
    raise ConfigError(f"append-only triggers are not written for {dialect}")


def drop_append_only_ddl(dialect: str, tables: Sequence[str]) -> list[str]:
    """DDL that removes what :func:`append_only_ddl` installed on ``tables``."""
    if dialect == "postgresql":
        return [
            stmt
            for table in tables
            for stmt in (
                f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
                f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
            )
        ]
    return [f"DROP TRIGGER IF EXISTS {table}_no_{action}" for table in tables
            for action in ("update", "delete")]  # fmt: skip


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the shipped migrations (and at ``connection`` if given)."""
    from alembic.config import Config  # here: most processes never migrate (verify's workers)

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest migration this code knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the migrations folder always has a head
        raise ConfigError("the ledger's migrations folder has no revisions")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except (OperationalError, DBAPIError) as exc:
        raise ConfigError(
            f"cannot reach database {redact_url(str(engine.url))}: {_first_line(exc)}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema; refuse one written by a newer ledger."""
    from alembic import command
    from alembic.script import ScriptDirectory

    current = current_revision(engine)
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        raise ConfigError(
            f"database {redact_url(str(engine.url))} has schema revision {current}, newer than "
            f"this ledger knows (newest {head_revision()}): upgrade distill-ledger"
        )
    if current == head_revision():
        return
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
    except (OperationalError, DBAPIError) as exc:
        raise ConfigError(
            f"cannot migrate database {redact_url(str(engine.url))}: {_first_line(exc)}"
        ) from exc


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Undo migrations down to ``revision`` (tests of the migrations use this)."""
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), revision)
