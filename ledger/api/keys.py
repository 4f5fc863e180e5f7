"""Registering the public keys of remote recorders, whose entries the service accepts.

Invariants:

* A remote recorder's key becomes a registered ``recorder`` key (so that
  :meth:`Ledger.append_sealed` and ``ledger verify`` accept its signatures) without ever
  becoming the ledger's *active* recorder key: the active key of a kind is its last row, so the
  remote key's row and a repeat of the active key's row are inserted in one write transaction.
  A ledger home therefore keeps opening for writing after a remote key was added.
* Rows are only added, never changed; registering a key that is already registered adds nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, insert, select
from sqlmodel import SQLModel

from ledger._ledger import Ledger
from ledger.crypto.keys import VerifyingKey
from ledger.errors import InputError, NotFoundError
from ledger.log import tables  # noqa: F401 - registers the tables on SQLModel.metadata
from ledger.log.schema import write_transaction
from ledger.log.store import KeyRecord

__all__ = ["find_recorder_key", "register_recorder_key"]

_KEYS = SQLModel.metadata.tables["keys"]


def find_recorder_key(lg: Ledger, key_id: str) -> KeyRecord:
    """The registered recorder key ``key_id`` (NotFoundError if it is not one)."""
    for record in lg.keys():
        if record.kind == "recorder" and record.key_id == key_id:
            return record
    raise NotFoundError(f"no recorder key {key_id[:16]} is registered")


def register_recorder_key(lg: Ledger, public_key: bytes, name: str) -> KeyRecord:
    """Register a remote recorder's Ed25519 public key (raw 32 bytes); return its record.

    Raises:
        InputError: not a valid Ed25519 public key, or an empty name.
        ReadOnlyError: ``lg`` was opened read-only.
    """
    key = VerifyingKey.from_raw(public_key)
    if not name.strip() or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InputError("a recorder key needs a name without control characters")
    active_id = lg.recorder_key.key_id  # raises ReadOnlyError on a read-only ledger
    try:
        return find_recorder_key(lg, key.key_id)
    except NotFoundError:
        pass
    engine = lg.store.engine
    with write_transaction(engine) as conn:
        rows = conn.execute(select(_KEYS).where(_KEYS.c.kind == "recorder").order_by(_KEYS.c.seq))
        recorder_rows = rows.all()
        active = recorder_rows[-1]
        if active.key_id != active_id:
            raise InputError("the ledger's active recorder key changed under this process")
        seq = int(conn.execute(select(func.max(_KEYS.c.seq))).scalar() or 0)
        now = datetime.now(UTC)
        conn.execute(
            insert(_KEYS),
            [
                {"seq": seq + 1, "kind": "recorder", "key_id": key.key_id,
                 "name": f"remote:{name.strip()}"[:256], "public_key": key.raw, "created_at": now},
                # The home's key again, last: it stays the active recorder key.
                {"seq": seq + 2, "kind": "recorder", "key_id": active.key_id,
                 "name": active.name, "public_key": bytes(active.public_key), "created_at": now},
            ],
        )  # fmt: skip
    return find_recorder_key(lg, key.key_id)
