"""Entry signatures checked in a worker interpreter report the same first failure as inline."""

from __future__ import annotations

import pytest

from ledger.crypto.keys import SigningKey
from ledger.manifest import signatures


def _signed(count: int) -> tuple[list[signatures.Item], dict[str, object], SigningKey]:
    key = SigningKey.generate()
    items = [(i, f"body {i}".encode(), key.key_id, key.sign(f"body {i}".encode()))
             for i in range(count)]  # fmt: skip
    return items, {key.key_id: key.public_key}, key


def _feed(
    stream: signatures.SignatureStream, items: list[signatures.Item]
) -> tuple[int, str] | None:
    """Add every item, then the stream's answer (the lowest bad leaf with its reason, or None)."""
    for item in items:
        stream.add(item)
    return stream.finish()


@pytest.mark.parametrize(("workers", "backlog"), [(0, 1 << 20), (1, 1 << 20), (1, 20)])
def test_stream_reports_the_lowest_bad_leaf_whoever_checked_it(
    workers: int, backlog: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # backlog=20 bytes: the queue is "full" with one chunk, so this process checks chunks itself
    # while the worker takes others; the answer must not depend on who checked what.
    monkeypatch.setattr(signatures, "INLINE_LIMIT", 10)
    monkeypatch.setattr(signatures, "_CHUNK", 7)
    monkeypatch.setattr(signatures, "BACKLOG_BYTES", backlog)
    items, keys, key = _signed(120)
    with signatures.SignatureStream(keys, workers=workers) as stream:  # type: ignore[arg-type]
        assert _feed(stream, items) is None
    other = SigningKey.generate()
    for bad in (97, 44, 45):
        items[bad] = (bad, items[bad][1], key.key_id, other.sign(items[bad][1]))
    with signatures.SignatureStream(keys, workers=workers) as stream:  # type: ignore[arg-type]
        found = _feed(stream, items)
        checked_here = stream.checked_here
    assert found is not None
    assert found[0] == 44
    assert key.key_id in found[1]
    if workers == 0:
        assert checked_here == len(items)
    elif backlog == 20:
        assert checked_here > 0  # the queue was full: this process took chunks too


def test_stream_below_the_inline_limit_starts_no_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signatures, "_CHUNK", 7)
    items, keys, _ = _signed(30)
    with signatures.SignatureStream(keys, workers=1) as stream:  # type: ignore[arg-type]
        assert _feed(stream, items) is None
        assert stream.checked_here == 30


def test_two_streams_in_one_process_keep_their_own_keys() -> None:
    # The audit service verifies uploaded packs in its thread pool, so streams overlap; the
    # second stream's keys must not replace the first's.
    first_items, first_keys, _ = _signed(12)
    second_items, second_keys, _ = _signed(12)
    with (
        signatures.SignatureStream(first_keys, workers=0) as first,  # type: ignore[arg-type]
        signatures.SignatureStream(second_keys, workers=0) as second,  # type: ignore[arg-type]
    ):
        for a, b in zip(first_items, second_items, strict=True):
            first.add(a)
            second.add(b)
        assert first.finish() is None
        assert second.finish() is None


@pytest.mark.parametrize("many", [False, True])
def test_stream_started_early_gives_the_same_answer(many: bool) -> None:
    items, keys, key = _signed(50)
    items[31] = (31, items[31][1], key.key_id, SigningKey.generate().sign(items[31][1]))
    with signatures.SignatureStream(keys, workers=1, many=many) as stream:  # type: ignore[arg-type]
        assert (stream._pool is not None) == many  # started before any item arrived
        found = _feed(stream, items)
        here = stream.checked_here
    assert found is not None
    assert found[0] == 31
    if not many:
        assert here == 50  # below the inline limit, no worker: all checked here


def test_a_worker_that_dies_hands_its_chunks_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # The driving thread takes a chunk, finds the worker gone, and must give that chunk (and
    # any other it had sent) back for this process to check: none may be lost.
    monkeypatch.setattr(signatures, "_CHUNK", 7)
    items, keys, key = _signed(60)
    items[3] = (3, items[3][1], key.key_id, SigningKey.generate().sign(items[3][1]))
    with signatures.SignatureStream(keys, workers=1, many=True) as stream:  # type: ignore[arg-type]
        worker = stream._pool._workers[0].proc
        worker.kill()
        worker.wait()
        found = _feed(stream, items)
        here = stream.checked_here
    assert found is not None
    assert found[0] == 3
    assert here == 60
