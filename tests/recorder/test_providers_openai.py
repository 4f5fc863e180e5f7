"""OpenAI adapter against the real ``openai`` SDK talking to the fake provider.

Each test drives the SDK, captures the wire bytes of the attempt, runs the adapter on them and
compares every fact with what the SDK itself returned; the table tests at the end feed
hand-written bodies for the edge cases the fake does not produce.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Iterator

import httpx2
import openai
import pytest

from ledger.crypto.canonical import output_sha256
from ledger.recorder.providers import CallFacts, Exchange, parse_exchange
from ledger.testing.fake_provider import FakeProviderServer
from tests.recorder.conftest import CaptureTransport

MESSAGES = [{"role": "user", "content": "Say something."}]


@pytest.fixture
def client(fake_provider: FakeProviderServer, capture: CaptureTransport) -> Iterator[openai.OpenAI]:
    http = httpx2.Client(transport=capture)
    sdk = openai.OpenAI(
        base_url=fake_provider.openai_base_url, api_key="sk-test", max_retries=0, http_client=http
    )
    yield sdk
    sdk.close()


def facts_of(capture: CaptureTransport) -> CallFacts:
    return parse_exchange(capture.last.exchange(), provider_hint="openai")


def hashes(texts: list[str] | tuple[str, ...]) -> list[str]:
    return [output_sha256(t) for t in texts]


def test_chat_json_with_two_choices(client: openai.OpenAI, capture: CaptureTransport) -> None:
    got = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, n=2)
    facts = facts_of(capture)
    assert facts.provider == "openai"
    assert facts.operation == "chat"
    assert facts.request_model == "gpt-4o-mini"
    assert facts.response_model == got.model
    assert facts.response_id == got.id
    assert facts.stream is False
    assert facts.finish_reasons == tuple(c.finish_reason for c in got.choices)
    assert got.usage is not None
    assert facts.input_tokens == got.usage.prompt_tokens
    assert facts.output_tokens == got.usage.completion_tokens
    assert len(facts.outputs) == 2
    assert hashes(facts.outputs) == hashes([c.message.content or "" for c in got.choices])
    assert facts.output_modality == "text"
    assert facts.request_json == json.loads(capture.last.request_body)


@pytest.mark.parametrize("gzip", [False, True])
def test_chat_stream_with_usage_chunk(
    client: openai.OpenAI, capture: CaptureTransport, gzip: bool
) -> None:
    headers = {"x-fake-chunks": "7", "x-fake-gzip": "1" if gzip else "0"}
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        n=3,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=headers,
    )
    texts: dict[int, str] = {}
    reasons: dict[int, str] = {}
    ids, models, usage = set(), set(), None
    for chunk in stream:
        ids.add(chunk.id)
        models.add(chunk.model)
        usage = chunk.usage or usage
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                reasons[choice.index] = choice.finish_reason
    assert (capture.last.response_headers.get("content-encoding") == "gzip") is gzip
    facts = facts_of(capture)
    assert facts.stream is True
    assert (facts.response_id,) == tuple(ids)
    assert (facts.response_model,) == tuple(models)
    assert facts.finish_reasons == tuple(reasons[i] for i in sorted(reasons))
    assert usage is not None
    assert (facts.input_tokens, facts.output_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert hashes(facts.outputs) == hashes([texts[i] for i in sorted(texts)])
    assert len(facts.outputs) == 3


def test_chat_stream_without_usage_reports_none(
    client: openai.OpenAI, capture: CaptureTransport
) -> None:
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    facts = facts_of(capture)
    assert (facts.input_tokens, facts.output_tokens) == (None, None)
    assert hashes(facts.outputs) == hashes([text])
    assert facts.finish_reasons == ("stop",)


@pytest.mark.parametrize("stream", [False, True])
def test_chat_tool_call_only_choice_gives_empty_output(
    client: openai.OpenAI, capture: CaptureTransport, stream: bool
) -> None:
    headers = {"x-fake-tool-calls": "1"}
    if stream:
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=headers
            )
        )
        calls = [c.choices[0].delta.tool_calls for c in chunks if c.choices]
        assert any(calls)
        reason = next(c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason)
    else:
        got = client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers=headers
        )
        assert got.choices[0].message.content is None
        assert got.choices[0].message.tool_calls
        reason = got.choices[0].finish_reason
    facts = facts_of(capture)
    assert facts.outputs == ("",)
    assert facts.finish_reasons == (reason,) == ("tool_calls",)


def test_chat_stream_aborted_by_server_keeps_what_arrived(
    client: openai.OpenAI, capture: CaptureTransport
) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-fake-chunks": "10", "x-fake-abort-after": "6"},
    )
    seen: list[str] = []

    def consume() -> None:
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIConnectionError):
        consume()
    seen_text = "".join(seen)
    assert seen_text  # the SDK delivered the first chunks before the cut
    assert capture.last.complete is False
    facts = facts_of(capture)
    assert facts.outputs == (seen_text,)
    assert facts.finish_reasons == ()
    assert (facts.input_tokens, facts.output_tokens) == (None, None)
    assert facts.response_id is not None
    assert facts.response_id.startswith("chatcmpl-")


def test_responses_json(client: openai.OpenAI, capture: CaptureTransport) -> None:
    got = client.responses.create(
        model="gpt-4.1", input="Hello", extra_headers={"x-fake-chunks": "4"}
    )
    facts = facts_of(capture)
    assert facts.operation == "responses"
    assert facts.request_model == "gpt-4.1"
    assert (facts.response_id, facts.response_model) == (got.id, got.model)
    assert facts.stream is False
    assert got.usage is not None
    assert (facts.input_tokens, facts.output_tokens) == (
        got.usage.input_tokens,
        got.usage.output_tokens,
    )
    assert facts.finish_reasons == (got.status,)
    assert hashes(facts.outputs) == hashes([got.output_text])


def test_responses_stream(client: openai.OpenAI, capture: CaptureTransport) -> None:
    with client.responses.stream(
        model="gpt-4.1",
        input="Hello",
        extra_headers={"x-fake-chunks": "5", "x-fake-cached-tokens": "3"},
    ) as stream:
        deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    facts = facts_of(capture)
    assert facts.stream is True
    assert (facts.response_id, facts.response_model) == (final.id, final.model)
    assert final.usage is not None
    assert (facts.input_tokens, facts.output_tokens) == (
        final.usage.input_tokens,
        final.usage.output_tokens,
    )
    assert facts.finish_reasons == ("completed",)
    assert hashes(facts.outputs) == hashes([final.output_text]) == hashes([deltas])


def test_responses_stream_cut_before_completed_uses_deltas(
    client: openai.OpenAI, capture: CaptureTransport
) -> None:
    stream = client.responses.create(
        model="gpt-4.1",
        input="Hello",
        stream=True,
        extra_headers={"x-fake-chunks": "6", "x-fake-abort-after": "7"},
    )
    seen: list[str] = []

    def consume() -> None:
        for event in stream:
            if event.type == "response.output_text.delta":
                seen.append(event.delta)

    with pytest.raises(openai.APIConnectionError):
        consume()
    facts = facts_of(capture)
    assert len(seen) == 3  # events 5, 6 and 7 of the stream were text deltas
    assert facts.outputs == ("".join(seen),)
    assert facts.finish_reasons == ()
    assert facts.input_tokens is None
    assert facts.response_id is not None
    assert facts.response_id.startswith("resp_")


@pytest.mark.parametrize("stream", [False, True])
def test_legacy_completions(client: openai.OpenAI, capture: CaptureTransport, stream: bool) -> None:
    if stream:
        chunks = list(
            client.completions.create(
                model="gpt-3.5-turbo-instruct",
                prompt="Once",
                n=2,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        texts: dict[int, str] = {}
        for chunk in chunks:
            for choice in chunk.choices:
                texts[choice.index] = texts.get(choice.index, "") + choice.text
        usage = chunks[-1].usage
        expected = [texts[i] for i in sorted(texts)]
        model, rid = chunks[0].model, chunks[0].id
    else:
        got = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Once", n=2)
        usage = got.usage
        expected = [c.text for c in got.choices]
        model, rid = got.model, got.id
    facts = facts_of(capture)
    assert facts.operation == "text_completion"
    assert facts.stream is stream
    assert (facts.response_model, facts.response_id) == (model, rid)
    assert usage is not None
    assert (facts.input_tokens, facts.output_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert hashes(facts.outputs) == hashes(expected)
    assert facts.finish_reasons == ("stop", "stop")


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings(client: openai.OpenAI, capture: CaptureTransport, encoding: str) -> None:
    got = client.embeddings.create(
        model="text-embedding-3-small",
        input=["one", "two", "three"],
        encoding_format=encoding,  # type: ignore[arg-type]
    )
    assert len(got.data) == 3
    facts = facts_of(capture)
    assert facts.operation == "embeddings"
    assert facts.request_model == "text-embedding-3-small"
    assert facts.response_model == got.model
    assert facts.response_id is None
    assert facts.input_tokens == got.usage.prompt_tokens
    assert facts.output_tokens is None
    assert facts.outputs == ()
    assert facts.finish_reasons == ()
    assert facts.output_modality == "embedding"


def test_rate_limited_attempt_has_no_output(
    client: openai.OpenAI, capture: CaptureTransport
) -> None:
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, extra_headers={"x-fake-status": "429"}
        )
    facts = facts_of(capture)
    assert capture.last.status == 429
    assert facts.request_model == "gpt-4o"
    assert (facts.response_model, facts.response_id, facts.output_modality) == (None, None, None)
    assert facts.outputs == ()
    assert facts.stream is False


# --------------------------------------------------------------------------- hand-written bodies


def exchange(
    path: str,
    request: object,
    body: bytes,
    *,
    content_type: str = "application/json",
    status: int | None = 200,
    host: str = "api.openai.com",
    complete: bool = True,
) -> Exchange:
    return Exchange(
        method="POST",
        url=f"https://{host}{path}",
        request_headers={"content-type": "application/json"},
        request_body=json.dumps(request).encode(),
        status=status,
        response_headers={"content-type": content_type} if status is not None else {},
        response_body=body,
        complete=complete,
    )


def sse(*objects: object) -> bytes:
    return (
        b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in objects)
        + b"data: [DONE]\n\n"
    )


def test_choices_are_ordered_by_index_not_arrival() -> None:
    body = {
        "id": "chatcmpl-1",
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {"index": 1, "message": {"content": "second"}, "finish_reason": "length"},
            {"index": 0, "message": {"content": "first"}, "finish_reason": "stop"},
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 9},
    }
    facts = parse_exchange(
        exchange("/v1/chat/completions", {"model": "gpt-4o"}, json.dumps(body).encode())
    )
    assert facts.outputs == ("first", "second")
    assert facts.finish_reasons == ("stop", "length")
    assert (facts.request_model, facts.response_model) == ("gpt-4o", "gpt-4o-2024-08-06")


def test_stream_usage_repeated_on_every_chunk_keeps_last() -> None:
    # Some OpenAI-compatible servers (Gemini's OpenAI endpoint) repeat cumulative usage.
    def chunk(delta: dict[str, str], completion: int, reason: str | None = None) -> object:
        choice = {"index": 0, "delta": delta, "finish_reason": reason}
        usage = {"prompt_tokens": 4, "completion_tokens": completion}
        return {"id": "x", "model": "m", "choices": [choice], "usage": usage}

    chunks = [chunk({"content": "a"}, 1), chunk({"content": "b"}, 2), chunk({}, 3, "stop")]
    facts = parse_exchange(
        exchange(
            "/v1/chat/completions",
            {"model": "m", "stream": True},
            sse(*chunks),
            content_type="text/event-stream",
        )
    )
    assert facts.stream is True
    assert (facts.input_tokens, facts.output_tokens) == (4, 3)
    assert facts.outputs == ("ab",)


def test_crlf_framed_stream_and_multiline_data() -> None:
    body = (
        b'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"x"}}]}\r\n\r\n'
        b": keep-alive comment\r\n\r\n"
        b'data: {"id":"c","model":"m",\r\n'
        b'data: "choices":[{"index":0,"delta":{"content":"y"},"finish_reason":"stop"}]}\r\n\r\n'
        b"data: [DONE]\r\n\r\n"
    )
    facts = parse_exchange(
        exchange("/v1/chat/completions", {"model": "m"}, body, content_type="text/event-stream")
    )
    assert facts.outputs == ("xy",)
    assert facts.finish_reasons == ("stop",)


def test_truncated_stream_at_every_byte_never_raises_and_text_grows() -> None:
    chunks = [
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": f"w{i} "}}]}
        for i in range(8)
    ]
    body = sse(
        *chunks,
        {
            "id": "c",
            "model": "m",
            "choices": [],
            "usage": {"prompt_tokens": 2, "completion_tokens": 8},
        },
    )
    previous = ""
    for cut in range(len(body) + 1):
        facts = parse_exchange(
            exchange(
                "/v1/chat/completions",
                {"model": "m"},
                body[:cut],
                content_type="text/event-stream",
                complete=False,
            )
        )
        text = facts.outputs[0] if facts.outputs else ""
        assert text.startswith(previous)
        previous = text
    assert previous == "".join(f"w{i} " for i in range(8))


def test_malformed_bodies_give_empty_facts() -> None:
    for body in (
        b"{not json",
        b"\xff\xfe\x00",
        b"[]",
        b'{"choices": "nope", "usage": [1]}',
        b'"str"',
    ):
        facts = parse_exchange(exchange("/v1/chat/completions", {"model": "m"}, body))
        assert facts.operation == "chat"
        assert facts.request_model == "m"
        assert (facts.outputs, facts.finish_reasons, facts.input_tokens) == ((), (), None)
    broken_request = Exchange(
        "POST", "https://api.openai.com/v1/chat/completions", {}, b"\x00{", 200, {}, b"", True
    )
    facts = parse_exchange(broken_request)
    assert (facts.request_json, facts.request_model) == (None, None)


def test_no_response_uses_request_stream_flag() -> None:
    facts = parse_exchange(
        exchange("/v1/chat/completions", {"model": "m", "stream": True}, b"", status=None)
    )
    assert facts.stream is True
    assert facts.output_modality is None


def test_body_still_gzipped_is_inflated_and_decoded_body_is_not_touched() -> None:
    body = json.dumps(
        {"id": "c", "model": "m", "choices": [{"index": 0, "message": {"content": "hi"}}]}
    ).encode()
    decoded = exchange("/v1/chat/completions", {"model": "m"}, body)
    # The wire was gzip (the header says so) but the transport already handed a decoded copy.
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    decoded = dataclasses.replace(decoded, response_headers=headers)
    assert parse_exchange(decoded).outputs == ("hi",)
    still_gzipped = exchange("/v1/chat/completions", {"model": "m"}, gzip.compress(body))
    assert parse_exchange(still_gzipped).outputs == ("hi",)


def test_azure_deployment_url() -> None:
    body = json.dumps({"id": "c", "model": "gpt-4o-2024-11-20", "choices": []}).encode()
    url_path = "/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21"
    facts = parse_exchange(exchange(url_path, {"messages": []}, body, host="myco.openai.azure.com"))
    assert facts.provider == "azure.ai.openai"
    assert facts.request_model == "prod-gpt4o"
    assert facts.response_model == "gpt-4o-2024-11-20"
    named = parse_exchange(
        exchange(url_path, {"model": "gpt-4o"}, body, host="x.cognitiveservices.azure.com")
    )
    assert (named.provider, named.request_model) == ("azure.ai.openai", "gpt-4o")


def test_responses_incomplete_reason_and_text() -> None:
    body = {
        "id": "resp_1",
        "model": "o4-mini",
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [
            {"type": "reasoning", "summary": []},
            {
                "type": "message",
                "content": [
                    {"type": "output_text", "text": "A"},
                    {"type": "refusal", "refusal": "no"},
                ],
            },
            {"type": "message", "content": [{"type": "output_text", "text": "B"}]},
        ],
        "usage": {
            "input_tokens": 3,
            "output_tokens": 40,
            "output_tokens_details": {"reasoning_tokens": 38},
        },
    }
    facts = parse_exchange(
        exchange("/v1/responses", {"model": "o4-mini"}, json.dumps(body).encode())
    )
    assert facts.finish_reasons == ("max_output_tokens",)
    assert facts.outputs == ("AB",)
    assert (facts.input_tokens, facts.output_tokens) == (3, 40)


def test_content_part_list_keeps_text_parts_only() -> None:
    # Some compatible servers (Mistral reasoning models) send content as a list of parts.
    content = [
        {"type": "thinking", "thinking": [{"type": "text", "text": "hidden"}]},
        {"type": "text", "text": "visible "},
        {"type": "text", "text": "answer"},
    ]
    body = {
        "id": "c",
        "model": "magistral",
        "choices": [{"index": 0, "message": {"content": content}}],
    }
    facts = parse_exchange(
        exchange(
            "/v1/chat/completions",
            {"model": "magistral"},
            json.dumps(body).encode(),
            host="api.mistral.ai",
        )
    )
    assert facts.provider == "mistral_ai"
    assert facts.outputs == ("visible answer",)
