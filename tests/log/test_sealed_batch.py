"""Opening sealed batches: every signature checked (on all cores), one bad entry refuses all."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from ledger.crypto.keys import SigningKey
from ledger.errors import InputError, SignatureError
from ledger.log import verifier
from ledger.log.records import open_sealed, open_sealed_many, seal_entry

LEDGER = "ledger-under-test"


def _batch(key: SigningKey, n: int) -> list[dict[str, Any]]:
    return [seal_entry({"purpose": "evaluate", "i": i}, key, LEDGER) for i in range(n)]


def _flip(entry: dict[str, Any]) -> dict[str, Any]:
    signature = bytearray(base64.b64decode(entry["sig"]))
    signature[5] ^= 1
    return {**entry, "sig": base64.b64encode(bytes(signature)).decode()}


def test_a_batch_opens_exactly_as_one_at_a_time() -> None:
    key = SigningKey.generate()
    keys = {key.key_id: key.public_key}
    entries = _batch(key, 300)  # large enough for the thread pool
    many = open_sealed_many(entries, lambda _e: keys, LEDGER)
    assert many == [open_sealed(e, keys, LEDGER) for e in entries]


@pytest.mark.parametrize("position", [0, 137, 299])
def test_one_bad_signature_anywhere_refuses_the_batch(position: int) -> None:
    key = SigningKey.generate()
    keys = {key.key_id: key.public_key}
    entries = _batch(key, 300)
    entries[position] = _flip(entries[position])
    bad_id = entries[position]["body"]["id"]
    with pytest.raises(SignatureError, match=bad_id):
        open_sealed_many(entries, lambda _e: keys, LEDGER)


def test_a_changed_body_is_refused_even_with_its_old_signature() -> None:
    key = SigningKey.generate()
    keys = {key.key_id: key.public_key}
    entries = _batch(key, 64)
    entries[40] = {**entries[40], "body": {**entries[40]["body"], "purpose": "train"}}
    with pytest.raises(SignatureError, match="does not match"):
        open_sealed_many(entries, lambda _e: keys, LEDGER)


def test_the_first_bad_entry_in_batch_order_names_the_error() -> None:
    key = SigningKey.generate()
    keys = {key.key_id: key.public_key}
    entries: list[Any] = _batch(key, 100)
    entries[70] = _flip(entries[70])  # a bad signature after ...
    entries[20] = {"body": {}, "key_id": key.key_id}  # ... a malformed entry
    with pytest.raises(InputError, match="expected exactly body, key_id and sig"):
        open_sealed_many(entries, lambda _e: keys, LEDGER)
    stranger = SigningKey.generate()
    entries = _batch(key, 100)
    entries[10] = _flip(entries[10])
    entries[50] = seal_entry({"i": 50}, stranger, LEDGER)
    with pytest.raises(SignatureError, match=entries[10]["body"]["id"]):
        open_sealed_many(entries, lambda _e: keys, LEDGER)


def test_another_ledgers_entry_is_refused() -> None:
    key = SigningKey.generate()
    keys = {key.key_id: key.public_key}
    entries = [*_batch(key, 50), seal_entry({"i": 50}, key, "another-ledger")]
    with pytest.raises(SignatureError, match="sealed for ledger 'another-ledger'"):
        open_sealed_many(entries, lambda _e: keys, LEDGER)


def test_check_many_reports_each_position_in_order() -> None:
    key = SigningKey.generate()
    other = SigningKey.generate()
    messages = [f"message {i}".encode() for i in range(200)]
    items = [(key.public_key, key.sign(m), m) for m in messages]
    wrong = {3, 64, 128, 199}
    for i in wrong:
        items[i] = (key.public_key, other.sign(messages[i]), messages[i])
    expected = [i not in wrong for i in range(200)]
    assert verifier.check_many(items) == expected
    assert verifier.check_many(items, min_batch=10**9) == expected  # the one-thread path
    assert verifier.check_many([]) == []
