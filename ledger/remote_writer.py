"""The background batcher of remote recording: sealed entries to ``POST /v1/entries``.

Invariants:

* Entries are sealed (signed by the local recorder key, bound to the server's ledger id)
  before they are queued, so what is sent, retried or spooled is the record-time signature.
* One daemon thread sends batches in submission order: it waits up to ``linger`` seconds for
  a batch to fill (``max_batch``), sends it, and resolves each entry's future with its receipt.
  A failed send is retried with doubling delays (``retry_first`` up to ``attempts`` tries);
  then every future of the batch fails, and the recorder's sink spools those entries
  (``ledger.recorder.sinks``). The server is idempotent by entry id, so an entry both sent and
  spooled (a reply lost on the way back) is stored once when the spool is replayed.
* ``flush`` returns once everything submitted before it is resolved (or on timeout).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from ledger.errors import StoreError

__all__ = ["RemoteWriter"]

Send = Callable[[Sequence[Mapping[str, Any]]], Sequence[Any]]


class RemoteWriter:
    """Batches sealed entries to a sender in a background thread."""

    def __init__(
        self,
        send: Send,
        *,
        max_batch: int = 500,
        linger: float = 0.05,
        attempts: int = 3,
        retry_first: float = 0.2,
        after_success: Callable[[], object] | None = None,
    ) -> None:
        self._send = send
        self._max_batch = max_batch
        self._linger = linger
        self._attempts = attempts
        self._retry_first = retry_first
        self._after_success = after_success
        self._queue: deque[tuple[Mapping[str, Any], Future[Any]]] = deque()
        self._busy = 0
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ledger-remote-writer", daemon=True)
        self._thread.start()

    def submit(self, sealed: Mapping[str, Any]) -> Future[Any]:
        """Queue one sealed entry; the future gets its receipt (or the send's error)."""
        future: Future[Any] = Future()
        with self._cond:
            if self._closed:
                raise StoreError("the remote writer is closed")
            self._queue.append((sealed, future))
            self._cond.notify_all()
        return future

    def _take(self) -> list[tuple[Mapping[str, Any], Future[Any]]] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            deadline = time.monotonic() + self._linger
            while len(self._queue) < self._max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            count = min(len(self._queue), self._max_batch)
            batch = [self._queue.popleft() for _ in range(count)]
            self._busy = len(batch)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._deliver(batch)
            finally:
                with self._cond:
                    self._busy = 0
                    self._cond.notify_all()

    def _deliver(self, batch: list[tuple[Mapping[str, Any], Future[Any]]]) -> None:
        entries = [entry for entry, _ in batch]
        delay = self._retry_first
        error: BaseException | None = None
        for attempt in range(self._attempts):
            try:
                receipts = self._send(entries)
            except StoreError as exc:  # unreachable or failing server: worth another try
                error = exc
                if attempt + 1 < self._attempts:
                    time.sleep(delay)  # backoff between attempts of a send, not synchronization
                    delay *= 2
                continue
            except Exception as exc:  # a refusal (bad entry, token): retrying will not help
                error = exc
                break
            for (_, future), receipt in zip(batch, receipts, strict=True):
                future.set_result(receipt)
            if self._after_success is not None:
                self._after_success()
            return
        for _, future in batch:
            future.set_exception(error or StoreError("the batch was not sent"))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every entry submitted so far is resolved; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (up to ``timeout``), then stop the thread."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
