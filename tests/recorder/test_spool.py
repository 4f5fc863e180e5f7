"""The on-disk spool: sealed records, status, replay (idempotent), rotation, torn, forged and
unsigned lines."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ledger
from ledger.crypto.canonical import canonical_json
from ledger.crypto.merkle import leaf_hash
from ledger.errors import InputError
from ledger.log.records import seal_entry, signed_entry_bytes
from ledger.recorder import Spool, uuid7
from tests.recorder.helpers import open_ledger


@pytest.fixture
def lg(tmp_path: Path) -> Iterator[ledger.Ledger]:
    lg = open_ledger(tmp_path / "home")
    yield lg
    lg.close()


def _body(n: int) -> dict[str, Any]:
    return {"v": 1, "id": uuid7(), "provider": "openai", "operation": "chat", "n": n}


def test_write_status_replay(tmp_path: Path, lg: ledger.Ledger) -> None:
    spool = Spool(tmp_path / "spool")
    assert spool.status().entries == 0
    assert spool.replay(lg).replayed == 0
    sealed = [lg.seal(_body(n)) for n in range(5)]
    spool.write(sealed[0])
    spool.write_many(sealed[1:])
    status = spool.status()
    assert (status.entries, status.files, status.unsigned) == (5, 1, 0)
    assert status.bytes == spool.path.stat().st_size
    assert oct(spool.path.stat().st_mode & 0o777) == "0o600"
    assert [b["id"] for b in spool.bodies()] == [s["body"]["id"] for s in sealed]

    result = spool.replay(lg)
    assert (result.replayed, result.rejected, result.files) == (5, 0, 1)
    assert result.set_aside == ()
    assert [e.body["id"] for e in lg.entries()] == [s["body"]["id"] for s in sealed]
    assert [e.body["n"] for e in lg.entries()] == [0, 1, 2, 3, 4]
    assert spool.status().entries == 0
    assert list((tmp_path / "spool").glob("*.replay")) == []

    # Idempotent: the same records again add nothing.
    spool.write_many(sealed)
    assert spool.replay(lg).replayed == 5
    assert lg.size == 5


def test_log_keeps_the_record_time_signature(tmp_path: Path, lg: ledger.Ledger) -> None:
    spool = Spool(tmp_path / "spool")
    sealed = lg.seal(_body(1))
    assert sealed["body"]["ledger_id"] == lg.install_id
    assert sealed["key_id"] == lg.recorder_key_id
    spool.write(sealed)
    spool.replay(lg)
    stored = lg.entry(0)
    assert stored.entry == sealed  # the very signed entry, not one signed again at replay
    expected = signed_entry_bytes(canonical_json(sealed["body"]), sealed["key_id"], sealed["sig"])
    assert stored.leaf_hash == leaf_hash(expected)
    assert lg.verify().ok


def test_torn_line_never_swallows_the_next_record(tmp_path: Path, lg: ledger.Ledger) -> None:
    spool = Spool(tmp_path / "spool")
    first, second = lg.seal(_body(1)), lg.seal(_body(2))
    spool.write(first)
    torn = b'{"body": {"v": 1, "id": "torn'
    with spool.path.open("ab") as f:  # a crash (or a full disk) in the middle of a write
        f.write(torn)
    torn_start = spool.path.stat().st_size - len(torn)
    spool.write(second)  # acknowledged after the torn write: must start on a fresh line
    assert spool.status().entries == 2

    result = spool.replay(lg)
    assert (result.replayed, result.rejected) == (2, 1)
    assert [e.body["id"] for e in lg.entries()] == [first["body"]["id"], second["body"]["id"]]
    (aside,) = result.set_aside
    assert (aside.start, aside.end) == (torn_start, torn_start + len(torn))
    assert aside.file.endswith(".replay")
    assert "torn" in aside.reason
    assert aside.line == 2
    assert f"line 2 bytes {torn_start}-{torn_start + len(torn)}" in aside.describe()
    (rejected,) = [json.loads(line) for line in spool.rejected_path.read_bytes().splitlines()]
    assert base64.b64decode(rejected["data_b64"]) == torn
    assert (rejected["start"], rejected["end"]) == (aside.start, aside.end)
    assert spool.status().rejected == 1


def _forge(sealed: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**sealed, "body": {**sealed["body"], **changes}}


def test_forged_and_foreign_records_are_refused(tmp_path: Path, lg: ledger.Ledger) -> None:
    other = open_ledger(tmp_path / "other")
    try:
        foreign = other.seal({**_body(1), "purpose": "evaluate"})
        edited = _forge(foreign, purpose="train-model", request_model="gpt-5")
    finally:
        other.close()
    own = lg.seal({**_body(2), "purpose": "evaluate"})
    tampered = _forge(own, purpose="train-model")
    spool = Spool(tmp_path / "spool")
    spool.write_many([foreign, edited, tampered, own])

    result = spool.replay(lg)
    assert (result.replayed, result.rejected) == (1, 3)
    assert [e.body["id"] for e in lg.entries()] == [own["body"]["id"]]
    reasons = [item.reason for item in result.set_aside]
    assert sum("not a recorder key here" in r for r in reasons) == 2
    assert sum("does not match its body" in r for r in reasons) == 1
    assert lg.verify().ok


def test_record_bound_to_another_ledger_is_refused(tmp_path: Path, lg: ledger.Ledger) -> None:
    # Signed by this ledger's own recorder key, but naming another ledger in its body.
    with pytest.raises(InputError, match="already bound"):
        lg.seal({**_body(1), "ledger_id": "another-install"})
    stray = seal_entry(_body(1), lg.recorder_key, "another-install")
    spool = Spool(tmp_path / "spool")
    spool.write(stray)
    result = spool.replay(lg)
    assert (result.replayed, result.rejected) == (0, 1)
    assert "sealed for ledger 'another-install'" in result.set_aside[0].reason
    assert lg.size == 0


def test_unsigned_spool_from_before_sealing(tmp_path: Path, lg: ledger.Ledger) -> None:
    spool = Spool(tmp_path / "spool")
    plain = [_body(n) for n in range(2)]
    sealed = lg.seal(_body(9))
    spool.write_many([*plain, sealed])
    assert spool.status().unsigned == 2

    result = spool.replay(lg)  # refused by default: kept, neither replayed nor set aside
    assert (result.replayed, result.rejected, result.unsigned) == (1, 0, 2)
    assert len(result.kept) == 1
    assert result.kept[0].endswith(".unsigned.replay")
    assert [e.body["id"] for e in lg.entries()] == [sealed["body"]["id"]]
    assert spool.status().entries == 2
    again = spool.replay(lg)
    assert (again.replayed, again.unsigned, again.kept) == (0, 2, result.kept)

    accepted = spool.replay(lg, accept_unsigned=True)
    assert (accepted.replayed, accepted.unsigned, accepted.kept) == (2, 2, ())
    assert {e.body["id"] for e in lg.entries()} == {sealed["body"]["id"], *(b["id"] for b in plain)}
    assert spool.status().entries == 0


def test_leftover_replay_file_is_replayed_first(tmp_path: Path, lg: ledger.Ledger) -> None:
    # A replay that crashed after renaming leaves a *.replay file: the next replay finishes it.
    spool = Spool(tmp_path / "spool")
    old, new = lg.seal(_body(1)), lg.seal(_body(2))
    spool.write(old)
    spool.path.rename(spool.directory / f"{uuid7()}.replay")
    spool.write(new)
    assert spool.status().to_dict()["files"] == 2
    spool.replay(lg)
    assert [e.body["id"] for e in lg.entries()] == [old["body"]["id"], new["body"]["id"]]


def test_concurrent_writers_and_replay_lose_nothing(tmp_path: Path, lg: ledger.Ledger) -> None:
    spool = Spool(tmp_path / "spool")
    written: list[str] = []
    lock = threading.Lock()
    records = [lg.seal(_body(n)) for n in range(200)]

    def writer(part: list[dict[str, Any]]) -> None:
        for record in part:
            spool.write(record)
            with lock:
                written.append(str(record["body"]["id"]))

    threads = [threading.Thread(target=writer, args=(records[i::4],)) for i in range(4)]
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


def test_record_sealed_before_a_key_rotation_still_replays(
    tmp_path: Path, lg: ledger.Ledger
) -> None:
    spool = Spool(tmp_path / "spool")
    sealed = lg.seal(_body(1))
    spool.write(sealed)
    lg.rotate_key("recorder")
    assert lg.recorder_key_id != sealed["key_id"]
    assert spool.replay(lg).replayed == 1
    assert lg.entry(0).entry == sealed  # signed by the retired key, which still verifies
    assert lg.verify().ok
