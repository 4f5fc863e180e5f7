"""The verifier reads only the entry fields it needs; what it reads must be what a whole parse
gives, and every entry it cannot read that way still gets the whole parse."""

from __future__ import annotations

import gzip
import importlib
import json
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ledger import manifest
from ledger.crypto.canonical import canonical_json
from ledger.entry_body import call_stamp, served_model
from ledger.manifest import pack as layout
from ledger.manifest.verdicts import _fast_key, fast_key
from tests.audit.helpers import FACTS, chat_row, v2_body, write_jsonl
from tests.manifest.test_pack import _resign
from tests.recorder.helpers import open_ledger

# The module, not the function that ledger.manifest exports under the same name.
verify_module = importlib.import_module("ledger.manifest.verify")
_FIELDS = tuple(verify_module._Indexed.__struct_fields__)


def _line(body: object, key_id: object = "k1", sig: object = "c2ln") -> bytes:
    return canonical_json({"body": body, "key_id": key_id, "sig": sig})


def _agrees(data: bytes, indexed: bool) -> bool:
    """The partial read's answer, when it gives one, is the whole parse's; True when it did."""
    fast = verify_module._signed_view(data, indexed)
    slow = verify_module._signed_parts(data)
    if fast is None:
        return False
    assert slow is not None, data
    view, body_bytes, key_id, sig = fast
    entry, slow_bytes, slow_key, slow_sig = slow
    assert (body_bytes, key_id, sig) == (slow_bytes, slow_key, slow_sig)
    for name in _FIELDS if indexed else verify_module._Judged.__struct_fields__:
        assert getattr(view, name) == entry["body"].get(name), name
    # The judging key read off the struct is the one the whole body gives.
    assert fast_key(*(getattr(view, name) for name in _KEY_FIELDS)) == _fast_key(entry["body"])
    return True


_KEY_FIELDS = ("provider", "request_model", "response_model", "endpoint", "output_modality",
               "started_at", "recorded_at")  # fmt: skip


_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_json = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
_ANSWERS = ("plain answer one", "answer with its own facts", "answer tagged in French",
            "plain answer two")  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    read=st.dictionaries(st.sampled_from(_FIELDS), _json, max_size=len(_FIELDS)),
    other=st.dictionaries(st.text(max_size=8), _json, max_size=4),
    indexed=st.booleans(),
)
def test_partial_read_agrees_with_the_whole_parse(
    read: dict[str, Any], other: dict[str, Any], indexed: bool
) -> None:
    data = _line({**other, **read})
    assert _agrees(data, indexed) == data.isascii()  # ASCII lines are read in part


_stamp = st.sampled_from(["2026-03-02T10:00:00Z", "2026-03-03T00:00:00.5Z",
                          "2026-03-02T10:00:00+00:00", "2026-03-02", "", "Z"]) | _json  # fmt: skip
_model = st.sampled_from(["", "model-a", "model-b"]) | _json


@settings(max_examples=300, deadline=None)
@given(
    body=st.fixed_dictionaries(
        {"request_model": _model, "response_model": _model, "started_at": _stamp},
        optional={
            "provider": _json,
            "endpoint": _json | st.fixed_dictionaries({"host": _json}),
            "output_modality": _json,
            "recorded_at": _stamp,
        },
    )
)
@example(body={"request_model": "model-a", "response_model": "model-b",
               "started_at": "2026-03-02T10:00:00Z"})  # fmt: skip
@example(body={"request_model": "", "response_model": None, "started_at": "",
               "recorded_at": "2026-03-02T10:00:00Z"})  # fmt: skip
def test_the_judging_key_follows_the_call_time_and_model_rules(body: dict[str, Any]) -> None:
    # Keyed only when the call time is a UTC "...Z" stamp; the answering model and the time
    # are picked as everywhere else (entry_body's rules), so equal keys mean equal call facts.
    key = _fast_key(body)
    stamp = call_stamp(body)
    if not (isinstance(stamp, str) and stamp.endswith("Z") and len(stamp) >= 11):
        assert key is None
        return
    endpoint = body.get("endpoint")
    host = endpoint.get("host") if isinstance(endpoint, dict) else None
    expected = ("raw", body.get("provider"), served_model(body), host,
                body.get("output_modality"), stamp[:10])  # fmt: skip
    try:
        hash(expected)
    except TypeError:
        assert key is None
    else:
        assert key == expected


