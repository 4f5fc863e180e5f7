"""google-genai (sync and its ``.aio`` side, streamed and not) through ``ledger.wrap``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import types

import ledger
from ledger.recorder import flush, recording, wrap
from ledger.testing.fake_provider import FakeProviderServer
from tests.recorder.helpers import (
    API_KEY,
    answer_fps,
    answers,
    assert_common,
    client_headers,
    open_ledger,
    sha,
)


@pytest.fixture
def lg(tmp_path: Path) -> Iterator[ledger.Ledger]:
    lg = open_ledger(tmp_path)
    yield lg
    lg.close()


def _client(fake: FakeProviderServer, lg: ledger.Ledger, **kw: Any) -> genai.Client:
    bare = genai.Client(
        api_key=API_KEY,
        http_options=types.HttpOptions(base_url=fake.gemini_base_url, api_version="v1beta"),
    )
    wrapped = wrap(bare, ledger=lg, purpose="research", dataset="gem", **kw)
    assert type(wrapped) is genai.Client
    return wrapped


def _check(body: dict[str, Any], fake: FakeProviderServer, lg: ledger.Ledger, method: str) -> None:
    sent = fake.requests[-1]
    assert_common(body, port=fake.port, path=f"/v1beta/models/gemini-test:{method}")
    assert body["provider"] == "gcp.gemini"
    assert body["operation"] == "generate_content"
    assert body["request_model"] == "gemini-test"
    assert body["account"] == lg.account_fingerprint(API_KEY)
    assert body["client"] == {
        "user_agent": sent.headers["user-agent"],
        "headers": client_headers(sent.headers),
    }
    assert "x-goog-api-client" in body["client"]["headers"]
    assert body["request_sha256"] == sha(sent.body)
    assert body["status"] == 200
    assert body["outcome"] == "complete"
    assert body["provider_request_id"] is None  # Gemini documents no request-id header
    assert body["finish_reasons"] == ["STOP"]
    assert body["purpose"] == "research"
    assert body["dataset"] == "gem"


def test_generate_content_sync(fake_provider: FakeProviderServer, lg: ledger.Ledger) -> None:
    client = _client(fake_provider, lg, durability="sync")
    response = client.models.generate_content(model="gemini-test", contents="hi")
    body = next(iter(lg.entries())).body
    _check(body, fake_provider, lg, "generateContent")
    assert body["stream"] is False
    assert body["response_id"] == response.response_id
    assert body["response_model"] == response.model_version
    assert response.usage_metadata is not None
    assert body["usage"] == {
        "input_tokens": response.usage_metadata.prompt_token_count,
        "output_tokens": response.usage_metadata.candidates_token_count,
    }
    assert answers(body) == answer_fps(lg, body, [response.text or ""])

    text = ""
    last = None
    for chunk in client.models.generate_content_stream(model="gemini-test", contents="hi"):
        text += chunk.text or ""
        last = chunk
    assert last is not None
    assert last.usage_metadata is not None
    body = list(lg.entries())[-1].body
    _check(body, fake_provider, lg, "streamGenerateContent")
    assert body["stream"] is True
    # usageMetadata repeats cumulatively on every chunk: the last one counts, never the sum.
    assert body["usage"]["output_tokens"] == last.usage_metadata.candidates_token_count
    assert answers(body) == answer_fps(lg, body, [text])
    client.close()


def test_generate_content_aio(fake_provider: FakeProviderServer, lg: ledger.Ledger) -> None:
    client = _client(fake_provider, lg)

    async def run() -> tuple[str, str]:
        with recording(tags=["aio"]):
            response = await client.aio.models.generate_content(model="gemini-test", contents="x")
            text = ""
            stream = await client.aio.models.generate_content_stream(
                model="gemini-test", contents="x"
            )
            async for chunk in stream:
                text += chunk.text or ""
        await client.aio.aclose()
        return response.text or "", text

    plain, streamed = asyncio.run(run())
    assert not client._api_client._use_aiohttp()
    flush()
    client.close()
    # aiohttp is not used: every aio request went through the recording httpx2 client.
    first, second = (e.body for e in lg.entries())
    assert first["stream"] is False
    assert answers(first) == answer_fps(lg, first, [plain])
    assert second["stream"] is True
    assert answers(second) == answer_fps(lg, second, [streamed])
    assert first["tags"] == second["tags"] == ["aio"]
    assert lg.size == 2
