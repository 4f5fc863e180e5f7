"""Batch signing of entry bodies, spread over two cores.

Ed25519 signing holds the GIL (about 35 us per entry here), so one writer thread can sign no
faster than one core allows, and signing was the largest single cost of an append. A batch of
at least ``min_batch`` messages is split: a helper process signs the first part while the
calling thread signs the rest, then the two parts are joined in order.

The helper is a plain child interpreter running ``_sign_helper.py`` and talking over its stdin
and stdout, not a ``multiprocessing`` worker: those re-import the user's ``__main__`` in the
child, which would run an unguarded script (and its teacher calls) a second time.

Invariants:

* ``sign_many(messages)[i]`` is the signature of ``messages[i]`` under this signer's key,
  whichever process made it (Ed25519 signatures are deterministic).
* The helper starts lazily on the first large batch, never for small ones (single appends,
  tests). If it cannot start or fails, signing continues locally and the failure is logged;
  it never reaches the caller.
* The private key reaches the helper through its stdin pipe, never a file, an argument or
  the environment. The helper exits when its stdin closes (the parent closed or died).

Wire format (both directions, big-endian): the first request is the key (4-byte length, PEM);
each later request is a 4-byte count then, per message, a 4-byte length and the bytes; each
reply is ``count`` 64-byte signatures.
"""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from ledger.crypto.keys import SigningKey

__all__ = ["BatchSigner"]

log = logging.getLogger(__name__)

_U32 = struct.Struct(">I")
# A standalone script (it imports only ``cryptography``), so the helper starts in a fraction
# of the time importing the ``ledger`` package would take.
_HELPER_SCRIPT = Path(__file__).with_name("_sign_helper.py")
_SIGNATURE_SIZE = 64


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) != size:
        raise EOFError("signing pipe closed")
    return data


class BatchSigner:
    """Signs lists of messages with one key, using a helper process for large batches."""

    def __init__(self, key: SigningKey, *, min_batch: int = 128, helper: bool = True) -> None:
        self.key = key
        self._min_batch = min_batch
        self._helper_wanted = helper and (os.cpu_count() or 1) > 1
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def key_id(self) -> str:
        return self.key.key_id

    def _helper(self) -> subprocess.Popen[bytes] | None:
        if self._proc is None and self._helper_wanted:
            try:
                proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
                    [sys.executable, "-I", str(_HELPER_SCRIPT)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
                assert proc.stdin is not None  # noqa: S101 - Popen made the pipe
                pem = self.key.to_pem()
                proc.stdin.write(_U32.pack(len(pem)) + pem)
                proc.stdin.flush()
            except OSError as exc:
                self._give_up(exc)
                return None
            self._proc = proc
        return self._proc

    def sign_many(self, messages: Sequence[bytes]) -> list[bytes]:
        """Signatures of ``messages``, in order."""
        with self._lock:
            proc = self._helper() if len(messages) >= self._min_batch else None
            if proc is None or proc.stdin is None or proc.stdout is None:
                return [self.key.sign(m) for m in messages]
            # Half each: measured best (the helper also pays for the pipe, the parent for
            # everything around signing, and the two roughly cancel).
            split = len(messages) // 2
            try:
                request = [_U32.pack(split)]
                for message in messages[:split]:
                    request += (_U32.pack(len(message)), message)
                proc.stdin.write(b"".join(request))
                proc.stdin.flush()
            except OSError as exc:
                self._give_up(exc)
                return [self.key.sign(m) for m in messages]
            local = [self.key.sign(m) for m in messages[split:]]
            try:
                reply = _read_exactly(proc.stdout, split * _SIGNATURE_SIZE)
            except (OSError, EOFError) as exc:
                self._give_up(exc)
                return [self.key.sign(m) for m in messages[:split]] + local
            remote = [reply[i : i + _SIGNATURE_SIZE] for i in range(0, len(reply), _SIGNATURE_SIZE)]
            return remote + local

    def _give_up(self, exc: BaseException) -> None:
        log.warning("ledger: signing helper unavailable (%s); signing in one process", exc)
        self._helper_wanted = False
        self._stop()

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()

    def close(self) -> None:
        """Stop the helper process, if any."""
        with self._lock:
            self._stop()

    def after_fork(self) -> None:
        """Forget a helper inherited through fork (its pipes belong to the parent)."""
        self._lock = threading.Lock()
        self._proc = None
