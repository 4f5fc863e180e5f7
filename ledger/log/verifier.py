"""Batch checking of Ed25519 signatures, spread over the machine's cores with threads.

Checking the signatures of a sealed batch was the largest cost of ``POST /v1/entries``
(about 130 us of CPU per entry, in one thread). pyca/cryptography releases the GIL around
the OpenSSL Ed25519 verify (since its pull request 15164; two threads verifying were both
inside ``verify`` 94% of the time here), so plain threads run the checks in parallel without
the pipe and start-up costs of a helper interpreter (which :mod:`ledger.log.signing` needs
for signing only because it predates that release). With an older ``cryptography`` the
threads take turns and the result is the same, only not faster.

Invariants:

* ``check_many(items)[i]`` is exactly ``key.is_valid(signature, message)`` of ``items[i]``;
  nothing is skipped, whichever thread checked it, and a failure anywhere is reported at its
  own position (callers refuse the whole batch before storing anything).
* Small batches (under ``min_batch``) are checked in the calling thread: no pool is started
  for single appends or tests.
* The pool is per process: a child made by ``fork`` starts its own on first use instead of
  inheriting threads that do not exist in it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from ledger.crypto.keys import VerifyingKey

__all__ = ["SignatureCheck", "check_many"]

#: One signature to check: the key, the 64-byte signature, the signed message.
SignatureCheck = tuple[VerifyingKey, bytes, bytes]

_MIN_BATCH = 32
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None


def _threads() -> int:
    # One thread per core, the caller included; more only adds switching.
    return max(1, min(os.cpu_count() or 1, 8))


def _executor() -> ThreadPoolExecutor | None:
    global _pool, _pool_pid
    extra = _threads() - 1
    if extra < 1:
        return None
    with _lock:
        if _pool is None or _pool_pid != os.getpid():
            # After fork the parent's pool object is copied but its threads are not.
            _pool = ThreadPoolExecutor(max_workers=extra, thread_name_prefix="ledger-verify")
            _pool_pid = os.getpid()
        return _pool


def _check(items: Sequence[SignatureCheck]) -> list[bool]:
    return [key.is_valid(signature, message) for key, signature, message in items]


def check_many(items: Sequence[SignatureCheck], *, min_batch: int = _MIN_BATCH) -> list[bool]:
    """Whether each signature verifies, in order, checked on all cores for large batches."""
    pool = _executor() if len(items) >= min_batch else None
    if pool is None:
        return _check(items)
    parts = _threads()
    size = -(-len(items) // parts)
    chunks = [items[start : start + size] for start in range(0, len(items), size)]
    # The caller checks the last chunk itself rather than waiting idle for the pool.
    futures = [pool.submit(_check, chunk) for chunk in chunks[:-1]]
    last = _check(chunks[-1])
    results: list[bool] = []
    for future in futures:
        results += future.result()
    return results + last
