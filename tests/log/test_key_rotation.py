"""Key rotation is two-phase: the home never names a key the database does not.

The new key is prepared beside the active one, registered in the database, then installed.
A registration that fails, or a process that dies between the two steps, is settled at the
next open for writing by what the database says.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import ledger
from ledger.errors import StoreError
from tests.recorder.helpers import open_ledger

BODY = {"provider": "openai", "request": {"model": "gpt-4o"}, "purpose": "evaluation"}


def _active(lg: ledger.Ledger, kind: str) -> str:
    return [k for k in lg.store.keys() if k.kind == kind][-1].key_id


def _home_key_id(home: Path, kind: str) -> str:
    from ledger.crypto.keys import SigningKey

    return SigningKey.load(home / "keys" / f"{kind}.pem").key_id


@pytest.mark.parametrize("kind", ["recorder", "log"])
def test_failed_registration_keeps_the_home_on_the_database_key(tmp_path: Path, kind: str) -> None:
    home = tmp_path / "home"
    lg = open_ledger(home)
    lg.append(BODY)
    before = _home_key_id(home, kind)
    # A real database refusal, not a mock: a trigger that aborts any new key row.
    with sqlite3.connect(home / "ledger.db") as conn:
        conn.execute(
            "CREATE TRIGGER refuse_keys BEFORE INSERT ON keys BEGIN "
            "SELECT RAISE(ABORT, 'no new keys'); END"
        )
    with pytest.raises(StoreError):
        lg.rotate_key(kind)
    lg.close()
    assert _home_key_id(home, kind) == before
    with sqlite3.connect(home / "ledger.db") as conn:
        conn.execute("DROP TRIGGER refuse_keys")
    # The next open drops the prepared key the database never took, and writes as before.
    lg = open_ledger(home)
    try:
        assert not (home / "keys" / f"{kind}.pem.next").exists()
        assert _active(lg, kind) == before
        lg.append(BODY)
        assert lg.verify().ok
    finally:
        lg.close()


@pytest.mark.parametrize("kind", ["recorder", "log"])
def test_rotation_cut_after_registering_is_finished_at_the_next_open(
    tmp_path: Path, kind: str
) -> None:
    home = tmp_path / "home"
    lg = open_ledger(home)
    lg.append(BODY)
    old = _home_key_id(home, kind)
    # What rotate_key does up to a crash between its two steps.
    keyring = lg._keys()
    new = keyring.prepare_rotation(kind)
    name = lg.origin if kind == "log" else "recorder"
    lg.store.register_key(kind, new.key_id, name, new.public_key.raw)
    lg.close()
    assert _home_key_id(home, kind) == old  # the home still names the old key

    lg = open_ledger(home)  # without settling, this open would refuse the home
    try:
        assert _home_key_id(home, kind) == new.key_id == _active(lg, kind)
        assert (home / "keys" / "retired" / f"{kind}-{old[:16]}.pem").exists()
        assert not (home / "keys" / f"{kind}.pem.next").exists()
        lg.append(BODY)
        lg.checkpoint()
        assert lg.verify().ok
    finally:
        lg.close()


def test_rotation_installs_the_registered_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with open_ledger(home) as lg:
        lg.append(BODY)
        record = lg.rotate_key("recorder")
        assert record.key_id == _home_key_id(home, "recorder") == _active(lg, "recorder")
        lg.append(BODY)
        assert lg.verify().ok
