"""Nothing is discarded while the process lives (issue 8, point 8).

Simulated for real: the ledger home (database and spool) or the spool alone sits on a small
tmpfs mounted by the test and filled to the last byte, so SQLite and the spool both get ENOSPC;
or the spool is a read-only bind mount. Both need root (mounts are local to the test's own
folder and undone at the end); elsewhere the tests skip.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from ledger.recorder import Httpx2RecordingTransport, Recorder, Spool
from ledger.testing.fake_provider import FakeProviderServer
from tests.recorder.helpers import API_KEY, HOSTS, open_ledger

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
REPO = Path(__file__).resolve().parents[2]


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A fresh tmpfs of ``size`` at ``path`` (skips the test when mounting is not allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte; return the filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def _client(fake: FakeProviderServer, recorder: Recorder) -> openai.OpenAI:
    http = openai.DefaultHttpxClient(transport=Httpx2RecordingTransport(recorder))
    return openai.OpenAI(
        api_key=API_KEY, base_url=fake.openai_base_url, http_client=http, max_retries=0
    )


def _call(client: openai.OpenAI) -> str:
    raw = client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    raw.parse()
    return raw.headers["x-ledger-entry-id"]


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "ledger.recorder" and r.levelno >= logging.ERROR
    ]


def test_full_disk_shared_by_database_and_spool(
    fake_provider: FakeProviderServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ledger.recorder")
    with tmpfs(tmp_path / "disk", "16m") as disk:
        lg = open_ledger(disk / "home", sqlite_busy_timeout=0.2)
        recorder = Recorder(lg, hosts=HOSTS)
        sink = recorder._async_sink
        sink.retry_first = sink.retry_max = 3600.0  # only the flushes below retry
        client = _client(fake_provider, recorder)
        try:
            before = [_call(client) for _ in range(3)]
            assert recorder.flush(timeout=30)
            filler = fill(disk)
            during = [_call(client) for _ in range(40)]
            assert not recorder.flush(timeout=0.5)  # neither committed nor spooled: held
            assert sink.held > 0
            assert len(_errors(caplog)) == 1  # one loud error for the episode, not per entry
            assert "neither committed nor spooled" in _errors(caplog)[0]

            filler.unlink()  # space again: the held entries go in, none is lost
            assert recorder.flush(timeout=30)
            assert sink.held == 0
            committed = {e.body["id"] for e in lg.entries()}
            spooled = {b["id"] for b in Spool(disk / "home" / "spool").bodies()}
            assert committed | spooled == {*before, *during}
            if spooled:
                Spool(disk / "home" / "spool").replay(lg)
            assert {e.body["id"] for e in lg.entries()} == {*before, *during}
            assert lg.size == 43  # no duplicate either
            assert lg.verify().ok
            assert any("recovered" in r.getMessage() for r in caplog.records)
        finally:
            client.close()
            lg.close()


def test_read_only_spool_and_locked_database(
    fake_provider: FakeProviderServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ledger.recorder")
    home = tmp_path / "home"
    lg = open_ledger(home, sqlite_busy_timeout=0.2)
    spool_dir = home / "spool"
    spool_dir.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    try:
        _mount("--bind", str(spool_dir), str(spool_dir))
        _mount("-o", "remount,bind,ro", str(spool_dir))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot bind-mount here: {exc}")
    recorder = Recorder(lg, hosts=HOSTS)
    sink = recorder._async_sink
    sink.retry_first = sink.retry_max = 3600.0
    sink.max_held = 5
    client = _client(fake_provider, recorder)
    blocker = sqlite3.connect(home / "ledger.db", isolation_level=None)
    mounted = True
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        ids = [_call(client) for _ in range(5)]
        assert not recorder.flush(timeout=0.5)
        assert sink.held == 5
        assert sink.saturated  # bounded memory: the next finished call waits for room
        assert not sink.wait_for_room(timeout=0)
        waiting: list[str] = []
        late = threading.Thread(target=lambda: waiting.append(_call(client)))
        late.start()

        blocker.rollback()  # the database comes back first: held entries are committed
        assert sink.retry_held()
        late.join(timeout=30)
        assert not late.is_alive()
        assert recorder.flush(timeout=30)
        assert {e.body["id"] for e in lg.entries()} == {*ids, *waiting}
        assert len(_errors(caplog)) == 1
        subprocess.run(["umount", str(spool_dir)], check=True)
        mounted = False
        assert Spool(spool_dir).status().entries == 0
    finally:
        blocker.close()
        if mounted:
            subprocess.run(["umount", "-l", str(spool_dir)], check=False)
        client.close()
        lg.close()


def test_retry_thread_saves_held_entries_by_itself(
    fake_provider: FakeProviderServer, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "disk", "16m") as disk:
        lg = open_ledger(disk / "home", sqlite_busy_timeout=0.2)
        recorder = Recorder(lg, hosts=HOSTS)
        sink = recorder._async_sink
        sink.retry_first, sink.retry_max = 0.01, 0.05
        client = _client(fake_provider, recorder)
        try:
            filler = fill(disk)
            ids = [_call(client) for _ in range(10)]
            assert not recorder.flush(timeout=0.2)
            filler.unlink()
            assert sink.wait_until_clear(timeout=30)  # no flush: the retry thread did it
            committed = {e.body["id"] for e in lg.entries()}
            spooled = {b["id"] for b in Spool(disk / "home" / "spool").bodies()}
            assert committed | spooled == set(ids)
        finally:
            client.close()
            lg.close()


_EXIT_CHILD = """
import sqlite3, sys, openai, ledger
from ledger.recorder import sinks, wrap
home, base_url = sys.argv[1:3]
sinks.EXIT_TIMEOUT = 1.0  # read when the exit flush is registered (first recorder)
lg = ledger.Ledger.from_settings(
    ledger.Settings(home=home, database_url=f"sqlite:///{home}/ledger.db", sqlite_busy_timeout=0.2)
)
blocker = sqlite3.connect(f"{home}/ledger.db", isolation_level=None)
blocker.execute("BEGIN EXCLUSIVE")  # held until the process is gone, exit handlers included
client = wrap(openai.OpenAI(api_key="sk-x", base_url=base_url, max_retries=0),
              ledger=lg, hosts={"127.0.0.1": "openai"})
for _ in range(3):
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
"""


def test_entries_nobody_could_take_are_reported_at_exit(
    fake_provider: FakeProviderServer, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    open_ledger(home).close()
    spool_dir = home / "spool"
    spool_dir.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    try:
        _mount("--bind", str(spool_dir), str(spool_dir))
        _mount("-o", "remount,bind,ro", str(spool_dir))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot bind-mount here: {exc}")
    try:
        done = subprocess.run(
            [sys.executable, "-c", _EXIT_CHILD, str(home), fake_provider.openai_base_url],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=False,
        )
    finally:
        subprocess.run(["umount", "-l", str(spool_dir)], check=False)
    assert done.returncode == 0, done.stderr
    # Held, retried until the exit deadline, then reported: never dropped in silence.
    assert "neither committed nor spooled" in done.stderr
    assert "3 ledger entries are lost at exit" in done.stderr
