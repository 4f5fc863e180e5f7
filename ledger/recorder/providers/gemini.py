"""Google Gemini wire format: ``models/{m}:generateContent`` and ``:streamGenerateContent``.

Invariants:

- Pure and total: any bytes in, ``CallFacts`` out; unknown or missing fields become ``None``.
- A response is one ``GenerateContentResponse`` object, an SSE stream of them (``alt=sse``,
  CRLF line ends), or a JSON array of them (``streamGenerateContent`` without ``alt=sse``);
  all three are folded the same way, and a cut-off array still yields its complete elements.
- Output text is ``candidates[].content.parts[].text`` joined per candidate ``index`` across
  chunks, skipping ``thought`` parts (as the SDK's ``response.text`` does). The ``thought:
  true`` parts, joined the same way, are that candidate's reasoning (``None`` when it has
  none).
- ``usageMetadata`` is cumulative and repeated: the last one wins. Output tokens are
  ``candidatesTokenCount + thoughtsTokenCount`` (OpenTelemetry counts reasoning as output);
  input tokens are ``promptTokenCount`` (which already includes cached content).
- The request model is the ``{m}`` of the path; the response model is ``modelVersion``.
- ``stream`` is true for ``streamGenerateContent`` (either body form) and for any SSE response.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
    iter_json_array,
    iter_sse_json,
    load_json,
    ordered,
)

__all__ = ["GeminiAdapter"]


@dataclass(frozen=True, slots=True)
class GeminiAdapter:
    """Adapter for Gemini ``generateContent`` and ``streamGenerateContent``.

    Attributes:
        provider: Provider reported in the facts.
        path_model: The ``{model}`` of ``.../models/{model}:method``.
        streaming: The method was ``streamGenerateContent``.
        operation: Always ``generate_content``.
    """

    provider: str
    path_model: str | None
    streaming: bool = False
    operation: str = "generate_content"

    def parse(self, exchange: Exchange) -> CallFacts:
        """Read the facts of one exchange; never raises on malformed or partial bodies."""
        request = load_json(exchange.request_body)
        body = body_bytes(exchange.response_body)
        sse = exchange.status is not None and is_event_stream(exchange, body)

        chunks: Iterable[Mapping[str, object]] = ()
        if exchange.status is not None and body:
            if sse:
                chunks = (data for _event, data in iter_sse_json(body))
            elif body.lstrip()[:1] == b"[":
                chunks = iter_json_array(body)
            else:
                single = as_dict(load_json(body))
                chunks = (single,) if single is not None else ()
        fold = _Fold()
        for chunk in chunks:
            fold.add(chunk)

        modality = None
        if is_success(exchange.status):
            modality = fold.modality or "text"
        return CallFacts(
            provider=self.provider,
            operation=self.operation,
            request_model=self.path_model,
            response_model=fold.model,
            response_id=fold.rid,
            stream=self.streaming or sse,
            finish_reasons=ordered(fold.finish),
            input_tokens=fold.input_tokens,
            output_tokens=fold.output_tokens,
            outputs=tuple("".join(fold.parts[i]) for i in sorted(fold.parts)),
            output_modality=modality,
            request_json=request,
            reasoning=aligned(fold.parts, {i: "".join(t) for i, t in fold.thoughts.items()}),
        )


class _Fold:
    """Mutable accumulator over response chunks (internal, never escapes a parse call)."""

    __slots__ = (
        "finish",
        "input_tokens",
        "modality",
        "model",
        "output_tokens",
        "parts",
        "rid",
        "thoughts",
    )

    def __init__(self) -> None:
        self.rid: str | None = None
        self.model: str | None = None
        self.finish: dict[int, str] = {}
        self.parts: dict[int, list[str]] = {}
        self.thoughts: dict[int, list[str]] = {}
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.modality: str | None = None

    def add(self, chunk: Mapping[str, object]) -> None:
        if self.rid is None:
            self.rid = as_str(chunk.get("responseId"))
        if self.model is None:
            self.model = as_str(chunk.get("modelVersion"))
        usage = as_dict(chunk.get("usageMetadata"))
        if usage is not None:
            # Cumulative and repeated on chunks: overwrite, never add.
            self.input_tokens = as_int(usage.get("promptTokenCount"))
            candidates = as_int(usage.get("candidatesTokenCount"))
            thoughts = as_int(usage.get("thoughtsTokenCount"))
            if candidates is None and thoughts is None:
                self.output_tokens = None
            else:
                self.output_tokens = (candidates or 0) + (thoughts or 0)
        for position, item in enumerate(as_list(chunk.get("candidates"))):
            candidate = as_dict(item)
            if candidate is None:
                continue
            index = as_index(candidate.get("index"), position)
            texts = self.parts.get(index)
            if texts is None:
                texts = self.parts[index] = []
            content = as_dict(candidate.get("content"))
            if content is not None:
                for part_item in as_list(content.get("parts")):
                    part = as_dict(part_item)
                    if part is not None:
                        self._part(part, texts, index)
            reason = as_str(candidate.get("finishReason"))
            if reason:
                self.finish[index] = reason

    def _part(self, part: Mapping[str, object], texts: list[str], index: int) -> None:
        text = part.get("text")
        if isinstance(text, str):
            if part.get("thought") is not True:
                texts.append(text)
            else:
                self.thoughts.setdefault(index, []).append(text)
            return
        inline = as_dict(part.get("inlineData"))
        if inline is not None:
            mime = as_str(inline.get("mimeType")) or ""
            if mime.startswith("image/"):
                self.modality = "image"
            elif mime.startswith("audio/"):
                self.modality = "audio"
