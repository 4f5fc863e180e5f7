"""Checking many entry signatures, on every core when there are enough of them.

Invariants:

* A task is a chunk of ``(leaf, body bytes, key id, signature)``; its result is the first leaf
  of the chunk whose signature does not verify under the listed key (with the reason), or
  None. Chunks are handed back in order, so the first failure reported is the lowest leaf.
* Workers are :class:`ledger.log.workers.WorkerPool` child interpreters (never a fork of the
  caller); they get only public keys. Below ``INLINE_LIMIT`` signatures, or when workers
  cannot start, everything runs in this process with the same function.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

from ledger.crypto.keys import VerifyingKey
from ledger.errors import SignatureError

__all__ = ["INLINE_LIMIT", "first_bad_signature"]

log = logging.getLogger(__name__)

INLINE_LIMIT = 20_000
_CHUNK = 4_000
Item = tuple[int, bytes, str, bytes]
_keys: dict[str, VerifyingKey] = {}


def _init(keys: Mapping[str, bytes]) -> None:
    _keys.clear()
    _keys.update({key_id: VerifyingKey.from_raw(raw) for key_id, raw in keys.items()})


def _check(chunk: Sequence[Item]) -> tuple[int, str] | None:
    for leaf, body, key_id, signature in chunk:
        try:
            _keys[key_id].verify(signature, body)
        except SignatureError as exc:
            return leaf, str(exc)
    return None


def first_bad_signature(
    items: Sequence[Item], keys: Mapping[str, VerifyingKey], workers: int | None = None
) -> tuple[int, str] | None:
    """The lowest leaf whose signature fails, with the reason; None when all verify.

    Every item's key id must be in ``keys`` (the caller checked that it is listed).
    """
    raw = {key_id: key.raw for key_id, key in keys.items()}
    chunks = [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]
    count = workers if workers is not None else os.cpu_count() or 1
    if len(items) > INLINE_LIMIT and count > 1:
        from ledger.log.workers import WorkerError, WorkerPool

        try:
            pool = WorkerPool(count, f"{__name__}:_check", f"{__name__}:_init", (raw,))
        except WorkerError as exc:
            log.warning("ledger: checking signatures in one process: %s", exc)
        else:
            with pool:
                for result in pool.map(chunks):
                    if result is not None:
                        return (int(result[0]), str(result[1]))
            return None
    _init(raw)
    for chunk in chunks:
        result = _check(chunk)
        if result is not None:
            return result
    return None
