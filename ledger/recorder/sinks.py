"""Where finished entry bodies go: the ledger's writer, or the spool when it cannot take them.

Invariants:

- Async durability never makes a caller wait for the database. A body is handed to
  ``ledger.submit`` (the ledger's group-commit writer); if ``submit`` raises or its future fails
  (locked or deleted database, unreachable PostgreSQL), the body is sealed (signed now by the
  recorder key, bound to the ledger: ``ledger.seal``) and written to the spool, which fsyncs
  before returning.
- Nothing is discarded while the process lives. An entry the spool cannot take either (disk
  full, read-only home) is *held* in memory and retried with backoff (``RETRY_FIRST`` doubling
  to ``RETRY_MAX``), first as a commit, then as a spool write. One error is logged when such an
  episode starts and one line when it ends, not one per entry. So every entry is, at any moment,
  pending in this process, held, committed, or on disk in the spool.
- Memory is bounded: a sink holds at most ``MAX_HELD`` entries (about 1-2 KB each with
  ``content="hash"``). While it is full, recorded calls wait for room when they finish
  (``Recorder.commit``): backpressure instead of loss. Held entries do not survive the process;
  the exit flush retries them until its deadline and logs how many it could not save.
- ``AsyncSink.flush`` (run at normal interpreter exit) waits for the writer up to a deadline and
  then spools whatever is still uncommitted. A body may therefore be both committed and spooled;
  replay is idempotent by entry id, so that costs a no-op append, never a duplicate entry.
- Sync durability returns only after the ledger acknowledged the commit; otherwise it spools the
  sealed entry (so the call is not forgotten; held if the spool fails too) and raises
  ``RecordingError``.
- The ``Worker`` is one daemon thread per process that runs finalization jobs in order, in
  batches (it lingers briefly after the first job of a batch); its ``drain`` cuts the linger
  short and waits for every job queued before the call. A ledger's ``flush`` drains it first
  (``drain``), so a call that returned to its caller is in the ledger when ``flush`` returns.
- Nothing here logs a body: bodies hold no credential, but logs are not the place for them.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol

from ledger.errors import RecordingError
from ledger.recorder.spool import Spool

__all__ = ["AsyncSink", "LedgerLike", "SyncSink", "Worker", "drain", "flush_all", "worker"]

_log = logging.getLogger("ledger.recorder")

#: How long the exit handler waits for the ledger before spooling what is left.
EXIT_TIMEOUT = 10.0
#: How long the worker waits for more finished calls before processing a batch (seconds).
LINGER = 0.05
#: Most finished calls processed in one batch.
MAX_BATCH = 512
#: Most entries one sink holds in memory when neither the ledger nor the spool takes them.
MAX_HELD = 10_000
#: First and longest delay between retries of held entries (seconds).
RETRY_FIRST = 0.1
RETRY_MAX = 10.0


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

    def add_flush_hook(self, hook: Callable[[float | None], object]) -> None:
        """Have ``flush`` run ``hook(timeout)`` first (the recorder drains its worker)."""
        ...

    def seal(self, body: Mapping[str, Any]) -> Mapping[str, Any]:
        """Sign ``body`` now, bound to this ledger, for the spool (needs no database)."""
        ...

    def append_sealed(self, entries: Sequence[Mapping[str, Any]]) -> Any:
        """Check and commit sealed entries, keeping their record-time signatures."""
        ...

    def account_fingerprint(self, credential: str) -> str:
        """HMAC-SHA256 hex of ``credential`` under the ledger-local secret."""
        ...

    def fingerprint_key(self, dataset: str | None) -> bytes:
        """The key of ``dataset``'s output fingerprints (``ledger.crypto.fingerprint``)."""
        ...


