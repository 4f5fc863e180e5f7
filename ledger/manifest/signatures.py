"""Checking many entry signatures, on every core when there are enough of them.

Invariants:

* A task is a chunk of ``(leaf, body bytes, key id, signature)``; its result is the first leaf
  of the chunk whose signature does not verify under the listed key (with the reason), or
  None. Chunks are handed back in order, so the first failure reported is the lowest leaf.
* Workers are :class:`ledger.log.workers.WorkerPool` child interpreters (never a fork of the
  caller); they get only public keys. Below ``INLINE_LIMIT`` signatures, or when workers
  cannot start, everything runs in this process with the same function.
* :class:`SignatureStream` checks beside the caller: items are added as a pass reads them,
  one worker interpreter takes full chunks from a queue while the caller goes on with its own
  work, and the caller checks a chunk itself whenever the queue holds its backlog (so
  memory stays bounded and neither process waits for the other). ``finish`` checks what is
  left, the caller and the worker side by side, and reports the lowest failing leaf of all
  chunks, whoever checked them: the same answer as checking every item in order.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from ledger.crypto import batch_verify
from ledger.crypto.batch_verify import Item, check_with
from ledger.crypto.keys import VerifyingKey

__all__ = [
    "BACKLOG_BYTES",
    "INLINE_LIMIT",
    "SignatureStream",
]

log = logging.getLogger(__name__)

INLINE_LIMIT = 20_000
# Small enough that the caller and the worker end within a fraction of a second of each other.
_CHUNK = 1_000
# Signed bytes a SignatureStream lets wait for its worker before the caller checks a chunk.
BACKLOG_BYTES = 64 << 20
_TASK = f"{batch_verify.__name__}:check"
_INIT = f"{batch_verify.__name__}:init"


class SignatureStream:
    """Signatures checked while the caller reads on: a worker interpreter and the caller share.

    Args:
        keys: the listed recorder keys by key id (every item's key id must be among them).
        workers: worker interpreters to start once ``INLINE_LIMIT`` items arrived (default:
            one fewer than the cores, the caller being the last; 0 checks everything here).
        many: the caller expects more than ``INLINE_LIMIT`` items: the workers start now, so
            that their start-up overlaps the caller's first work instead of following it.
        backlog: signed bytes that may wait for the workers (default ``BACKLOG_BYTES``). What
            waits when the caller stops adding is the work the workers have while the caller
            does its own last passes; more keeps them busy longer and costs that much memory.

    Example:
        >>> with SignatureStream(keys) as stream:        # doctest: +SKIP
        ...     for item in items:
        ...         stream.add(item)
        ...     bad = stream.finish()
    """

    def __init__(
        self,
        keys: Mapping[str, VerifyingKey],
        workers: int | None = None,
        *,
        many: bool = False,
        backlog: int | None = None,
    ) -> None:
        self._raw = {key_id: key.raw for key_id, key in keys.items()}
        self._backlog = backlog if backlog is not None else BACKLOG_BYTES
        self._count = workers if workers is not None else max((os.cpu_count() or 1) - 1, 0)
        self._chunk: list[Item] = []
        self._early: list[list[Item]] = []  # chunks before INLINE_LIMIT items arrived
        self._added = 0
        self._queue: deque[tuple[list[Item], int]] = deque()
        self._queued = 0  # signed bytes waiting in the queue
        self._cond = threading.Condition()
        self._closing = False
        self._found: list[tuple[int, str]] = []
        self._pool: Any = None
        self._threads: list[threading.Thread] = []
        self.checked_here = 0  # items the caller checked itself (for benchmarks and tests)
        # The caller's own keys: several streams may run at once in one process (the audit
        # service verifies uploads in its thread pool); the module's are the workers'.
        self._keys = {key_id: VerifyingKey.from_raw(raw) for key_id, raw in self._raw.items()}
        if many and self._count > 0:
            self._start()

    def add(self, item: Item) -> None:
        """One ``(leaf, body bytes, key id, signature)``; leaves must come in ascending order."""
        self._chunk.append(item)
        self._added += 1
        if len(self._chunk) >= _CHUNK:
            chunk, self._chunk = self._chunk, []
            self._submit(chunk)

    def _submit(self, chunk: list[Item]) -> None:
        if self._pool is None:
            self._early.append(chunk)
            if self._added > INLINE_LIMIT and self._count > 0 and not self._threads:
                self._start()
            if self._pool is None:
                if self._added > INLINE_LIMIT:  # no worker: check as we go, keep nothing
                    for early in self._early:
                        self._check_here(early)
                    self._early = []
                return
            early, self._early = self._early, []
            for waiting in early:
                self._submit(waiting)
            return
        size = sum(len(item[1]) for item in chunk)
        with self._cond:
            if self._queued + size <= self._backlog or not self._queue:
                self._queue.append((chunk, size))
                self._queued += size
                self._cond.notify()
                return
        self._check_here(chunk)  # the worker is behind: take this chunk instead of waiting

    def _check_here(self, chunk: Sequence[Item]) -> None:
        found = check_with(self._keys, chunk)
        self.checked_here += len(chunk)
        if found is not None:
            with self._cond:
                self._found.append(found)

    def _start(self) -> None:
        from ledger.log.workers import WorkerError, WorkerPool

        try:
            self._pool = WorkerPool(self._count, _TASK, _INIT, (self._raw,))
        except WorkerError as exc:
            log.warning("ledger: checking signatures in one process: %s", exc)
            self._count = 0
            return
        self._threads = [
            threading.Thread(target=self._drive, args=(n,), daemon=True, name="ledger-sig")
            for n in range(self._pool.size)
        ]
        for thread in self._threads:
            thread.start()

    def _take(self, wait: bool) -> list[Item] | None:
        """The next queued chunk; None when closing (or, without ``wait``, when none is queued)."""
        with self._cond:
            if wait:
                self._cond.wait_for(lambda: bool(self._queue) or self._closing)
            if not self._queue:
                return None
            chunk, size = self._queue.popleft()
            self._queued -= size
            return chunk

    def _drive(self, worker: int) -> None:
        from ledger.log.workers import WorkerError

        # Two chunks in flight while reading goes on: the worker finds the next one in its pipe
        # when it finishes one, instead of idling until this thread gets the GIL back from the
        # caller's pass (a few milliseconds per chunk). One at the end, so that the caller can
        # take every chunk not started yet.
        sent: deque[list[Item]] = deque()
        try:
            while True:
                if len(sent) < (1 if self._closing else 2):
                    chunk = self._take(wait=not sent)
                    if chunk is not None:
                        sent.append(chunk)
                        self._pool.send(worker, chunk)
                        continue
                    if not sent:
                        return
                found = self._pool.receive(worker)
                sent.popleft()
                if found is not None:
                    with self._cond:
                        self._found.append((int(found[0]), str(found[1])))
        except WorkerError as exc:
            # A worker that died hands its chunks back; the caller checks them in finish().
            log.warning("ledger: a signature worker stopped: %s", exc)
            with self._cond:
                self._queue.extendleft((chunk, 0) for chunk in reversed(sent))

    def finish(self) -> tuple[int, str] | None:
        """Check every item not yet checked; the lowest failing leaf with the reason, or None.

        The caller takes chunks from the queue while the workers do the same, then waits for
        the chunks the workers are still on.
        """
        if self._chunk:
            chunk, self._chunk = self._chunk, []
            if self._pool is None:
                self._early.append(chunk)
            else:
                with self._cond:
                    self._queue.append((chunk, 0))
                    self._cond.notify()
        for early in self._early:
            self._check_here(early)
        self._early = []
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        while True:
            with self._cond:
                if not self._queue:
                    break
                chunk, size = self._queue.popleft()
                self._queued -= size
            self._check_here(chunk)
        for thread in self._threads:
            thread.join()
        with self._cond:
            return min(self._found) if self._found else None

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._queue.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
        self._threads = []
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> SignatureStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
