"""Canonical bytes and digests: the exact bytes that get signed, hashed and matched.

Invariants:

- ``canonical_json(v)`` is byte-for-byte ``rfc8785.dumps(v)`` (RFC 8785, JSON Canonicalization
  Scheme) for every value ``rfc8785`` accepts; values it rejects raise ``InputError``. A fast path
  built on the standard library ``json`` encoder is used only for values whose output is provably
  identical (see ``_fast_path_ok``); everything else goes through ``rfc8785``.
- ``normalize_output`` is the single definition of "the same model output" used by the recorder
  and the manifest builder: Unicode NFC, CRLF to LF, outer white space stripped.
- Hex digests are lowercase.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata

import rfc8785

from ledger.errors import InputError

__all__ = [
    "canonical_json",
    "json_string",
    "normalize_output",
    "output_sha256",
    "sha256_hex",
]

# RFC 8785 3.2.2.3 serializes numbers as IEEE 754 doubles, so rfc8785 refuses integers outside
# the range a double holds exactly. The fast path must refuse the same ones.
_INT_MIN = -(2**53) + 1
_INT_MAX = 2**53 - 1
_BMP_MAX = "\uffff"
_FLOAT_PLAIN_MIN = 1e-4
_FLOAT_PLAIN_MAX = 1e16

_encoder = json.JSONEncoder(
    ensure_ascii=False,
    sort_keys=True,
    separators=(",", ":"),
    allow_nan=False,
    check_circular=False,
)


def _fast_path_ok(value: object) -> bool:
    """Whether the ``json`` encoder writes exactly the JCS bytes for ``value``.

    Why this is sufficient (each point compares CPython's ``json`` with RFC 8785 3.2):

    - Literals ``null``/``true``/``false`` and decimal integers in the double-safe range are
      written identically. Exact types only: ``bool``/``int``/``str`` subclasses (enums) take
      the slow path; floats only where ``repr`` equals JCS number formatting (see below).
    - Strings (RFC 8785 3.2.2.2): both escape exactly ``"``, ``\\``, ``\\b \\f \\n \\r \\t`` with
      their short forms and the other U+0000..U+001F as ``\\u00xx`` in lowercase hex, and write
      every other code point as itself (``ensure_ascii=False``). Lone surrogates make the final
      UTF-8 encode fail, and the caller then defers to ``rfc8785`` for its error.
    - Object keys (RFC 8785 3.2.3): JCS sorts by UTF-16 code units, ``sort_keys`` by code points.
      The two orders agree when no key has a character beyond U+FFFF, so such keys (and non-str
      keys) take the slow path.
    - Arrays are lists only (``rfc8785`` also takes tuples; they take the slow path).
    """
    # One iterative walk (no recursion, strings and literals settled inline): this check runs
    # for every entry the ledger signs, so it is kept to a few type comparisons per node.
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            for key, member in item.items():  # type: ignore[attr-defined]
                if type(key) is not str or (not key.isascii() and max(key) > _BMP_MAX):
                    return False
                member_kind = type(member)
                if member_kind is str or member is None or member_kind is bool:
                    continue
                stack.append(member)
        elif kind is list:
            stack.extend(item)  # type: ignore[arg-type]
        elif kind is str or item is None or kind is bool:
            continue
        elif kind is int:
            if not _INT_MIN <= item <= _INT_MAX:  # type: ignore[operator]
                return False
        elif kind is float:
            # RFC 8785 3.2.2.3 writes numbers as ECMAScript's Number::toString: the shortest
            # digits that round-trip, in plain notation for 1e-6 <= |x| < 1e21. CPython's float
            # repr picks the same shortest digits and uses plain notation for 1e-4 <= |x| < 1e16,
            # so inside that range the two agree, except that repr writes integral values as
            # "5.0" (JCS: "5"). Durations like 12.345 ms are the floats the ledger writes.
            number: float = item  # type: ignore[assignment]
            if not (_FLOAT_PLAIN_MIN <= abs(number) < _FLOAT_PLAIN_MAX) or number.is_integer():
                return False
        else:
            return False
    return True


def _fast_canonical_json(value: object) -> bytes | None:
    """The JCS bytes of ``value`` via the ``json`` encoder, or None when that would not be exact."""
    if not _fast_path_ok(value):
        return None
    try:
        return _encoder.encode(value).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate: not valid UTF-8, so not valid JCS; let rfc8785 produce the error.
        return None


def canonical_json(value: object) -> bytes:
    """Serialize ``value`` as RFC 8785 (JCS) canonical JSON.

    Args:
        value: JSON-compatible data: dict with str keys, list/tuple, str, int, float, bool, None.

    Returns:
        The canonical UTF-8 bytes.

    Raises:
        InputError: the value cannot be represented in JCS (NaN, an integer beyond 2**53 - 1,
            a non-str key, a lone surrogate, an unsupported type).

    Example:
        >>> canonical_json({"b": 1, "a": [True, None, "é"]})
        b'{"a":[true,null,"\\xc3\\xa9"],"b":1}'
    """
    fast = _fast_canonical_json(value)
    if fast is not None:
        return fast
    try:
        result: bytes = rfc8785.dumps(value)  # type: ignore[arg-type]  # rfc8785 checks types itself
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, TypeError, ValueError) as exc:
        raise InputError(f"value cannot be canonicalized as RFC 8785 JSON: {exc}") from exc
    return result


def json_string(text: str) -> bytes:
    """RFC 8785 bytes of one string; printable ASCII without quote or backslash is copied."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return b'"' + text.encode("ascii") + b'"'
    return canonical_json(text)


def normalize_output(text: str) -> str:
    """Normalize a model output for matching: NFC, ``\\r\\n`` -> ``\\n``, outer space stripped.

    Example:
        >>> normalize_output("  Cafe\\u0301\\r\\nbar \\n")
        'Café\\nbar'
    """
    return unicodedata.normalize("NFC", text).replace("\r\n", "\n").strip()


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def output_sha256(text: str) -> str:
    """Lowercase hex SHA-256 of the UTF-8 bytes of ``normalize_output(text)``."""
    return sha256_hex(normalize_output(text).encode("utf-8"))
