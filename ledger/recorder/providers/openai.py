"""OpenAI wire formats: Chat Completions, Responses, legacy Completions and Embeddings.

Also used for every OpenAI-compatible server (Azure OpenAI, DeepSeek, OpenRouter, Together,
Groq, Mistral, xAI, vLLM...), which share these shapes with small differences in when usage
arrives.

Invariants:

- Pure and total: any bytes in, ``CallFacts`` out; unknown or missing fields become ``None``.
- Stream usage is the last ``usage`` object seen (``stream_options.include_usage`` sends it once
  in a final ``choices: []`` chunk; some compatible servers repeat it on every chunk, and
  OpenRouter adds a late usage-only chunk): never summed.
- Outputs and finish reasons are keyed by ``choices[].index`` and reported in index order; a
  choice with only tool calls has output ``""``. Finish reasons list only what the wire said
  (a stream cut before a choice finished reports no reason for it).
- Responses streams: the terminal ``response.completed`` / ``response.incomplete`` /
  ``response.failed`` event carries the final response object, which wins over the deltas; a
  stream cut before it reports the concatenated ``response.output_text.delta`` text.
- Request model: the body's ``model``, else the Azure deployment name from the path.
- Reasoning returned apart from the answer is read per choice: Chat's ``reasoning_content``
  (DeepSeek, vLLM, Together...; ``reasoning`` on OpenRouter), whole or as stream deltas; the
  Responses API's ``reasoning`` output items (their ``reasoning_text`` content, else their
  summary texts joined by a blank line), or the reasoning delta events of a cut stream. It
  never enters the answer text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ledger.recorder.providers._base import (
    CallFacts,
    Exchange,
    aligned,
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

__all__ = ["OpenAIAdapter"]


class _Read:
    """Mutable accumulator for one response body (internal, never escapes a parse call)."""

    __slots__ = (
        "finish",
        "input_tokens",
        "modality",
        "model",
        "output_tokens",
        "outputs",
        "reasoning",
        "rid",
    )

    def __init__(self) -> None:
        self.rid: str | None = None
        self.model: str | None = None
        self.finish: dict[int, str] = {}
        self.outputs: dict[int, str] = {}
        self.reasoning: dict[int, str] = {}
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.modality: str | None = None

    def usage(self, usage: Mapping[str, object]) -> None:
        # Chat/Completions/Embeddings name them prompt/completion; Responses input/output.
        prompt = as_int(usage.get("prompt_tokens"))
        completion = as_int(usage.get("completion_tokens"))
        self.input_tokens = prompt if prompt is not None else as_int(usage.get("input_tokens"))
        self.output_tokens = (
            completion if completion is not None else as_int(usage.get("output_tokens"))
        )


@dataclass(frozen=True, slots=True)
class OpenAIAdapter:
    """Adapter for one OpenAI-style operation.

    Attributes:
        provider: Provider reported in the facts.
        operation: ``chat``, ``responses``, ``text_completion`` or ``embeddings``.
        path_model: Model named by the path (Azure deployment), used when the body names none.
    """

    provider: str
    operation: str
    path_model: str | None = None

    def parse(self, exchange: Exchange) -> CallFacts:
        """Read the facts of one exchange; never raises on malformed or partial bodies."""
        request = load_json(exchange.request_body)
        request_body = as_dict(request)
        request_model = as_str(request_body.get("model")) if request_body is not None else None
        if request_model is None:
            request_model = self.path_model

        body = body_bytes(exchange.response_body)
        if exchange.status is None:
            stream = request_streams(request)
        else:
            stream = is_event_stream(exchange, body)

        read = _Read()
        operation = self.operation
        if exchange.status is not None and body:
            if operation == "responses":
                if stream:
                    _responses_stream(body, read)
                else:
                    _responses_object(as_dict(load_json(body)), read)
            elif operation == "embeddings":
                _embeddings(as_dict(load_json(body)), read)
            elif stream:
                _choices_stream(body, read, chat=operation == "chat")
            else:
                _choices_object(as_dict(load_json(body)), read, chat=operation == "chat")

        modality = None
        if is_success(exchange.status):
            modality = read.modality or ("embedding" if operation == "embeddings" else "text")
        return CallFacts(
            provider=self.provider,
            operation=operation,
            request_model=request_model,
            response_model=read.model,
            response_id=read.rid,
            stream=stream,
            finish_reasons=ordered(read.finish),
            input_tokens=read.input_tokens,
            output_tokens=read.output_tokens,
            outputs=ordered(read.outputs),
            output_modality=modality,
            request_json=request,
            reasoning=aligned(read.outputs, read.reasoning),
        )


# --------------------------------------------------------------------------- chat / completions


def _choice_text(choice: Mapping[str, object], *, chat: bool) -> str:
    if not chat:
        return as_str(choice.get("text")) or ""
    message = as_dict(choice.get("message"))
    if message is None:
        return ""
    return _content_text(message.get("content"))


def _content_text(content: object) -> str:
    """Message content as text: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    texts = []
    for part in as_list(content):
        part_obj = as_dict(part)
        if part_obj is not None:
            text = as_str(part_obj.get("text"))
            if text is not None:
                texts.append(text)
    return "".join(texts)


