"""The conduct part of a dataset audit: the detectors over the ledger's entries, run in a worker
interpreter while the main process builds the index and matches the dataset.

Invariants:

- The worker reads the same log the audit reads (its own read-only connection to the same
  database) and runs :func:`ledger.policy.conduct.detect` over every entry the audit considers
  (the ``datasets`` filter applies); the caller keeps the findings that involve a linked entry.
- A ledger a child process cannot open (in-memory SQLite), or a worker that cannot start,
  falls back to the same pass in this process, after the caller asks for the result.
- The worker is a child interpreter of :mod:`ledger.log.workers` (never ``multiprocessing``:
  an unguarded user script would run again); only the findings cross the pipe.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from ledger.log.schema import make_engine
from ledger.log.store import LogStore
from ledger.log.workers import WorkerError, WorkerPool
from ledger.policy.conduct import ConductThresholds, Finding, detect

__all__ = ["ConductJob", "entry_bodies", "slim_body"]

log = logging.getLogger(__name__)

_worker: dict[str, Any] = {}


def entry_bodies(
    store: LogStore, datasets: frozenset[str | None] | None
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """``(leaf, entry id, body)`` of every entry in leaf order, of ``datasets`` only if given."""
    for leaf, data, _, entry_id in store.raw_entries(batch=10_000):
        signed = orjson.loads(data)
        body = signed.get("body") if type(signed) is dict else None
        if type(body) is not dict:
            continue
        if datasets is not None:
            name = body.get("dataset")
            if (name if type(name) is str else None) not in datasets:
                continue
        yield leaf, entry_id, body


def slim_body(body: dict[str, Any], seen: dict[Any, Any]) -> dict[str, Any]:
    """``body`` reduced to what the detectors read, its repeated values shared.

    The detectors keep one record per call holding strings and the SDK header mapping of its
    body; across a million calls most of those repeat, so one copy of each is kept.
    """
    client = body.get("client")
    if type(client) is dict:
        headers = client.get("headers")
        if type(headers) is dict:
            try:
                key = tuple(sorted(headers.items()))
                client["headers"] = seen.setdefault(key, headers)
            except TypeError:
                pass  # unhashable header values: keep the body's own mapping
    for name in ("provider", "account", "request_model", "response_model", "recorder"):
        value = body.get(name)
        if type(value) is str:
            body[name] = sys.intern(value)
    for name in ("endpoint", "org_headers", "response_org_headers"):
        mapping = body.get(name)
        if type(mapping) is dict:
            for field_name, value in mapping.items():
                if type(value) is str:
                    mapping[field_name] = sys.intern(value)
    for name in ("outputs", "usage", "tags", "output_sha256"):
        body.pop(name, None)
    return body


def _findings(
    store: LogStore,
    datasets: frozenset[str | None] | None,
    thresholds: ConductThresholds | None,
    hosts: Mapping[str, frozenset[str]] | None,
) -> list[Finding]:
    seen: dict[Any, Any] = {}
    calls = ((leaf, slim_body(body, seen)) for leaf, _, body in entry_bodies(store, datasets))
    return detect(calls, thresholds=thresholds, official_hosts=hosts)


def _init_worker(
    url: str,
    datasets: frozenset[str | None] | None,
    thresholds: ConductThresholds | None,
    hosts: Mapping[str, frozenset[str]] | None,
) -> None:
    _worker.update(
        store=LogStore(make_engine(url, pool_size=1)),
        datasets=datasets,
        thresholds=thresholds,
        hosts=hosts,
    )


def _run_worker(_: object) -> list[Finding]:
    return _findings(_worker["store"], _worker["datasets"], _worker["thresholds"], _worker["hosts"])


class ConductJob:
    """The conduct pass, started at once in a worker; :meth:`result` waits for its findings."""

    def __init__(
        self,
        store: LogStore,
        datasets: frozenset[str | None] | None,
        thresholds: ConductThresholds | None,
        hosts: Mapping[str, frozenset[str]] | None,
    ) -> None:
        self._args = (store, datasets, thresholds, hosts)
        self._found: list[Finding] | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._pool: WorkerPool | None = None
        url = store.engine.url
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            return  # a child cannot see this database: run in-process on result()
        try:
            pool = WorkerPool(
                1,
                f"{__name__}:_run_worker",
                f"{__name__}:_init_worker",
                (url.render_as_string(hide_password=False), datasets, thresholds, hosts),
            )
        except WorkerError as exc:
            log.warning("ledger: conduct pass in this process: %s", exc)
            return
        self._pool = pool

        def drive() -> None:
            try:
                with pool:
                    self._found = next(iter(pool.map([None])))
            except BaseException as exc:  # re-raised by result() in the caller's thread
                self._error = exc

        # The driver thread only waits on the worker's pipe, so it costs this process nothing.
        self._thread = threading.Thread(target=drive, name="ledger-audit-conduct", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Stop the worker (the audit failed before it needed the findings)."""
        if self._pool is not None:
            self._pool.close()
        if self._thread is not None:
            self._thread.join()

    def result(self) -> list[Finding]:
        """The findings (waiting for the worker, or running the pass here)."""
        if self._thread is None:
            return _findings(*self._args)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._found or []
