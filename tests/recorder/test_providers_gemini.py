"""Gemini adapter against the real ``google-genai`` SDK talking to the fake provider.

Facts are compared with what the SDK returned; the JSON-array stream form (no ``alt=sse``),
cumulative ``usageMetadata`` and truncation are covered with raw requests and hand-written bodies.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx2
import pytest
from google import genai
from google.genai import types

from ledger.crypto.canonical import output_sha256
from ledger.recorder.providers import CallFacts, Exchange, parse_exchange
from ledger.testing.fake_provider import FakeProviderServer
from tests.recorder.conftest import CaptureTransport

MODEL = "gemini-test-flash"


@pytest.fixture
def client(fake_provider: FakeProviderServer, capture: CaptureTransport) -> Iterator[genai.Client]:
    options = types.HttpOptions(
        base_url=fake_provider.gemini_base_url, httpx_client=httpx2.Client(transport=capture)
    )
    sdk = genai.Client(api_key="test-key", http_options=options)
    yield sdk
    sdk.close()


def facts_of(capture: CaptureTransport) -> CallFacts:
    return parse_exchange(capture.last.exchange(), provider_hint="gcp.gemini")


def candidate_texts(responses: list[types.GenerateContentResponse]) -> list[str]:
    texts: dict[int, str] = {}
    for response in responses:
        for position, cand in enumerate(response.candidates or []):
            index = cand.index if cand.index is not None else position
            parts = cand.content.parts if cand.content and cand.content.parts else []
            texts[index] = texts.get(index, "") + "".join(
                p.text for p in parts if p.text and not p.thought
            )
    return [texts[i] for i in sorted(texts)]


def output_tokens(usage: types.GenerateContentResponseUsageMetadata | None) -> int:
    assert usage is not None
    return (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)


@pytest.mark.parametrize("thoughts", [False, True])
def test_generate_content_two_candidates(
    client: genai.Client, capture: CaptureTransport, thoughts: bool
) -> None:
    got = client.models.generate_content(
        model=MODEL,
        contents="Say something.",
        config=types.GenerateContentConfig(
            candidate_count=2,
            http_options=types.HttpOptions(
                headers={"x-fake-chunks": "4", "x-fake-thoughts": "1" if thoughts else "0"}
            ),
        ),
    )
    facts = facts_of(capture)
    assert facts.provider == "gcp.gemini"
    assert facts.operation == "generate_content"
    assert facts.request_model == MODEL
    assert (facts.response_model, facts.response_id) == (got.model_version, got.response_id)
    assert facts.stream is False
    assert got.candidates is not None
    assert facts.finish_reasons == tuple(
        c.finish_reason.value for c in got.candidates if c.finish_reason
    )
    assert got.usage_metadata is not None
    assert facts.input_tokens == got.usage_metadata.prompt_token_count
    assert facts.output_tokens == output_tokens(got.usage_metadata)
    assert [output_sha256(t) for t in facts.outputs] == [
        output_sha256(t) for t in candidate_texts([got])
    ]
    assert output_sha256(facts.outputs[0]) == output_sha256(got.text or "")
    assert facts.output_modality == "text"
    assert facts.request_json == json.loads(capture.last.request_body)


@pytest.mark.parametrize("gzip", [False, True])
def test_stream_generate_content_sse(
    client: genai.Client, capture: CaptureTransport, gzip: bool
) -> None:
    headers = {
        "x-fake-chunks": "12",
        "x-fake-gzip": "1" if gzip else "0",
        "x-fake-cached-tokens": "7",
    }
    chunks = list(
        client.models.generate_content_stream(
            model=MODEL,
            contents="Say something.",
            config=types.GenerateContentConfig(http_options=types.HttpOptions(headers=headers)),
        )
    )
    assert "alt=sse" in capture.last.url
    facts = facts_of(capture)
    assert facts.stream is True
    last = chunks[-1]
    assert (facts.response_model, facts.response_id) == (last.model_version, last.response_id)
    assert last.usage_metadata is not None
    assert facts.input_tokens == last.usage_metadata.prompt_token_count
    assert facts.output_tokens == output_tokens(last.usage_metadata) == 12
    assert facts.finish_reasons == ("STOP",)
    sdk_text = "".join(c.text or "" for c in chunks)
    assert [output_sha256(t) for t in facts.outputs] == [output_sha256(sdk_text)]


def test_stream_aborted_keeps_last_cumulative_usage(
    client: genai.Client, capture: CaptureTransport
) -> None:
    seen: list[str] = []
    headers = {"x-fake-chunks": "10", "x-fake-abort-after": "4"}

    def consume() -> None:
        for chunk in client.models.generate_content_stream(
            model=MODEL,
            contents="Say something.",
            config=types.GenerateContentConfig(http_options=types.HttpOptions(headers=headers)),
        ):
            seen.append(chunk.text or "")

    with pytest.raises(httpx2.TransportError):
        consume()
    facts = facts_of(capture)
    assert len(seen) == 4
    assert facts.outputs == ("".join(seen),)
    assert facts.output_tokens == 4  # the fourth chunk's cumulative count, not 1+2+3+4
    assert facts.finish_reasons == ()


def test_json_array_stream_form_matches_sse_form(
    fake_provider: FakeProviderServer, capture: CaptureTransport
) -> None:
    body = {"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"candidateCount": 2}}
    path = f"/v1beta/models/{MODEL}:streamGenerateContent"
    with httpx2.Client(transport=capture, base_url=fake_provider.base_url) as http:
        http.post(path, params={"alt": "sse"}, json=body, headers={"x-fake-chunks": "5"})
        from_sse = facts_of(capture)
        http.post(path, json=body, headers={"x-fake-chunks": "5"})
        assert capture.last.response_headers["content-type"].startswith("application/json")
        from_array = facts_of(capture)
        cut_headers = {"x-fake-chunks": "5", "x-fake-abort-after": "3"}
        with (
            pytest.raises(httpx2.RemoteProtocolError),
            http.stream("POST", path, json=body, headers=cut_headers) as response,
        ):
            response.read()
        cut = facts_of(capture)
    assert from_sse.outputs == ("c0w0 c0w1 c0w2 c0w3 c0w4 ", "c1w0 c1w1 c1w2 c1w3 c1w4 ")
    assert from_array.outputs == from_sse.outputs
    assert from_array.stream is True
    assert (from_array.input_tokens, from_array.output_tokens) == (
        from_sse.input_tokens,
        from_sse.output_tokens,
    )
    assert from_array.finish_reasons == ("STOP", "STOP")
    assert cut.outputs == ("c0w0 c0w1 c0w2 ", "c1w0 c1w1 c1w2 ")
    assert cut.output_tokens == 6


def test_rate_limited(client: genai.Client, capture: CaptureTransport) -> None:
    with pytest.raises(genai.errors.ClientError):
        client.models.generate_content(
            model=MODEL,
            contents="x",
            config=types.GenerateContentConfig(
                http_options=types.HttpOptions(headers={"x-fake-status": "429"})
            ),
        )
    facts = facts_of(capture)
    assert capture.last.status == 429
    assert facts.request_model == MODEL
    assert (facts.outputs, facts.output_modality, facts.response_id) == ((), None, None)


# --------------------------------------------------------------------------- hand-written bodies


def exchange(body: bytes, *, method: str = "streamGenerateContent", sse: bool = True) -> Exchange:
    query = "?alt=sse" if sse else ""
    return Exchange(
        method="POST",
        url=f"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:{method}{query}",
        request_headers={},
        request_body=b'{"contents": []}',
        status=200,
        response_headers={"content-type": "text/event-stream" if sse else "application/json"},
        response_body=body,
        complete=True,
    )


def test_cumulative_usage_and_interleaved_candidates_crlf() -> None:
    def usage(candidates: int) -> dict[str, int]:
        return {"promptTokenCount": 9, "candidatesTokenCount": candidates, "thoughtsTokenCount": 5}

    def cand(index: int, *texts: str, thought: str = "", reason: str = "") -> dict[str, object]:
        parts: list[dict[str, object]] = [{"text": thought, "thought": True}] if thought else []
        parts += [{"text": t} for t in texts]
        out: dict[str, object] = {"index": index, "content": {"parts": parts}}
        return {**out, "finishReason": reason} if reason else out

    chunks = [
        {
            "candidates": [cand(1, "B1"), cand(0, "A1", thought="think")],
            "usageMetadata": usage(2),
            "modelVersion": "gemini-2.5-pro-preview",
            "responseId": "r-1",
        },
        {
            "candidates": [cand(0, "A2", reason="MAX_TOKENS"), cand(1, "B2", reason="STOP")],
            "usageMetadata": usage(4),
        },
    ]
    body = b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)
    facts = parse_exchange(exchange(body))
    assert facts.provider == "gcp.gemini"
    assert facts.request_model == "gemini-2.5-pro"
    assert facts.response_model == "gemini-2.5-pro-preview"
    assert facts.response_id == "r-1"
    assert facts.outputs == ("A1A2", "B1B2")
    assert facts.finish_reasons == ("MAX_TOKENS", "STOP")
    assert (facts.input_tokens, facts.output_tokens) == (9, 4 + 5)


def test_image_output_modality_and_blocked_prompt() -> None:
    image = {
        "candidates": [
            {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]}}
        ],
        "usageMetadata": {"promptTokenCount": 3},
    }
    facts = parse_exchange(
        exchange(json.dumps(image).encode(), method="generateContent", sse=False)
    )
    assert facts.output_modality == "image"
    assert facts.outputs == ("",)
    assert (facts.input_tokens, facts.output_tokens) == (3, None)
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 3},
    }
    facts = parse_exchange(
        exchange(json.dumps(blocked).encode(), method="generateContent", sse=False)
    )
    assert (facts.outputs, facts.finish_reasons, facts.stream) == ((), (), False)


def test_truncated_json_array_at_every_byte_never_raises() -> None:
    chunks = [
        {
            "candidates": [{"content": {"parts": [{"text": f"{i}"}]}}],
            "usageMetadata": {"candidatesTokenCount": i + 1},
        }
        for i in range(5)
    ]
    body = ("[" + ",\r\n".join(json.dumps(c) for c in chunks) + "]").encode()
    previous = ""
    for cut in range(len(body) + 1):
        facts = parse_exchange(exchange(body[:cut], sse=False))
        text = facts.outputs[0] if facts.outputs else ""
        assert text.startswith(previous)
        previous = text
    assert previous == "01234"
    assert facts.output_tokens == 5
