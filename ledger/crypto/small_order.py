"""Detecting Ed25519 public keys of small order (the torsion points of edwards25519).

A public key A with [8]A = identity "verifies" signatures nobody made: with R = identity and
S = 0 the verification equation [S]B = R + [k]A holds for every message under the cofactored
check (and for many under the cofactorless one), and OpenSSL and browsers accept such keys. A
log or recorder key must therefore never be one.

The eight torsion points have y in {1, -1, 0, Y8, -Y8} (mod p): the identity, the point of
order 2, the two of order 4 and the four of order 8 (``tests/crypto/test_small_order.py``
derives each by doubling on the curve). An encoding is refused when its y, reduced mod p as a
lenient decoder reduces it, is one of them, whatever its sign bit: non-canonical encodings of
the same points are caught too.
"""

from __future__ import annotations

__all__ = ["has_small_order"]

_P = 2**255 - 19
# y of the points of order 8 (RFC 8032 encoding, little-endian, sign bit clear).
_Y8 = int.from_bytes(
    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"), "little"
)
_SMALL_ORDER_Y = frozenset({0, 1, _P - 1, _Y8, _P - _Y8})


def has_small_order(raw: bytes) -> bool:
    """Whether the 32-byte encoding ``raw`` names a point P with [8]P = identity."""
    y = (int.from_bytes(raw, "little") & ((1 << 255) - 1)) % _P
    return y in _SMALL_ORDER_Y
