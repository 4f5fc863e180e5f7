"""Reasoning returned apart from the answer, read per output by every adapter.

Each case runs the real SDK (``openai``, ``anthropic``, ``google-genai``) against the fake
provider with ``x-fake-thoughts: 1`` and compares the adapter's ``reasoning`` with the reasoning
text the SDK itself exposes, and the answer with the SDK's answer (the reasoning must not leak
into it). Hand-written bodies cover the shapes the fake does not send (OpenRouter's
``reasoning``, Responses ``reasoning_text`` content, a cut Responses stream).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import types

from ledger.recorder.providers import CallFacts, Exchange, parse_exchange
from ledger.testing.fake_provider import THOUGHT, FakeProviderServer, expected_text
from tests.recorder.conftest import CaptureTransport

THOUGHTS = {"x-fake-thoughts": "1"}
CHAT: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]
MESSAGES: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def http(capture: CaptureTransport) -> Iterator[httpx2.Client]:
    client = httpx2.Client(transport=capture)
    yield client
    client.close()


@pytest.fixture
def oai(fake_provider: FakeProviderServer, http: httpx2.Client) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=fake_provider.openai_base_url, api_key="sk-test", max_retries=0, http_client=http
    )


@pytest.fixture
def ant(fake_provider: FakeProviderServer, http: httpx2.Client) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=fake_provider.anthropic_base_url,
        api_key="sk-ant-test",
        max_retries=0,
        http_client=http,
    )


@pytest.fixture
def gem(fake_provider: FakeProviderServer, http: httpx2.Client) -> genai.Client:
    options = types.HttpOptions(base_url=fake_provider.gemini_base_url, httpx_client=http)
    return genai.Client(api_key="test-key", http_options=options)


def facts_of(capture: CaptureTransport, hint: str) -> CallFacts:
    return parse_exchange(capture.last.exchange(), provider_hint=hint)


# --------------------------------------------------------------------------- OpenAI chat


def test_chat_reasoning_content_per_choice(oai: openai.OpenAI, capture: CaptureTransport) -> None:
    got = oai.chat.completions.create(model="m", messages=CHAT, n=2, extra_headers=THOUGHTS)
    facts = facts_of(capture, "openai")
    sdk_reasoning = tuple(
        (c.message.model_extra or {}).get("reasoning_content") for c in got.choices
    )
    assert sdk_reasoning == (THOUGHT, THOUGHT)
    assert facts.reasoning == sdk_reasoning
    assert facts.outputs == tuple(c.message.content for c in got.choices)
    assert facts.reasoning_of(1) == THOUGHT
    assert facts.reasoning_of(2) is None


def test_chat_stream_reasoning_deltas(oai: openai.OpenAI, capture: CaptureTransport) -> None:
    stream = oai.chat.completions.create(
        model="m", messages=CHAT, n=2, stream=True, extra_headers=THOUGHTS
    )
    thoughts = {0: "", 1: ""}
    answers = {0: "", 1: ""}
    for chunk in stream:
        for choice in chunk.choices:
            extra = choice.delta.model_extra or {}
            thoughts[choice.index] += extra.get("reasoning_content") or ""
            answers[choice.index] += choice.delta.content or ""
    facts = facts_of(capture, "openai")
    assert facts.reasoning == (thoughts[0], thoughts[1]) == (THOUGHT, THOUGHT)
    assert facts.outputs == (answers[0], answers[1])


@pytest.mark.parametrize("stream", [False, True])
def test_chat_without_reasoning_reports_none(
    oai: openai.OpenAI, capture: CaptureTransport, stream: bool
) -> None:
    got = oai.chat.completions.create(model="m", messages=CHAT, stream=stream)
    if stream:
        for _ in got:  # type: ignore[union-attr]  # a Stream when stream=True
            pass
    facts = facts_of(capture, "openai")
    assert facts.reasoning == ()
    assert facts.reasoning_of(0) is None
    assert facts.outputs == (expected_text(0, 3),)


def test_openrouter_reasoning_field() -> None:
    body = {
        "id": "gen-1",
        "model": "r1",
        "choices": [{"index": 0, "message": {"content": "4", "reasoning": "2+2"}}],
    }
    facts = parse_exchange(_exchange("/api/v1/chat/completions", json.dumps(body).encode()))
    assert (facts.outputs, facts.reasoning) == (("4",), ("2+2",))


# --------------------------------------------------------------------------- OpenAI Responses


@pytest.mark.parametrize("stream", [False, True])
def test_responses_reasoning_item(
    oai: openai.OpenAI, capture: CaptureTransport, stream: bool
) -> None:
    if stream:
        with oai.responses.stream(model="m", input="Hi", extra_headers=THOUGHTS) as events:
            for _ in events:
                pass
            got = events.get_final_response()
    else:
        got = oai.responses.create(model="m", input="Hi", extra_headers=THOUGHTS)
    summaries = [
        part.text for item in got.output if item.type == "reasoning" for part in item.summary
    ]
    assert summaries == [THOUGHT]
    facts = facts_of(capture, "openai")
    assert facts.reasoning == (THOUGHT,)
    assert facts.outputs == (got.output_text,)


def test_responses_reasoning_text_wins_over_summary() -> None:
    item = {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "short"}],
        "content": [
            {"type": "reasoning_text", "text": "a"},
            {"type": "reasoning_text", "text": "b"},
        ],
    }
    message = {"type": "message", "content": [{"type": "output_text", "text": "done"}]}
    body = {"id": "resp_1", "status": "completed", "output": [item, message]}
    facts = parse_exchange(_exchange("/v1/responses", json.dumps(body).encode()))
    assert (facts.outputs, facts.reasoning) == (("done",), ("a\n\nb",))


def test_responses_cut_stream_keeps_reasoning_deltas() -> None:
    events = [
        {"type": "response.created", "response": {"id": "resp_2", "model": "m"}},
        {"type": "response.reasoning_summary_text.delta", "delta": "Thin"},
        {"type": "response.reasoning_summary_text.delta", "delta": "king"},
        {"type": "response.output_text.delta", "delta": "An"},
    ]
    wire = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    facts = parse_exchange(_exchange("/v1/responses", wire, sse=True))
    assert (facts.outputs, facts.reasoning) == (("An",), ("Thinking",))


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_thinking_block(ant: anthropic.Anthropic, capture: CaptureTransport) -> None:
    got = ant.messages.create(model="c", max_tokens=64, messages=MESSAGES, extra_headers=THOUGHTS)
    thinking = [block.thinking for block in got.content if block.type == "thinking"]
    text = "".join(block.text for block in got.content if block.type == "text")
    assert thinking == [THOUGHT]
    facts = facts_of(capture, "anthropic")
    assert facts.reasoning == (THOUGHT,)
    assert facts.outputs == (text,)


def test_anthropic_streamed_thinking_deltas(
    ant: anthropic.Anthropic, capture: CaptureTransport
) -> None:
    with ant.messages.stream(
        model="c", max_tokens=64, messages=MESSAGES, extra_headers=THOUGHTS
    ) as stream:
        final = stream.get_final_message()
    thinking = [block.thinking for block in final.content if block.type == "thinking"]
    assert thinking == [THOUGHT]
    facts = facts_of(capture, "anthropic")
    assert facts.reasoning == (THOUGHT,)
    assert facts.outputs == ("".join(b.text for b in final.content if b.type == "text"),)


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_without_thinking_reports_none(
    ant: anthropic.Anthropic, capture: CaptureTransport, stream: bool
) -> None:
    if stream:
        with ant.messages.stream(model="c", max_tokens=64, messages=MESSAGES) as events:
            events.get_final_message()
    else:
        ant.messages.create(model="c", max_tokens=64, messages=MESSAGES)
    assert facts_of(capture, "anthropic").reasoning == ()


# --------------------------------------------------------------------------- Gemini


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_thought_parts(gem: genai.Client, capture: CaptureTransport, stream: bool) -> None:
    config = types.GenerateContentConfig(
        candidate_count=2, http_options=types.HttpOptions(headers=THOUGHTS)
    )
    if stream:
        chunks = list(gem.models.generate_content_stream(model="g", contents="Hi", config=config))
    else:
        chunks = [gem.models.generate_content(model="g", contents="Hi", config=config)]
    thoughts: dict[int, str] = {}
    for chunk in chunks:
        for cand in chunk.candidates or []:
            parts = cand.content.parts if cand.content and cand.content.parts else []
            index = cand.index or 0
            thoughts[index] = thoughts.get(index, "") + "".join(
                p.text for p in parts if p.text and p.thought
            )
    assert thoughts == {0: THOUGHT, 1: THOUGHT}
    facts = facts_of(capture, "gcp.gemini")
    assert facts.reasoning == (THOUGHT, THOUGHT)
    assert facts.outputs == (expected_text(0, 3), expected_text(1, 3))


def test_gemini_without_thoughts_reports_none(gem: genai.Client, capture: CaptureTransport) -> None:
    gem.models.generate_content(model="g", contents="Hi")
    assert facts_of(capture, "gcp.gemini").reasoning == ()


def _exchange(path: str, body: bytes, *, sse: bool = False) -> Exchange:
    content_type = "text/event-stream" if sse else "application/json"
    return Exchange(
        method="POST",
        url=f"https://api.example.com{path}",
        request_headers={},
        request_body=b'{"model": "m"}',
        status=200,
        response_headers={"content-type": content_type},
        response_body=body,
        complete=True,
    )
