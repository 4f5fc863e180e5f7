"""Where finished entry bodies go: the ledger's writer, or the spool when it cannot take them.

Invariants:

- Async durability never makes a caller wait for the database. A body is handed to
  ``ledger.submit`` (the ledger's group-commit writer); if ``submit`` raises or its future fails
  (locked or deleted database, unreachable PostgreSQL), the body is written to the spool, which
  fsyncs before returning. So every body is, at any moment, pending in this process, committed,
  or on disk in the spool.
- ``AsyncSink.flush`` (run at normal interpreter exit) waits for the writer up to a deadline and
  then spools whatever is still uncommitted. A body may therefore be both committed and spooled;
  replay is idempotent by entry id, so that costs a no-op append, never a duplicate entry.
- Sync durability returns only after the ledger acknowledged the commit; otherwise it spools the
  body (so the call is not forgotten) and raises ``RecordingError``.
- The ``Worker`` is one daemon thread per process that runs finalization jobs in order, in
  batches (it lingers briefly after the first job of a batch); its ``drain`` cuts the linger
  short and waits for every job queued before the call.
- Nothing here logs a body: bodies hold no credential, but logs are not the place for them.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import queue
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol

from ledger.errors import RecordingError
from ledger.recorder.spool import Spool

__all__ = ["AsyncSink", "LedgerLike", "SyncSink", "Worker", "flush_all", "worker"]

_log = logging.getLogger("ledger.recorder")

#: How long the exit handler waits for the ledger before spooling what is left.
EXIT_TIMEOUT = 10.0
#: How long the worker waits for more finished calls before processing a batch (seconds).
LINGER = 0.05
#: Most finished calls processed in one batch.
MAX_BATCH = 512


class LedgerLike(Protocol):
    """The part of ``ledger.Ledger`` the recorder uses."""

    @property
    def home(self) -> Path:
        """The ledger's home folder (the spool lives under it)."""
        ...

    def submit(self, body: Mapping[str, Any]) -> Future[Any]:
        """Queue ``body`` for the group-commit writer."""
        ...

    def append(self, body: Mapping[str, Any]) -> Any:
        """Append ``body`` and wait for the commit."""
        ...

    def append_many(self, bodies: Sequence[Mapping[str, Any]]) -> Any:
        """Append ``bodies`` in one transaction."""
        ...

    def flush(self, timeout: float | None = None) -> object:
        """Wait until everything submitted so far is committed."""
        ...

    def account_fingerprint(self, credential: str) -> str:
        """HMAC-SHA256 hex of ``credential`` under the ledger-local secret."""
        ...

    def fingerprint_key(self, dataset: str | None) -> bytes:
        """The key of ``dataset``'s output fingerprints (``ledger.crypto.fingerprint``)."""
        ...


class AsyncSink:
    """Submit to the ledger's writer; spool on failure; never block the caller on the database."""

    def __init__(self, ledger: LedgerLike, spool: Spool) -> None:
        self.ledger = ledger
        self.spool = spool
        self._lock = threading.Lock()
        self._pending: dict[str, Mapping[str, Any]] = {}
        _sinks.add(self)

    def put(self, body: Mapping[str, Any]) -> None:
        """Hand ``body`` to the writer (or the spool if the writer refuses it at once)."""
        entry_id = str(body["id"])
        with self._lock:
            self._pending[entry_id] = body
        try:
            future = self.ledger.submit(body)
        except Exception as exc:  # any refusal means "spool it", never "drop it"
            self._spool(entry_id, exc)
            return
        future.add_done_callback(lambda fut: self._done(entry_id, fut))

    def _done(self, entry_id: str, future: Future[Any]) -> None:
        exc = None if future.cancelled() else future.exception()
        if exc is None and not future.cancelled():
            with self._lock:
                self._pending.pop(entry_id, None)
            return
        self._spool(entry_id, exc)

    def _spool(self, entry_id: str, exc: BaseException | None) -> None:
        with self._lock:
            body = self._pending.pop(entry_id, None)
        if body is None:
            return  # already spooled by flush
        try:
            self.spool.write(body)
        except Exception:
            _log.exception("entry %s could not be committed nor spooled", entry_id)
            return
        _log.warning(
            "ledger unavailable (%s); entry %s spooled to %s",
            type(exc).__name__ if exc else "cancelled",
            entry_id,
            self.spool.directory,
        )

    def flush(self, timeout: float | None = None) -> int:
        """Wait for the writer up to ``timeout`` seconds, then spool whatever is still pending.

        Returns:
            How many bodies were spooled by this call.
        """
        try:
            self.ledger.flush(timeout=timeout)
        except Exception as exc:  # a failed flush is exactly when we spool
            _log.warning("ledger flush failed (%s); spooling pending entries", type(exc).__name__)
        with self._lock:
            leftovers = list(self._pending.values())
            self._pending.clear()
        if leftovers:
            self.spool.write_many(leftovers)
        return len(leftovers)

    @property
    def pending(self) -> int:
        """Bodies submitted but not yet known to be committed or spooled."""
        with self._lock:
            return len(self._pending)


