"""Entry preparation: ids, timestamps, the signed form and its leaf data."""

from __future__ import annotations

import base64
import json
import re
import uuid
from datetime import UTC, datetime

import pytest

from ledger.crypto.canonical import canonical_json
from ledger.crypto.keys import SigningKey
from ledger.crypto.merkle import leaf_hash
from ledger.entry_body import ENTRY_VERSION
from ledger.errors import InputError
from ledger.log.records import (
    Receipt,
    format_timestamp,
    parse_timestamp,
    prepare_entry,
    signed_entry_bytes,
    uuid7,
)


def test_uuid7_is_version_7_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(200)]
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    millis = [int(i.replace("-", "")[:12], 16) for i in ids]
    assert millis == sorted(millis)
    assert len(set(ids)) == 200


def test_timestamps_round_trip_in_utc() -> None:
    moment = datetime(2026, 11, 29, 20, 30, 52, 123456, tzinfo=UTC)
    text = format_timestamp(moment)
    assert text == "2026-11-29T20:30:52.123456Z"
    assert parse_timestamp(text) == moment
    assert parse_timestamp("2026-11-29T21:30:52.123456+01:00") == moment
    with pytest.raises(InputError):
        parse_timestamp("2026-11-29T20:30:52")
    with pytest.raises(InputError):
        format_timestamp(datetime(2026, 1, 1))


def test_prepare_fills_only_missing_fields_and_signs() -> None:
    key = SigningKey.generate()
    given = {"id": "abc", "recorded_at": "2026-01-02T03:04:05.000006Z", "v": 1, "x": "é"}
    prepared = prepare_entry(given, key)
    assert prepared.entry_id == "abc"
    signed = {"body": {**given, "recorder": key.key_id}, "key_id": key.key_id}
    signed["sig"] = base64.b64encode(key.sign(canonical_json(signed["body"]))).decode()
    assert prepared.data == canonical_json(signed)
    assert prepared.leaf_hash == leaf_hash(prepared.data)
    fresh = json.loads(prepare_entry({}, key).data)["body"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", fresh["recorded_at"])
    assert uuid.UUID(fresh["id"]).version == 7
    assert fresh["v"] == ENTRY_VERSION  # the one body format (ledger.entry_body)


@pytest.mark.parametrize("key_id", ["k", '\u2028"\\', "é" * 3])
def test_signed_entry_bytes_equal_canonical_json(key_id: str) -> None:
    body = {"b": [1, {"z": None}], "a": "\U0001f600"}
    expected = canonical_json({"body": body, "key_id": key_id, "sig": "c2ln/+=="})
    assert signed_entry_bytes(canonical_json(body), key_id, "c2ln/+==") == expected


@pytest.mark.parametrize("body", [[1, 2], "text", {"id": 5}, {"id": ""}, {"recorded_at": 7}])
def test_bad_bodies_are_input_errors(body: object) -> None:
    with pytest.raises(InputError):
        prepare_entry(body, SigningKey.generate())  # type: ignore[arg-type]


def test_receipt_round_trip() -> None:
    receipt = Receipt(3, "id-3", b"\x01" * 32)
    assert Receipt.from_dict(receipt.to_dict()) == receipt


@pytest.mark.parametrize("field", ["id", "dataset", "provider", "purpose"])
def test_nul_in_an_indexed_field_is_bad_input(field: str) -> None:
    """PostgreSQL text cannot store NUL; the body is refused before it reaches a database."""
    from ledger.crypto.keys import SigningKey
    from ledger.errors import InputError
    from ledger.log.records import prepare_entry

    with pytest.raises(InputError, match="NUL"):
        prepare_entry({"provider": "openai", field: "a\x00b"}, SigningKey.generate())
