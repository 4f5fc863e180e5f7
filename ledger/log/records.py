"""Value objects of the log and the one function that turns a body into a signed leaf.

Invariants:

* A signed entry is ``{"body": body, "key_id": <recorder key id>, "sig": base64(Ed25519(
  canonical_json(body)))}`` and its leaf data is ``canonical_json`` of that whole object.
* :func:`prepare_entry` fills ``v``, ``id`` (UUIDv7), ``recorded_at`` (UTC, microseconds) and
  ``recorder`` only when the caller did not give them, and never changes a given value.
* A sealed entry (:func:`seal_entry`) is a signed entry made before the ledger could store it
  (the recorder's spool). Its body names the ledger it is for in ``ledger_id`` (the install id),
  inside the signature. :func:`open_sealed` accepts it only if it is signed by one of the given
  recorder keys and names the given ledger, and then stores exactly those signed bytes, so the
  log keeps the record-time signature.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger.crypto.canonical import canonical_json, json_string
from ledger.crypto.keys import SigningKey, VerifyingKey
from ledger.crypto.merkle import leaf_hash
from ledger.entry_body import ENTRY_VERSION as _ENTRY_VERSION
from ledger.errors import InputError, LedgerError, SignatureError
from ledger.log.ids import uuid7
from ledger.log.signing import BatchSigner
from ledger.log.verifier import check_many

__all__ = [
    "ENTRY_VERSION",
    "INDEXED_COLUMNS",
    "SEAL_FIELD",
    "PreparedEntry",
    "Receipt",
    "StoredEntry",
    "format_timestamp",
    "indexed_values",
    "open_sealed",
    "open_sealed_many",
    "parse_timestamp",
    "prepare_entries",
    "prepare_entry",
    "seal_entry",
    "signed_entry_bytes",
    "uuid7",
]

# One definition of the body format (ledger.entry_body); the log fills it into a body without one.
ENTRY_VERSION = _ENTRY_VERSION
#: Body field of a sealed entry naming the ledger (install id) it was signed for.
SEAL_FIELD = "ledger_id"


def format_timestamp(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC."""
    if moment.tzinfo is None:
        raise InputError("timestamps must be timezone-aware")
    # isoformat (C, no format parsing) is several times faster than strftime on this path.
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_timestamp(value: str) -> datetime:
    """Parse an ISO-8601 timestamp with a zone (``Z`` allowed) into an aware UTC datetime."""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"not an ISO-8601 timestamp: {value!r}") from exc
    if moment.tzinfo is None:
        raise InputError(f"timestamp {value!r} has no time zone")
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof of acceptance: where an entry sits in the log."""

    leaf_index: int
    entry_id: str
    leaf_hash: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "leaf_index": self.leaf_index,
            "entry_id": self.entry_id,
            "leaf_hash": self.leaf_hash.hex(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Receipt:
        return cls(int(data["leaf_index"]), str(data["entry_id"]), bytes.fromhex(data["leaf_hash"]))


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One leaf as stored: its index, the signed entry and the leaf hash."""

    leaf_index: int
    entry: dict[str, Any]
    leaf_hash: bytes

    @property
    def body(self) -> dict[str, Any]:
        """The signed body (the provenance facts)."""
        body: dict[str, Any] = self.entry["body"]
        return body

    @property
    def entry_id(self) -> str:
        return str(self.body["id"])

    def to_dict(self) -> dict[str, Any]:
        return {"leaf_index": self.leaf_index, **self.entry}


@dataclass(frozen=True, slots=True)
class PreparedEntry:
    """A signed entry ready to insert: leaf data, its hash and the indexed columns."""

    entry_id: str
    data: bytes
    leaf_hash: bytes
    key_id: str
    recorded_at: datetime
    columns: tuple[str | None, ...]  # values of INDEXED_COLUMNS
    body: Mapping[str, Any]  # the completed body that was signed


# Body fields copied into indexed columns of the entries table, in column order.
INDEXED_COLUMNS = ("provider", "request_model", "dataset", "purpose", "account")


def prepare_entry(body: Mapping[str, Any], signer: SigningKey) -> PreparedEntry:
    """Complete ``body`` with the ledger's fields, sign it and compute its leaf.

    Raises:
        InputError: the body is not a JSON object, or a field the ledger reads is malformed.
    """
    full, recorded, body_bytes = _complete(body, signer.key_id)
    return _finish(full, recorded, body_bytes, signer.key_id, signer.sign(body_bytes))


