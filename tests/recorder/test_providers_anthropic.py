"""Anthropic adapter against the real ``anthropic`` SDK talking to the fake provider.

Facts are compared with what the SDK returned; hand-written streams cover cumulative usage,
thinking and tool blocks, truncation and errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import httpx2
import pytest

from ledger.crypto.canonical import output_sha256
from ledger.recorder.providers import CallFacts, Exchange, parse_exchange
from ledger.testing.fake_provider import FakeProviderServer
from tests.recorder.conftest import CaptureTransport

MESSAGES: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Say something."}]


@pytest.fixture
def client(
    fake_provider: FakeProviderServer, capture: CaptureTransport
) -> Iterator[anthropic.Anthropic]:
    sdk = anthropic.Anthropic(
        base_url=fake_provider.anthropic_base_url,
        api_key="sk-ant-test",
        max_retries=0,
        http_client=httpx2.Client(transport=capture),
    )
    yield sdk
    sdk.close()


def facts_of(capture: CaptureTransport) -> CallFacts:
    return parse_exchange(capture.last.exchange(), provider_hint="anthropic")


def text_of(message: anthropic.types.Message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def inclusive_input(usage: anthropic.types.Usage) -> int:
    return (
        usage.input_tokens
        + (usage.cache_read_input_tokens or 0)
        + (usage.cache_creation_input_tokens or 0)
    )


@pytest.mark.parametrize("gzip", [False, True])
def test_messages_json(client: anthropic.Anthropic, capture: CaptureTransport, gzip: bool) -> None:
    got = client.messages.create(
        model="claude-test-json",
        max_tokens=64,
        messages=MESSAGES,
        extra_headers={"x-fake-chunks": "5", "x-fake-gzip": "1" if gzip else "0"},
    )
    facts = facts_of(capture)
    assert facts.provider == "anthropic"
    assert facts.operation == "messages"
    assert facts.request_model == "claude-test-json"
    assert (facts.response_model, facts.response_id) == (got.model, got.id)
    assert facts.stream is False
    assert facts.finish_reasons == (got.stop_reason,)
    assert facts.input_tokens == inclusive_input(got.usage)
    assert facts.output_tokens == got.usage.output_tokens
    assert [output_sha256(t) for t in facts.outputs] == [output_sha256(text_of(got))]
    assert facts.output_modality == "text"
    assert facts.request_json == json.loads(capture.last.request_body)


def test_messages_stream_with_cached_tokens(
    client: anthropic.Anthropic, capture: CaptureTransport
) -> None:
    with client.messages.stream(
        model="claude-test-stream",
        max_tokens=64,
        messages=MESSAGES,
        extra_headers={"x-fake-chunks": "9", "x-fake-cached-tokens": "100"},
    ) as stream:
        text = stream.get_final_text()
        final = stream.get_final_message()
    facts = facts_of(capture)
    assert facts.stream is True
    assert (facts.response_model, facts.response_id) == (final.model, final.id)
    assert facts.finish_reasons == (final.stop_reason,) == ("end_turn",)
    assert final.usage.cache_read_input_tokens == 100
    assert facts.input_tokens == inclusive_input(final.usage)
    assert facts.output_tokens == final.usage.output_tokens == 9
    assert [output_sha256(t) for t in facts.outputs] == [output_sha256(text)]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_only_gives_empty_output(
    client: anthropic.Anthropic, capture: CaptureTransport, stream: bool
) -> None:
    headers = {"x-fake-tool-calls": "1"}
    if stream:
        with client.messages.stream(
            model="claude-x", max_tokens=64, messages=MESSAGES, extra_headers=headers
        ) as s:
            got = s.get_final_message()
    else:
        got = client.messages.create(
            model="claude-x", max_tokens=64, messages=MESSAGES, extra_headers=headers
        )
    assert [b.type for b in got.content] == ["tool_use"]
    facts = facts_of(capture)
    assert facts.outputs == ("",) == (text_of(got),)
    assert facts.finish_reasons == ("tool_use",)


def test_stream_aborted_keeps_start_usage_and_text(
    client: anthropic.Anthropic, capture: CaptureTransport
) -> None:
    seen: list[str] = []

    def consume() -> None:
        with client.messages.stream(
            model="claude-x",
            max_tokens=64,
            messages=MESSAGES,
            extra_headers={"x-fake-chunks": "8", "x-fake-abort-after": "6"},
        ) as stream:
            seen.extend(stream.text_stream)

    # Older anthropic SDKs let the transport error out of a stream unwrapped; 2.17 wraps it in
    # APIConnectionError. Either way the recorder must keep what arrived before the abort.
    with pytest.raises((httpx2.RemoteProtocolError, anthropic.APIConnectionError)):
        consume()
    assert seen
    facts = facts_of(capture)
    assert capture.last.complete is False
    assert facts.outputs == ("".join(seen),)
    assert facts.finish_reasons == ()
    # message_start said output_tokens=1; the cumulative message_delta never arrived.
    assert facts.output_tokens == 1
    assert facts.input_tokens is not None


def test_overloaded_error_status(client: anthropic.Anthropic, capture: CaptureTransport) -> None:
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(
            model="claude-x",
            max_tokens=8,
            messages=MESSAGES,
            extra_headers={"x-fake-status": "500"},
        )
    facts = facts_of(capture)
    assert (facts.response_id, facts.outputs, facts.output_modality) == (None, (), None)
    assert facts.request_model == "claude-x"


# --------------------------------------------------------------------------- hand-written bodies


def event(kind: str, **fields: object) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()


def exchange(body: bytes, *, stream: bool = True, complete: bool = True) -> Exchange:
    return Exchange(
        method="POST",
        url="https://api.anthropic.com/v1/messages",
        request_headers={},
        request_body=json.dumps({"model": "claude-opus-4-1", "stream": stream}).encode(),
        status=200,
        response_headers={"content-type": "text/event-stream" if stream else "application/json"},
        response_body=body,
        complete=complete,
    )


def test_cumulative_message_delta_usage_is_never_added() -> None:
    start_usage = {"input_tokens": 10, "output_tokens": 1, "cache_creation_input_tokens": 4}
    body = b"".join(
        [
            event(
                "message_start",
                message={"id": "msg_1", "model": "claude-opus-4-1-20250805", "usage": start_usage},
            ),
            event("content_block_start", index=0, content_block={"type": "thinking"}),
            event(
                "content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "?"}
            ),
            event("content_block_start", index=1, content_block={"type": "text", "text": ""}),
            event("content_block_delta", index=1, delta={"type": "text_delta", "text": "Hel"}),
            event("ping"),
            event("content_block_delta", index=1, delta={"type": "text_delta", "text": "lo"}),
            event("message_delta", delta={"stop_reason": None}, usage={"output_tokens": 7}),
            event(
                "message_delta",
                delta={"stop_reason": "max_tokens"},
                usage={"output_tokens": 15, "input_tokens": 10, "cache_read_input_tokens": 2},
            ),
            event("message_stop"),
        ]
    )
    facts = parse_exchange(exchange(body))
    assert facts.outputs == ("Hello",)
    assert facts.output_tokens == 15
    assert facts.input_tokens == 10 + 4 + 2
    assert facts.finish_reasons == ("max_tokens",)
    assert (facts.response_id, facts.response_model) == ("msg_1", "claude-opus-4-1-20250805")
    assert facts.request_model == "claude-opus-4-1"


def test_two_text_blocks_join_in_index_order_and_mid_stream_error_keeps_text() -> None:
    body = b"".join(
        [
            event("message_start", message={"id": "msg_2", "model": "m", "usage": {}}),
            event("content_block_start", index=0, content_block={"type": "text", "text": "A"}),
            event("content_block_start", index=2, content_block={"type": "text", "text": ""}),
            event("content_block_delta", index=2, delta={"type": "text_delta", "text": "C"}),
            event("content_block_start", index=1, content_block={"type": "tool_use"}),
            event("content_block_delta", index=1, delta={"type": "input_json_delta"}),
            event("content_block_delta", index=0, delta={"type": "text_delta", "text": "B"}),
            event("error", error={"type": "overloaded_error", "message": "Overloaded"}),
        ]
    )
    facts = parse_exchange(exchange(body))
    assert facts.outputs == ("ABC",)
    assert facts.finish_reasons == ()
    assert (facts.input_tokens, facts.output_tokens) == (None, None)


def test_json_message_text_blocks_only() -> None:
    message = {
        "id": "msg_3",
        "type": "message",
        "model": "m",
        "content": [
            {"type": "thinking", "thinking": "hmm"},
            {"type": "text", "text": "one "},
            {"type": "tool_use", "id": "t", "name": "f", "input": {}},
            {"type": "text", "text": "two"},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 3, "output_tokens": 4, "cache_read_input_tokens": None},
    }
    facts = parse_exchange(exchange(json.dumps(message).encode(), stream=False))
    assert facts.outputs == ("one two",)
    assert (facts.input_tokens, facts.output_tokens) == (3, 4)
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}
    facts = parse_exchange(exchange(json.dumps(error).encode(), stream=False))
    assert (facts.outputs, facts.response_id) == ((), None)


def test_truncated_stream_at_every_byte_never_raises() -> None:
    body = b"".join(
        [
            event("message_start", message={"id": "m", "model": "m", "usage": {"input_tokens": 5}}),
            event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
            *(
                event("content_block_delta", index=0, delta={"type": "text_delta", "text": f"{i}"})
                for i in range(6)
            ),
            event("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 6}),
            event("message_stop"),
        ]
    )
    previous = ""
    for cut in range(len(body) + 1):
        facts = parse_exchange(exchange(body[:cut], complete=cut == len(body)))
        text = facts.outputs[0] if facts.outputs else ""
        assert text.startswith(previous)
        previous = text
    assert previous == "012345"
    assert facts.output_tokens == 6
