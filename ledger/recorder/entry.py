"""The entry body (version 2) of one finished HTTP attempt, from what the transport saw.

Invariants:

- Reads a finished ``Call`` and the adapter's ``CallFacts``; no clock. The only state it
  touches: the ledger's fingerprint key (asked once per ledger and dataset, then cached) and
  the bounded ``response id -> entry id`` map of ``ledger.recorder.ids``. It runs where the
  recorder builds bodies (its worker thread for async durability), never on the caller's path.
- The shape is ``ledger.entry_body.EntryBody`` (one definition for writer and readers); the
  adapter supplies what needs the wire format, this module what needs only HTTP (endpoint,
  status, outcome, headers of interest, timing, labels).
- Per output (choice / candidate) the body keeps ``{"index": i, **output_record(...)}``
  (``ledger.crypto.fingerprint``): keyed fingerprints of the answer, the reasoning, their
  joins and segments, and keyed sketches, under the key of the call's dataset. Version 2 keeps
  no unkeyed output hash: ``output_sha256`` would let whoever holds the log confirm a guessed
  short output ("Yes."). When no key can be had (a read-only key folder, a ledger object
  without ``fingerprint_key``) ``outputs`` is left out and a warning is logged once.
- Organization ids: those the request sent (``org_headers``) and those the response names
  (``response_org_headers``; Anthropic sends ``anthropic-organization-id`` only there).
- The endpoint never carries the query string (it can hold keys); ``request_sha256`` and
  ``response_sha256`` are over the exact wire bytes (compressed if the wire was), and parsing
  uses a decoded copy (``decoded``) that tolerates truncation.
- An SSE body that ends with its protocol's terminal event (``[DONE]``, ``message_stop``,
  ``response.completed``...) is ``complete`` even if the caller closed before EOF.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ledger.crypto.fingerprint import Fingerprinter, output_record
from ledger.entry_body import (
    CLIENT_HEADER_PREFIXES,
    CLIENT_HEADERS,
    ENTRY_VERSION,
    ORG_HEADERS,
    EntryBody,
    OutputRecord,
)
from ledger.errors import LedgerError
from ledger.recorder.ids import remember
from ledger.recorder.providers import CallFacts

if TYPE_CHECKING:
    from ledger.recorder.core import Call

__all__ = ["body_for", "decoded", "ends_with_terminal_event"]

_log = logging.getLogger("ledger.recorder")

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id", "apim-request-id")
_RATE_LIMIT_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
_RATE_LIMIT_HEADERS = frozenset({"retry-after", "retry-after-ms"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def body_for(call: Call, facts: CallFacts, response_headers: Mapping[str, str]) -> dict[str, Any]:
    """The version-2 body of ``call`` (the recorder adds hashes and the outcome it decides)."""
    parts = urlsplit(call.url)
    scheme = parts.scheme or "https"
    request_headers = call.request_headers
    provider_request_id = next(
        (response_headers[h] for h in _REQUEST_ID_HEADERS if h in response_headers), None
    )
    remember(call.entry_id, provider_request_id, facts.response_id)
    body: EntryBody = {
        "v": ENTRY_VERSION,
        "id": call.entry_id,
        "started_at": _timestamp(call.started_ns),
        "duration_ms": round((call.stopped_perf - call.started_perf) / 1_000_000, 3),
        "provider": facts.provider,
        "operation": facts.operation,
        "endpoint": {
            "scheme": scheme,
            "host": parts.hostname or "",
            "port": parts.port or _DEFAULT_PORTS.get(scheme),
            "path": parts.path or "/",
        },
        "request_model": facts.request_model,
        "response_model": facts.response_model,
        "response_id": facts.response_id,
        "provider_request_id": provider_request_id,
        "account": call.account,
        "org_headers": {k: v for k, v in request_headers.items() if k in ORG_HEADERS},
        "response_org_headers": {k: v for k, v in response_headers.items() if k in ORG_HEADERS},
        "client": {
            "user_agent": request_headers.get("user-agent"),
            "headers": {
                k: v
                for k, v in request_headers.items()
                if k in CLIENT_HEADERS or k.startswith(CLIENT_HEADER_PREFIXES)
            },
        },
        "status": call.status,
        "outcome": call.outcome,
        "error": call.error,
        "stream": facts.stream,
        "finish_reasons": list(facts.finish_reasons),
        "usage": {"input_tokens": facts.input_tokens, "output_tokens": facts.output_tokens},
        "output_modality": facts.output_modality,
        "rate_limit": {
            k: v
            for k, v in response_headers.items()
            if k in _RATE_LIMIT_HEADERS or k.startswith(_RATE_LIMIT_PREFIXES)
        },
        "purpose": call.labels.purpose,
        "dataset": call.labels.dataset,
        "tags": list(call.labels.tags),
    }
    if facts.outputs:
        outputs = _outputs(call, facts)
        if outputs is not None:
            body["outputs"] = outputs
    return dict(body)


def _outputs(call: Call, facts: CallFacts) -> list[OutputRecord] | None:
    key = _fingerprinter(call)
    if key is None:
        return None
    records: list[OutputRecord] = []
    for index, answer in enumerate(facts.outputs):
        record = output_record(key, answer, facts.reasoning_of(index))
        records.append({"index": index, **record})  # type: ignore[typeddict-item]  # open record
    return records


# Fingerprinters per ledger object and dataset: asking the ledger for a dataset key may read
# a file, and deriving the key's subkeys costs more than hashing a short answer, so both are
# done once per dataset, not per call; the cache is bounded by the datasets in use.
_keys: weakref.WeakKeyDictionary[object, dict[str | None, Fingerprinter]] = (
    weakref.WeakKeyDictionary()
)
_keys_lock = threading.Lock()
_warned: weakref.WeakSet[object] = weakref.WeakSet()
_KEYS_PER_LEDGER = 1_024


def _fingerprinter(call: Call) -> Fingerprinter | None:
    """The fingerprinter of the call's dataset in the call's ledger, ``None`` if unavailable."""
    ledger = call._recorder.ledger
    dataset = call.labels.dataset
    try:
        weakref.ref(ledger)
    except TypeError:  # a ledger object that takes no weak reference: asked every time
        key = _ask(ledger, dataset)
        return None if key is None else Fingerprinter(key)
    with _keys_lock:
        cached = _keys.get(ledger)
        if cached is not None and dataset in cached:
            return cached[dataset]
    key = _ask(ledger, dataset)
    if key is None:
        return None
    made = Fingerprinter(key)
    with _keys_lock:
        per = _keys.setdefault(ledger, {})
        if len(per) >= _KEYS_PER_LEDGER:
            per.clear()
        per[dataset] = made
    return made


def _ask(ledger: object, dataset: str | None) -> bytes | None:
    getter = getattr(ledger, "fingerprint_key", None)
    try:
        if getter is None:
            raise TypeError(f"{type(ledger).__name__} has no fingerprint_key()")
        key: bytes = getter(dataset)
    except (LedgerError, OSError, TypeError) as exc:
        with _keys_lock:
            try:
                first = ledger not in _warned
                _warned.add(ledger)
            except TypeError:  # no weak reference: warn every time rather than never
                first = True
        if first:
            _log.warning("recording without output fingerprints: %s", exc)
        return None
    return key


_TERMINAL_EVENTS = (
    b"data: [DONE]",
    b"data:[DONE]",
    b"event: message_stop",
    b"event: response.completed",
    b"event: response.incomplete",
    b"event: response.failed",
)


def ends_with_terminal_event(body: bytes) -> bool:
    """Whether an SSE body ends with a whole event that closes its protocol's stream.

    Only the last event matters, and it must be terminated by its blank line: an event cut in
    the middle was not delivered to the caller.
    """
    tail = body[-512:].replace(b"\r\n", b"\n")
    if not tail.endswith(b"\n\n"):
        return False
    last = tail.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    return last.lstrip().startswith(_TERMINAL_EVENTS)


def _timestamp(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1000:06d}Z"


def decoded(wire: bytes, encoding: str | None) -> bytes:
    """A decoded copy of ``wire`` for parsing; the wire bytes themselves are what get hashed.

    Decoding tolerates truncation (a stream closed early yields what was inflated so far) and
    returns the wire bytes unchanged for an encoding it cannot undo.
    """
    if not encoding or not wire:
        return wire
    out = wire
    # Content-Encoding lists codings in the order applied, so undo them from the last one.
    for coding in reversed([c.strip().lower() for c in encoding.split(",")]):
        try:
            if coding in ("gzip", "x-gzip"):
                out = zlib.decompressobj(wbits=47).decompress(out)
            elif coding == "deflate":
                out = zlib.decompressobj(wbits=15).decompress(out)
            elif coding == "br":
                out = _unbrotli(out)
            elif coding != "identity":
                return wire
        except (zlib.error, ValueError) as exc:
            _log.debug("cannot decode %s body for parsing: %s", coding, exc)
            return wire
    return out


def _unbrotli(data: bytes) -> bytes:
    try:
        import brotli  # type: ignore[import-not-found]  # optional dependency
    except ImportError:
        try:
            import brotlicffi as brotli  # type: ignore[import-not-found]  # optional
        except ImportError:
            raise ValueError("brotli is not installed") from None
    result: bytes = brotli.Decompressor().process(data)
    return result
