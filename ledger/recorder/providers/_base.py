"""Shared value types and pure helpers for the provider adapters.

Invariants:

- Nothing here performs I/O, reads the environment or raises on malformed input: every helper
  returns ``None`` or an empty value for data it cannot understand.
- ``Exchange`` and ``CallFacts`` are frozen; adapters build ``CallFacts`` once per HTTP attempt.
- JSON is parsed with ``json.loads`` only (one call per SSE ``data`` field); no regular
  expressions, so parsing cost grows linearly with the body.
- Token counts are read, never summed across stream chunks: providers repeat cumulative usage,
  so the last value seen wins.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from json import JSONDecoder
from json.scanner import make_scanner
from typing import Protocol

__all__ = [
    "OPERATIONS",
    "Adapter",
    "CallFacts",
    "Exchange",
]

#: The ``operation`` vocabulary of the entry body (common.md).
OPERATIONS = frozenset(
    {
        "chat",
        "responses",
        "text_completion",
        "embeddings",
        "messages",
        "generate_content",
        "unknown",
    }
)


@dataclass(frozen=True, slots=True)
class Exchange:
    """What the transport saw of one HTTP attempt.

    Attributes:
        method: HTTP method, upper case.
        url: Full URL as sent; adapters never report its query string.
        request_headers: Lowercased names, credential headers already removed.
        request_body: Request body bytes as sent.
        status: HTTP status, or ``None`` when no response arrived.
        response_headers: Lowercased names.
        response_body: Decoded copy of the response body (gzip/br undone); may be partial.
        complete: ``False`` when the body was cut short (early close or error).
    """

    method: str
    url: str
    request_headers: Mapping[str, str]
    request_body: bytes
    status: int | None
    response_headers: Mapping[str, str]
    response_body: bytes
    complete: bool


@dataclass(frozen=True, slots=True)
class CallFacts:
    """Facts about one call that an adapter read from an ``Exchange``.

    Attributes:
        provider: ``gen_ai.provider.name`` style provider (common.md vocabulary).
        operation: ``chat``, ``responses``, ``text_completion``, ``embeddings``, ``messages``,
            ``generate_content`` or ``unknown``.
        request_model: Model named by the request (body, Gemini path or Azure deployment).
        response_model: Model the response says answered.
        response_id: Provider's id of the response (``chatcmpl-...``, ``msg_...``, ...).
        stream: The response was a stream.
        finish_reasons: Finish reasons the provider reported, in choice/candidate index order.
        input_tokens: Input tokens, cached tokens included; ``None`` when not reported.
        output_tokens: Output tokens, reasoning/thinking included; ``None`` when not reported.
        outputs: Output text per choice/candidate, raw, in index order (the answer only).
        output_modality: ``text``, ``embedding``, ``image``, ``audio`` or ``None``.
        request_json: Parsed request body, or ``None`` when it is not JSON.
        reasoning: Reasoning text per output, aligned with ``outputs``, where the API returns
            it apart from the answer (OpenAI-compatible ``reasoning_content``, Responses
            reasoning items, Anthropic thinking blocks, Gemini ``thought`` parts); ``None`` for
            an output without any. Shorter than ``outputs`` (or empty) means ``None`` for the
            rest.
    """

    provider: str
    operation: str
    request_model: str | None
    response_model: str | None
    response_id: str | None
    stream: bool
    finish_reasons: tuple[str, ...]
    input_tokens: int | None
    output_tokens: int | None
    outputs: tuple[str, ...]
    output_modality: str | None
    request_json: object | None
    reasoning: tuple[str | None, ...] = ()

    def reasoning_of(self, index: int) -> str | None:
        """The reasoning text of output ``index``, ``None`` when the API returned none."""
        return self.reasoning[index] if index < len(self.reasoning) else None


class Adapter(Protocol):
    """Turns one ``Exchange`` into ``CallFacts``; pure and never raising."""

    @property
    def provider(self) -> str:
        """Provider name reported in ``CallFacts.provider``."""
        ...

    def parse(self, exchange: Exchange) -> CallFacts:
        """Read the facts of ``exchange``; returns what is known on malformed bodies."""
        ...


# --------------------------------------------------------------------------- JSON helpers


def load_json(data: bytes | str) -> object | None:
    """``json.loads`` that returns ``None`` instead of raising."""
    if not data:
        return None
    try:
        value: object = json.loads(data)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and UnicodeDecodeError on bytes input.
        return None
    return value


def as_dict(value: object) -> Mapping[str, object] | None:
    """``value`` if it is a JSON object, else ``None``."""
    return value if isinstance(value, dict) else None


def as_list(value: object) -> list[object]:
    """``value`` if it is a JSON array, else an empty list."""
    return value if isinstance(value, list) else []


def as_str(value: object) -> str | None:
    """``value`` if it is a string, else ``None``."""
    return value if isinstance(value, str) else None


def as_int(value: object) -> int | None:
    """``value`` if it is a non-negative integer (not a bool), else ``None``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def as_index(value: object, default: int) -> int:
    """A choice/candidate index, ``default`` when absent or invalid."""
    index = as_int(value)
    return default if index is None else index


def add_counts(*counts: int | None) -> int | None:
    """Sum of the counts present; ``None`` when the first (the base count) is missing."""
    if not counts or counts[0] is None:
        return None
    return sum(c for c in counts if c is not None)


