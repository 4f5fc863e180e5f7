"""Database engines and schema migration for the ledger.

Invariants:

* The schema is created and changed only by the Alembic migrations (``migrations/``).
* A database whose revision this code does not know (a newer ledger wrote it) is refused with
  a :class:`ConfigError` before anything is written.
* A read-only engine (:func:`read_only_url`, or ``make_engine(..., read_only=True)``) can never
  write: SQLite opens the file with ``mode=ro`` (or ``immutable=1`` when no write-ahead log is
  present, so that a copy in a read-only folder opens without side files) and runs with
  ``query_only``; PostgreSQL sessions start with ``default_transaction_read_only``. Nothing
  read-only ever migrates.
* SQLite runs in WAL mode with ``synchronous=FULL`` by default (a committed entry survives
  power loss; ``normal`` is available where an fsync per commit costs too much),
  foreign pysqlite transaction handling is switched off so that a write transaction can start
  with ``BEGIN IMMEDIATE`` (see :func:`write_transaction`).
"""

from __future__ import annotations

import contextlib
import hashlib
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from ledger._resources import migrations_dir
from ledger.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "ADVISORY_LOCK_KEY",
    "SCHEMA_REVISIONS",
    "alembic_config",
    "append_only_ddl",
    "current_revision",
    "downgrade",
    "drop_append_only_ddl",
    "head_revision",
    "is_read_only_url",
    "make_engine",
    "migrate",
    "read_only_url",
    "redact_url",
    "require_schema",
    "sqlite_path",
    "write_transaction",
]

# One constant lock id for appends; pg_advisory_xact_lock takes a signed 64-bit key.
ADVISORY_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"distill-ledger append").digest()[:8], "big", signed=True
)


def redact_url(url: str) -> str:
    """The URL with any password hidden, fit for an error message (a SQLite file as its path)."""
    path = sqlite_path(url)
    if path is not None:
        return f"sqlite:///{path}"
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def sqlite_path(url: str) -> Path | None:
    """The file a ``sqlite:///`` URL names (plain or ``file:`` URI form), or None."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    database = parsed.database
    if database == ":memory:" or parsed.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):
        return Path(urllib.parse.unquote(database[len("file:") :]))
    return Path(database)


# What marks a URL as read-only (written by read_only_url, recognised in worker processes too).
_PG_READ_ONLY = "-c default_transaction_read_only=on"


def read_only_url(url: str) -> str:
    """The form of ``url`` that opens the same database without any way to write to it.

    SQLite: the file must exist (a read-only open never creates one; ``ConfigError`` names the
    path). With a ``-wal`` beside it the file is opened ``mode=ro``, which reads the
    log's latest commits through the shared-memory index; without one it is opened
    ``immutable=1``, which needs no lock or side file, so a copy in a read-only folder opens.
    PostgreSQL: every transaction of the session is read-only.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"cannot use database URL {redact_url(url)}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is None:
            raise ConfigError("an in-memory SQLite database cannot be opened read-only")
        if not path.is_file():
            raise ConfigError(f"no ledger database at {path}: run `ledger init` to create one")
        wal = path.with_name(path.name + "-wal")
        # A -wal file (even an empty one) means a writer has the database open, or left it
        # uncleanly: read through the shared-memory index to see its commits. Without one no
        # writer is there now, and immutable=1 opens even a copy in a read-only folder (a
        # writer that starts later is not followed: long-lived readers of a live ledger
        # should keep the writer open, or reopen).
        mode = "mode=ro" if wal.exists() else "immutable=1"
        quoted = urllib.parse.quote(str(path.resolve()))
        return f"sqlite:///file:{quoted}?{mode}&uri=true"
    if parsed.get_backend_name() == "postgresql":
        given = parsed.query.get("options")
        if isinstance(given, tuple):  # the option repeated in the URL
            given = " ".join(given)
        if given and _PG_READ_ONLY in given:
            return url
        options = f"{given} {_PG_READ_ONLY}" if given else _PG_READ_ONLY
        return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)
    raise ConfigError(
        f"unsupported database {redact_url(url)}: use sqlite:/// or postgresql+psycopg://"
    )


