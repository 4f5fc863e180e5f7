"""Helpers for driving the verifier page: open it, feed it files, read its check rows."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

# A selector, not a script: the page's Content-Security-Policy forbids eval of test strings.
DONE = 'body[data-verify="done"][data-runs="{runs}"]'


def runs(page: Any) -> int:
    return int(page.evaluate("Number(document.body.dataset.runs || 0)"))


def wait_done(page: Any, run: int) -> None:
    """Wait (on the page's own state, not a timer) until check run number ``run`` finished."""
    page.wait_for_selector(DONE.format(runs=run), state="attached", timeout=60_000)


def open_page(page: Any, path: Path) -> None:
    page.goto(path.resolve().as_uri())
    wait_done(page, 1)


def give_files(page: Any, paths: list[Path]) -> None:
    before = runs(page)
    page.set_input_files("#ledger-files", [str(p) for p in paths])
    wait_done(page, before + 1)


def checks(page: Any) -> dict[str, tuple[str, str]]:
    """``{check id: (status, detail)}`` from the page's table."""
    rows = page.eval_on_selector_all(
        "#ledger-checks tr[data-check]",
        "rows => rows.map(r => [r.dataset.check, r.dataset.status,"
        " r.querySelector('.detail').textContent])",
    )
    return {check: (status, detail) for check, status, detail in rows}


def verdict(page: Any) -> str:
    return str(page.get_attribute("#ledger-verdict", "data-status"))


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and unfiltered rows of an 8-bit RGB(A) PNG (PNG spec 9: filters 0-4)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, idat, width, height, channels = 8, b"", 0, 0, 0
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        chunk = data[at + 8 : at + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8, depth
            assert colour in (2, 6), colour
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        at += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            corner = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[x] = (line[x] + pred) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows
