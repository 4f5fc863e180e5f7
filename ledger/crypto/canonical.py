"""Canonical bytes and digests: the exact bytes that get signed, hashed and matched.

Invariants:

- ``canonical_json(v)`` is byte-for-byte ``rfc8785.dumps(v)`` (RFC 8785, JSON Canonicalization
  Scheme) for every value ``rfc8785`` accepts; values it rejects raise ``InputError``. A fast path
  built on ``orjson`` is used only for values whose output is provably identical (see
  ``_fast_path_ok``); everything else goes through ``rfc8785``.
- ``parse_json`` reads JSON in the data model RFC 8785 serializes (I-JSON: every number is a
  double), so ``canonical_json(parse_json(b)) == b`` holds for every canonical ``b``.
- ``normalize_output`` is the single definition of "the same model output" used by the recorder
  and the manifest builder: Unicode NFC, CRLF to LF, outer white space stripped.
- Hex digests are lowercase.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from typing import Any

import orjson
import rfc8785

from ledger.errors import InputError

__all__ = [
    "canonical_json",
    "fast_canonical_json_parsed",
    "json_string",
    "normalize_output",
    "output_sha256",
    "parse_json",
    "sha256_hex",
]

# RFC 8785 3.2.2.3 serializes numbers as IEEE 754 doubles, so rfc8785 refuses integers outside
# the range a double holds exactly. The fast path must refuse the same ones.
_INT_MIN = -(2**53) + 1
_INT_MAX = 2**53 - 1
_BMP_MAX = "\uffff"
_FLOAT_PLAIN_MIN = 1e-4
_FLOAT_PLAIN_MAX = 1e16

_SORTED = orjson.OPT_SORT_KEYS
_SORTED_STRICT = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER


def _fast_path_ok(value: object) -> bool:
    """Whether ``orjson`` writes exactly the JCS bytes for ``value``.

    Why this is sufficient (each point compares ``orjson.dumps(v, option=OPT_SORT_KEYS)`` with
    RFC 8785 3.2; the tests check every BMP character and samples of every other case):

    - Literals ``null``/``true``/``false`` and decimal integers in the double-safe range are
      written identically. Exact types only: ``bool``/``int``/``str`` subclasses (enums) take
      the slow path; floats only where both write the same digits (see below).
    - Strings (RFC 8785 3.2.2.2): both escape exactly ``"``, ``\\``, ``\\b \\f \\n \\r \\t`` with
      their short forms and the other U+0000..U+001F as ``\\u00xx`` in lowercase hex, and write
      every other code point as itself in UTF-8. ``orjson`` refuses lone surrogates, and the
      caller then defers to ``rfc8785`` for its error.
    - Object keys (RFC 8785 3.2.3): JCS sorts by UTF-16 code units, ``orjson`` by code points.
      The two orders agree when no key has a character beyond U+FFFF, so such keys (and non-str
      keys) take the slow path.
    - Arrays are lists only (``rfc8785`` also takes tuples; they take the slow path). Exact
      types also keep ``orjson``'s own extensions (dataclasses, datetimes, UUIDs) away from it.
    """
    # One iterative walk (no recursion, strings and literals settled inline): this check runs
    # for every entry the ledger signs or verifies, so it is kept to a few type comparisons per
    # node.
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
            # digits that round-trip, in plain notation for 1e-6 <= |x| < 1e21. orjson writes
            # the same shortest digits, in plain notation from 1e-5 up to (not including) 1e16,
            # and integral values as "5.0" (JCS: "5"). The range kept here is narrower still
            # (it is the one CPython's repr shares). Durations like 12.345 ms are the floats the
            # ledger writes.
            number: float = item  # type: ignore[assignment]
            if not (_FLOAT_PLAIN_MIN <= abs(number) < _FLOAT_PLAIN_MAX) or number.is_integer():
                return False
        else:
            return False
    return True


def _fast_canonical_json(value: object) -> bytes | None:
    """The JCS bytes of ``value`` via ``orjson``, or None when that would not be exact."""
    if not _fast_path_ok(value):
        return None
    try:
        return orjson.dumps(value, option=_SORTED)
    except orjson.JSONEncodeError:
        # A lone surrogate (not valid UTF-8, so not valid JCS) or nesting deeper than orjson
        # goes: rfc8785 decides.
        return None


def _floats_in_plain_range(value: object) -> bool:
    """Whether every float in ``value`` lies in the range ``_fast_path_ok`` accepts."""
    stack: list[object] = [[value]]  # containers only: the loop looks at their members
    while stack:
        item = stack.pop()
        for member in item.values() if type(item) is dict else item:  # type: ignore[attr-defined]
            kind = type(member)
            if kind is float:
                if not (_FLOAT_PLAIN_MIN <= abs(member) < _FLOAT_PLAIN_MAX) or member.is_integer():
                    return False
            elif kind is dict or kind is list:
                stack.append(member)
    return True


def fast_canonical_json_parsed(value: object, source: bytes) -> bytes | None:
    """The JCS bytes of ``value``, parsed by ``orjson.loads`` from (part of) ``source``, or None.

    Verification parses every entry and re-encodes it, so this is ``_fast_canonical_json``
    narrowed to what ``orjson.loads`` can return: exact built-in types only, so when ``source``
    is ASCII without ``\\u`` escapes (every string ASCII, no key beyond U+FFFF) only the floats
    need a look; ``OPT_STRICT_INTEGER`` refuses exactly the integers outside the double-safe
    range, as ``_fast_path_ok`` does. None means the fast path is unsure, not that ``value``
    has no JCS form.
    """
    if not source.isascii() or b"\\u" in source:
        return _fast_canonical_json(value)
    if not _floats_in_plain_range(value):
        return None
    try:
        return orjson.dumps(value, option=_SORTED_STRICT)
    except orjson.JSONEncodeError:
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


def _number(text: str) -> int | float:
    value = int(text)
    return value if _INT_MIN <= value <= _INT_MAX else float(text)


def parse_json(data: bytes | str) -> Any:
    """Parse JSON the way RFC 8785 reads numbers: as doubles, so big integers become floats.

    JCS writes the double 1e16 as ``10000000000000000``; a plain ``json.loads`` reads that back
    as an integer beyond 2**53 - 1, which has no JCS form. Integers in the double-safe range stay
    ``int``. Raises ``ValueError`` (``json.JSONDecodeError``) or ``UnicodeDecodeError`` for text
    that is not JSON.

    Example:
        >>> parse_json(b'{"n":10000000000000000,"k":3}')
        {'n': 1e+16, 'k': 3}
    """
    return json.loads(data, parse_int=_number)


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