def is_read_only_url(url: str) -> bool:
    """Whether ``url`` is one :func:`read_only_url` made."""
    try:
        query = make_url(url).query
    except ArgumentError:
        return False
    options = query.get("options") or ""
    if isinstance(options, tuple):
        options = " ".join(options)
    return query.get("mode") == "ro" or query.get("immutable") == "1" or _PG_READ_ONLY in options


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    sqlite_synchronous: str = "full",
    sqlite_busy_timeout: float = 30.0,
    read_only: bool = False,
    pre_ping: bool = True,
    autocommit: bool = False,
) -> Engine:
    """Create an engine for ``url`` configured for the ledger's locking discipline.

    ``pre_ping=False`` drops PostgreSQL's round trip per checkout (``pool_pre_ping``); the
    caller then keeps broken connections away itself (see ``ledger.api.service``).
    ``autocommit=True`` runs each PostgreSQL statement on its own, outside a transaction (for
    readers of what never changes once written; SQLite reads run that way already). A use that
    needs a transaction asks for an isolation level on its connection.

    ``sqlite_synchronous`` is SQLite's ``synchronous`` pragma: ``full`` (default) makes every
    commit survive power loss; ``normal`` survives a crash of the application but not of the
    machine, and saves one fsync per commit. ``read_only`` (or a URL from
    :func:`read_only_url`) gives an engine that cannot write.
    """
    if sqlite_synchronous not in ("full", "normal"):
        raise ConfigError(f"sqlite_synchronous must be full or normal, not {sqlite_synchronous!r}")
    if read_only and not is_read_only_url(url):
        url = read_only_url(url)
    read_only = read_only or is_read_only_url(url)
    try:
        if url.startswith("sqlite"):
            engine = create_engine(
                url, connect_args={"timeout": sqlite_busy_timeout, "check_same_thread": False}
            )
            if read_only:
                _configure_sqlite_read_only(engine)
            else:
                _configure_sqlite(engine, sqlite_synchronous.upper())
        else:
            kwargs: dict[str, Any] = {"pool_pre_ping": pre_ping}
            if not url.startswith("postgresql"):
                raise ConfigError(
                    f"unsupported database {redact_url(url)}: use sqlite:/// or postgresql+psycopg://"
                )
            kwargs["pool_size"] = pool_size
            if autocommit:
                kwargs["isolation_level"] = "AUTOCOMMIT"
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


def _configure_sqlite_read_only(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # No journal_mode or synchronous pragma: setting either may write. query_only makes
        # SQLite itself refuse any statement that would change the file.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA query_only=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.info.pop("ledger_begin", None)
        conn.exec_driver_sql("BEGIN")


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


#: Migration revisions, oldest first; the last is the schema this code reads and writes. A test
#: checks this against the migrations folder (read commands check it without importing alembic).
SCHEMA_REVISIONS = ("0001", "0002", "0003", "0004", "0005")


def require_schema(engine: Engine) -> str:
    """Check, without writing or migrating, that ``engine`` holds a ledger at this code's schema.

    Raises:
        ConfigError: unreachable or unreadable database, no ledger schema in it (``ledger init``
            creates one), or a schema older or newer than this code.
    """
    where = redact_url(str(engine.url))
    try:
        with engine.connect() as conn:
            has_table = engine.dialect.has_table(conn, "alembic_version")
            rows = (
                conn.exec_driver_sql("SELECT version_num FROM alembic_version").fetchall()
                if has_table
                else []
            )
    except (
        OperationalError,
        DBAPIError,
        UnicodeDecodeError,
        engine.dialect.loaded_dbapi.Error,
    ) as exc:
        raise ConfigError(f"cannot read database {where}: {_first_line(exc)}") from exc
    if not rows:
        raise ConfigError(f"database {where} holds no ledger: run `ledger init` to create one")
    revision = str(rows[0][0])
    head = SCHEMA_REVISIONS[-1]
    if revision == head:
        return revision
    if revision in SCHEMA_REVISIONS:
        raise ConfigError(
            f"database {where} has schema revision {revision}, older than this ledger's {head}: "
            "a read-only open never migrates; run `ledger init` on it (or on a copy) first"
        )
    raise ConfigError(
        f"database {where} has schema revision {revision}, newer than this ledger knows "
        f"(newest {head}): upgrade distill-ledger"
    )


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
