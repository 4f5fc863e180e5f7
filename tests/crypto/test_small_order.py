"""Small-order Ed25519 keys are refused: they would accept forged signatures."""

from __future__ import annotations

import pytest

from ledger.crypto.keys import SigningKey, VerifyingKey
from ledger.crypto.note import NoteVerifier, verifier_key_string
from ledger.crypto.small_order import has_small_order
from ledger.errors import InputError

P = 2**255 - 19
D = (-121665 * pow(121666, -1, P)) % P

# The eight torsion points in their canonical encodings (orders 1, 2, 4, 4, 8, 8, 8, 8), and
# non-canonical encodings of some of them (y >= p, or a sign bit on x = 0).
TORSION = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
]
NON_CANONICAL = [
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p (0)
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p + 1 (1)
    "0100000000000000000000000000000000000000000000000000000000000080",  # x = 0, sign 1
]


def decode(raw: bytes) -> tuple[int, int]:
    """RFC 8032 5.1.3 point decoding (y reduced mod p), independent of the module under test."""
    value = int.from_bytes(raw, "little")
    sign, y = value >> 255, (value & ((1 << 255) - 1)) % P
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * pow(2, (P - 1) // 4, P) % P
    assert (x * x - x2) % P == 0, "not a point"
    return ((P - x) % P if x & 1 != sign else x), y


def double(x: int, y: int) -> tuple[int, int]:
    xx, yy = x * x % P, y * y % P
    t = D * xx % P * yy % P
    return 2 * x * y * pow(1 + t, P - 2, P) % P, (yy + xx) * pow(1 - t, P - 2, P) % P


def order_divides_8(raw: bytes) -> bool:
    x, y = decode(raw)
    for _ in range(3):
        x, y = double(x, y)
    return (x, y) == (0, 1)


@pytest.mark.parametrize("encoding", TORSION + NON_CANONICAL)
def test_every_torsion_point_is_detected(encoding: str) -> None:
    raw = bytes.fromhex(encoding)
    assert order_divides_8(raw)  # the list really is the torsion subgroup
    assert has_small_order(raw)


def test_real_keys_are_not_small_order() -> None:
    for _ in range(200):
        raw = SigningKey.generate().public_key.raw
        assert not order_divides_8(raw)
        assert not has_small_order(raw)


@pytest.mark.parametrize("encoding", TORSION)
def test_small_order_keys_are_refused_everywhere(encoding: str) -> None:
    raw = bytes.fromhex(encoding)
    with pytest.raises(InputError, match="small-order"):
        VerifyingKey.from_raw(raw)
    with pytest.raises(InputError, match="small-order"):
        NoteVerifier.from_string(verifier_key_string("example.com/log", raw))
