"""Keyed output fingerprints and sketches (ledger.crypto.fingerprint)."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.crypto.fingerprint import (
    FINGERPRINT_VERSION,
    MAX_SEGMENTS,
    MIN_SEGMENT_CHARS,
    SKETCH_SIZE,
    dataset_key,
    decode_sketch,
    encode_sketch,
    fingerprint,
    join_forms,
    key_file_text,
    output_record,
    parse_key_file,
    segment_key,
    segments,
    similarity,
    sketch,
)
from ledger.errors import InputError

KEY = dataset_key(b"\x07" * 32, "tutor-v1")

_ANSWER = (
    "Photosynthesis turns light into chemical energy.\n\n"
    "1. Light is absorbed by chlorophyll in the leaves.\n"
    "2. Water is split and oxygen is released.\n"
    "3. Carbon dioxide is fixed into sugars."
)


def _reference_fingerprint(key: bytes, text: str) -> str:
    # Written from the module docstring, independently of the implementation.
    subkey = hmac.new(key, b"fingerprint", hashlib.sha256).digest()
    return hmac.new(subkey, text.encode(), hashlib.sha256).hexdigest()[:32]


def test_known_answers() -> None:
    # Frozen vectors: a change here is a new FINGERPRINT_VERSION, never an edit.
    secret = bytes(range(32))
    key = dataset_key(secret, "d")
    assert (
        key.hex()
        == hmac.new(
            secret, b"distill-ledger/fingerprint/v1/dataset\x00\x01d", hashlib.sha256
        ).hexdigest()
    )
    assert fingerprint(key, "Paris.") == _reference_fingerprint(key, "Paris.")
    assert fingerprint(key, "Paris.") == "c0609803a76ee30a3471c00d3a9c7596"
    record = output_record(key, _ANSWER, None)
    assert record["fv"] == FINGERPRINT_VERSION == 1
    assert record["answer"] == _reference_fingerprint(key, _ANSWER)
    assert record["sketch"][:16] == "bV0ehs8lpNXdekr8"


def test_record_fields() -> None:
    record = output_record(KEY, _ANSWER, "First, recall what plants need to grow.")
    assert set(record) == {
        "fv", "answer", "reasoning", "joins", "segments", "sketch", "reasoning_sketch"
    }  # fmt: skip
    assert record["reasoning"] == fingerprint(KEY, "First, recall what plants need to grow.")
    joins = join_forms("First, recall what plants need to grow.", _ANSWER)
    assert record["joins"] == [fingerprint(KEY, j) for j in joins]
    reasoning = "First, recall what plants need to grow."
    # The reasoning's only segment is the whole reasoning: already fingerprinted, not repeated.
    expected_segments = [s for s in segments(_ANSWER) + segments(reasoning) if s != reasoning]
    assert record["segments"] == [fingerprint(KEY, s) for s in expected_segments]
    assert decode_sketch(record["sketch"]) == sketch(KEY, _ANSWER)
    assert len(record["sketch"]) == 344


def test_empty_parts() -> None:
    record = output_record(KEY, None, "")
    assert record == {
        "fv": 1, "answer": None, "reasoning": None, "joins": [], "segments": [],
        "sketch": None, "reasoning_sketch": None,
    }  # fmt: skip
    only_reasoning = output_record(KEY, "  ", "Think about it carefully first, then act.")
    assert only_reasoning["answer"] is None
    assert only_reasoning["joins"] == []
    assert only_reasoning["reasoning_sketch"] is not None


def test_normalization_equivalences() -> None:
    decomposed = "Cafe\u0301 au lait is served\r\nwith breakfast.  "
    composed = "  Caf\u00e9 au lait is served\nwith breakfast."
    assert output_record(KEY, decomposed, None) == output_record(KEY, composed, None)
    assert output_record(KEY, "\n" + _ANSWER + "\n\n", None) == output_record(KEY, _ANSWER, None)


def test_key_separation() -> None:
    secret = b"\x01" * 32
    keys = {dataset_key(secret, name) for name in (None, "", "a", "b", "a\x00")}
    assert len(keys) == 5
    assert dataset_key(b"\x02" * 32, "a") != dataset_key(secret, "a")
    other = dataset_key(secret, "other")
    mine, theirs = output_record(KEY, _ANSWER, None), output_record(other, _ANSWER, None)
    assert mine["answer"] != theirs["answer"]
    assert set(mine["segments"]).isdisjoint(theirs["segments"])
    assert similarity(decode_sketch(mine["sketch"]), decode_sketch(theirs["sketch"])) < 0.2
    with pytest.raises(InputError):
        dataset_key(b"", "a")


def test_a_guessed_output_is_not_confirmed_without_the_key() -> None:
    # Whoever holds the log sees only the record. The unkeyed hash of a guess ("Yes.") is
    # nowhere in it, and under any other key the guess's fingerprint differs.
    record = output_record(KEY, "Yes.", None)
    values = {record["answer"], *record["segments"], *record["joins"]}
    assert hashlib.sha256(b"Yes.").hexdigest()[:32] not in values
    assert hashlib.sha256(b"Yes.").hexdigest() not in values
    for guess_key in (b"", b"\x00" * 32, dataset_key(b"\x07" * 32, None)):
        if guess_key:
            assert fingerprint(guess_key, "Yes.") != record["answer"]
    assert fingerprint(KEY, "Yes.") == record["answer"]  # the key holder confirms it


def test_segments_of_a_numbered_list() -> None:
    found = segments(_ANSWER)
    assert found[0] == "Photosynthesis turns light into chemical energy."
    # The second paragraph as a whole (markers off its first line only), then each item.
    assert found[1].startswith("Light is absorbed by chlorophyll")
    assert found[2:] == [
        "Light is absorbed by chlorophyll in the leaves.",
        "Water is split and oxygen is released.",
        "Carbon dioxide is fixed into sugars.",
    ]


def test_segment_key_folding() -> None:
    assert segment_key("  3. Output:  Boil the water first. ") == "Boil the water first."
    assert segment_key("- answer: 42 is the answer here") == "42 is the answer here"
    assert segment_key("a\n\n   b  \n") == "a\nb"
    assert segment_key("Step 2: heat the pan") == "Step 2: heat the pan"  # not a field label


def test_segment_bounds() -> None:
    assert segments("Yes.\nNo.\nShort line") == []
    assert all(len(s) >= MIN_SEGMENT_CHARS for s in segments(_ANSWER))
    many = "\n".join(f"Line number {i} of a very long list" for i in range(500))
    assert len(segments(many)) == MAX_SEGMENTS
    # The whole text is no segment of itself; the bound still fills up.
    assert len(output_record(KEY, many, None)["segments"]) == MAX_SEGMENTS
    assert fingerprint(KEY, many) not in output_record(KEY, many, None)["segments"]
    repeated = "\n".join(["The same line, written again and again."] * 10)
    assert segments(repeated) == [repeated, "The same line, written again and again."]


def test_sketch_similarity() -> None:
    words = _ANSWER.split()
    base = sketch(KEY, _ANSWER)
    assert base is not None
    assert len(base) == SKETCH_SIZE
    assert similarity(base, base) == 1.0
    # Truecasing and punctuation do not move the sketch.
    truecased = sketch(KEY, _ANSWER.upper().replace(".", " ;"))
    assert truecased is not None
    assert similarity(base, truecased) == 1.0
    long_text = " ".join(f"{w}{i % 7}" for i, w in enumerate(words * 12))
    edited = long_text.replace("chlorophyll3", "pigment3", 1)
    a, b = sketch(KEY, long_text), sketch(KEY, edited)
    assert a is not None
    assert b is not None
    assert similarity(a, b) >= 0.85
    unrelated = sketch(KEY, "A completely different sentence about rivers, boats and rain.")
    assert unrelated is not None
    assert similarity(base, unrelated) <= 0.2
    assert sketch(KEY, "  ... !!! ") is None
    assert sketch(KEY, "two words") is not None


def test_sketch_encoding_round_trip() -> None:
    value = sketch(KEY, _ANSWER)
    assert value is not None
    assert decode_sketch(encode_sketch(value)) == value
    with pytest.raises(InputError, match="base64"):
        decode_sketch("not base64 at all!")
    with pytest.raises(InputError, match="bytes"):
        decode_sketch("AAAA")
    with pytest.raises(InputError):
        similarity(value, value[:10])


@given(st.text(max_size=400))
def test_sketch_is_total_and_stable(text: str) -> None:
    first = sketch(KEY, text)
    assert first == sketch(KEY, text)
    if first is not None:
        assert all(0 <= v <= 0xFFFFFFFF for v in first)
    record = output_record(KEY, text, text)
    assert len(record["segments"]) <= MAX_SEGMENTS


def test_key_file_round_trip() -> None:
    assert parse_key_file(key_file_text("tutor-v1", KEY)) == ("tutor-v1", KEY)
    assert parse_key_file(key_file_text(None, KEY)) == (None, KEY)
    assert parse_key_file(KEY.hex() + "\n") == (None, KEY)
    for bad, message in (
        ("{", "JSON"),
        ('{"dataset": "x"}', "key"),
        ('{"key": "zz"}', "hexadecimal"),
        ('{"key": "00ff"}', "shorter"),
        (f'{{"key": "{KEY.hex()}", "fingerprint_version": 9}}', "version 9"),
        (f'{{"key": "{KEY.hex()}", "dataset": 3}}', "dataset"),
    ):
        with pytest.raises(InputError, match=message):
            parse_key_file(bad)


def test_record_is_fast_on_a_2kb_answer() -> None:
    answer = "Each answer paragraph holds a few plain sentences of teaching text. " * 6 + "\n\n"
    answer = (answer * 6)[:2048]
    output_record(KEY, answer, None)
    best = min(_timed(lambda: output_record(KEY, answer, None)) for _ in range(20))
    # The recorder computes this off the caller's path; a generous bound on a shared machine.
    assert best < 0.005


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start