def prepare_entries(
    bodies: Sequence[Mapping[str, Any]], signer: BatchSigner
) -> list[PreparedEntry | LedgerError]:
    """:func:`prepare_entry` for a batch, signing all of it in one go (on two cores).

    A body that cannot be prepared yields its error in its place; the others are unaffected.
    """
    results: list[PreparedEntry | LedgerError] = []
    staged: list[tuple[int, dict[str, Any], datetime, bytes]] = []
    for position, body in enumerate(bodies):
        try:
            full, recorded, body_bytes = _complete(body, signer.key_id)
        except LedgerError as exc:
            results.append(exc)
            continue
        results.append(_PENDING)
        staged.append((position, full, recorded, body_bytes))
    signatures = signer.sign_many([item[3] for item in staged])
    for (position, full, recorded, body_bytes), signature in zip(staged, signatures, strict=True):
        results[position] = _finish(full, recorded, body_bytes, signer.key_id, signature)
    return results


_PENDING = InputError("not prepared yet")  # a slot filled once the batch is signed


def _complete(body: Mapping[str, Any], key_id: str) -> tuple[dict[str, Any], datetime, bytes]:
    if not isinstance(body, Mapping):
        raise InputError(f"an entry body must be a JSON object, not {type(body).__name__}")
    full = dict(body)
    full.setdefault("v", ENTRY_VERSION)
    full.setdefault("id", uuid7())
    if "recorded_at" not in full:
        recorded = datetime.now(UTC)
        full["recorded_at"] = format_timestamp(recorded)
    elif isinstance(full["recorded_at"], str):
        recorded = parse_timestamp(full["recorded_at"])
    else:
        raise InputError("recorded_at must be an ISO-8601 string")
    full.setdefault("recorder", key_id)
    entry_id = full["id"]
    if not isinstance(entry_id, str) or not 0 < len(entry_id) <= 64:
        raise InputError("an entry id must be a non-empty string of at most 64 characters")
    # PostgreSQL text cannot hold NUL: refuse it as input here rather than fail in the store.
    if "\x00" in entry_id or any("\x00" in (v or "") for v in indexed_values(full)):
        raise InputError("an entry id or indexed field (provider, dataset, ...) contains NUL")
    return full, recorded, canonical_json(full)


def _finish(
    full: dict[str, Any], recorded: datetime, body_bytes: bytes, key_id: str, signature: bytes
) -> PreparedEntry:
    sig = base64.b64encode(signature).decode("ascii")
    data = signed_entry_bytes(body_bytes, key_id, sig)
    columns = tuple(_column(full.get(name)) for name in INDEXED_COLUMNS)
    return PreparedEntry(full["id"], data, leaf_hash(data), key_id, recorded, columns, full)


def signed_entry_bytes(body_bytes: bytes, key_id: str, sig: str) -> bytes:
    """RFC 8785 bytes of ``{"body": ..., "key_id": key_id, "sig": sig}`` from the body's bytes.

    RFC 8785 sorts "body" < "key_id" < "sig" and writes a member value exactly as it would
    stand alone, so the leaf data can reuse the body's canonical bytes instead of encoding the
    body twice (a test checks this equals ``canonical_json`` of the whole object).
    """
    return b"".join(
        (
            b'{"body":',
            body_bytes,
            b',"key_id":',
            json_string(key_id),
            b',"sig":',
            json_string(sig),
            b"}",
        )
    )


def indexed_values(body: Mapping[str, Any]) -> tuple[str | None, ...]:
    """The :data:`INDEXED_COLUMNS` values of a body: what append stores, what verify expects."""
    return tuple(_column(body.get(name)) for name in INDEXED_COLUMNS)


def _column(value: object) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text[:256]


def seal_entry(body: Mapping[str, Any], signer: SigningKey, ledger_id: str) -> dict[str, Any]:
    """Complete ``body``, bind it to ledger ``ledger_id`` and sign it now, for later storage.

    Returns the signed entry ``{"body", "key_id", "sig"}`` (JSON-ready); :func:`open_sealed`
    turns it into the leaf that the ledger stores.

    Raises:
        InputError: as :func:`prepare_entry`, or the body names another ledger.
    """
    if isinstance(body, Mapping) and body.get(SEAL_FIELD, ledger_id) != ledger_id:
        raise InputError(f"the body is already bound to ledger {body.get(SEAL_FIELD)!r}")
    full, _, body_bytes = _complete({**body, SEAL_FIELD: ledger_id}, signer.key_id)
    sig = base64.b64encode(signer.sign(body_bytes)).decode("ascii")
    return {"body": full, "key_id": signer.key_id, "sig": sig}


