"""The on-disk spool: append, status, replay (idempotent), rotation, torn and rejected lines."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import ledger
from ledger.recorder import Spool, uuid7
from tests.recorder.helpers import open_ledger


@pytest.fixture
def lg(tmp_path: Path) -> Iterator[ledger.Ledger]:
    lg = open_ledger(tmp_path / "home")
    yield lg
    lg.close()


def _body(n: int) -> dict[str, object]:
    return {"v": 1, "id": uuid7(), "provider": "openai", "operation": "chat", "n": n}


def test_write_status_replay(tmp_path: Path, lg: ledger.Ledger) -> None:
    spool = Spool(tmp_path / "spool")
    assert spool.status().entries == 0
    assert spool.replay(lg).replayed == 0
    bodies = [_body(n) for n in range(5)]
    spool.write(bodies[0])
    spool.write_many(bodies[1:])
    status = spool.status()
    assert (status.entries, status.files) == (5, 1)
    assert status.bytes == spool.path.stat().st_size
    assert oct(spool.path.stat().st_mode & 0o777) == "0o600"
    assert [b["id"] for b in spool.bodies()] == [b["id"] for b in bodies]

    result = spool.replay(lg)
    assert result.to_dict() == {"replayed": 5, "rejected": 0, "files": 1}
    assert [e.body["id"] for e in lg.entries()] == [b["id"] for b in bodies]
    assert [e.body["n"] for e in lg.entries()] == [0, 1, 2, 3, 4]
    assert spool.status().entries == 0
    assert list((tmp_path / "spool").glob("*.replay")) == []

    # Idempotent: the same bodies again add nothing.
    spool.write_many(bodies)
    assert spool.replay(lg).replayed == 5
    assert lg.size == 5


def test_torn_line_and_rejected_body_are_set_aside(tmp_path: Path, lg: ledger.Ledger) -> None:
    spool = Spool(tmp_path / "spool")
    good = _body(1)
    spool.write(good)
    with spool.path.open("ab") as f:  # a crash in the middle of a write, never acknowledged
        f.write(b'{"v": 1, "id": "torn')
    assert spool.status().entries == 1
    result = spool.replay(lg)
    assert (result.replayed, result.rejected) == (1, 1)
    assert spool.status().rejected == 1
    assert lg.size == 1


def test_leftover_replay_file_is_replayed_first(tmp_path: Path, lg: ledger.Ledger) -> None:
    # A replay that crashed after renaming leaves a *.replay file: the next replay finishes it.
    spool = Spool(tmp_path / "spool")
    old, new = _body(1), _body(2)
    spool.write(old)
    spool.path.rename(spool.directory / f"{uuid7()}.replay")
    spool.write(new)
    assert spool.status().to_dict()["files"] == 2
    spool.replay(lg)
    assert [e.body["id"] for e in lg.entries()] == [old["id"], new["id"]]


def test_concurrent_writers_and_replay_lose_nothing(tmp_path: Path, lg: ledger.Ledger) -> None:
    spool = Spool(tmp_path / "spool")
    written: list[str] = []
    lock = threading.Lock()

    def writer() -> None:
        for n in range(50):
            body = _body(n)
            spool.write(body)
            with lock:
                written.append(str(body["id"]))

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    replayed = 0
    while any(t.is_alive() for t in threads):
        replayed += spool.replay(lg).replayed
    for t in threads:
        t.join()
    replayed += spool.replay(lg).replayed
    assert replayed == 200
    assert sorted(e.body["id"] for e in lg.entries()) == sorted(written)
    for line in spool.path.read_bytes().splitlines() if spool.path.exists() else []:
        json.loads(line)