def _reasoning_text(message: Mapping[str, object] | None) -> str | None:
    """``reasoning_content`` (or OpenRouter's ``reasoning``) of a chat message or delta."""
    if message is None:
        return None
    text = message.get("reasoning_content")
    if not isinstance(text, str):
        text = message.get("reasoning")
    return text if isinstance(text, str) else None


def _choices_object(body: Mapping[str, object] | None, read: _Read, *, chat: bool) -> None:
    if body is None:
        return
    read.rid = as_str(body.get("id"))
    read.model = as_str(body.get("model"))
    usage = as_dict(body.get("usage"))
    if usage is not None:
        read.usage(usage)
    for position, item in enumerate(as_list(body.get("choices"))):
        choice = as_dict(item)
        if choice is None:
            continue
        index = as_index(choice.get("index"), position)
        read.outputs[index] = _choice_text(choice, chat=chat)
        if chat:
            thought = _reasoning_text(as_dict(choice.get("message")))
            if thought is not None:
                read.reasoning[index] = thought
        reason = as_str(choice.get("finish_reason"))
        if reason:
            read.finish[index] = reason
        if chat:
            message = as_dict(choice.get("message"))
            if message is not None and message.get("audio") is not None:
                read.modality = "audio"


def _choices_stream(body: bytes, read: _Read, *, chat: bool) -> None:
    # Hot path: one json.loads per event and plain dict/list access, nothing else.
    parts: dict[int, list[str]] = {}
    thoughts: dict[int, list[str]] = {}
    for _event, chunk in iter_sse_json(body):
        if read.rid is None:
            read.rid = as_str(chunk.get("id"))
        if read.model is None:
            read.model = as_str(chunk.get("model"))
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            read.usage(usage)
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            continue
        for position, item in enumerate(choices):
            if not isinstance(item, dict):
                continue
            index = as_index(item.get("index"), position)
            texts = parts.get(index)
            if texts is None:
                texts = parts[index] = []
            if chat:
                delta = item.get("delta")
                if isinstance(delta, dict):
                    text = delta.get("content")
                    if isinstance(text, str) and text:
                        texts.append(text)
                    thought = delta.get("reasoning_content")
                    if not isinstance(thought, str):
                        thought = delta.get("reasoning")
                    if isinstance(thought, str):
                        thoughts.setdefault(index, []).append(thought)
                    if delta.get("audio") is not None:
                        read.modality = "audio"
            else:
                text = item.get("text")
                if isinstance(text, str) and text:
                    texts.append(text)
            reason = item.get("finish_reason")
            if isinstance(reason, str) and reason:
                read.finish[index] = reason
    for index, texts in parts.items():
        read.outputs[index] = "".join(texts)
    for index, pieces in thoughts.items():
        read.reasoning[index] = "".join(pieces)


