"""A local fake of the OpenAI, Anthropic and Gemini HTTP APIs for recorder tests and benchmarks.

Invariants:

- Listens on 127.0.0.1 only; stdlib only (importable from tests, runnable as a script). As a
  script it prints ``PORT <n>`` first, then each SDK's base URL and the ``hosts=`` line.
- Bodies are deterministic functions of the request: the requested model is echoed, ``n``
  (OpenAI) or ``generationConfig.candidateCount`` (Gemini) choices are produced, and the text of
  choice ``i`` is the concatenation of ``"c{i}w{k} "`` for ``k`` in ``range(chunks)``, streamed
  or not, so a streamed and a non-streamed call return the same text.
- Responses are written in as few sends as possible (status line, headers and a whole
  non-stream body in one ``write``; one ``write`` per stream event) with Nagle disabled, so
  benchmarks measure the client, not delayed ACKs. HTTP/1.1 keep-alive; streams use chunked
  transfer encoding and are flushed per event.
- Every request received is recorded (method, path with query, lowercased headers, body) in a
  thread-safe list: ``server.requests``.

Routes (any prefix before the suffix is accepted, so ``/v1/...`` and ``/openai/v1/...`` work):

- ``.../chat/completions``: OpenAI Chat Completions, JSON or SSE (``stream``), with the
  ``choices: []`` usage chunk when ``stream_options.include_usage`` is true, then ``[DONE]``.
- ``.../responses``: OpenAI Responses, JSON or typed SSE events ending in ``response.completed``.
- ``.../completions``: OpenAI legacy Completions, JSON or SSE.
- ``.../embeddings``: OpenAI Embeddings (float lists, or base64 float32 when
  ``encoding_format`` is ``base64``).
- ``.../v1/messages``: Anthropic Messages, JSON or SSE (``message_start`` ...
  ``message_stop``, cumulative ``message_delta`` usage).
- ``.../models/{m}:generateContent`` and ``:streamGenerateContent`` (SSE with ``alt=sse``,
  CRLF framed; a JSON array otherwise), with cumulative ``usageMetadata`` on every chunk.

Behaviour switches (request headers):

- ``x-fake-chunks: N``: content chunks per choice (default 3); output tokens = N per choice.
- ``x-fake-status: 429|500|...``: reply with that status and the provider's JSON error body;
  429 adds ``retry-after: 1`` (and ``retry-after-ms: 5`` for OpenAI routes).
- ``x-fake-gzip: 1``: gzip the body (``content-encoding: gzip``); streams are gzip-flushed per
  event.
- ``x-fake-abort-after: N``: close the connection abruptly after N stream events (SSE events
  or JSON-array elements), without ending the chunked body; for a non-stream reply, after N
  bytes of a body whose ``content-length`` promises more.
- ``x-fake-delay-ms: N``: wait N ms before replying.
- ``x-fake-chunk-delay-ms: N``: wait N ms between stream events.
- ``x-fake-tool-calls: 1``: OpenAI chat choices carry only a tool call (``content: null``,
  ``finish_reason: tool_calls``); Anthropic replies with a single ``tool_use`` block.
- ``x-fake-cached-tokens: N``: report N cached input tokens (OpenAI
  ``prompt_tokens_details.cached_tokens`` within ``prompt_tokens``; Anthropic
  ``cache_read_input_tokens`` besides ``input_tokens``; Gemini ``cachedContentTokenCount``
  within ``promptTokenCount``).
- ``x-fake-thoughts: 1``: Gemini adds a ``thought: true`` part and ``thoughtsTokenCount: 2``;
  the other routes return reasoning apart from the answer too, the text :data:`THOUGHT`:
  OpenAI chat ``reasoning_content`` (message or deltas), a Responses ``reasoning`` item with
  one ``summary_text`` (streamed as ``response.reasoning_summary_text.delta``), an Anthropic
  ``thinking`` block before the text (streamed as ``thinking_delta``).
- ``x-fake-org: NAME``: the organization the response headers name (``openai-organization``,
  ``anthropic-organization-id``) instead of the default.

Provider-style response headers are always sent: OpenAI routes ``x-request-id``,
``openai-organization``, ``openai-processing-ms``, ``openai-version`` and
``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``; Anthropic routes ``request-id``,
``anthropic-organization-id`` and ``anthropic-ratelimit-{requests,tokens,input-tokens,
output-tokens}-{limit,remaining,reset}``; Gemini routes ``server-timing`` only (Gemini documents
no request-id header).

Run standalone: ``python -m ledger.testing --port 0`` prints ``PORT <n>`` on its first
stdout line and serves until interrupted.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import itertools
import json
import signal
import socket
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["THOUGHT", "FakeProviderServer", "RecordedRequest", "expected_text"]

THOUGHT = "Considering. "
"""The reasoning text every route returns apart from the answer under ``x-fake-thoughts: 1``."""

_CREATED = 1_700_000_000
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}


def expected_text(choice: int, chunks: int) -> str:
    """The text the fake returns for choice ``choice`` with ``chunks`` chunks."""
    return "".join(_pieces(choice, chunks))


def _pieces(choice: int, chunks: int) -> list[str]:
    return [f"c{choice}w{k} " for k in range(chunks)]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str  # with the query string
    headers: dict[str, str]  # lowercased names; the last value wins for repeated names
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class _Call:
    """What a handler needs to know about the request being answered."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: dict[str, Any]
    rid: str
    prompt_tokens: int

    def header_int(self, name: str, default: int) -> int:
        try:
            return int(self.headers.get(name, default))
        except ValueError:
            return default

    @property
    def chunks(self) -> int:
        return max(0, self.header_int("x-fake-chunks", 3))

    @property
    def cached(self) -> int:
        return max(0, self.header_int("x-fake-cached-tokens", 0))

    @property
    def thoughts(self) -> bool:
        return self.headers.get("x-fake-thoughts") == "1"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request access log."""

    # ------------------------------------------------------------------ request intake

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        body = self._read_body()
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.record(RecordedRequest(self.command, self.path, headers, body))
        parts = urlsplit(self.path)
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            parsed = None
        call = _Call(
            path=parts.path,
            query=parse_qs(parts.query),
            headers=headers,
            body=parsed if isinstance(parsed, dict) else {},
            rid=f"{next(self.server.counter):08x}",
            prompt_tokens=len(body) // 10 + 1,
        )
        delay = call.header_int("x-fake-delay-ms", 0)
        if delay > 0:
            time.sleep(delay / 1000)
        route = _route(call.path)
        if route is None:
            self._json(404, _openai_headers(call), _openai_error(404, "no such route"), call)
            return
        family, name = route
        status = call.header_int("x-fake-status", 200)
        if parsed is None and status < 400:
            status = 400
        if status >= 400:
            self._error(family, status, call)
            return
        getattr(self, f"_{name}")(call)

    # ------------------------------------------------------------------ writers

    def _head(self, status: int, headers: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _json(self, status: int, headers: dict[str, str], obj: object, call: _Call) -> None:
        body = json.dumps(obj).encode()
        headers = {**headers, "content-type": "application/json"}
        if call.headers.get("x-fake-gzip") == "1":
            body = gzip.compress(body, compresslevel=1, mtime=0)
            headers["content-encoding"] = "gzip"
        headers["content-length"] = str(len(body))
        abort = call.header_int("x-fake-abort-after", -1)
        if 0 <= abort < len(body):
            self.wfile.write(self._head(status, headers) + body[:abort])
            self._abort()
            return
        self.wfile.write(self._head(status, headers) + body)

    def _stream(
        self, headers: dict[str, str], events: Iterator[bytes], call: _Call, content_type: str
    ) -> None:
        headers = {**headers, "content-type": content_type, "transfer-encoding": "chunked"}
        deflate = None
        if call.headers.get("x-fake-gzip") == "1":
            deflate = zlib.compressobj(1, zlib.DEFLATED, 31)
            headers["content-encoding"] = "gzip"
        abort = call.header_int("x-fake-abort-after", -1)
        pause = call.header_int("x-fake-chunk-delay-ms", 0) / 1000
        pending = self._head(200, headers)
        for count, event in enumerate(events):
            if count == abort:
                self.wfile.write(pending)
                self._abort()
                return
            if count and pause > 0:
                time.sleep(pause)
            data = (
                event
                if deflate is None
                else deflate.compress(event) + deflate.flush(zlib.Z_SYNC_FLUSH)
            )
            self.wfile.write(pending + b"%x\r\n%b\r\n" % (len(data), data))
            pending = b""
        tail = b"" if deflate is None else deflate.flush()
        frame = b"%x\r\n%b\r\n" % (len(tail), tail) if tail else b""
        self.wfile.write(pending + frame + b"0\r\n\r\n")

    def _abort(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _error(self, family: str, status: int, call: _Call) -> None:
        if family == "anthropic":
            headers = _anthropic_headers(call)
            kind = {429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
            body: object = {
                "type": "error",
                "error": {"type": kind.get(status, "invalid_request_error"), "message": "fake"},
                "request_id": f"req_{call.rid}",
            }
        elif family == "gemini":
            headers = {"server-timing": "gfet4t7; dur=1"}
            names = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
            body = {
                "error": {
                    "code": status,
                    "message": "fake error",
                    "status": names.get(status, "INVALID_ARGUMENT"),
                }
            }
        else:
            headers = _openai_headers(call)
            body = _openai_error(status, "fake error")
            if status == 429:
                headers["retry-after-ms"] = "5"
        if status == 429:
            headers["retry-after"] = "1"
        self._json(status, headers, body, call)

    # ------------------------------------------------------------------ OpenAI

    def _chat(self, call: _Call) -> None:
        model = call.body.get("model", "")
        n = max(1, int(call.body.get("n") or 1))
        chunks = call.chunks
        tools = call.headers.get("x-fake-tool-calls") == "1"
        headers = _openai_headers(call)
        usage = _openai_usage(call, n * chunks)
        rid = f"chatcmpl-fake{call.rid}"
        if not call.body.get("stream"):
            choices = []
            for i in range(n):
                message: dict[str, Any] = {
                    "role": "assistant",
                    "content": None if tools else expected_text(i, chunks),
                    "refusal": None,
                    "annotations": [],
                }
                if call.thoughts:
                    message["reasoning_content"] = THOUGHT
                if tools:
                    message["tool_calls"] = [_tool_call(i)]
                reason = "tool_calls" if tools else "stop"
                choices.append(
                    {"index": i, "message": message, "logprobs": None, "finish_reason": reason}
                )
            obj = {
                "id": rid,
                "object": "chat.completion",
                "created": _CREATED,
                "model": model,
                "choices": choices,
                "usage": usage,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
            }
            self._json(200, headers, obj, call)
            return
        include_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))

        def chunk(choices: list[dict[str, Any]], chunk_usage: object = None) -> bytes:
            obj: dict[str, Any] = {
                "id": rid,
                "object": "chat.completion.chunk",
                "created": _CREATED,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": choices,
            }
            if include_usage:
                obj["usage"] = chunk_usage
            return _sse(obj)

        def events() -> Iterator[bytes]:
            for i in range(n):
                first: dict[str, object] = {"role": "assistant", "content": ""}
                if tools:
                    first = {"role": "assistant", "content": None, "tool_calls": [_tool_call(i)]}
                yield chunk([{"index": i, "delta": first, "finish_reason": None}])
                if call.thoughts:
                    delta = {"content": None, "reasoning_content": THOUGHT}
                    yield chunk([{"index": i, "delta": delta, "finish_reason": None}])
            if not tools:
                for k in range(chunks):
                    for i in range(n):
                        delta = {"content": _pieces(i, chunks)[k]}
                        yield chunk([{"index": i, "delta": delta, "finish_reason": None}])
            for i in range(n):
                reason = "tool_calls" if tools else "stop"
                yield chunk([{"index": i, "delta": {}, "finish_reason": reason}])
            if include_usage:
                yield chunk([], usage)
            yield b"data: [DONE]\n\n"

        self._stream(headers, events(), call, "text/event-stream; charset=utf-8")

    def _completions(self, call: _Call) -> None:
        model = call.body.get("model", "")
        n = max(1, int(call.body.get("n") or 1))
        chunks = call.chunks
        headers = _openai_headers(call)
        usage = _openai_usage(call, n * chunks)
        rid = f"cmpl-fake{call.rid}"
        base = {"id": rid, "object": "text_completion", "created": _CREATED, "model": model}
        if not call.body.get("stream"):
            choices = [
                {
                    "text": expected_text(i, chunks),
                    "index": i,
                    "logprobs": None,
                    "finish_reason": "stop",
                }
                for i in range(n)
            ]
            self._json(200, headers, {**base, "choices": choices, "usage": usage}, call)
            return
        include_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))

        def events() -> Iterator[bytes]:
            for k in range(chunks):
                for i in range(n):
                    choice = {"text": _pieces(i, chunks)[k], "index": i, "logprobs": None}
                    yield _sse({**base, "choices": [{**choice, "finish_reason": None}]})
            for i in range(n):
                choice = {"text": "", "index": i, "logprobs": None, "finish_reason": "stop"}
                yield _sse({**base, "choices": [choice]})
            if include_usage:
                yield _sse({**base, "choices": [], "usage": usage})
            yield b"data: [DONE]\n\n"

        self._stream(headers, events(), call, "text/event-stream; charset=utf-8")

    def _embeddings(self, call: _Call) -> None:
        raw = call.body.get("input", "")
        inputs = raw if isinstance(raw, list) else [raw]
        as_b64 = call.body.get("encoding_format") == "base64"
        data = []
        for i, _text in enumerate(inputs):
            vector = [round((i + 1) * 0.001 * (j + 1), 6) for j in range(8)]
            embedding: object = vector
            if as_b64:
                embedding = base64.b64encode(struct.pack("<8f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        tokens = call.prompt_tokens
        obj = {
            "object": "list",
            "data": data,
            "model": call.body.get("model", ""),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        self._json(200, _openai_headers(call), obj, call)

    def _responses(self, call: _Call) -> None:
        model = call.body.get("model", "")
        chunks = call.chunks
        text = expected_text(0, chunks)
        rid = f"resp_fake{call.rid}"
        item_id = f"msg_fake{call.rid}"
        usage = {
            "input_tokens": call.prompt_tokens + call.cached,
            "input_tokens_details": {"cached_tokens": call.cached},
            "output_tokens": chunks,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": call.prompt_tokens + call.cached + chunks,
        }

        def response(status: str, output: list[object], usage_obj: object) -> dict[str, Any]:
            return {
                "id": rid,
                "object": "response",
                "created_at": _CREATED,
                "status": status,
                "error": None,
                "incomplete_details": None,
                "instructions": None,
                "metadata": {},
                "model": model,
                "output": output,
                "parallel_tool_calls": True,
                "temperature": 1.0,
                "tool_choice": "auto",
                "tools": [],
                "top_p": 1.0,
                "usage": usage_obj,
            }

        part = {"type": "output_text", "text": text, "annotations": []}
        item = {
            "type": "message",
            "id": item_id,
            "status": "completed",
            "role": "assistant",
            "content": [part],
        }
        summary = {"type": "summary_text", "text": THOUGHT}
        thought = {"type": "reasoning", "id": f"rs_fake{call.rid}", "summary": [summary]}
        items: list[object] = [thought, item] if call.thoughts else [item]
        at = len(items) - 1  # output_index of the message item
        if not call.body.get("stream"):
            self._json(200, _openai_headers(call), response("completed", items, usage), call)
            return

        def events() -> Iterator[bytes]:
            seq = itertools.count()
            started = response("in_progress", [], None)

            def event(kind: str, **fields: object) -> bytes:
                payload = {"type": kind, "sequence_number": next(seq), **fields}
                return b"event: %b\n%b" % (kind.encode(), _sse(payload))

            yield event("response.created", response=started)
            yield event("response.in_progress", response=started)
            if call.thoughts:
                yield event("response.output_item.added", output_index=0, item=thought)
                where = {"item_id": thought["id"], "output_index": 0, "summary_index": 0}
                yield event("response.reasoning_summary_text.delta", delta=THOUGHT, **where)
                yield event("response.reasoning_summary_text.done", text=THOUGHT, **where)
                yield event("response.output_item.done", output_index=0, item=thought)
            empty_item = {**item, "status": "in_progress", "content": []}
            yield event("response.output_item.added", output_index=at, item=empty_item)
            empty_part = {**part, "text": ""}
            common = {"item_id": item_id, "output_index": at, "content_index": 0}
            yield event("response.content_part.added", part=empty_part, **common)
            for piece in _pieces(0, chunks):
                yield event("response.output_text.delta", delta=piece, logprobs=[], **common)
            yield event("response.output_text.done", text=text, logprobs=[], **common)
            yield event("response.content_part.done", part=part, **common)
            yield event("response.output_item.done", output_index=at, item=item)
            yield event("response.completed", response=response("completed", items, usage))

        self._stream(_openai_headers(call), events(), call, "text/event-stream; charset=utf-8")

    # ------------------------------------------------------------------ Anthropic

    def _messages(self, call: _Call) -> None:
        model = call.body.get("model", "")
        chunks = call.chunks
        tools = call.headers.get("x-fake-tool-calls") == "1"
        headers = _anthropic_headers(call)
        rid = f"msg_fake{call.rid}"
        usage = {
            "input_tokens": call.prompt_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": call.cached,
            "output_tokens": chunks,
            "service_tier": "standard",
        }
        stop = "tool_use" if tools else "end_turn"
        tool_block = {
            "type": "tool_use",
            "id": f"toolu_fake{call.rid}",
            "name": "get_weather",
            "input": {"city": "Paris"},
        }
        thinking = {"type": "thinking", "thinking": THOUGHT, "signature": "fake-signature"}
        if not call.body.get("stream"):
            content = (
                [tool_block] if tools else [{"type": "text", "text": expected_text(0, chunks)}]
            )
            if call.thoughts:
                content = [thinking, *content]
            obj = {
                "id": rid,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": usage,
            }
            self._json(200, headers, obj, call)
            return

        def event(kind: str, payload: dict[str, object]) -> bytes:
            return b"event: %b\n%b" % (kind.encode(), _sse({"type": kind, **payload}))

        def events() -> Iterator[bytes]:
            start_usage = {**usage, "output_tokens": 1}
            message = {
                "id": rid,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            }
            yield event("message_start", {"message": message})
            at = 0
            if call.thoughts:
                start = {**thinking, "thinking": "", "signature": ""}
                yield event("content_block_start", {"index": 0, "content_block": start})
                delta = {"type": "thinking_delta", "thinking": THOUGHT}
                yield event("content_block_delta", {"index": 0, "delta": delta})
                delta = {"type": "signature_delta", "signature": "fake-signature"}
                yield event("content_block_delta", {"index": 0, "delta": delta})
                yield event("content_block_stop", {"index": 0})
                at = 1
            if tools:
                block = {**tool_block, "input": {}}
                yield event("content_block_start", {"index": at, "content_block": block})
                delta = {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'}
                yield event("content_block_delta", {"index": at, "delta": delta})
            else:
                block = {"type": "text", "text": ""}
                yield event("content_block_start", {"index": at, "content_block": block})
                yield event("ping", {})
                for piece in _pieces(0, chunks):
                    delta = {"type": "text_delta", "text": piece}
                    yield event("content_block_delta", {"index": at, "delta": delta})
            yield event("content_block_stop", {"index": at})
            end = {"stop_reason": stop, "stop_sequence": None}
            yield event("message_delta", {"delta": end, "usage": usage})
            yield event("message_stop", {})

        self._stream(headers, events(), call, "text/event-stream; charset=utf-8")

    # ------------------------------------------------------------------ Gemini

    def _gemini(self, call: _Call) -> None:
        model = call.path.rsplit("/models/", 1)[1].rsplit(":", 1)[0]
        method = call.path.rsplit(":", 1)[1]
        config = call.body.get("generationConfig") or {}
        n = max(1, int(config.get("candidateCount") or 1))
        chunks = call.chunks
        thoughts = 2 if call.headers.get("x-fake-thoughts") == "1" else 0
        rid = f"fakeresp{call.rid}"
        headers = {"server-timing": "gfet4t7; dur=1"}

        def usage(done: int) -> dict[str, object]:
            meta: dict[str, object] = {
                "promptTokenCount": call.prompt_tokens + call.cached,
                "candidatesTokenCount": done * n,
                "totalTokenCount": call.prompt_tokens + call.cached + done * n + thoughts,
            }
            if call.cached:
                meta["cachedContentTokenCount"] = call.cached
            if thoughts:
                meta["thoughtsTokenCount"] = thoughts
            return meta

        def candidate(i: int, parts: list[dict[str, object]], last: bool) -> dict[str, object]:
            cand: dict[str, object] = {"content": {"parts": parts, "role": "model"}, "index": i}
            if last:
                cand["finishReason"] = "STOP"
            return cand

        def thought_parts() -> list[dict[str, object]]:
            return [{"text": THOUGHT, "thought": True}] if thoughts else []

        def chunk(cands: list[dict[str, object]], done: int) -> dict[str, object]:
            return {
                "candidates": cands,
                "usageMetadata": usage(done),
                "modelVersion": model,
                "responseId": rid,
            }

        if method == "generateContent":
            cands = [
                candidate(i, [*thought_parts(), {"text": expected_text(i, chunks)}], True)
                for i in range(n)
            ]
            self._json(200, headers, chunk(cands, chunks), call)
            return

        def objects() -> Iterator[dict[str, object]]:
            if thoughts:
                yield chunk([candidate(i, thought_parts(), False) for i in range(n)], 0)
            for k in range(chunks):
                last = k == chunks - 1
                cands = [candidate(i, [{"text": _pieces(i, chunks)[k]}], last) for i in range(n)]
                yield chunk(cands, k + 1)
            if chunks == 0:
                yield chunk([candidate(i, [{"text": ""}], True) for i in range(n)], 0)

        if call.query.get("alt") == ["sse"]:
            sse = (b"data: " + json.dumps(obj).encode() + b"\r\n\r\n" for obj in objects())
            self._stream(headers, sse, call, "text/event-stream")
            return

        def array() -> Iterator[bytes]:
            for count, obj in enumerate(objects()):
                yield (b"[" if count == 0 else b",\r\n") + json.dumps(obj).encode()
            yield b"]"

        self._stream(headers, array(), call, "application/json; charset=UTF-8")


def _route(path: str) -> tuple[str, str] | None:
    path = path.rstrip("/")
    if "/models/" in path and ":" in path.rsplit("/models/", 1)[1]:
        method = path.rsplit(":", 1)[1]
        if method in ("generateContent", "streamGenerateContent"):
            return "gemini", "gemini"
        return None
    if path.endswith("/v1/messages"):
        return "anthropic", "messages"
    for suffix, name in (
        ("/chat/completions", "chat"),
        ("/responses", "responses"),
        ("/completions", "completions"),
        ("/embeddings", "embeddings"),
    ):
        if path.endswith(suffix):
            return "openai", name
    return None


def _sse(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _tool_call(i: int) -> dict[str, object]:
    return {
        "index": 0,
        "id": f"call_fake{i}",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }


def _openai_usage(call: _Call, completion: int) -> dict[str, object]:
    prompt = call.prompt_tokens + call.cached
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": call.cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _openai_error(status: int, message: str) -> dict[str, object]:
    kind = {429: "rate_limit_exceeded", 404: "invalid_request_error"}.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


def _openai_headers(call: _Call) -> dict[str, str]:
    return {
        "x-request-id": f"req_fake{call.rid}",
        "openai-organization": call.headers.get("x-fake-org", "fake-org"),
        "openai-processing-ms": "1",
        "openai-version": "2020-10-01",
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": "9999",
        "x-ratelimit-reset-requests": "6ms",
        "x-ratelimit-limit-tokens": "2000000",
        "x-ratelimit-remaining-tokens": "1999000",
        "x-ratelimit-reset-tokens": "30ms",
    }


def _anthropic_headers(call: _Call) -> dict[str, str]:
    org = call.headers.get("x-fake-org", "fake-org-id")
    headers = {"request-id": f"req_fake{call.rid}", "anthropic-organization-id": org}
    for kind, limit in (
        ("requests", 4000),
        ("tokens", 400000),
        ("input-tokens", 300000),
        ("output-tokens", 100000),
    ):
        prefix = f"anthropic-ratelimit-{kind}"
        headers[f"{prefix}-limit"] = str(limit)
        headers[f"{prefix}-remaining"] = str(limit - 1)
        headers[f"{prefix}-reset"] = "2026-01-01T00:00:00Z"
    return headers


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 resets connections when 16+ clients connect at once.
    request_queue_size = 128
    counter: itertools.count[int]

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.counter = itertools.count(1)
        self._lock = threading.Lock()
        self.received: list[RecordedRequest] = []

    def handle_error(self, request: object, client_address: object) -> None:
        """Stay quiet when a client drops its connection; report anything else."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.received.append(request)

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self.received)

    def clear(self) -> None:
        with self._lock:
            self.received.clear()


