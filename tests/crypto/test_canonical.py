"""Canonical JSON (RFC 8785), output normalization and digests."""

from __future__ import annotations

import hashlib
import json
import math
from enum import StrEnum
from types import ModuleType
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.crypto.canonical import (
    _fast_canonical_json,
    canonical_json,
    fast_canonical_json_parsed,
    json_string,
    normalize_output,
    output_sha256,
    parse_json,
    sha256_hex,
)
from ledger.errors import InputError

# Strings biased towards the characters where encoders disagree: controls, quotes, backslash,
# DEL, line separators, BMP characters above the surrogates, and non-BMP characters.
_TRICKY = st.sampled_from(
    ["\x00", "\x1f", "\x7f", '"', "\\", "/", "\b", "\f", "\n", "\r", "\t", "\u2028", "\ufeff",
     "\ue000", "\uffff", "\U0001f600", "\U00010000", "é", "e\u0301", "a"]
)  # fmt: skip
_TEXT = st.one_of(st.text(), st.lists(_TRICKY, max_size=6).map("".join))
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
)
JSON_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(_TEXT, children, max_size=5),
    ),
    max_leaves=30,
)


def _rfc8785_or_none(value: Any) -> bytes | None:
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        return None


@settings(max_examples=500, deadline=None)
@given(JSON_VALUES)
def test_fast_path_is_identical_to_rfc8785(value: Any) -> None:
    expected = _rfc8785_or_none(value)
    fast = _fast_canonical_json(value)
    if fast is not None:
        assert fast == expected
    if expected is None:
        with pytest.raises(InputError):
            canonical_json(value)
    else:
        assert canonical_json(value) == expected


def test_fast_path_taken_for_entry_like_bodies() -> None:
    body: Any = {
        "v": 1,
        "usage": {"input_tokens": 3, "output_tokens": 5},
        "output_sha256": ["ab" * 32],
        "stream": False,
        "response_id": None,
        "tags": ["café", "\u2028"],
    }
    assert _fast_canonical_json(body) == rfc8785.dumps(body)


@pytest.mark.parametrize(
    "value",
    [
        1.0,  # integral floats: repr says "1.0", JCS says "1"
        {"\U0001f600": 1, "\ufb33": 2},  # UTF-16 order differs from code point order
        (1, 2),
        {1: "non-str key"},
        2**53,
        "\ud800",  # a lone surrogate is not UTF-8
    ],
)
def test_fast_path_declines_what_it_cannot_prove(value: Any) -> None:
    assert _fast_canonical_json(value) is None


def test_non_bmp_keys_sort_by_utf16_code_units() -> None:
    # U+1F600 is D83D DE00 in UTF-16, which sorts before U+FB33; by code point it sorts after.
    value = {"\U0001f600": 1, "\ufb33": 2}
    assert canonical_json(value) == '{"\U0001f600":1,"\ufb33":2}'.encode()
    assert json.dumps(value, sort_keys=True, ensure_ascii=False).startswith('{"\ufb33"')


def test_enum_subclass_takes_slow_path() -> None:
    class Color(StrEnum):
        RED = "red"

    assert canonical_json({"c": Color.RED}) == b'{"c":"red"}'


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, 2**53, {"a": -(2**60)}, "\ud800", {"\udc00": 1}, object(), {1: 2}]
)
def test_rejects_values_outside_jcs(value: Any) -> None:
    with pytest.raises(InputError):
        canonical_json(value)


def test_rfc8785_known_answers() -> None:
    # RFC 8785 3.2.2 / 3.2.3 behaviours: sorting, escapes, literal non-ASCII, number form.
    assert canonical_json({"b": [1, "\n"], "a": {"d": None, "c": True}}) == (
        b'{"a":{"c":true,"d":null},"b":[1,"\\n"]}'
    )
    assert canonical_json("\x01\u20ac") == b'"\\u0001\xe2\x82\xac"'
    assert canonical_json(1e21) == b"1e+21"
    assert canonical_json(-0.0) == b"0"


