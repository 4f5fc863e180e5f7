"""The entry id of a recorded response, from whatever object the caller holds.

Invariants:

- Every recorded HTTP response carries ``x-ledger-entry-id``; :func:`entry_id` reads it from any
  object that exposes the response headers: an ``httpx``/``httpx2`` response, the SDKs' raw
  responses (``with_raw_response``, ``with_streaming_response``), their streams (``.response``)
  and google-genai results (``sdk_http_response.headers``).
- Parsed SDK objects (an openai ``ChatCompletion``, an anthropic ``Message``) keep no headers,
  but they keep the provider's request id (``_request_id``) and their response id (``id``).
  The recorder remembers, per finished call, ``provider request id -> entry id`` and
  ``response id -> entry id`` in a bounded in-process map (:data:`REMEMBERED` pairs, oldest
  dropped first); :func:`entry_id` looks those up, after waiting for the recorder's worker to
  finish the calls already returned (the map is filled off the caller's path).
- Nothing here reads a body or raises on an unknown object: the answer is ``None``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

__all__ = ["ENTRY_ID_HEADER", "REMEMBERED", "entry_id", "remember"]

ENTRY_ID_HEADER = "x-ledger-entry-id"
#: How many ``id -> entry id`` pairs the process keeps (about 200 bytes each).
REMEMBERED = 65_536
#: How long :func:`entry_id` waits for the recorder's worker before answering ``None``.
_DRAIN_TIMEOUT = 5.0

_lock = threading.Lock()
_by_id: OrderedDict[str, str] = OrderedDict()


def remember(entry: str, *ids: str | None) -> None:
    """Note that the response known by each of ``ids`` was recorded as entry ``entry``."""
    with _lock:
        for key in ids:
            if key:
                _by_id[key] = entry
                _by_id.move_to_end(key)
        while len(_by_id) > REMEMBERED:
            _by_id.popitem(last=False)


def _lookup(ids: list[str]) -> str | None:
    with _lock:
        for key in ids:
            found = _by_id.get(key)
            if found is not None:
                return found
    return None


def _header(obj: object) -> str | None:
    headers = _attribute(obj, "headers")
    getter = _attribute(headers, "get") if headers is not None else None
    if not callable(getter):
        return None
    try:
        value = getter(ENTRY_ID_HEADER)
    except Exception:  # a foreign headers object: no answer rather than an error
        return None
    if value is None and isinstance(headers, Mapping):
        # google-genai keeps headers in a plain dict whose names keep the wire's case.
        value = next((v for k, v in headers.items() if str(k).lower() == ENTRY_ID_HEADER), None)
    return value if isinstance(value, str) and value else None


def _holders(obj: object) -> list[object]:
    """``obj`` and the objects hanging off it that may hold the HTTP response headers."""
    out = [obj]
    for name in ("http_response", "response", "sdk_http_response", "_response"):
        inner = _attribute(obj, name)
        if inner is not None and not callable(inner):
            out.append(inner)
            deeper = _attribute(inner, "http_response")
            if deeper is not None:
                out.append(deeper)
    return out


def _attribute(obj: object, name: str) -> object:
    try:
        return getattr(obj, name, None)
    except Exception:  # a property of a foreign object may raise anything: not ours
        return None


def _known_ids(obj: object) -> list[str]:
    ids = []
    for name in ("_request_id", "id", "response_id"):
        value = _attribute(obj, name)
        if isinstance(value, str) and value:
            ids.append(value)
    return ids


def entry_id(response: object) -> str | None:
    """The ledger entry id of a recorded response, or ``None`` when it was not recorded.

    Args:
        response: What an SDK call returned: a parsed object (``ChatCompletion``, ``Message``,
            ``GenerateContentResponse``...), a raw or streaming response, a stream, or an
            ``httpx`` response.

    Example:
        >>> completion = client.chat.completions.create(model="gpt-4o", messages=messages)
        >>> row = {"messages": [...], "ledger_entry_id": ledger.entry_id(completion)}
    """
    for holder in _holders(response):
        found = _header(holder)
        if found is not None:
            return found
    ids = _known_ids(response)
    if not ids:
        return None
    found = _lookup(ids)
    if found is not None:
        return found
    # The map is filled when the recorder's worker builds the entry, just after the call
    # returned: wait for the calls already finished, then look again.
    from ledger.recorder.sinks import worker

    worker().drain(_DRAIN_TIMEOUT)
    return _lookup(ids)
