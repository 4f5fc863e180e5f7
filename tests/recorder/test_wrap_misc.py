"""``recording_client`` for any httpx/httpx2 user, legacy ``httpx`` SDK clients, bad inputs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest

import ledger
from ledger.errors import InputError
from ledger.recorder import flush, recording_client, wrap
from ledger.testing.fake_provider import FakeProviderServer
from tests.recorder.helpers import API_KEY, HOSTS, open_ledger

EMBED = {"model": "emb", "input": "x"}


@pytest.fixture
def lg(tmp_path: Path) -> Iterator[ledger.Ledger]:
    lg = open_ledger(tmp_path)
    yield lg
    lg.close()


@pytest.mark.parametrize("package", ["httpx", "httpx2"])
def test_recording_client_sync_and_async(
    package: Any, fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    pkg = httpx if package == "httpx" else httpx2
    headers = {"authorization": f"Bearer {API_KEY}"}
    url = f"{fake_provider.openai_base_url}/embeddings"
    with recording_client(
        ledger=lg, package=package, purpose="research", hosts=HOSTS, headers=headers
    ) as client:
        assert isinstance(client, pkg.Client)
        sync_id = client.post(url, json=EMBED).headers["x-ledger-entry-id"]

    async def run() -> str:
        async with recording_client(
            ledger=lg,
            package=package,
            asynchronous=True,
            purpose="research",
            hosts=HOSTS,
            headers=headers,
        ) as aclient:
            assert isinstance(aclient, pkg.AsyncClient)
            response = await aclient.post(url, json=EMBED)
            return response.headers["x-ledger-entry-id"]

    async_id = asyncio.run(run())
    flush()
    for entry_id in (sync_id, async_id):
        body = lg.entry_by_id(entry_id).body
        assert body["provider"] == "openai"
        assert body["operation"] == "embeddings"
        assert body["purpose"] == "research"
        assert body["account"] == lg.account_fingerprint(API_KEY)


def test_openai_on_a_legacy_httpx_client(
    fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    legacy = httpx.Client(timeout=30)
    bare = openai.OpenAI(
        api_key=API_KEY, base_url=fake_provider.openai_base_url, max_retries=0, http_client=legacy
    )
    client = wrap(bare, ledger=lg, purpose="evaluate", durability="sync", hosts=HOSTS)
    completion = client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "x"}]
    )
    completion.parse()
    body = lg.entry_by_id(completion.headers["x-ledger-entry-id"]).body
    assert body["operation"] == "chat"
    assert body["outcome"] == "complete"
    # The user's legacy client's transport is what the recording transport sends through.
    assert client._client._transport.inner is legacy._transport
    client.close()
    legacy.close()


def test_wrap_rejects_unknown_clients_and_purposes(lg: ledger.Ledger) -> None:
    with pytest.raises(InputError, match="does not know"):
        wrap(object(), ledger=lg)
    bare = openai.OpenAI(api_key=API_KEY, base_url="http://127.0.0.1:1/v1")
    with pytest.raises(InputError, match="unknown purpose"):
        wrap(bare, ledger=lg, purpose="anything-goes")
    with pytest.raises(InputError):
        recording_client(ledger=lg, package="requests")  # type: ignore[call-overload]
    bare.close()


def test_rewrapping_replaces_the_recorder(
    fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    bare = openai.OpenAI(api_key=API_KEY, base_url=fake_provider.openai_base_url, max_retries=0)
    once = wrap(bare, ledger=lg, purpose="research", durability="sync", hosts=HOSTS)
    twice = wrap(once, ledger=lg, purpose="evaluate", durability="sync", hosts=HOSTS)
    twice.embeddings.create(model="emb", input="x")
    assert [e.body["purpose"] for e in lg.entries()] == ["evaluate"]
    for client in (bare, once, twice):
        client.close()