class SyncSink:
    """Append and wait for the commit; spool and raise ``RecordingError`` if it fails."""

    def __init__(self, ledger: LedgerLike, spool: Spool) -> None:
        self.ledger = ledger
        self.spool = spool

    def put(self, body: Mapping[str, Any]) -> None:
        """Commit ``body`` or raise ``RecordingError``."""
        try:
            self.ledger.append(body)
        except Exception as exc:
            raise self._failed(body, exc) from exc

    async def aput(self, body: Mapping[str, Any]) -> None:
        """Commit ``body`` without blocking the event loop, or raise ``RecordingError``."""
        try:
            await asyncio.wrap_future(self.ledger.submit(body))
        except Exception as exc:
            raise self._failed(body, exc) from exc

    def _failed(self, body: Mapping[str, Any], exc: Exception) -> RecordingError:
        where = "not spooled either"
        try:
            self.spool.write(body)
            where = f"spooled to {self.spool.directory}"
        except Exception:
            _log.exception("entry %s could not be spooled", body.get("id"))
        return RecordingError(
            f"the call was made but its ledger entry {body.get('id')} was not committed "
            f"({type(exc).__name__}: {exc}); {where}"
        )


class Worker:
    """One daemon thread that runs finalization jobs (parse, build, submit) in order.

    Jobs are taken in batches: after the first job of a batch arrives the worker lingers up to
    ``linger`` seconds for more. The work itself is the same; what changes is when it runs. A
    job started the moment a call finishes competes for the GIL (and, on small machines, for a
    core) with the caller, which is still turning the response into SDK objects and making its
    next request. A batch also reaches the ledger's writer together and is committed in one
    transaction. ``drain`` cuts the linger short, so flushing never waits for it.
    """

    def __init__(self, linger: float = LINGER, max_batch: int = MAX_BATCH) -> None:
        self.linger = linger
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._count_lock = threading.Lock()
        self._hurry = threading.Event()
        self._queued = 0
        self._done = 0
        self._thread = threading.Thread(target=self._run, name="ledger-recorder", daemon=True)
        self._thread.start()

    def put(self, job: Callable[[], None]) -> None:
        """Queue ``job``; returns at once."""
        # ``+=`` on an attribute is not atomic across threads, hence the (uncontended, cheap)
        # lock; drain() must never see a count lower than the jobs really queued.
        with self._count_lock:
            self._queued += 1
        self._queue.put(job)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            if self.linger > 0 and not self._hurry.is_set():
                self._hurry.wait(self.linger)
            self._hurry.clear()
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for job in batch:
                if job is None:
                    return
                try:
                    job()
                except Exception:
                    _log.exception("recorder job failed")
                finally:
                    with self._cond:
                        self._done += 1
                        self._cond.notify_all()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every job queued before this call has run; False on timeout."""
        target = self._queued
        self._hurry.set()
        with self._cond:
            done = self._cond.wait_for(lambda: self._done >= target, timeout=timeout)
        return done


_sinks: weakref.WeakSet[AsyncSink] = weakref.WeakSet()
_worker: Worker | None = None
_worker_lock = threading.Lock()


_exit_registered = False


def worker() -> Worker:
    """The process-wide worker, started (and the exit flush registered) on first use."""
    global _worker, _exit_registered
    current = _worker
    if current is not None:
        return current
    with _worker_lock:
        if _worker is None:
            _worker = Worker()
            if not _exit_registered:
                _exit_registered = True
                # atexit runs handlers last-registered-first: this one is registered after
                # the ledger was opened, so it runs while the ledger's writer is still alive.
                atexit.register(flush_all, EXIT_TIMEOUT)
        return _worker


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's threads: start over with a fresh worker.

    Jobs queued in the parent stay the parent's (it runs them); the child must not inherit
    them as pending, nor a lock some parent thread held at the moment of the fork.
    """
    global _worker, _worker_lock
    _worker = None
    _worker_lock = threading.Lock()
    for sink in list(_sinks):
        sink._lock = threading.Lock()
        sink._pending.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def flush_all(timeout: float | None = None) -> None:
    """Finish every queued recording: run pending jobs, then flush or spool every sink."""
    if _worker is not None and not _worker.drain(timeout):
        _log.warning("recorder worker did not finish within %ss", timeout)
    for sink in list(_sinks):
        sink.flush(timeout)
