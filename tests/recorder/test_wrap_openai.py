"""openai SDK (sync and async, streamed and not, every operation) through ``ledger.wrap``."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

import ledger
from ledger.recorder import flush, wrap
from ledger.testing.fake_provider import FakeProviderServer
from tests.recorder.helpers import (
    API_KEY,
    HOSTS,
    answer_fps,
    answers,
    assert_common,
    client_headers,
    open_ledger,
    rate_limit_headers,
    sha,
)


@pytest.fixture
def lg(tmp_path: Path) -> Iterator[ledger.Ledger]:
    lg = open_ledger(tmp_path)
    yield lg
    lg.close()


_open_clients: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _open_clients:
        _open_clients.pop().close()


def _sync_client(fake: FakeProviderServer, lg: ledger.Ledger, **kw: Any) -> openai.OpenAI:
    bare = openai.OpenAI(
        api_key=API_KEY,
        base_url=fake.openai_base_url,
        max_retries=0,
        organization="org-fake",
        project="proj-fake",
    )
    _open_clients.append(bare)
    client = wrap(bare, ledger=lg, hosts=HOSTS, **kw)
    _open_clients.append(client)
    return client


def _async_client(fake: FakeProviderServer, lg: ledger.Ledger, **kw: Any) -> openai.AsyncOpenAI:
    bare = openai.AsyncOpenAI(
        api_key=API_KEY,
        base_url=fake.openai_base_url,
        max_retries=0,
        organization="org-fake",
        project="proj-fake",
    )
    return wrap(bare, ledger=lg, hosts=HOSTS, **kw)


def _check(
    body: dict[str, Any],
    fake: FakeProviderServer,
    lg: ledger.Ledger,
    *,
    operation: str,
    path: str,
    stream: bool,
    headers: Any,
) -> None:
    sent = fake.requests[-1]
    assert_common(body, port=fake.port, path=path)
    assert body["provider"] == "openai"
    assert body["operation"] == operation
    assert body["account"] == lg.account_fingerprint(API_KEY)
    assert body["org_headers"] == {"openai-organization": "org-fake", "openai-project": "proj-fake"}
    assert body["client"] == {
        "user_agent": sent.headers["user-agent"],
        "headers": client_headers(sent.headers),
    }
    assert body["client"]["headers"]["x-stainless-lang"] == "python"
    assert body["request_sha256"] == sha(sent.body)
    assert body["status"] == 200
    assert body["outcome"] == "complete"
    assert body["stream"] is stream
    assert body["provider_request_id"] == headers["x-request-id"]
    assert body["rate_limit"] == rate_limit_headers(headers)
    assert body["rate_limit"]  # the fake always sends x-ratelimit-*
    assert body["content_encoding"] is None
    assert body["purpose"] == "train-model"
    assert body["dataset"] == "distill-v1"
    assert body["tags"] == ["unit"]
    assert "content" not in body
    # The wrapper's own headers never reach the provider; the credential does (it must).
    assert not any(name.startswith("x-ledger-") for name in sent.headers)
    assert headers["x-ledger-entry-id"] == body["id"]


LABELS: dict[str, Any] = {"purpose": "train-model", "dataset": "distill-v1", "tags": ["unit"]}
MESSAGES: list[Any] = [{"role": "user", "content": "Say three words."}]


def test_chat_non_stream_sync(fake_provider: FakeProviderServer, lg: ledger.Ledger) -> None:
    client = _sync_client(fake_provider, lg, durability="sync", **LABELS)
    raw = client.chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES, n=2)
    completion = raw.parse()
    body = lg.entry_by_id(raw.headers["x-ledger-entry-id"]).body
    _check(
        body,
        fake_provider,
        lg,
        operation="chat",
        path="/v1/chat/completions",
        stream=False,
        headers=raw.headers,
    )
    assert body["request_model"] == "gpt-test"
    assert body["response_model"] == completion.model
    assert body["response_id"] == completion.id
    assert body["finish_reasons"] == [c.finish_reason for c in completion.choices]
    assert completion.usage is not None
    assert body["usage"] == {
        "input_tokens": completion.usage.prompt_tokens,
        "output_tokens": completion.usage.completion_tokens,
    }
    assert body["output_modality"] == "text"
    texts = [c.message.content or "" for c in completion.choices]
    assert len(texts) == 2
    assert answers(body) == answer_fps(lg, body, texts)
    assert body["response_sha256"] == sha(raw.http_response.content)


def test_chat_stream_sync(fake_provider: FakeProviderServer, lg: ledger.Ledger) -> None:
    client = _sync_client(fake_provider, lg, durability="sync", **LABELS)
    with client.chat.completions.with_streaming_response.create(
        model="gpt-test",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    ) as raw:
        text = ""
        usage = None
        for chunk in raw.parse():
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            if chunk.usage:
                usage = chunk.usage
        headers = raw.headers
    body = lg.entry_by_id(headers["x-ledger-entry-id"]).body
    _check(
        body,
        fake_provider,
        lg,
        operation="chat",
        path="/v1/chat/completions",
        stream=True,
        headers=headers,
    )
    assert usage is not None
    assert body["usage"] == {
        "input_tokens": usage.prompt_tokens,
        "output_tokens": usage.completion_tokens,
    }
    assert body["finish_reasons"] == ["stop"]
    assert answers(body) == answer_fps(lg, body, [text])


def test_responses_stream_and_not(fake_provider: FakeProviderServer, lg: ledger.Ledger) -> None:
    client = _sync_client(fake_provider, lg, durability="sync", **LABELS)
    raw = client.responses.with_raw_response.create(model="gpt-test", input="hi")
    response = raw.parse()
    body = lg.entry_by_id(raw.headers["x-ledger-entry-id"]).body
    _check(
        body,
        fake_provider,
        lg,
        operation="responses",
        path="/v1/responses",
        stream=False,
        headers=raw.headers,
    )
    assert body["response_id"] == response.id
    assert answers(body) == answer_fps(lg, body, [response.output_text])
    assert response.usage is not None
    assert body["usage"] == {
        "input_tokens": response.usage.input_tokens,
        "output_tokens": response.usage.output_tokens,
    }

    with client.responses.with_streaming_response.create(
        model="gpt-test", input="hi", stream=True
    ) as sraw:
        deltas = [e.delta for e in sraw.parse() if e.type == "response.output_text.delta"]
        headers = sraw.headers
    body = lg.entry_by_id(headers["x-ledger-entry-id"]).body
    _check(
        body,
        fake_provider,
        lg,
        operation="responses",
        path="/v1/responses",
        stream=True,
        headers=headers,
    )
    assert answers(body) == answer_fps(lg, body, ["".join(deltas)])


def test_completions_and_embeddings(fake_provider: FakeProviderServer, lg: ledger.Ledger) -> None:
    client = _sync_client(fake_provider, lg, durability="sync", **LABELS)
    raw = client.completions.with_raw_response.create(model="gpt-legacy", prompt="Once")
    completion = raw.parse()
    body = lg.entry_by_id(raw.headers["x-ledger-entry-id"]).body
    _check(
        body,
        fake_provider,
        lg,
        operation="text_completion",
        path="/v1/completions",
        stream=False,
        headers=raw.headers,
    )
    assert answers(body) == answer_fps(lg, body, [c.text for c in completion.choices])
    assert body["response_id"] == completion.id

    eraw = client.embeddings.with_raw_response.create(model="emb-test", input=["a", "b"])
    embeddings = eraw.parse()
    body = lg.entry_by_id(eraw.headers["x-ledger-entry-id"]).body
    _check(
        body,
        fake_provider,
        lg,
        operation="embeddings",
        path="/v1/embeddings",
        stream=False,
        headers=eraw.headers,
    )
    assert body["request_model"] == "emb-test"
    assert body["response_model"] == embeddings.model
    assert body["output_modality"] == "embedding"
    assert answers(body) == []
    assert body["usage"]["input_tokens"] == embeddings.usage.prompt_tokens
    # The SDK asked for base64 on the wire; the hash covers those exact bytes.
    assert body["response_sha256"] == sha(eraw.http_response.content)
    assert base64.b64decode(eraw.http_response.json()["data"][0]["embedding"])


def test_async_chat_stream_and_not(fake_provider: FakeProviderServer, lg: ledger.Ledger) -> None:
    async def run() -> tuple[Any, Any, str, Any]:
        client = _async_client(fake_provider, lg, **LABELS)  # async durability
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-test", messages=MESSAGES
        )
        completion = raw.parse()
        first = (raw.headers, completion)
        async with client.chat.completions.with_streaming_response.create(
            model="gpt-test", messages=MESSAGES, stream=True
        ) as sraw:
            text = ""
            async for chunk in await sraw.parse():
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
            second = sraw.headers
        await client.close()
        return first[0], first[1], text, second

    headers, completion, text, sheaders = asyncio.run(run())
    flush()
    body = lg.entry_by_id(headers["x-ledger-entry-id"]).body
    assert body["operation"] == "chat"
    assert body["stream"] is False
    assert body["outcome"] == "complete"
    assert answers(body) == answer_fps(lg, body, [completion.choices[0].message.content])
    assert body["provider_request_id"] == headers["x-request-id"]
    sbody = lg.entry_by_id(sheaders["x-ledger-entry-id"]).body
    assert sbody["stream"] is True
    assert sbody["outcome"] == "complete"
    assert answers(sbody) == answer_fps(lg, sbody, [text])
    assert sbody["usage"] == {"input_tokens": None, "output_tokens": None}  # no include_usage
    assert lg.size == 2


def test_async_embeddings_and_responses(
    fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    async def run() -> list[str]:
        client = _async_client(fake_provider, lg, durability="sync", **LABELS)
        e = await client.embeddings.with_raw_response.create(model="emb", input="x")
        r = await client.responses.with_raw_response.create(model="gpt-test", input="hi")
        c = await client.completions.with_raw_response.create(model="gpt-legacy", prompt="x")
        await client.close()
        return [h.headers["x-ledger-entry-id"] for h in (e, r, c)]

    ids = asyncio.run(run())
    ops = [lg.entry_by_id(i).body["operation"] for i in ids]
    assert ops == ["embeddings", "responses", "text_completion"]


def test_wrap_keeps_the_users_client(fake_provider: FakeProviderServer, lg: ledger.Ledger) -> None:
    bare = openai.OpenAI(
        api_key=API_KEY,
        base_url=fake_provider.openai_base_url,
        max_retries=0,
        timeout=12.5,
        default_headers={"x-team": "blue"},
    )
    wrapped = wrap(bare, ledger=lg, purpose="evaluate", durability="sync")
    _open_clients.extend([bare, wrapped])
    assert type(wrapped) is openai.OpenAI
    assert wrapped is not bare
    assert wrapped.base_url == bare.base_url
    assert wrapped.timeout == 12.5
    assert wrapped.max_retries == 0
    bare.chat.completions.create(model="m", messages=MESSAGES)  # the original is not recorded
    assert lg.size == 0
    wrapped.chat.completions.create(model="m", messages=MESSAGES)
    assert lg.size == 1
    assert fake_provider.requests[-1].headers["x-team"] == "blue"
    # Without a hosts map, a local OpenAI-compatible server is not claimed to be OpenAI.
    assert next(iter(lg.entries())).body["provider"] == "unknown"


def test_gzip_stream_and_429_through_the_sdk(
    fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    client = _sync_client(fake_provider, lg, durability="sync", **LABELS)
    with client.chat.completions.with_streaming_response.create(
        model="gpt-test",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-fake-gzip": "1"},
    ) as raw:
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        headers = raw.headers
    assert headers["content-encoding"] == "gzip"
    body = lg.entry_by_id(headers["x-ledger-entry-id"]).body
    assert body["content_encoding"] == "gzip"
    assert body["outcome"] == "complete"
    assert answers(body) == answer_fps(lg, body, [text])
    assert body["usage"]["output_tokens"] == 3

    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model="gpt-test", messages=MESSAGES, extra_headers={"x-fake-status": "429"}
        )
    response = caught.value.response
    body = lg.entry_by_id(response.headers["x-ledger-entry-id"]).body
    assert body["status"] == 429
    assert body["rate_limit"]["retry-after"] == response.headers["retry-after"]
    assert body["rate_limit"]["retry-after-ms"] == response.headers["retry-after-ms"]
    assert answers(body) == []
    assert body["response_sha256"] == sha(response.content)
    assert lg.size == 2  # max_retries=0: one attempt, one entry


def test_content_full_keeps_prompt_and_outputs(
    fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    client = _sync_client(fake_provider, lg, durability="sync", content="full", **LABELS)
    raw = client.chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES)
    completion = raw.parse()
    body = lg.entry_by_id(raw.headers["x-ledger-entry-id"]).body
    assert body["content"]["request"]["messages"] == MESSAGES
    assert body["content"]["outputs"] == [completion.choices[0].message.content]