def test_layouts_the_partial_read_leaves_to_the_whole_parse() -> None:
    plain = b'{"body":{"provider":"openai","x":1},"key_id":"k1","sig":"c2ln"}'
    assert _agrees(plain, indexed=False)
    declined = [
        b'{"body":{"provider":"caf\xc3\xa9"},"key_id":"k1","sig":"c2ln"}',  # not ASCII
        b'{"body":{"x":"\xff"},"key_id":"k1","sig":"c2ln"}',  # not UTF-8, in a skipped field
        b'{"body":{"x":[1,2,]},"key_id":"k1","sig":"c2ln"}',  # not JSON, in a skipped field
        b'{"body":[1],"key_id":"k1","sig":"c2ln"}',  # body not an object
        b'{"body":{},"key_id":"k1","sig":"c2ln","more":1}',  # another top-level field
        b'{"body":{},"key_id":"k\\u0031","sig":"c2ln"}',  # an escape the ledger never writes
        b'{"key_id":"k1","body":{},"sig":"c2ln"}',  # body not first
        b'{"body":{},"key_id":"k0","sig":"c2ln","key_id":"k1"}',  # a repeated key
        b'{"body":{},"key_id":1,"sig":"c2ln"}',  # key id not a string
    ]
    for data in declined:
        assert verify_module._signed_view(data, indexed=True) is None, data
    # The one difference, as documented: a number beyond a double's range in a skipped field.
    big = b'{"body":{"x":1e400},"key_id":"k1","sig":"c2ln"}'
    assert verify_module._signed_parts(big) is None
    fast = verify_module._signed_view(big, indexed=True)
    assert fast is not None
    assert fast[1:] == (b'{"x":1e400}', "k1", "c2ln")
    # A repeated body field: both read the last one.
    assert _agrees(b'{"body":{"provider":"a","provider":"b"},"key_id":"k1","sig":"c2ln"}', True)


def test_entries_that_need_the_whole_body_are_judged_from_it(tmp_path: Path) -> None:
    # An entry with its own facts is judged with them merged (the partial read does not carry
    # them into judging), a non-ASCII entry is read whole, and the rest share one judgement.
    lg = open_ledger(tmp_path / "home")
    try:
        plain, own, accented, again = (v2_body(lg, [(text, None)]) for text in _ANSWERS)
        own["facts"] = {"competes_with_provider": "yes"}
        accented["tags"] = ["données"]
        leaves = [lg.append(body).leaf_index for body in (plain, own, accented, again)]
        dataset = write_jsonl(tmp_path / "train.jsonl", [chat_row(text) for text in _ANSWERS])
        built = manifest.build(lg, [dataset], tmp_path / "pack", name="tutor", profile=FACTS,
                               report=False)  # fmt: skip
        vkey, log_key = lg.verifier_key, lg.log_key
    finally:
        lg.close()
    result = manifest.verify(built.path, vkey, datasets=[dataset])
    assert result.ok, result.failure
    assert "données".encode() in gzip.decompress((built.path / layout.ENTRIES).read_bytes())
    stored = json.loads((built.path / layout.VERDICTS).read_text())
    documents = [stored["leaves"][str(leaf)] for leaf in leaves]
    assert documents[0] == documents[3] == documents[2]  # same call facts, same judgement
    assert documents[1] != documents[0]  # its own facts changed the judgement
    # A builder holding the log key says the own-facts entry has the plain judgement: the
    # verifier judges that entry from its whole body and disagrees.
    stored["leaves"][str(leaves[1])] = documents[0]
    (built.path / layout.VERDICTS).write_text(json.dumps(stored))
    _resign(built.path, log_key, lambda statement: None)
    failure = manifest.verify(built.path, vkey).failure
    assert failure is not None
    assert (failure.check, failure.where) == ("verdicts", f"leaf {leaves[1]}")
