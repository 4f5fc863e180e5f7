"""The background group-commit writer.

Callers that do not wait (the recorder's async durability) hand bodies to :meth:`Writer.submit`
and get a ``Future``. One daemon thread drains the queue: it takes everything waiting (up to
``batch_size``), signs each body, and appends the batch in one transaction, so the cost of a
commit (and of SQLite's fsync) is shared by every entry in it.

Invariants:

* A future completes only after its entry is committed (result: the receipt) or definitely not
  committed (exception: the reason). A failed batch fails every future in it; the entries are
  not half-written (one transaction), so the caller may retry or spool them.
* A body that cannot be signed (not a JSON object, bad id) fails only its own future.
* :meth:`flush` returns when everything submitted before the call has completed.
* ``annex`` (the ledger's judge) adds verdict rows to each batch's own transaction.
* After each commit the ``after_commit`` hook runs in the writer thread (the ledger signs
  checkpoints every N entries); when the queue is idle it also runs every ``idle_tick``
  seconds, so time-based checkpoints happen without new entries.
* A database that refuses writes as read-only fails the batch with an error that says so, and
  the store's pooled connections are dropped (:func:`read_only_error`): SQLite keeps a
  connection opened on a read-only file read-only for good, so only a fresh one can see that
  the file became writable.
* :meth:`flush` called from the writer thread itself (an ``after_commit`` hook) returns at once
  instead of waiting for itself.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from ledger.errors import LedgerError, StoreError
from ledger.log import schema
from ledger.log.records import PreparedEntry, Receipt, prepare_entries
from ledger.log.signing import BatchSigner
from ledger.log.store import Annex, LogStore

__all__ = ["Writer", "read_only_error"]

log = logging.getLogger(__name__)


class Writer:
    """One thread that signs and group-commits submitted entry bodies."""

    def __init__(
        self,
        store: LogStore,
        signer: Callable[[], BatchSigner],
        *,
        batch_size: int,
        annex: Annex | None = None,
        after_commit: Callable[[], None] | None = None,
        idle_tick: float | None = None,
    ) -> None:
        self._store = store
        self._signer = signer
        self._batch_size = batch_size
        self._annex = annex
        self._after_commit = after_commit
        self._idle_tick = idle_tick
        self._queue: deque[tuple[Mapping[str, Any], Future[Receipt]]] = deque()
        self._cond = threading.Condition()
        self._pending = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._after_commit_failing = False

    def submit(self, body: Mapping[str, Any]) -> Future[Receipt]:
        """Queue ``body`` for signing and commit; return at once."""
        future: Future[Receipt] = Future()
        with self._cond:
            if self._closed:
                raise StoreError("the ledger is closed")
            self._queue.append((body, future))
            self._pending += 1
            if self._thread is None:
                self._start()
            if len(self._queue) == 1:
                # Only an idle writer is waiting for work; a busy one takes the whole queue
                # when its commit ends, so waking it for every submission is wasted effort.
                self._cond.notify_all()
        return future

    def after_fork(self) -> None:
        """Reset in a forked child: the parent's thread and queue are not ours to run."""
        self._queue = deque()
        self._cond = threading.Condition()
        self._pending = 0
        self._thread = None

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()

    def start_ticking(self) -> None:
        """Start the thread now (it otherwise starts with the first submission)."""
        with self._cond:
            if self._thread is None and not self._closed:
                self._start()

    def idle(self) -> bool:
        """Whether nothing submitted is waiting or being committed."""
        with self._cond:
            return self._pending == 0

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far has completed; False on timeout."""
        if threading.current_thread() is self._thread:
            return False  # the writer cannot wait for its own batch
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Finish the queue, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    if not self._cond.wait(self._idle_tick) and self._idle_tick is not None:
                        break
                if not self._queue and self._closed:
                    return
                batch = [
                    self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))
                ]
            committed, waiting = self._commit(batch) if batch else ([], [])
            if self._after_commit is not None:
                try:
                    self._after_commit()
                    if self._after_commit_failing:
                        self._after_commit_failing = False
                        log.warning("ledger: after-commit work succeeds again")
                except LedgerError as exc:
                    # Once per run of failures (an outage fails every tick), not per batch.
                    level = logging.DEBUG if self._after_commit_failing else logging.WARNING
                    self._after_commit_failing = True
                    log.log(level, "ledger: after-commit work failed: %s", exc)
                except Exception:  # the futures below must resolve whatever happens here
                    log.exception("ledger: unexpected error after a commit")
            # Callers learn of the commit after the checkpoint it may have triggered.
            for future, (_, receipt) in zip(waiting, committed, strict=True):
                future.set_result(receipt)
            if batch:
                # Only now, so that flush() also covers the checkpoint this batch triggered.
                with self._cond:
                    self._pending -= len(batch)
                    self._cond.notify_all()

    def _commit(
        self, batch: list[tuple[Mapping[str, Any], Future[Receipt]]]
    ) -> tuple[list[tuple[PreparedEntry, Receipt]], list[Future[Receipt]]]:
        """Sign and append a batch; return the committed pairs and their waiting futures."""
        live = [(body, future) for body, future in batch if future.set_running_or_notify_cancel()]
        prepared: list[PreparedEntry] = []
        waiting: list[Future[Receipt]] = []
        for (_, future), result in zip(
            live, prepare_entries([body for body, _ in live], self._signer()), strict=True
        ):
            if isinstance(result, LedgerError):
                future.set_exception(result)
            else:
                prepared.append(result)
                waiting.append(future)
        if not prepared:
            return [], []
        try:
            receipts = self._store.append(prepared, self._annex)
        except LedgerError as exc:
            error = read_only_error(self._store, exc) if isinstance(exc, StoreError) else exc
            for future in waiting:
                future.set_exception(error)
            return [], []
        except Exception as exc:  # a writer thread must never die silently
            log.exception("ledger: unexpected error while appending")
            error = StoreError(f"unexpected error while appending: {exc!r}")
            for future in waiting:
                future.set_exception(error)
            return [], []
        return list(zip(prepared, receipts, strict=True)), waiting


_READ_ONLY_MARKS = ("readonly database", "read-only transaction", "read-only database")


def read_only_error(store: LogStore, exc: StoreError) -> StoreError:
    """``exc``, or a clearer error if the database refused the write as read-only.

    In that case the store's pooled connections are dropped first, so the next append opens a
    fresh connection and succeeds as soon as the database is writable again.
    """
    cause = exc.__cause__
    orig = getattr(cause, "orig", None)
    text = f"{exc} {orig}".lower()
    if not any(mark in text for mark in _READ_ONLY_MARKS):
        return exc
    store.engine.dispose()
    where = schema.redact_url(str(store.engine.url))
    error = StoreError(
        f"the database {where} is read-only: nothing can be appended until it is writable "
        "(the next append reconnects)"
    )
    error.__cause__ = exc
    return error