class FakeProviderServer:
    """The fake provider, served from a background thread.

    Example:
        >>> with FakeProviderServer() as server:  # doctest: +SKIP
        ...     client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test")
    """

    def __init__(self, port: int = 0) -> None:
        self._server = _Server(port)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The TCP port listened on."""
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """Base URL for ``openai.OpenAI(base_url=...)`` (with ``/v1``)."""
        return f"{self.base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Base URL for ``anthropic.Anthropic(base_url=...)`` (no ``/v1``)."""
        return self.base_url

    @property
    def gemini_base_url(self) -> str:
        """Base URL for google-genai ``HttpOptions(base_url=...)`` (the SDK adds ``/v1beta``)."""
        return self.base_url

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, oldest first."""
        return self._server.snapshot()

    def clear(self) -> None:
        """Forget the requests received so far."""
        self._server.clear()

    def start(self) -> FakeProviderServer:
        """Serve from a daemon thread; returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def serve_forever(self) -> None:
        """Serve on the calling thread until ``stop`` is called from elsewhere."""
        self._server.serve_forever(poll_interval=0.05)

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def usage_lines(server: FakeProviderServer) -> str:
    """How to point each SDK at ``server``, and the ``hosts=`` a wrapped openai client needs.

    The anthropic and google-genai SDKs speak one provider's API, so ``wrap`` names the provider
    from the SDK; an openai client on a host the ledger does not know is recorded as
    ``unknown`` unless ``hosts`` says who answers there.
    """
    return "\n".join(
        (
            f"openai     openai.OpenAI(base_url={server.openai_base_url!r}, api_key='sk-test')",
            f"anthropic  anthropic.Anthropic(base_url={server.anthropic_base_url!r}, "
            "api_key='sk-test')",
            "gemini     genai.Client(api_key='test', "
            f"http_options=types.HttpOptions(base_url={server.gemini_base_url!r}))",
            "hosts      ledger.wrap(client, hosts={'127.0.0.1': 'openai'})  "
            "# for the openai client: this host alone does not say who answers",
        )
    )


def main(argv: list[str] | None = None) -> int:
    """Run the fake in the foreground, printing ``PORT <n>`` first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: pick a free one)")
    args = parser.parse_args(argv)
    server = FakeProviderServer(args.port)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server._server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"PORT {server.port}", flush=True)
    print(usage_lines(server), flush=True)
    try:
        server.serve_forever()
    finally:
        server._server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
