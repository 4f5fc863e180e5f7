"""The recorder: turns what a transport saw of one HTTP attempt into a ledger entry body.

Invariants:

- One ``Call`` per HTTP attempt, one entry per ``Call``: ``finish`` runs at most once, whichever of
  stream end, ``close``, an error or garbage collection comes first.
- The hot path (``Recorder.begin``, ``Call.respond``, ``Call.feed``) only snapshots: method, URL,
  headers, the request body reference, the response status and headers, and the body chunks as
  they pass. Hashing, decoding, parsing, building the body and writing happen in ``finish``, on
  the background worker for ``durability="async"`` and inline for ``durability="sync"``.
- Credentials never leave ``begin``: the credential header (or Gemini's ``key`` query parameter)
  is turned into the account fingerprint and dropped. Fingerprints are cached per credential
  under a SHA-256 of the credential, so HMAC runs once per key and the cache holds no secret.
  The URL kept for the entry has ``key`` removed from its query string.
- ``x-ledger-*`` request headers are labels for the recorder: they are removed from the request
  before it is sent (precedence and purpose checks: ``ledger.recorder.labels``). The body
  itself is assembled by ``ledger.recorder.entry``.
- ``durability="sync"``: ``finish`` returns only after the entry is committed, else raises
  ``RecordingError``. ``durability="async"``: ``finish`` only queues work.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ledger.errors import InputError
from ledger.log.ids import uuid7
from ledger.recorder.entry import body_for, decoded, ends_with_terminal_event
from ledger.recorder.labels import Labels, as_tags, resolve_labels
from ledger.recorder.providers import Exchange, parse_exchange
from ledger.recorder.providers.generic import empty_facts
from ledger.recorder.sinks import AsyncSink, LedgerLike, SyncSink, Worker, drain, worker
from ledger.recorder.spool import Spool

__all__ = ["Call", "Content", "Durability", "Recorder"]

_log = logging.getLogger("ledger.recorder")

Content = Literal["hash", "full"]
Durability = Literal["async", "sync"]

# Request headers that carry a credential: fingerprinted, never kept.
_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "x-api-key", "x-goog-api-key", "api-key", "proxy-authorization", "cookie"}
)
# Of those, the ones whose value identifies the provider account, in order of preference.
_ACCOUNT_HEADERS = ("x-api-key", "x-goog-api-key", "api-key", "authorization")
# Query parameters that can carry a credential (Gemini accepts ``?key=``).
_CREDENTIAL_PARAMS = frozenset({"key", "api_key", "api-key", "access_token"})

_FINGERPRINT_CACHE = 4096


class Call:
    """What one HTTP attempt has shown so far; finished exactly once.

    Created by ``Recorder.begin``. A transport calls ``respond`` when the response head arrives,
    ``feed`` for every body chunk, and ``finish`` from the stream's ``close``.
    """

    __slots__ = (
        "_recorder",
        "account",
        "chunks",
        "ended",
        "entry_id",
        "error",
        "finished",
        "labels",
        "method",
        "request_body",
        "request_headers",
        "response_headers",
        "started_ns",
        "started_perf",
        "status",
        "stopped_perf",
        "url",
    )

    def __init__(
        self,
        recorder: Recorder,
        method: str,
        url: str,
        request_headers: dict[str, str],
        request_body: bytes,
        account: str | None,
        labels: Labels,
    ) -> None:
        self._recorder = recorder
        self.entry_id = uuid7()
        self.started_ns = time.time_ns()
        self.started_perf = time.perf_counter_ns()
        self.stopped_perf = 0
        self.method = method
        self.url = url
        self.request_headers = request_headers
        self.request_body = request_body
        self.account = account
        self.labels = labels
        self.status: int | None = None
        self.response_headers: Mapping[str, str] = {}
        self.chunks: list[bytes] = []
        self.ended = False
        self.error: str | None = None
        self.finished = False

    def respond(self, status: int, headers: Mapping[str, str]) -> None:
        """Note the response head."""
        self.status = status
        self.response_headers = headers

    def feed(self, chunk: bytes) -> None:
        """Keep one body chunk (hashed later, off the hot path)."""
        self.chunks.append(chunk)

    def fail(self, exc: BaseException) -> None:
        """Note an exception raised by the inner transport or while reading the body."""
        if self.error is None:
            self.error = type(exc).__name__

    @property
    def outcome(self) -> str:
        """``error``, ``complete`` or ``truncated`` (closed before the end of the body)."""
        if self.error is not None:
            return "error"
        return "complete" if self.ended else "truncated"

    def _stop(self) -> bool:
        if self.finished:
            return False
        self.finished = True
        self.stopped_perf = time.perf_counter_ns()
        return True

    def finish(self) -> None:
        """Finalize: queue the entry (async) or commit it now (sync, may raise RecordingError)."""
        if self._stop():
            self._recorder.commit(self)

    async def afinish(self) -> None:
        """``finish`` for async transports: a sync commit awaits without blocking the loop."""
        if self._stop():
            await self._recorder.acommit(self)

    def abandon(self) -> None:
        """Finalize from garbage collection: always queued, never raises."""
        if self._stop():
            self._recorder.commit_later(self)


class Recorder:
    """Turns HTTP attempts into ledger entry bodies and hands them to a sink.

    One recorder per ledger and configuration; share it across clients, threads and tasks.

    Args:
        ledger: The ledger to write to (``ledger.open(...)``).
        purpose: Default purpose of recorded calls (one of ``PURPOSES``) or None.
        dataset: Default dataset name.
        tags: Default tags.
        content: ``"hash"`` (default) keeps only digests; ``"full"`` also stores the parsed
            request and the output texts.
        durability: ``"async"`` (default) never waits for the database; ``"sync"`` makes each
            call wait for its commit and raise ``RecordingError`` if it fails.
        provider_hint: Provider to assume when the host is not a known one.
        hosts: Host-to-provider map, e.g. ``{"vllm.internal": "self-hosted"}``.
        spool: Where bodies go when the ledger cannot take them; default ``<home>/spool``.

    Raises:
        InputError: an unknown purpose, content or durability.
    """

    def __init__(
        self,
        ledger: LedgerLike,
        *,
        purpose: str | None = None,
        dataset: str | None = None,
        tags: Iterable[str] = (),
        content: Content = "hash",
        durability: Durability = "async",
        provider_hint: str | None = None,
        hosts: Mapping[str, str] | None = None,
        spool: Spool | None = None,
    ) -> None:
        if content not in ("hash", "full"):
            raise InputError(f"content must be 'hash' or 'full', not {content!r}")
        if durability not in ("async", "sync"):
            raise InputError(f"durability must be 'async' or 'sync', not {durability!r}")
        self.ledger = ledger
        self.labels = Labels(purpose=purpose, dataset=dataset, tags=as_tags(tags))
        self.content: Content = content
        self.durability: Durability = durability
        self.provider_hint = provider_hint
        self.hosts = dict(hosts) if hosts else None
        self.spool = spool if spool is not None else Spool.for_home(ledger.home)
        self._async_sink = AsyncSink(ledger, self.spool)
        self._sync_sink = SyncSink(ledger, self.spool, fallback=self._async_sink)
        self._fingerprints: dict[bytes, str] = {}
        # Normally the process-wide worker (looked up per call, so a forked child gets its
        # own); benchmarks substitute one to separate hot-path from background costs.
        self._worker: Worker | None = None
        worker()  # start it now, so the exit flush is registered after the ledger's own
        # The ledger's flush must see calls that returned but are still queued here.
        ledger.add_flush_hook(drain)

    # --- hot path ------------------------------------------------------------------------------

    def begin(
        self,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        remove_header: Callable[[str], object] | None = None,
    ) -> Call:
        """Snapshot a request about to be sent and start its ``Call``.

        Args:
            method: HTTP method.
            url: Full URL (a credential in the query string is dropped here).
            headers: ``(lowercased name, value)`` pairs as they will be sent.
            body: Request body bytes.
            remove_header: Called with each ``x-ledger-*`` header name to strip it from the
                outgoing request.

        Raises:
            InputError: an ``x-ledger-purpose`` header names an unknown purpose.
        """
        kept: dict[str, str] = {}
        credentials: dict[str, str] | None = None
        overrides: dict[str, str] | None = None
        for name, value in headers:
            if name in _CREDENTIAL_HEADERS:
                if credentials is None:
                    credentials = {}
                credentials[name] = value
            elif name.startswith("x-ledger-"):
                if overrides is None:
                    overrides = {}
                overrides[name] = value
            else:
                kept[name] = value
        credential = None
        if credentials:
            for header in _ACCOUNT_HEADERS:
                secret = credentials.get(header)
                if secret:
                    credential = secret[7:] if secret[:7].lower() == "bearer " else secret
                    break
        if "?" in url:
            url, query_key = _strip_credential_params(url)
            credential = credential or query_key
        labels = resolve_labels(self.labels, overrides)
        if overrides and remove_header is not None:
            for name in overrides:
                remove_header(name)
        account = self._fingerprint(credential) if credential else None
        return Call(self, method, url, kept, body, account, labels)

    def _fingerprint(self, credential: str) -> str:
        digest = hashlib.sha256(credential.encode("utf-8")).digest()
        account = self._fingerprints.get(digest)
        if account is None:
            account = self.ledger.account_fingerprint(credential)
            if len(self._fingerprints) >= _FINGERPRINT_CACHE:
                # Short-lived OAuth tokens would otherwise grow the cache without bound.
                self._fingerprints.clear()
            self._fingerprints[digest] = account
        return account

    # --- finalization --------------------------------------------------------------------------

    def commit(self, call: Call) -> None:
        """Record a finished call: queued (async) or committed now (sync)."""
        if self.durability == "async":
            if self._async_sink.saturated:
                # Neither the ledger nor the spool has taken entries for a while and the sink
                # holds its maximum: wait rather than let memory grow or drop a record.
                self._async_sink.wait_for_room()
            (self._worker or worker()).put(lambda: self._async_sink.put(self._safe_build(call)))
        else:
            self._sync_sink.put(self._safe_build(call))

    async def acommit(self, call: Call) -> None:
        """``commit`` for async transports."""
        if self.durability == "async":
            if self._async_sink.saturated:
                await asyncio.to_thread(self._async_sink.wait_for_room)
            (self._worker or worker()).put(lambda: self._async_sink.put(self._safe_build(call)))
        else:
            await self._sync_sink.aput(self._safe_build(call))

    def commit_later(self, call: Call) -> None:
        """Queue a call for the async path whatever the durability (used from GC)."""
        (self._worker or worker()).put(lambda: self._async_sink.put(self._safe_build(call)))

    def _safe_build(self, call: Call) -> dict[str, Any]:
        """``build``, degrading to the facts the core knows by itself if building fails.

        An entry with fewer facts beats no entry: the call happened and must be on record.
        """
        try:
            return self.build(call)
        except Exception:
            _log.exception("could not build the full entry %s; recording core facts", call.entry_id)
            facts = empty_facts(self.provider_hint or "unknown", "unknown")
            wire = b"".join(call.chunks)
            body = body_for(call, facts, dict(call.response_headers))
            body["request_sha256"] = hashlib.sha256(call.request_body).hexdigest()
            body["response_sha256"] = hashlib.sha256(wire).hexdigest() if call.status else None
            body["content_encoding"] = call.response_headers.get("content-encoding")
            return body

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every call finished so far is committed or spooled.

        Returns:
            False if some entry could be neither committed nor spooled yet: it stays held in
            memory and is retried (see ``ledger.recorder.sinks``).
        """
        (self._worker or worker()).drain(timeout)
        self._async_sink.flush(timeout)
        return self._async_sink.held == 0

    def build(self, call: Call) -> dict[str, Any]:
        """The entry body for a finished call (pure apart from reading the call)."""
        wire = b"".join(call.chunks)
        encoding = call.response_headers.get("content-encoding")
        response_headers = dict(call.response_headers)
        plain = decoded(wire, encoding)
        outcome = call.outcome
        if outcome == "truncated" and ends_with_terminal_event(plain):
            # SDKs stop reading at the protocol's last event (openai breaks on ``[DONE]``) and
            # close without waiting for EOF; the caller got everything, so it is complete.
            outcome = "complete"
        exchange = Exchange(
            method=call.method,
            url=call.url,
            request_headers=call.request_headers,
            request_body=call.request_body,
            status=call.status,
            response_headers=response_headers,
            response_body=plain,
            complete=outcome == "complete",
        )
        facts = parse_exchange(exchange, provider_hint=self.provider_hint, hosts=self.hosts)
        body = body_for(call, facts, response_headers)
        body["outcome"] = outcome
        body["request_sha256"] = hashlib.sha256(call.request_body).hexdigest()
        body["response_sha256"] = hashlib.sha256(wire).hexdigest() if call.status else None
        body["content_encoding"] = encoding
        if self.content == "full":
            body["content"] = {"request": facts.request_json, "outputs": list(facts.outputs)}
        return body


def _strip_credential_params(url: str) -> tuple[str, str | None]:
    """``url`` without credential query parameters, and the first credential found."""
    parts = urlsplit(url)
    if not parts.query:
        return url, None
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    credential = next((v for k, v in pairs if k in _CREDENTIAL_PARAMS and v), None)
    if credential is None and not any(k in _CREDENTIAL_PARAMS for k, _ in pairs):
        return url, None
    query = urlencode([(k, v) for k, v in pairs if k not in _CREDENTIAL_PARAMS])
    return urlunsplit(parts._replace(query=query)), credential