def test_normalize_output() -> None:
    assert normalize_output("  Cafe\u0301\r\nbar \n") == "Café\nbar"
    assert normalize_output("a\rb") == "a\rb"
    assert normalize_output("\t\n") == ""


def test_output_sha256_uses_normalized_utf8() -> None:
    expected = hashlib.sha256("Café\nbar".encode()).hexdigest()
    assert output_sha256("Cafe\u0301\r\nbar\n\n") == expected
    assert output_sha256("Café\nbar") == expected


def test_sha256_hex_known_answer() -> None:
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sha256_hex(b"abc").startswith("ba7816bf")


def test_package_exports_exactly_all() -> None:
    import ledger.crypto

    public = {
        name
        for name, value in vars(ledger.crypto).items()
        if not name.startswith("_") and not isinstance(value, ModuleType) and name != "annotations"
    }
    assert public == set(ledger.crypto.__all__)
    assert len(ledger.crypto.__all__) == len(set(ledger.crypto.__all__))


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.floats(min_value=1e-5, max_value=1e17),
        st.floats(min_value=0, max_value=100_000).map(lambda x: round(x, 3)),
    )
)
def test_float_fast_path_matches_rfc8785(value: float) -> None:
    fast = _fast_canonical_json({"duration_ms": value})
    if fast is not None:
        assert fast == rfc8785.dumps({"duration_ms": value})


def test_durations_take_the_fast_path() -> None:
    for value in (12.345, 0.5, 1234.001, 0.0001):
        assert _fast_canonical_json([value]) is not None
    for value in (5.0, 0.0, -0.0, 1e-5, 1e16):
        assert _fast_canonical_json([value]) is None
        assert canonical_json([value]) == rfc8785.dumps([value])


@given(_TEXT)
def test_json_string_equals_rfc8785(text: str) -> None:
    expected = _rfc8785_or_none(text)
    if expected is not None:
        assert json_string(text) == expected


def test_fast_path_writes_every_bmp_character_as_rfc8785() -> None:
    # Escapes are where encoders differ most; check every BMP character outside the surrogates.
    for code in range(0x10000):
        if 0xD800 <= code < 0xE000:
            continue
        text = f"a{chr(code)}"
        assert _fast_canonical_json({text: text}) == rfc8785.dumps({text: text}), hex(code)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_parse_json_reads_canonical_bytes_back(value: Any) -> None:
    expected = _rfc8785_or_none(value)
    if expected is not None:
        assert canonical_json(parse_json(expected)) == expected


def test_parse_json_reads_big_integers_as_doubles() -> None:
    assert parse_json(b'{"n":10000000000000000,"k":3}') == {"n": 1e16, "k": 3}
    assert type(parse_json(b"9007199254740991")) is int
    assert type(parse_json(b"9007199254740992")) is float
    with pytest.raises(json.JSONDecodeError):
        parse_json(b"{")


@settings(max_examples=500, deadline=None)
@given(JSON_VALUES, st.sampled_from(["jcs", "json-ascii", "json-spaced", "orjson"]))
def test_fast_path_for_parsed_values_is_identical_to_rfc8785(value: Any, form: str) -> None:
    # What verify does: parse stored bytes with orjson, re-encode, compare.
    try:
        if form == "jcs":
            source = rfc8785.dumps(value)
        elif form == "orjson":
            source = orjson.dumps(value)
        else:
            source = json.dumps(value, ensure_ascii=form == "json-ascii", indent=1).encode()
        parsed = orjson.loads(source)
    except (rfc8785.CanonicalizationError, TypeError, UnicodeEncodeError, orjson.JSONDecodeError):
        return
    fast = fast_canonical_json_parsed(parsed, source)
    if fast is not None:
        assert fast == rfc8785.dumps(parsed)


@pytest.mark.parametrize("number", [5.0, 1e16, 9.9e-6, 1e21, -0.0, 2**53, -(2**53)])
def test_fast_path_for_parsed_values_declines_numbers(number: float) -> None:
    source = orjson.dumps({"n": number})
    assert fast_canonical_json_parsed(orjson.loads(source), source) is None
