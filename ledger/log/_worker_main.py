"""The worker process of :mod:`ledger.log.workers` (run as a script in isolated mode).

Reads its first request (the parent's ``sys.path``, an initializer, its arguments and the task
function), then runs one task per request until stdin closes. The wire format is described in
:mod:`ledger.log.workers`; this file repeats its framing so that it imports nothing of
``ledger`` before ``sys.path`` is the parent's.
"""

from __future__ import annotations

import importlib
import os
import pickle
import struct
import sys
from collections.abc import Callable
from typing import IO, Any

_U32 = struct.Struct(">I")


def _read(stream: IO[bytes], size: int) -> bytes | None:
    parts = []
    while size:
        data = stream.read(size)
        if not data:
            return None
        parts.append(data)
        size -= len(data)
    return b"".join(parts)


def _receive(stream: IO[bytes]) -> tuple[bool, Any]:
    head = _read(stream, 4)
    data = _read(stream, _U32.unpack(head)[0]) if head is not None else None
    if data is None:
        return False, None
    return True, pickle.loads(data)  # noqa: S301 - frames come from the parent process


def _send(stream: IO[bytes], ok: bool, value: object) -> None:
    try:
        data = pickle.dumps((ok, value), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        data = pickle.dumps((False, f"{type(value).__name__}: {value} ({exc})"))
    stream.write(_U32.pack(len(data)) + data)
    stream.flush()


def _resolve(name: str) -> Callable[..., Any]:
    module, _, attribute = name.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), attribute)
    return function


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """Run tasks until stdin closes; 0 on a clean end, 1 on a malformed first request."""
    received, header = _receive(stdin)
    if not received:
        return 1
    path, initializer, initargs, function_name = header
    sys.path[:] = path
    try:
        _resolve(initializer)(*initargs)
        function = _resolve(function_name)
    except Exception as exc:
        _send(stdout, False, exc)
        return 1
    _send(stdout, True, None)
    while True:
        received, task = _receive(stdin)
        if not received:
            return 0
        try:
            result = function(task)
        except Exception as exc:
            _send(stdout, False, exc)
        else:
            _send(stdout, True, result)


def main() -> int:
    # The protocol gets the real stdout; anything the task code prints goes to stderr.
    protocol = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    try:
        return serve(sys.stdin.buffer, protocol)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
