"""Ledger unavailable: async mode spools and replays with nothing lost; sync mode raises.

Real failures only: a second SQLite connection holding ``BEGIN EXCLUSIVE``, the database file
deleted, a PostgreSQL server that becomes unreachable (its TCP path is cut by closing a local
forwarder the ledger connects through).
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest

import ledger
from ledger.errors import RecordingError, StoreError
from ledger.recorder import Spool, flush, wrap
from ledger.testing.fake_provider import FakeProviderServer
from tests.recorder import storm
from tests.recorder.helpers import API_KEY, HOSTS, open_ledger

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def lg(tmp_path: Path) -> Iterator[ledger.Ledger]:
    lg = open_ledger(tmp_path, sqlite_busy_timeout=0.2)
    yield lg
    lg.close()


def _client(fake: FakeProviderServer, lg: ledger.Ledger, durability: str) -> openai.OpenAI:
    bare = openai.OpenAI(api_key=API_KEY, base_url=fake.openai_base_url, max_retries=0)
    return wrap(bare, ledger=lg, purpose="evaluate", durability=durability, hosts=HOSTS)  # type: ignore[arg-type]


def _call(client: openai.OpenAI) -> str:
    raw = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    raw.parse()
    return raw.headers["x-ledger-entry-id"]


def _ids(lg: ledger.Ledger) -> list[str]:
    return [e.body["id"] for e in lg.entries()]


def test_locked_sqlite_async_spools_then_replays(
    fake_provider: FakeProviderServer, lg: ledger.Ledger, tmp_path: Path
) -> None:
    client = _client(fake_provider, lg, "async")
    first = _call(client)
    flush()
    assert _ids(lg) == [first]

    blocker = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        during = [_call(client) for _ in range(3)]  # the caller is never blocked or failed
        flush()
        spool = Spool(tmp_path / "spool")
        assert spool.status().entries == 3
        assert sorted(b["id"] for b in spool.bodies()) == sorted(during)
    finally:
        blocker.rollback()
        blocker.close()
    assert _ids(lg) == [first]

    records = list(spool.records())
    result = spool.replay(lg)
    assert result.replayed == 3
    assert sorted(_ids(lg)) == sorted([first, *during])
    assert spool.status().entries == 0
    # The log holds the entries exactly as sealed when the calls were recorded.
    assert [lg.entry_by_id(r["body"]["id"]).entry for r in records] == records
    # Replaying again (or a body both committed and spooled) stores nothing twice.
    spool.write(records[0])
    assert spool.replay(lg).replayed == 1
    assert len(_ids(lg)) == 4
    client.close()


def test_locked_sqlite_sync_raises(
    fake_provider: FakeProviderServer, lg: ledger.Ledger, tmp_path: Path
) -> None:
    client = _client(fake_provider, lg, "sync")
    blocker = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(RecordingError, match="was not committed"):
            client.chat.completions.create(model="m", messages=MESSAGES)
    finally:
        blocker.rollback()
        blocker.close()
    assert lg.size == 0
    spool = Spool(tmp_path / "spool")
    assert spool.status().entries == 1  # the call happened: it is not forgotten
    assert spool.replay(lg).replayed == 1
    assert lg.size == 1
    _call(client)  # the lock is gone: sync recording works again
    assert lg.size == 2
    client.close()


def _delete_database(lg: ledger.Ledger, home: Path) -> None:
    # Connections already open could keep writing to the unlinked inode; the ledger notices
    # the file is gone before its next transaction.
    for file in home.glob("ledger.db*"):
        file.unlink()


def test_deleted_database(
    fake_provider: FakeProviderServer, lg: ledger.Ledger, tmp_path: Path
) -> None:
    async_client = _client(fake_provider, lg, "async")
    sync_client = _client(fake_provider, lg, "sync")
    _delete_database(lg, tmp_path)
    spooled = [_call(async_client) for _ in range(2)]
    flush()
    with pytest.raises(RecordingError):
        sync_client.chat.completions.create(model="m", messages=MESSAGES)
    spool = Spool(tmp_path / "spool")
    assert spool.status().entries == 3
    async_client.close()
    sync_client.close()
    lg.close()

    # A new database at the same home is a new ledger (a new install id): the spooled entries
    # were sealed for the lost one, so replay refuses them and keeps them in rejected.jsonl.
    restored = open_ledger(tmp_path)
    try:
        result = spool.replay(restored)
        assert (result.replayed, result.rejected) == (0, 3)
        assert all("sealed for ledger" in item.reason for item in result.set_aside)
        assert restored.size == 0
        assert len(spool.rejected_path.read_bytes().splitlines()) == 3
        assert set(spooled) < {
            json.loads(base64.b64decode(json.loads(line)["data_b64"]))["body"]["id"]
            for line in spool.rejected_path.read_bytes().splitlines()
        }
    finally:
        restored.close()


def _chattr(flag: str, path: Path) -> None:
    subprocess.run(["chattr", flag, str(path)], check=True, capture_output=True)


def test_read_only_sqlite_file_recovers_once_writable(
    fake_provider: FakeProviderServer, tmp_path: Path
) -> None:
    # As root a mode bit does not stop a write; an immutable file (chattr +i) does.
    first = open_ledger(tmp_path)
    first.append({"v": 1, "provider": "openai"})
    first.close()
    db = tmp_path / "ledger.db"
    try:
        _chattr("+i", db)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot make the database file immutable here: {exc}")
    try:
        lg = open_ledger(tmp_path)  # opens: nothing needs writing yet
        try:
            with pytest.raises(StoreError, match=r"ledger\.db is read-only"):
                lg.append({"v": 1, "provider": "openai"})
            client = _client(fake_provider, lg, "sync")
            with pytest.raises(RecordingError, match="is read-only"):
                client.chat.completions.create(model="m", messages=MESSAGES)
            _chattr("-i", db)
            lg.append({"v": 1, "provider": "openai"})  # no restart needed
            assert Spool(tmp_path / "spool").replay(lg).replayed == 1
            _call(client)
            assert lg.size == 4
            assert lg.verify().ok
            client.close()
        finally:
            lg.close()
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=False)


# --- PostgreSQL ------------------------------------------------------------------------------


@pytest.mark.postgres
def test_unreachable_postgres(fake_provider: FakeProviderServer, tmp_path: Path) -> None:
    base = os.environ.get("LEDGER_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("LEDGER_TEST_POSTGRES_URL is not set")
    import psycopg

    parts = urlsplit(base)
    schema = f"rec_{uuid.uuid4().hex[:12]}"
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    forwarder = storm.Forwarder(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = f"{parts.username}@127.0.0.1:{forwarder.port}"
    url = f"{parts.scheme}://{netloc}{parts.path}?options=-csearch_path%3D{schema}"
    lg = ledger.open(url, home=tmp_path)
    try:
        async_client = _client(fake_provider, lg, "async")
        sync_client = _client(fake_provider, lg, "sync")
        first = _call(async_client)
        flush()
        assert _ids(lg) == [first]

        forwarder.cut()
        during = [_call(async_client) for _ in range(2)]
        flush()
        with pytest.raises(RecordingError):
            sync_client.chat.completions.create(model="m", messages=MESSAGES)
        spool = Spool(tmp_path / "spool")
        assert spool.status().entries == 3

        forwarder.restore()
        assert spool.replay(lg).replayed == 3
        ids = _ids(lg)
        assert len(ids) == 4
        assert set(during) <= set(ids)
        async_client.close()
        sync_client.close()
    finally:
        lg.close()
        forwarder.close()
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


#: Outage length of the PostgreSQL outage test; ``bench/durability.py`` runs it with 20 s.
OUTAGE_SECONDS = float(os.environ.get("LEDGER_TEST_OUTAGE_SECONDS", "3"))


@pytest.mark.postgres
def test_postgres_outage_loses_and_duplicates_nothing(
    fake_provider: FakeProviderServer, tmp_path: Path
) -> None:
    base = os.environ.get("LEDGER_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("LEDGER_TEST_POSTGRES_URL is not set")
    schema = storm.new_postgres_schema(base)
    try:
        result = storm.postgres_outage(
            base, schema, tmp_path, fake_provider.openai_base_url, OUTAGE_SECONDS
        )
    finally:
        storm.drop_postgres_schema(base, schema)
    assert result.spooled > 0  # the outage was real: calls went on, their entries waited
    assert result.replayed == result.spooled
    assert result.lost == 0, storm.describe(result)
    assert result.duplicated == 0, storm.describe(result)
    assert len(result.stored) == len(result.returned)


# --- interpreter exit --------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import os, sys, openai, ledger
    from ledger.recorder import wrap
    home, base_url, key, lock = sys.argv[1:5]
    os.environ["LEDGER_SQLITE_BUSY_TIMEOUT"] = "0.2"
    lg = ledger.open(f"sqlite:///{home}/ledger.db", home=home)
    if lock == "1":
        import sqlite3
        blocker = sqlite3.connect(f"{home}/ledger.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
    client = wrap(openai.OpenAI(api_key=key, base_url=base_url, max_retries=0),
                  ledger=lg, purpose="evaluate")
    for _ in range(20):
        r = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "x"}])
        r.parse()
        print(r.headers["x-ledger-entry-id"])
    # no flush, no close: a normal exit must still commit or spool every entry
    """
)


@pytest.mark.parametrize("locked", [False, True], ids=["committed", "spooled"])
def test_normal_exit_flushes(
    fake_provider: FakeProviderServer, tmp_path: Path, locked: bool
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(tmp_path),
            fake_provider.openai_base_url,
            API_KEY,
            "1" if locked else "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    ids = done.stdout.split()
    assert len(ids) == 20
    lg = open_ledger(tmp_path)
    try:
        committed = set(_ids(lg))
        spooled = {b["id"] for b in Spool(tmp_path / "spool").bodies()}
        assert committed | spooled == set(ids)
        if locked:
            assert spooled == set(ids)
            assert Spool(tmp_path / "spool").replay(lg).replayed == 20
            assert set(_ids(lg)) == set(ids)
        else:
            assert committed == set(ids)
        assert API_KEY not in done.stderr
    finally:
        lg.close()
