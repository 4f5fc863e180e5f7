"""The entry body (version 1) of one finished HTTP attempt, from what the transport saw.

Invariants:

- Pure: reads a finished ``Call`` and the adapter's ``CallFacts``; no I/O, no clock.
- Field names and vocabulary follow the entry body contract (common.md / DESIGN.md); the
  adapter supplies what needs the wire format, this module what needs only HTTP (endpoint,
  status, outcome, headers of interest, timing, labels).
- The endpoint never carries the query string (it can hold keys); ``request_sha256`` and
  ``response_sha256`` are over the exact wire bytes (compressed if the wire was), and parsing
  uses a decoded copy (``decoded``) that tolerates truncation.
- An SSE body that ends with its protocol's terminal event (``[DONE]``, ``message_stop``,
  ``response.completed``...) is ``complete`` even if the caller closed before EOF.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ledger.crypto.canonical import output_sha256
from ledger.recorder.providers import CallFacts

if TYPE_CHECKING:
    from ledger.recorder.core import Call

__all__ = ["body_for", "decoded", "ends_with_terminal_event"]

_log = logging.getLogger("ledger.recorder")

_ORG_HEADERS = frozenset(
    {"openai-organization", "openai-project", "x-goog-user-project", "anthropic-workspace"}
)
_CLIENT_HEADERS = frozenset({"x-goog-api-client", "anthropic-version", "anthropic-beta"})
_CLIENT_PREFIXES = ("x-stainless-",)
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id", "apim-request-id")
_RATE_LIMIT_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
_RATE_LIMIT_HEADERS = frozenset({"retry-after", "retry-after-ms"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def body_for(call: Call, facts: CallFacts, response_headers: Mapping[str, str]) -> dict[str, Any]:
    parts = urlsplit(call.url)
    scheme = parts.scheme or "https"
    request_headers = call.request_headers
    return {
        "v": 1,
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
        "provider_request_id": next(
            (response_headers[h] for h in _REQUEST_ID_HEADERS if h in response_headers), None
        ),
        "account": call.account,
        "org_headers": {k: v for k, v in request_headers.items() if k in _ORG_HEADERS},
        "client": {
            "user_agent": request_headers.get("user-agent"),
            "headers": {
                k: v
                for k, v in request_headers.items()
                if k in _CLIENT_HEADERS or k.startswith(_CLIENT_PREFIXES)
            },
        },
        "status": call.status,
        "outcome": call.outcome,
        "error": call.error,
        "stream": facts.stream,
        "finish_reasons": list(facts.finish_reasons),
        "usage": {"input_tokens": facts.input_tokens, "output_tokens": facts.output_tokens},
        "output_modality": facts.output_modality,
        "output_sha256": [output_sha256(text) for text in facts.outputs],
        "rate_limit": {
            k: v
            for k, v in response_headers.items()
            if k in _RATE_LIMIT_HEADERS or k.startswith(_RATE_LIMIT_PREFIXES)
        },
        "purpose": call.labels.purpose,
        "dataset": call.labels.dataset,
        "tags": list(call.labels.tags),
    }


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
