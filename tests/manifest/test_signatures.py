"""Entry signatures checked in worker processes report the same first failure as inline."""

from __future__ import annotations

import pytest

from ledger.crypto.keys import SigningKey
from ledger.manifest import signatures


@pytest.mark.parametrize("workers", [1, 2])
def test_first_bad_signature_inline_and_in_workers(
    workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signatures, "INLINE_LIMIT", 10)
    monkeypatch.setattr(signatures, "_CHUNK", 7)
    key, other = SigningKey.generate(), SigningKey.generate()
    items = [(i, f"body {i}".encode(), key.key_id, key.sign(f"body {i}".encode()))
             for i in range(50)]  # fmt: skip
    keys = {key.key_id: key.public_key}
    assert signatures.first_bad_signature(items, keys, workers=workers) is None
    for bad in (41, 33):  # two bad ones in different chunks: the lowest is reported
        items[bad] = (bad, items[bad][1], key.key_id, other.sign(items[bad][1]))
    found = signatures.first_bad_signature(items, keys, workers=workers)
    assert found is not None
    assert found[0] == 33
    assert key.key_id in found[1]