def ordered(by_index: Mapping[int, str]) -> tuple[str, ...]:
    """Values of an index-keyed map, sorted by index."""
    return tuple(by_index[i] for i in sorted(by_index))


def aligned(outputs: Mapping[int, object], reasoning: Mapping[int, str]) -> tuple[str | None, ...]:
    """Reasoning per output, in the outputs' index order; ``()`` when no output has any."""
    if not reasoning:
        return ()
    return tuple(reasoning.get(i) for i in sorted(outputs))


# --------------------------------------------------------------------------- bodies

_GZIP_MAGIC = b"\x1f\x8b"


def body_bytes(body: bytes) -> bytes:
    """The body as text-bearing bytes.

    The transport hands adapters a decoded copy; a body that still starts with the gzip magic
    number (which no JSON or SSE text can) is inflated here as far as it goes, so a caller that
    forgot to decode still gets facts. Truncated gzip yields what was inflated before the cut.
    """
    if not body.startswith(_GZIP_MAGIC):
        return body
    inflater = zlib.decompressobj(wbits=31)
    try:
        return inflater.decompress(body)
    except zlib.error:
        return body


def is_event_stream(exchange: Exchange, body: bytes) -> bool:
    """Whether the response is Server-Sent Events.

    The ``content-type`` header decides; without one the body is sniffed for an SSE field name
    at its start.
    """
    content_type = exchange.response_headers.get("content-type")
    if content_type is not None:
        return "text/event-stream" in content_type.lower()
    head = body[:16].lstrip()
    return head.startswith((b"data:", b"event:", b":", b"id:"))


def request_streams(request: object) -> bool:
    """Whether an OpenAI/Anthropic-style JSON request asked for a stream."""
    body = as_dict(request)
    return body is not None and body.get("stream") is True


def is_success(status: int | None) -> bool:
    """A 2xx status."""
    return status is not None and 200 <= status < 300


# --------------------------------------------------------------------------- SSE


# The C scanner behind json.loads, called directly: json.loads adds two regex whitespace matches
# and a wrapper call per document, which is most of its cost on the ~250-byte chunks of a stream.
# The result for a document that json.loads accepts is the same object. It holds no state between
# calls (the memo is cleared on return) and runs under the GIL, as the one json.loads shares.
# typeshed types make_scanner's context as make_scanner; the stdlib passes a JSONDecoder.
_SCAN: Callable[[str, int], tuple[object, int]] = make_scanner(JSONDecoder())  # type: ignore[arg-type]
_JSON_SPACE = " \t\n\r"


def load_json_object(data: str) -> dict[str, object] | None:
    """``data`` parsed if it is exactly one JSON object (surrounding white space allowed)."""
    if data[:1] != "{":
        data = data.strip(_JSON_SPACE)
        if data[:1] != "{":
            return None
    try:
        obj, end = _SCAN(data, 0)
    except (StopIteration, ValueError, RecursionError):
        return None
    if end != len(data) and data[end:].strip(_JSON_SPACE):
        return None  # trailing data: json.loads would reject it too
    return obj if isinstance(obj, dict) else None


def iter_sse_json(body: bytes) -> Iterator[tuple[str, dict[str, object]]]:
    """Yield ``(event, object)`` for each Server-Sent Event whose data is one JSON object.

    Follows the WHATWG event-stream rules that matter here: LF, CRLF or CR line ends; events end
    at a blank line; ``data`` lines of one event joined by LF; one optional space after the
    colon; comment (``:``), ``id`` and ``retry`` lines ignored; an event with no ``data`` is not
    dispatched; the event name defaults to ``message``. ``[DONE]`` sentinels and data that does
    not parse as one JSON object are skipped. An event cut off by the end of the body is still
    tried, so a truncated stream gives up everything it holds.

    This is the per-chunk hot path: the text is cut at blank lines first, and the common event
    (a single ``data:`` line) goes straight to the JSON scanner.
    """
    text = body.decode("utf-8", errors="replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    for block in text.split("\n\n"):
        if block[:6] == "data: " and "\n" not in block:
            obj = load_json_object(block[6:])
            if obj is not None:
                yield "message", obj
            continue
        event = ""
        data: list[str] = []
        for line in block.split("\n"):
            if line[:5] == "data:":
                data.append(line[6:] if line[5:6] == " " else line[5:])
            elif line[:6] == "event:":
                event = line[7:] if line[6:7] == " " else line[6:]
        if data:
            obj = load_json_object(data[0] if len(data) == 1 else "\n".join(data))
            if obj is not None:
                yield event or "message", obj


def iter_json_array(body: bytes) -> Iterator[Mapping[str, object]]:
    """Yield each object of a JSON array of objects, even when the array is cut short.

    Used for Gemini ``streamGenerateContent`` without ``alt=sse``: the body is one JSON array
    that arrives in pieces, so a truncated body still yields every element that is complete.
    """
    text = body.decode("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    length = len(text)
    pos = _skip(text, 0, " \t\r\n")
    if pos >= length or text[pos] != "[":
        return
    pos += 1
    while True:
        pos = _skip(text, pos, " \t\r\n,")
        if pos >= length or text[pos] == "]":
            return
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            return
        if isinstance(obj, dict):
            yield obj


def _skip(text: str, pos: int, chars: str) -> int:
    length = len(text)
    while pos < length and text[pos] in chars:
        pos += 1
    return pos
