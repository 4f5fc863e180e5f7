"""The shared SSE and JSON-array readers under generated framings and truncations."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.recorder.providers._base import iter_json_array, iter_sse_json, load_json_object

_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
_OBJECTS = st.dictionaries(st.text(max_size=6), _VALUES, max_size=4)
_EVENTS = st.lists(
    st.tuples(
        st.one_of(st.none(), st.sampled_from(["message_delta", "response.completed", "x"])),
        _OBJECTS,
        st.booleans(),  # spread the JSON over several data lines
        st.booleans(),  # put a comment line before the event
    ),
    max_size=6,
)


def frame(events: list[tuple[str | None, dict[str, object], bool, bool]], newline: str) -> bytes:
    out = []
    for name, obj, multiline, comment in events:
        lines = [": keep-alive"] if comment else []
        if name is not None:
            lines.append(f"event: {name}")
        text = json.dumps(obj, indent=1) if multiline else json.dumps(obj)
        lines += [f"data: {part}" for part in text.split("\n")]
        out.append(newline.join(lines) + newline + newline)
    out.append(f"data: [DONE]{newline}{newline}")
    return "".join(out).encode()


@settings(max_examples=100, deadline=None)
@given(events=_EVENTS, newline=st.sampled_from(["\n", "\r\n", "\r"]), data=st.data())
def test_sse_framing_round_trip_and_truncation(
    events: list[tuple[str | None, dict[str, object], bool, bool]],
    newline: str,
    data: st.DataObject,
) -> None:
    body = frame(events, newline)
    expected = [(name or "message", obj) for name, obj, _, _ in events]
    assert list(iter_sse_json(body)) == expected
    cut = data.draw(st.integers(min_value=0, max_value=len(body)))
    got = list(iter_sse_json(body[:cut]))
    # A cut body yields a prefix of the events: never an event that was not sent.
    assert got == expected[: len(got)]


@settings(max_examples=100, deadline=None)
@given(objects=st.lists(_OBJECTS, max_size=5), data=st.data())
def test_json_array_round_trip_and_truncation(
    objects: list[dict[str, object]], data: st.DataObject
) -> None:
    body = ("[" + ",\r\n".join(json.dumps(o) for o in objects) + "]").encode()
    assert list(iter_json_array(body)) == objects
    cut = data.draw(st.integers(min_value=0, max_value=len(body)))
    got = list(iter_json_array(body[:cut]))
    assert got == objects[: len(got)]


def test_load_json_object_matches_json_loads() -> None:
    for text in ['{"a": 1}', ' {"a": 1}\n', '{"a": 1} x', '{"a": 1}{}', "[1]", "{", "", "{}"]:
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        assert load_json_object(text) == (value if isinstance(value, dict) else None), text
