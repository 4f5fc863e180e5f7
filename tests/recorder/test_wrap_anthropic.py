"""anthropic SDK (sync and async, streamed and not) through ``ledger.wrap``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

import ledger
from ledger.recorder import flush, wrap
from ledger.testing.fake_provider import FakeProviderServer
from tests.recorder.helpers import (
    API_KEY,
    answer_fps,
    answers,
    assert_common,
    client_headers,
    open_ledger,
    rate_limit_headers,
    sha,
)

MESSAGES: list[Any] = [{"role": "user", "content": "Say three words."}]


@pytest.fixture
def lg(tmp_path: Path) -> Iterator[ledger.Ledger]:
    lg = open_ledger(tmp_path)
    yield lg
    lg.close()


def _check(body: dict[str, Any], fake: FakeProviderServer, lg: ledger.Ledger, headers: Any) -> None:
    sent = fake.requests[-1]
    assert_common(body, port=fake.port, path="/v1/messages")
    assert body["provider"] == "anthropic"  # from the SDK class: the host is 127.0.0.1
    assert body["operation"] == "messages"
    assert body["request_model"] == "claude-test"
    assert body["account"] == lg.account_fingerprint(API_KEY)
    assert body["org_headers"] == {}
    assert body["client"] == {
        "user_agent": sent.headers["user-agent"],
        "headers": client_headers(sent.headers),
    }
    assert body["client"]["headers"]["anthropic-version"] == sent.headers["anthropic-version"]
    assert body["request_sha256"] == sha(sent.body)
    assert body["status"] == 200
    assert body["outcome"] == "complete"
    assert body["provider_request_id"] == headers["request-id"]
    assert body["rate_limit"] == rate_limit_headers(headers)
    assert any(k.startswith("anthropic-ratelimit-") for k in body["rate_limit"])
    assert body["purpose"] == "evaluate"
    assert body["dataset"] is None
    assert body["tags"] == []
    assert headers["x-ledger-entry-id"] == body["id"]


def test_messages_sync(fake_provider: FakeProviderServer, lg: ledger.Ledger) -> None:
    bare = anthropic.Anthropic(
        api_key=API_KEY, base_url=fake_provider.anthropic_base_url, max_retries=0
    )
    with wrap(bare, ledger=lg, purpose="evaluate", durability="sync") as client:
        assert type(client) is anthropic.Anthropic
        raw = client.messages.with_raw_response.create(
            model="claude-test", max_tokens=64, messages=MESSAGES
        )
        message = raw.parse()
        body = lg.entry_by_id(raw.headers["x-ledger-entry-id"]).body
        _check(body, fake_provider, lg, raw.headers)
        assert body["stream"] is False
        assert body["response_model"] == message.model
        assert body["response_id"] == message.id
        assert body["finish_reasons"] == [message.stop_reason]
        assert body["usage"] == {
            "input_tokens": message.usage.input_tokens,
            "output_tokens": message.usage.output_tokens,
        }
        text = "".join(b.text for b in message.content if b.type == "text")
        assert answers(body) == answer_fps(lg, body, [text])
        assert body["response_sha256"] == sha(raw.http_response.content)

        with client.messages.stream(
            model="claude-test", max_tokens=64, messages=MESSAGES
        ) as stream:
            streamed = "".join(stream.text_stream)
            final = stream.get_final_message()
            headers = stream.response.headers
        body = lg.entry_by_id(headers["x-ledger-entry-id"]).body
        _check(body, fake_provider, lg, headers)
        assert body["stream"] is True
        assert body["response_id"] == final.id
        # message_delta usage is cumulative: the recorder keeps the last value, like the SDK.
        assert body["usage"] == {
            "input_tokens": final.usage.input_tokens,
            "output_tokens": final.usage.output_tokens,
        }
        assert body["finish_reasons"] == [final.stop_reason]
        assert answers(body) == answer_fps(lg, body, [streamed])
    assert lg.size == 2


def test_messages_async(fake_provider: FakeProviderServer, lg: ledger.Ledger) -> None:
    async def run() -> tuple[Any, str, Any, str]:
        bare = anthropic.AsyncAnthropic(
            api_key=API_KEY, base_url=fake_provider.anthropic_base_url, max_retries=0
        )
        client = wrap(bare, ledger=lg, purpose="evaluate")
        assert type(client) is anthropic.AsyncAnthropic
        raw = await client.messages.with_raw_response.create(
            model="claude-test", max_tokens=64, messages=MESSAGES
        )
        message = await raw.parse()
        text = "".join(b.text for b in message.content if b.type == "text")
        async with client.messages.stream(
            model="claude-test", max_tokens=64, messages=MESSAGES
        ) as stream:
            streamed = "".join([t async for t in stream.text_stream])
            sheaders = stream.response.headers
        await client.close()
        return raw.headers, text, sheaders, streamed

    headers, text, sheaders, streamed = asyncio.run(run())
    flush()
    body = lg.entry_by_id(headers["x-ledger-entry-id"]).body
    assert body["stream"] is False
    assert answers(body) == answer_fps(lg, body, [text])
    assert body["provider_request_id"] == headers["request-id"]
    sbody = lg.entry_by_id(sheaders["x-ledger-entry-id"]).body
    assert sbody["stream"] is True
    assert sbody["outcome"] == "complete"
    assert answers(sbody) == answer_fps(lg, sbody, [streamed])
    assert lg.size == 2
