"""A pack's gzip JSON-lines members read block by block: the same lines and line numbers as
Python's own ``GzipFile`` line iteration, whatever the block sizes, over several gzip members,
and a named error for a truncated or corrupted member."""

from __future__ import annotations

import gzip
import io
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import InputError
from ledger.manifest import pack as layout


def _pack_with(folder: Path, member: bytes) -> layout.Pack:
    folder.mkdir(exist_ok=True)
    (folder / layout.MANIFEST).write_text("{}")
    (folder / layout.RECORDS).write_bytes(member)
    return layout.Pack(folder)


def _reference(member: bytes) -> list[tuple[int, bytes]]:
    with gzip.GzipFile(fileobj=io.BytesIO(member)) as stream:
        lines = [line.rstrip(b"\n") for line in stream]
    return [(number, line) for number, line in enumerate(lines, 1) if line]


@settings(max_examples=150, deadline=None)
@given(
    text=st.binary(max_size=4_000).map(lambda b: b.replace(b"\r", b"\n")),
    cuts=st.lists(st.integers(min_value=0, max_value=4_000), max_size=3),
    block=st.sampled_from([1, 5, 64, 1 << 20]),
    inflated=st.sampled_from([1, 7, 300, 8 << 20]),
)
def test_lines_match_gzipfile(
    tmp_path_factory: pytest.TempPathFactory,
    text: bytes,
    cuts: list[int],
    block: int,
    inflated: int,
) -> None:
    # Several members one after another (``cat a.gz b.gz``), each cut anywhere, lines included.
    bounds = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    member = b"".join(gzip.compress(text[a:b], mtime=0) for a, b in itertools.pairwise(bounds))
    pack = _pack_with(tmp_path_factory.mktemp("pack"), member)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(layout, "_BLOCK", block)
        patch.setattr(layout, "_INFLATED", inflated)
        assert list(pack.lines(layout.RECORDS)) == _reference(member)


def test_long_lines_across_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [b"x" * 300_000, b"", "é".encode() * 1_000, b"{}", b"last without newline"]
    member = gzip.compress(b"\n".join(lines), mtime=0)
    monkeypatch.setattr(layout, "_INFLATED", 4_096)
    pack = _pack_with(tmp_path / "pack", member)
    assert list(pack.lines(layout.RECORDS)) == [
        (1, lines[0]), (3, lines[2]), (4, b"{}"), (5, b"last without newline")
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda m: m[:-3], "ends inside a gzip member"),  # truncated trailer
        (lambda m: m[: len(m) // 2], "ends inside a gzip member"),  # truncated data
        (lambda m: m[:-8] + bytes([m[-8] ^ 1]) + m[-7:], "incorrect data check"),  # CRC-32
        (lambda m: b"not gzip at all", "incorrect header check"),
        (lambda m: m + b"trailing junk", "incorrect header check"),
    ],
)
def test_damaged_member_is_named(
    tmp_path: Path, damage: Callable[[bytes], bytes], words: str
) -> None:
    member = gzip.compress(b"".join(b'{"n": %d}\n' % n for n in range(5_000)), mtime=0)
    pack = _pack_with(tmp_path / "pack", damage(member))
    with pytest.raises(InputError, match=f"{layout.RECORDS} is not a gzip file.*{words}"):
        list(pack.lines(layout.RECORDS))


class _Failing(io.BytesIO):
    """A file that takes the header and then fails, like a disk that fills up."""

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.tell() > 0:
            raise OSError(28, "No space left on device")
        return super().write(data)


@settings(max_examples=40, deadline=None)
@given(
    text=st.binary(max_size=3_000_000),
    sizes=st.lists(st.integers(min_value=1, max_value=700_000), min_size=1, max_size=6),
)
def test_gzip_sink_writes_what_gzipfile_reads_whatever_the_write_sizes(
    text: bytes, sizes: list[int]
) -> None:
    # The member is the same bytes however the data was cut into writes (blocks are handed to
    # the compressing thread at different places), and Python's own gzip reads it back.
    outputs = []
    for cut in (sizes, [len(text) or 1]):
        raw = io.BytesIO()
        sink = layout.GzipSink(raw)
        offset, steps = 0, itertools.cycle(cut)
        while offset < len(text):
            step = next(steps)
            sink.write(text[offset : offset + step])
            offset += step
        sink.close()
        outputs.append(raw.getvalue())
    assert outputs[0] == outputs[1]
    assert gzip.decompress(outputs[0]) == text
    with gzip.GzipFile(
        fileobj=io.BytesIO(), mode="wb", mtime=0, filename="", compresslevel=6
    ) as reference:
        header = reference.fileobj.getvalue()  # type: ignore[union-attr]
    assert outputs[0][:10] == header[:10]


def test_gzip_sink_raises_the_threads_write_error() -> None:
    sink = layout.GzipSink(_Failing())
    sink.write(b"x" * (3 << 20))  # handed to the thread, whose write fails
    with pytest.raises(OSError, match="No space left"):
        sink.close()