def open_sealed(
    entry: Mapping[str, Any], recorder_keys: Mapping[str, VerifyingKey], ledger_id: str
) -> PreparedEntry:
    """Check a sealed entry and prepare exactly its signed bytes for storage.

    Raises:
        InputError: not a signed entry, or its body is malformed (an unsigned spool line from
            before sealing, for example).
        SignatureError: signed by a key that is not one of ``recorder_keys``, a signature that
            does not match the body, or a body bound to another ledger (or to none).
    """
    staged = _stage_sealed(entry, recorder_keys)
    return _open_staged(staged, staged.key.is_valid(staged.signature, staged.body_bytes), ledger_id)


def open_sealed_many(
    entries: Sequence[Mapping[str, Any]],
    recorder_keys: Callable[[Mapping[str, Any]], Mapping[str, VerifyingKey]],
    ledger_id: str,
) -> list[PreparedEntry]:
    """:func:`open_sealed` for a batch, the signatures checked on all cores at once.

    ``recorder_keys(entry)`` gives the keys an entry may be signed by (a caller can look an
    unknown key id up again). Every entry is checked before this returns; the first bad one,
    in batch order, raises exactly what :func:`open_sealed` would raise for it, so a bad
    signature anywhere refuses the whole batch.
    """
    staged: list[_Staged | LedgerError] = []
    for entry in entries:
        try:
            staged.append(_stage_sealed(entry, recorder_keys(entry)))
        except LedgerError as exc:
            staged.append(exc)
    ready = [s for s in staged if isinstance(s, _Staged)]
    valid = iter(check_many([(s.key, s.signature, s.body_bytes) for s in ready]))
    prepared = []
    for item in staged:
        if isinstance(item, LedgerError):
            raise item
        prepared.append(_open_staged(item, next(valid), ledger_id))
    return prepared


@dataclass(frozen=True, slots=True)
class _Staged:
    """A sealed entry that passed every check but its signature and its ledger binding."""

    full: dict[str, Any]
    recorded: datetime
    body_bytes: bytes
    key_id: str
    key: VerifyingKey
    sig: str
    signature: bytes


def _stage_sealed(entry: Mapping[str, Any], recorder_keys: Mapping[str, VerifyingKey]) -> _Staged:
    if not isinstance(entry, Mapping) or set(entry) != {"body", "key_id", "sig"}:
        raise InputError("not a signed entry: expected exactly body, key_id and sig")
    body, key_id, sig = entry["body"], entry["key_id"], entry["sig"]
    if not isinstance(body, Mapping) or not isinstance(key_id, str) or not isinstance(sig, str):
        raise InputError("a signed entry needs an object body and string key_id and sig")
    key = recorder_keys.get(key_id)
    if key is None:
        raise SignatureError(f"signed by key {key_id[:16]}, which is not a recorder key here")
    try:
        signature = base64.b64decode(sig, validate=True)
    except ValueError as exc:
        raise SignatureError("the signature is not base64") from exc
    full, recorded, body_bytes = _complete(body, key_id)
    if full != body:
        raise InputError("a sealed body must already carry v, id, recorded_at and recorder")
    return _Staged(full, recorded, body_bytes, key_id, key, sig, signature)


def _open_staged(staged: _Staged, valid: bool, ledger_id: str) -> PreparedEntry:
    full = staged.full
    if not valid:
        raise SignatureError(f"the signature of entry {full['id']} does not match its body")
    bound = full.get(SEAL_FIELD)
    if bound != ledger_id:
        raise SignatureError(
            f"entry {full['id']} was sealed for ledger {bound!r}, not this one ({ledger_id})"
        )
    # The stored bytes reuse the sealed ``sig`` text as it is, not a re-encoding of it.
    data = signed_entry_bytes(staged.body_bytes, staged.key_id, staged.sig)
    columns = tuple(_column(full.get(name)) for name in INDEXED_COLUMNS)
    return PreparedEntry(
        full["id"], data, leaf_hash(data), staged.key_id, staged.recorded, columns, full
    )
