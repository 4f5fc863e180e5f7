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
from typing import Any

from ledger.crypto.keys import VerifyingKey
from ledger.errors import SignatureError

__all__ = ["BATCH", "INLINE_LIMIT", "SignatureChecker", "first_bad_signature"]

log = logging.getLogger(__name__)

INLINE_LIMIT = 20_000
# Entries verified per batch: the signed bytes of one batch are held at a time.
BATCH = 50_000
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


class SignatureChecker:
    """Checks batches of signatures; starts worker processes at the first large batch."""

    def __init__(self, keys: Mapping[str, VerifyingKey], workers: int | None = None) -> None:
        self._raw = {key_id: key.raw for key_id, key in keys.items()}
        self._count = workers if workers is not None else os.cpu_count() or 1
        self._pool: Any = None
        self._tried = False
        _init(self._raw)

    def _start(self) -> None:
        from ledger.log.workers import WorkerError, WorkerPool

        self._tried = True
        try:
            self._pool = WorkerPool(
                self._count, f"{__name__}:_check", f"{__name__}:_init", (self._raw,)
            )
        except WorkerError as exc:
            log.warning("ledger: checking signatures in one process: %s", exc)

    def first_bad(self, items: Sequence[Item]) -> tuple[int, str] | None:
        """The lowest leaf of ``items`` whose signature fails, with the reason, or None."""
        chunks = [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]
        if len(items) > INLINE_LIMIT and self._count > 1 and not self._tried:
            self._start()
        if self._pool is not None and len(items) > INLINE_LIMIT:
            for result in self._pool.map(chunks):
                if result is not None:
                    return (int(result[0]), str(result[1]))
            return None
        _init(self._raw)
        for chunk in chunks:
            found = _check(chunk)
            if found is not None:
                return found
        return None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> SignatureChecker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def first_bad_signature(
    items: Sequence[Item], keys: Mapping[str, VerifyingKey], workers: int | None = None
) -> tuple[int, str] | None:
    """The lowest leaf whose signature fails, with the reason; None when all verify.

    Every item's key id must be in ``keys`` (the caller checked that it is listed).
    """
    with SignatureChecker(keys, workers) as checker:
        return checker.first_bad(items)
