"""Anthropic Messages wire format (``POST /v1/messages``), JSON and SSE.

Invariants:

- Pure and total: any bytes in, ``CallFacts`` out; unknown or missing fields become ``None``.
- One output per message: the ``text`` content blocks joined in block-index order (tool use,
  thinking and other blocks contribute nothing), the same text a caller gets by joining the
  SDK's text blocks. Its reasoning is the ``thinking`` blocks (or streamed ``thinking_delta``
  text) joined in block order by a blank line; redacted thinking carries no text and adds
  nothing; no thinking block means no reasoning (``None``).
- Stream usage starts from ``message_start.message.usage`` and each field is overwritten by a
  later ``message_delta.usage`` that carries it: ``message_delta`` usage is cumulative, so it is
  never added.
- ``input_tokens`` reported in the facts includes cache reads and cache writes
  (``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``), as the
  OpenTelemetry GenAI conventions ask and as OpenAI and Gemini already count prompt tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ledger.recorder.providers._base import (
    CallFacts,
    Exchange,
    as_dict,
    as_index,
    as_int,
    as_list,
    as_str,
    body_bytes,
    is_event_stream,
    is_success,
    iter_sse_json,
    load_json,
    ordered,
    request_streams,
)

__all__ = ["AnthropicAdapter", "inclusive_input_tokens"]

_INPUT_PARTS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def inclusive_input_tokens(usage: Mapping[str, object]) -> int | None:
    """Input tokens including cache reads and writes; ``None`` when none is reported."""
    counts = [as_int(usage.get(name)) for name in _INPUT_PARTS]
    present = [c for c in counts if c is not None]
    return sum(present) if present else None


@dataclass(frozen=True, slots=True)
class AnthropicAdapter:
    """Adapter for Anthropic Messages (and Anthropic-compatible endpoints).

    Attributes:
        provider: Provider reported in the facts.
        operation: Always ``messages``.
    """

    provider: str
    operation: str = "messages"

    def parse(self, exchange: Exchange) -> CallFacts:
        """Read the facts of one exchange; never raises on malformed or partial bodies."""
        request = load_json(exchange.request_body)
        request_body = as_dict(request)
        request_model = as_str(request_body.get("model")) if request_body is not None else None

        body = body_bytes(exchange.response_body)
        if exchange.status is None:
            stream = request_streams(request)
        else:
            stream = is_event_stream(exchange, body)

        rid: str | None = None
        model: str | None = None
        stop: str | None = None
        usage: dict[str, object] = {}
        blocks: dict[int, str] | None = None
        thinking: dict[int, str] = {}
        if exchange.status is not None and body:
            if stream:
                rid, model, stop, usage, blocks, thinking = _stream(body)
            else:
                message = as_dict(load_json(body))
                if message is not None and message.get("type") != "error":
                    rid = as_str(message.get("id"))
                    model = as_str(message.get("model"))
                    stop = as_str(message.get("stop_reason"))
                    usage = dict(as_dict(message.get("usage")) or {})
                    blocks = _blocks(message.get("content"))
                    thinking = _blocks(message.get("content"), kind="thinking")

        return CallFacts(
            provider=self.provider,
            operation=self.operation,
            request_model=request_model,
            response_model=model,
            response_id=rid,
            stream=stream,
            finish_reasons=(stop,) if stop else (),
            input_tokens=inclusive_input_tokens(usage),
            output_tokens=as_int(usage.get("output_tokens")),
            outputs=("".join(ordered(blocks)),) if blocks is not None else (),
            output_modality="text" if is_success(exchange.status) else None,
            request_json=request,
            reasoning=("\n\n".join(ordered(thinking)),) if blocks is not None and thinking else (),
        )


def _blocks(content: object, kind: str = "text") -> dict[int, str]:
    """Text of each ``kind`` block (``text`` or ``thinking``) of a message, keyed by position."""
    texts: dict[int, str] = {}
    for position, item in enumerate(as_list(content)):
        block = as_dict(item)
        if block is not None and block.get("type") == kind:
            texts[position] = as_str(block.get(kind)) or ""
    return texts


_Streamed = tuple[
    str | None, str | None, str | None, dict[str, object], dict[int, str] | None, dict[int, str]
]


def _stream(body: bytes) -> _Streamed:
    rid: str | None = None
    model: str | None = None
    stop: str | None = None
    usage: dict[str, object] = {}
    parts: dict[int, list[str]] | None = None
    thinking: dict[int, list[str]] = {}
    for event, data in iter_sse_json(body):
        kind = data.get("type") or event
        if kind == "content_block_delta":
            delta = data.get("delta")
            if parts is None or not isinstance(delta, dict):
                continue
            delta_kind = delta.get("type")
            if delta_kind == "text_delta":
                texts = parts.get(as_index(data.get("index"), 0))
                text = delta.get("text")
                if texts is not None and isinstance(text, str):
                    texts.append(text)
            elif delta_kind == "thinking_delta":
                thoughts = thinking.get(as_index(data.get("index"), 0))
                text = delta.get("thinking")
                if thoughts is not None and isinstance(text, str):
                    thoughts.append(text)
        elif kind == "content_block_start":
            block = as_dict(data.get("content_block"))
            if parts is None:
                parts = {}
            if block is not None and block.get("type") == "text":
                parts[as_index(data.get("index"), len(parts))] = [as_str(block.get("text")) or ""]
            elif block is not None and block.get("type") == "thinking":
                at = as_index(data.get("index"), len(parts) + len(thinking))
                thinking[at] = [as_str(block.get("thinking")) or ""]
        elif kind == "message_start":
            message = as_dict(data.get("message"))
            if message is not None:
                rid = as_str(message.get("id"))
                model = as_str(message.get("model"))
                stop = as_str(message.get("stop_reason")) or stop
                usage.update(as_dict(message.get("usage")) or {})
            if parts is None:
                parts = {}
        elif kind == "message_delta":
            delta = as_dict(data.get("delta"))
            if delta is not None:
                stop = as_str(delta.get("stop_reason")) or stop
            # Cumulative: each present field replaces the earlier value (never add).
            for name, value in (as_dict(data.get("usage")) or {}).items():
                if value is not None:
                    usage[name] = value
    joined = {i: "".join(t) for i, t in thinking.items()}
    if parts is None:
        return rid, model, stop, usage, None, joined
    return rid, model, stop, usage, {i: "".join(t) for i, t in parts.items()}, joined