# --------------------------------------------------------------------------- embeddings


def _embeddings(body: Mapping[str, object] | None, read: _Read) -> None:
    if body is None:
        return
    read.rid = as_str(body.get("id"))  # the API sends none; some compatible servers do
    read.model = as_str(body.get("model"))
    usage = as_dict(body.get("usage"))
    if usage is not None:
        read.input_tokens = as_int(usage.get("prompt_tokens"))
        if read.input_tokens is None:
            read.input_tokens = as_int(usage.get("input_tokens"))


# --------------------------------------------------------------------------- responses


def _responses_object(response: Mapping[str, object] | None, read: _Read) -> None:
    if response is None:
        return
    read.rid = as_str(response.get("id"))
    read.model = as_str(response.get("model"))
    usage = as_dict(response.get("usage"))
    if usage is not None:
        read.usage(usage)
    status = as_str(response.get("status"))
    details = as_dict(response.get("incomplete_details"))
    reason = as_str(details.get("reason")) if details is not None else None
    # The Responses API has no finish_reason; the incomplete reason (max_output_tokens,
    # content_filter) is the closest thing, else the terminal status itself.
    if reason or status:
        read.finish[0] = reason or status or ""
    if "output" not in response:
        return
    texts: list[str] = []
    thoughts: list[str] = []
    for item in as_list(response.get("output")):
        output = as_dict(item)
        if output is not None and output.get("type") == "reasoning":
            thought = _reasoning_item(output)
            if thought is not None:
                thoughts.append(thought)
            continue
        if output is None or output.get("type") != "message":
            continue
        for part in as_list(output.get("content")):
            content = as_dict(part)
            if content is not None and content.get("type") == "output_text":
                texts.append(as_str(content.get("text")) or "")
    # Same text as the SDK's ``Response.output_text``: every output_text part, in order.
    read.outputs[0] = "".join(texts)
    if thoughts:
        read.reasoning[0] = "\n\n".join(thoughts)


def _reasoning_item(item: Mapping[str, object]) -> str | None:
    """The text of one Responses ``reasoning`` item: its reasoning text, else its summary.

    ``content`` holds ``reasoning_text`` parts when the model exposes its raw reasoning
    (open-weight models); otherwise only ``summary`` (``summary_text`` parts) is returned.
    """
    for field, kind in (("content", "reasoning_text"), ("summary", "summary_text")):
        texts = [
            text
            for part in as_list(item.get(field))
            if (obj := as_dict(part)) is not None
            and obj.get("type") == kind
            and (text := as_str(obj.get("text"))) is not None
        ]
        if texts:
            return "\n\n".join(texts)
    return None


_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
# A cut stream's reasoning: raw reasoning text deltas, else summary deltas (never both kinds
# from one model, so their concatenation is the one the final object would have carried).
_REASONING_DELTAS = frozenset(
    {"response.reasoning_text.delta", "response.reasoning_summary_text.delta"}
)


def _responses_stream(body: bytes, read: _Read) -> None:
    deltas: list[str] = []
    thoughts: list[str] = []
    final: Mapping[str, object] | None = None
    for event, data in iter_sse_json(body):
        kind = as_str(data.get("type")) or event
        if kind == "response.output_text.delta":
            delta = data.get("delta")
            if isinstance(delta, str):
                deltas.append(delta)
        elif kind in _REASONING_DELTAS:
            delta = data.get("delta")
            if isinstance(delta, str):
                thoughts.append(delta)
        elif kind in _TERMINAL:
            final = as_dict(data.get("response"))
        elif kind in ("response.created", "response.in_progress"):
            started = as_dict(data.get("response"))
            if started is not None:
                read.rid = read.rid or as_str(started.get("id"))
                read.model = read.model or as_str(started.get("model"))
    if final is not None:
        _responses_object(final, read)
        if 0 in read.outputs:
            return
    if deltas or read.rid is not None:
        read.outputs[0] = "".join(deltas)
        if thoughts:
            read.reasoning[0] = "".join(thoughts)