class AsyncSink:
    """Submit to the ledger's writer; spool on failure; never block the caller on the database.

    Args:
        ledger: The ledger to write to.
        spool: Where sealed entries go when the ledger refuses them.
        max_held: Most entries kept in memory when neither the ledger nor the spool takes them;
            past that, ``wait_for_room`` makes new calls wait (see the module docstring).
        retry_first: First retry delay for held entries (seconds); doubles up to ``retry_max``.
        retry_max: Longest delay between two retries (seconds).
    """

    def __init__(
        self,
        ledger: LedgerLike,
        spool: Spool,
        *,
        max_held: int = MAX_HELD,
        retry_first: float = RETRY_FIRST,
        retry_max: float = RETRY_MAX,
    ) -> None:
        self.ledger = ledger
        self.spool = spool
        self.max_held = max_held
        self.retry_first = retry_first
        self.retry_max = retry_max
        self._lock = threading.Lock()
        self._pending: dict[str, Mapping[str, Any]] = {}
        # Sealed entries that could be neither committed nor spooled, by entry id. Guarded by
        # ``_held_cond`` (whose lock is ``_lock``): the retry thread, flush and callers waiting
        # for room all wait on it.
        self._held: dict[str, Mapping[str, Any]] = {}
        self._held_cond = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._retry_lock = threading.Lock()  # one retry at a time (thread or flush)
        self._retrier: threading.Thread | None = None
        self._episode_since: float | None = None
        self._spooled_since_ok = 0  # entries spooled since the last commit (for the log)
        #: True while ``max_held`` entries are held: the recorder then waits for room.
        self.saturated = False
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
                spooled, self._spooled_since_ok = self._spooled_since_ok, 0
            if spooled:
                _log.warning(
                    "ledger available again; %d entries were spooled to %s meanwhile: "
                    "replay them with `ledger spool flush`",
                    spooled,
                    self.spool.directory,
                )
            return
        self._spool(entry_id, exc)

    def _spool(self, entry_id: str, exc: BaseException | None) -> None:
        with self._lock:
            body = self._pending.pop(entry_id, None)
        if body is None:
            return  # already spooled by flush
        if self._spool_bodies([body]):
            with self._lock:
                self._spooled_since_ok += 1
                first = self._spooled_since_ok == 1
            if first:  # one line per outage, not one per entry
                _log.warning(
                    "ledger unavailable (%s: %s); entries are spooled to %s until it is back",
                    type(exc).__name__ if exc else "cancelled",
                    exc,
                    self.spool.directory,
                )

    def _spool_bodies(self, bodies: Sequence[Mapping[str, Any]]) -> bool:
        """Seal and spool ``bodies``; hold them for retry if that fails. True if spooled."""
        sealed: list[Mapping[str, Any]] = []
        for body in bodies:
            try:
                sealed.append(self.ledger.seal(body))
            except Exception:
                # Sealing needs no database; failing here is a bug, not an outage. The plain
                # body is still kept (held) so the record is not lost while the process lives.
                _log.exception("entry %s could not be sealed for the spool", body.get("id"))
                sealed.append(body)
        try:
            self.spool.write_many(sealed)
        except Exception as exc:
            self.hold(sealed, f"spool: {exc}")
            return False
        return True

    def hold(self, entries: Sequence[Mapping[str, Any]], why: str) -> None:
        """Keep entries that could be neither committed nor spooled, and retry them.

        ``entries`` are sealed entries (or, should sealing have failed, plain bodies). The first
        hold of an episode logs one error; the episode ends, with one more log line, when every
        held entry is committed or spooled.
        """
        if not entries:
            return
        with self._held_cond:
            for entry in entries:
                self._held[_entry_id(entry)] = entry
            held = len(self._held)
            self.saturated = held >= self.max_held
            first = self._episode_since is None
            if first:
                self._episode_since = time.monotonic()
            if self._retrier is None:
                self._retrier = threading.Thread(
                    target=self._retry_loop, name="ledger-recorder-retry", daemon=True
                )
                self._retrier.start()
        if first:
            _log.error(
                "ledger entries can be neither committed nor spooled to %s (%s); holding %d "
                "in memory and retrying with backoff (at most %d are held before recorded "
                "calls wait). They are lost if the process ends before this clears.",
                self.spool.directory,
                why,
                held,
                self.max_held,
            )

    def _retry_loop(self) -> None:
        delay = self.retry_first
        while True:
            self._wake.wait(delay)
            self._wake.clear()
            if self.retry_held():
                with self._lock:
                    # Decided under the lock that ``hold`` takes, so an entry held from now on
                    # starts a new retry thread rather than waiting for this finished one.
                    if not self._held:
                        self._retrier = None
                        return
                delay = self.retry_first
            else:
                delay = min(delay * 2, self.retry_max)

    def retry_held(self) -> bool:
        """Try once to commit the held entries, else to spool them; True when none is left."""
        with self._retry_lock:
            return self._retry_once()

    def _retry_once(self) -> bool:
        with self._lock:
            entries = list(self._held.values())
        if not entries:
            return True
        where = None
        try:
            self._commit_held(entries)
            where = "committed"
        except Exception as commit_exc:
            try:
                self.spool.write_many(entries)
                where = f"spooled to {self.spool.directory}"
            except Exception as spool_exc:
                _log.debug("retry failed: %s; %s", commit_exc, spool_exc)
        if where is None:
            return False
        with self._held_cond:
            for entry in entries:
                self._held.pop(_entry_id(entry), None)
            left = len(self._held)
            self.saturated = left >= self.max_held
            since = self._episode_since
            if left == 0:
                self._episode_since = None
            self._held_cond.notify_all()
        if left == 0 and since is not None:
            _log.warning(
                "recovered: %d held ledger entries %s after %.1f s",
                len(entries),
                where,
                time.monotonic() - since,
            )
        return left == 0

    def _commit_held(self, entries: Sequence[Mapping[str, Any]]) -> None:
        sealed = [e for e in entries if _is_sealed(e)]
        plain = [e for e in entries if not _is_sealed(e)]
        if sealed:
            self.ledger.append_sealed(sealed)
        if plain:
            self.ledger.append_many(plain)

    def wait_until_clear(self, timeout: float | None = None) -> bool:
        """Wait (without retrying itself) until no entry is held; False on timeout."""
        with self._held_cond:
            return self._held_cond.wait_for(lambda: not self._held, timeout)

    def wait_for_room(self, timeout: float | None = None) -> bool:
        """Block while ``max_held`` entries are held (bounded memory); False on timeout."""
        with self._held_cond:
            return self._held_cond.wait_for(lambda: len(self._held) < self.max_held, timeout)

    def flush(self, timeout: float | None = None) -> int:
        """Wait for the writer up to ``timeout`` seconds, then spool whatever is still pending.

        Held entries are retried at once, then (with a ``timeout``) with backoff until the
        deadline; with ``timeout=None`` they are retried once and left to the retry thread.

        Returns:
            How many bodies were spooled by this call.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self.ledger.flush(timeout=timeout)
        except Exception as exc:  # a failed flush is exactly when we spool
            _log.warning("ledger flush failed (%s); spooling pending entries", type(exc).__name__)
        with self._lock:
            leftovers = list(self._pending.values())
            self._pending.clear()
        spooled = len(leftovers) if leftovers and self._spool_bodies(leftovers) else 0
        delay = self.retry_first
        while not self.retry_held():
            left = None if deadline is None else deadline - time.monotonic()
            if left is None or left <= 0:
                break
            with self._held_cond:
                self._held_cond.wait(min(delay, left))
            delay = min(delay * 2, self.retry_max)
        return spooled

    @property
    def pending(self) -> int:
        """Bodies submitted but not yet known to be committed or spooled."""
        with self._lock:
            return len(self._pending)

    @property
    def held(self) -> int:
        """Entries that could be neither committed nor spooled yet (being retried)."""
        with self._lock:
            return len(self._held)


def _is_sealed(entry: Mapping[str, Any]) -> bool:
    return set(entry) == {"body", "key_id", "sig"}


def _entry_id(entry: Mapping[str, Any]) -> str:
    body = entry["body"] if _is_sealed(entry) else entry
    return str(body["id"])


class SyncSink:
    """Append and wait for the commit; spool and raise ``RecordingError`` if it fails.

    If the spool fails too, the entry goes to ``fallback`` (the recorder's ``AsyncSink``), which
    holds and retries it: the caller is told, and the record is still not forgotten.
    """

    def __init__(self, ledger: LedgerLike, spool: Spool, fallback: AsyncSink | None = None) -> None:
        self.ledger = ledger
        self.spool = spool
        self.fallback = fallback

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
            sealed = self.ledger.seal(body)
        except Exception:
            _log.exception("entry %s could not be sealed", body.get("id"))
            sealed = body
        try:
            self.spool.write(sealed)
            where = f"spooled to {self.spool.directory}"
        except Exception as spool_exc:
            if self.fallback is not None:
                self.fallback.hold([sealed], f"spool: {spool_exc}")
                where = "not spooled either (held in memory and retried)"
            else:
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
        """Wait until every job queued before this call has run; False on timeout.

        Called from a job (the worker's own thread) it returns at once: the worker cannot wait
        for itself, and the jobs queued ahead of the running one have already run.
        """
        if threading.current_thread() is self._thread:
            return True
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
                atexit.register(_exit_flush, EXIT_TIMEOUT)
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
        sink._held_cond = threading.Condition(sink._lock)
        sink._retry_lock = threading.Lock()
        sink._retrier = None
        sink._episode_since = None
        sink.saturated = False
        sink._pending.clear()
        sink._held.clear()  # the parent's to retry, not ours
        sink._spooled_since_ok = 0


os.register_at_fork(after_in_child=_after_fork_in_child)


def drain(timeout: float | None = None) -> bool:
    """Run every recorder job queued so far (the ledger's ``flush`` calls this first)."""
    current = _worker
    return True if current is None else current.drain(timeout)


def flush_all(timeout: float | None = None) -> bool:
    """Finish every queued recording: run pending jobs, then flush or spool every sink.

    Returns:
        False if some entry is still neither committed nor spooled (it stays held and retried).
    """
    if _worker is not None and not _worker.drain(timeout):
        _log.warning("recorder worker did not finish within %ss", timeout)
    for sink in list(_sinks):
        sink.flush(timeout)
    return not any(sink.held for sink in list(_sinks))


def _exit_flush(timeout: float) -> None:
    if not flush_all(timeout):
        lost = sum(sink.held for sink in list(_sinks))
        _log.critical(
            "%d ledger entries are lost at exit: for %ss they could be neither committed nor "
            "spooled",
            lost,
            timeout,
        )
