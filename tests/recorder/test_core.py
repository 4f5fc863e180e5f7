"""Recorder core pieces: entry ids, labels and ``recording()`` scopes, argument checks."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import ledger
from ledger.errors import InputError
from ledger.recorder import PURPOSES, Recorder, recording, uuid7
from ledger.recorder.core import _strip_credential_params
from ledger.recorder.entry import decoded, ends_with_terminal_event
from tests.recorder.helpers import UUID7, open_ledger


@pytest.fixture
def lg(tmp_path: Path) -> Iterator[ledger.Ledger]:
    lg = open_ledger(tmp_path)
    yield lg
    lg.close()


def test_uuid7_format_order_and_uniqueness() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert all(UUID7.match(i) for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_uuid7_unique_across_threads() -> None:
    out: list[list[str]] = [[] for _ in range(8)]

    def make(k: int) -> None:
        out[k].extend(uuid7() for _ in range(2000))

    threads = [threading.Thread(target=make, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [i for chunk in out for i in chunk]
    assert len(set(flat)) == len(flat)


def _labels(rec: Recorder) -> tuple[str | None, str | None, tuple[str, ...]]:
    call = rec.begin("POST", "http://h/v1/embeddings", [], b"")
    return call.labels.purpose, call.labels.dataset, call.labels.tags


def test_recording_scopes_nest_and_follow_threads_and_tasks(lg: ledger.Ledger) -> None:
    rec = Recorder(lg, purpose="research", dataset="d0", tags=["base"])
    assert _labels(rec) == ("research", "d0", ("base",))
    with recording(purpose="evaluate"):
        assert _labels(rec) == ("evaluate", "d0", ("base",))
        with recording(dataset="d1", tags=["a", "b"]):
            assert _labels(rec) == ("evaluate", "d1", ("a", "b"))
            seen: list[object] = []
            ctx = contextvars.copy_context()
            t = threading.Thread(target=lambda: seen.append(ctx.run(_labels, rec)))
            t.start()
            t.join()
            assert seen == [("evaluate", "d1", ("a", "b"))]

            async def task() -> object:
                return _labels(rec)

            async def main() -> list[object]:
                return list(await asyncio.gather(task(), task()))

            assert asyncio.run(main()) == [("evaluate", "d1", ("a", "b"))] * 2
        assert _labels(rec) == ("evaluate", "d0", ("base",))
    assert _labels(rec) == ("research", "d0", ("base",))


def test_unknown_purpose_is_rejected_everywhere(lg: ledger.Ledger) -> None:
    assert "train-model" in PURPOSES
    with pytest.raises(InputError, match="unknown purpose"):
        Recorder(lg, purpose="scrape-everything")
    with pytest.raises(InputError), recording(purpose="nope"):
        pass
    with pytest.raises(InputError):
        Recorder(lg, content="all")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        Recorder(lg, durability="eventually")  # type: ignore[arg-type]
    rec = Recorder(lg)
    with pytest.raises(InputError):
        rec.begin("POST", "http://h/x", [("x-ledger-purpose", "nope")], b"")


def test_fingerprint_cached_and_credentials_dropped(lg: ledger.Ledger) -> None:
    rec = Recorder(lg)
    headers = [("authorization", "Bearer sk-abc"), ("x-stainless-lang", "python")]
    call = rec.begin("POST", "http://h/v1/chat/completions", headers, b"{}")
    assert call.account == lg.account_fingerprint("sk-abc")
    assert call.request_headers == {"x-stainless-lang": "python"}
    assert len(rec._fingerprints) == 1
    assert "sk-abc" not in repr(rec._fingerprints)
    rec.begin("POST", "http://h/v1/chat/completions", headers, b"{}")
    assert len(rec._fingerprints) == 1
    other = rec.begin("POST", "http://h/x", [("x-api-key", "k2")], b"")
    assert other.account == lg.account_fingerprint("k2")
    nobody = rec.begin("POST", "http://h/x", [], b"")
    assert nobody.account is None


def test_strip_credential_params() -> None:
    assert _strip_credential_params("http://h/p?alt=sse&key=SECRET") == (
        "http://h/p?alt=sse",
        "SECRET",
    )
    assert _strip_credential_params("http://h/p?alt=sse") == ("http://h/p?alt=sse", None)


def test_decoded_copy_and_terminal_events() -> None:
    import gzip
    import zlib

    data = b'data: {"a": 1}\n\ndata: [DONE]\n\n'
    assert decoded(gzip.compress(data), "gzip") == data
    assert decoded(zlib.compress(data), "deflate") == data
    assert decoded(gzip.compress(data)[:-8], "gzip") == data  # no trailer: all there is
    partial = decoded(gzip.compress(data)[:-12], "gzip")  # cut inside the deflate data
    assert partial
    assert data.startswith(partial)
    assert decoded(data, "zstd-unknown") == data
    assert ends_with_terminal_event(data)
    assert ends_with_terminal_event(b"event: message_stop\r\ndata: {}\r\n\r\n")
    assert not ends_with_terminal_event(b'data: {"a": 1}\n\n')
    assert not ends_with_terminal_event(b"data: [DONE]")  # the event was not finished
