"""Fixtures shared by every test: database backends and ledgers on them.

PostgreSQL tests read ``LEDGER_TEST_POSTGRES_URL``. When it is unset they skip with that reason;
when it is set (``.ci/run`` sets it) an unreachable server is an error, never a skip. Each test
gets a schema of its own, dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from ledger._ledger import Ledger
from ledger.settings import Settings

POSTGRES_ENV = "LEDGER_TEST_POSTGRES_URL"


@pytest.fixture(autouse=True)
def _clean_ledger_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's LEDGER_* settings (a set LEDGER_DATABASE_URL would make the
    suite write into that database); LEDGER_TEST_* variables configure the suite itself."""
    for name in list(os.environ):
        if name.startswith("LEDGER_") and not name.startswith("LEDGER_TEST_"):
            monkeypatch.delenv(name)


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _postgres_base_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set: PostgreSQL tests need a server")
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a fresh, empty schema on the test PostgreSQL server."""
    with fresh_postgres_schema() as url:
        yield url


@contextlib.contextmanager
def fresh_postgres_schema() -> Iterator[str]:
    """A fresh schema on the test server (skip without one), dropped afterwards: its URL."""
    base = _postgres_base_url()
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL at {POSTGRES_ENV} is unreachable: {exc}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL per backend: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


LedgerFactory = Callable[..., Ledger]


@pytest.fixture
def make_ledger(database_url: str, tmp_path: Path) -> Iterator[LedgerFactory]:
    """Open ledgers on the backend under test (home in tmp_path); all closed at teardown."""
    opened: list[Ledger] = []

    def factory(**overrides: object) -> Ledger:
        fields: dict[str, object] = {
            "home": tmp_path / "home",
            "database_url": database_url,
            "checkpoint_every": 0,
            "checkpoint_interval": 0,
            **overrides,
        }
        lg = Ledger.from_settings(Settings(**fields))  # type: ignore[arg-type]
        opened.append(lg)
        return lg

    yield factory
    for lg in opened:
        lg.close()


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A ledger on a SQLite file under tmp_path, no automatic checkpoints."""
    settings = Settings(home=tmp_path / "home", checkpoint_every=0, checkpoint_interval=0)
    lg = Ledger.from_settings(settings)
    yield lg
    lg.close()
