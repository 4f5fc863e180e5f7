"""The recording transports themselves, for ``httpx`` and ``httpx2``, sync and async.

Real clients against the fake provider server, a real ledger: full reads, early close, an
exception mid-stream, gzip, error statuses, label headers, credentials in the query string.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest

import ledger
from ledger.errors import InputError
from ledger.recorder import (
    AsyncHttpx2RecordingTransport,
    AsyncRecordingTransport,
    Httpx2RecordingTransport,
    Recorder,
    RecordingTransport,
    flush,
    recording,
)
from ledger.testing.fake_provider import FakeProviderServer
from tests.recorder.helpers import API_KEY, HOSTS, answer_fps, answers, open_ledger, sha

CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
PACKAGES = [httpx, httpx2]


@pytest.fixture
def lg(tmp_path: Path) -> Iterator[ledger.Ledger]:
    lg = open_ledger(tmp_path)
    yield lg
    lg.close()


def _sync_client(pkg: Any, rec: Recorder) -> Any:
    transport = RecordingTransport(rec) if pkg is httpx else Httpx2RecordingTransport(rec)
    return pkg.Client(transport=transport, headers={"authorization": f"Bearer {API_KEY}"})


def _async_client(pkg: Any, rec: Recorder) -> Any:
    if pkg is httpx:
        transport: Any = AsyncRecordingTransport(rec)
    else:
        transport = AsyncHttpx2RecordingTransport(rec)
    return pkg.AsyncClient(transport=transport, headers={"authorization": f"Bearer {API_KEY}"})


def _only(lg: ledger.Ledger) -> dict[str, Any]:
    entries = [e.body for e in lg.entries()]
    assert len(entries) == 1, entries
    return entries[0]


@pytest.mark.parametrize("pkg", PACKAGES, ids=lambda p: p.__name__)
def test_full_read_sync(pkg: Any, fake_provider: FakeProviderServer, lg: ledger.Ledger) -> None:
    rec = Recorder(lg, purpose="research", durability="sync", hosts=HOSTS)
    with _sync_client(pkg, rec) as client:
        response = client.post(f"{fake_provider.openai_base_url}/chat/completions", json=CHAT)
    body = _only(lg)
    assert response.headers["x-ledger-entry-id"] == body["id"]
    assert body["outcome"] == "complete"
    assert body["response_sha256"] == sha(response.content)
    assert body["request_sha256"] == sha(fake_provider.requests[-1].body)
    text = response.json()["choices"][0]["message"]["content"]
    assert answers(body) == answer_fps(lg, body, [text])
    assert body["account"] == lg.account_fingerprint(API_KEY)


@pytest.mark.parametrize("pkg", PACKAGES, ids=lambda p: p.__name__)
def test_early_close_is_truncated(
    pkg: Any, fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    rec = Recorder(lg, durability="sync", hosts=HOSTS)
    with _sync_client(pkg, rec) as client:
        with client.stream(
            "POST",
            f"{fake_provider.openai_base_url}/chat/completions",
            json={**CHAT, "stream": True},
            headers={"x-fake-chunks": "50", "x-fake-chunk-delay-ms": "2"},
        ) as response:
            first = next(response.iter_raw())
            assert first.startswith(b"data:")
        # Leaving the block closes the response before the body ended.
    body = _only(lg)
    assert body["outcome"] == "truncated"
    assert body["stream"] is True
    assert body["error"] is None
    assert body["status"] == 200
    assert body["response_sha256"] != sha(b"")


@pytest.mark.parametrize("pkg", PACKAGES, ids=lambda p: p.__name__)
def test_exception_mid_stream_is_error(
    pkg: Any, fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    rec = Recorder(lg, durability="sync", hosts=HOSTS)
    with _sync_client(pkg, rec) as client:
        with (
            pytest.raises(pkg.HTTPError),
            client.stream(
                "POST",
                f"{fake_provider.openai_base_url}/chat/completions",
                json={**CHAT, "stream": True},
                headers={"x-fake-abort-after": "2", "x-fake-chunks": "10"},
            ) as response,
        ):
            for _ in response.iter_raw():
                pass
    body = _only(lg)
    assert body["outcome"] == "error"
    assert body["error"] in ("RemoteProtocolError", "ReadError")
    assert body["status"] == 200


@pytest.mark.parametrize("pkg", PACKAGES, ids=lambda p: p.__name__)
def test_gzip_hashes_wire_bytes_and_parses_a_copy(
    pkg: Any, fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    rec = Recorder(lg, durability="sync", hosts=HOSTS)
    wire: list[bytes] = []
    with _sync_client(pkg, rec) as client:
        with client.stream(
            "POST",
            f"{fake_provider.openai_base_url}/chat/completions",
            json=CHAT,
            headers={"x-fake-gzip": "1"},
        ) as response:
            wire.extend(response.iter_raw())
        raw = b"".join(wire)
    body = _only(lg)
    assert body["content_encoding"] == "gzip"
    assert body["response_sha256"] == sha(raw)
    text = json.loads(gzip.decompress(raw))["choices"][0]["message"]["content"]
    assert answers(body) == answer_fps(lg, body, [text])
    assert body["response_model"] == "gpt-test"


def test_gzip_stream_through_sdk_style_reading(
    fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    rec = Recorder(lg, durability="sync", hosts=HOSTS)
    with _sync_client(httpx2, rec) as client:
        response = client.post(
            f"{fake_provider.openai_base_url}/chat/completions",
            json={**CHAT, "stream": True, "stream_options": {"include_usage": True}},
            headers={"x-fake-gzip": "1"},
        )
    body = _only(lg)
    assert body["content_encoding"] == "gzip"
    assert body["stream"] is True
    assert body["outcome"] == "complete"
    assert body["usage"]["output_tokens"] == 3
    text = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in response.text.splitlines()
        if line.startswith("data: {") and json.loads(line[6:])["choices"]
    )
    assert answers(body) == answer_fps(lg, body, [text])


@pytest.mark.parametrize("status", [429, 500])
@pytest.mark.parametrize("pkg", PACKAGES, ids=lambda p: p.__name__)
def test_error_status_is_recorded(
    pkg: Any, status: int, fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    rec = Recorder(lg, durability="sync", hosts=HOSTS)
    with _sync_client(pkg, rec) as client:
        response = client.post(
            f"{fake_provider.openai_base_url}/chat/completions",
            json=CHAT,
            headers={"x-fake-status": str(status)},
        )
    assert response.status_code == status
    body = _only(lg)
    assert body["status"] == status
    assert body["outcome"] == "complete"  # the error body was read to the end
    assert answers(body) == []
    assert body["response_sha256"] == sha(response.content)
    if status == 429:
        assert body["rate_limit"]["retry-after"] == response.headers["retry-after"]


def test_connection_error_is_recorded_without_status(lg: ledger.Ledger) -> None:
    rec = Recorder(lg, durability="sync")
    with _sync_client(httpx2, rec) as client, pytest.raises(httpx2.ConnectError):
        client.post("http://127.0.0.1:1/v1/chat/completions", json=CHAT)
    body = _only(lg)
    assert body["status"] is None
    assert body["outcome"] == "error"
    assert body["error"] == "ConnectError"
    assert body["response_sha256"] is None
    assert body["operation"] == "chat"


def test_label_headers_are_read_and_removed(
    fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    rec = Recorder(lg, purpose="research", dataset="base", tags=["x"], durability="sync")
    with _sync_client(httpx2, rec) as client:
        with recording(purpose="evaluate", tags=["scoped"]):
            client.post(
                f"{fake_provider.openai_base_url}/embeddings",
                json={"model": "e", "input": "x"},
                headers={"x-ledger-purpose": "red-team", "x-ledger-dataset": "hdr"},
            )
            client.post(f"{fake_provider.openai_base_url}/embeddings", json={"model": "e"})
        client.post(f"{fake_provider.openai_base_url}/embeddings", json={"model": "e"})
        with pytest.raises(InputError, match="unknown purpose"):
            client.post(
                f"{fake_provider.openai_base_url}/embeddings",
                json={"model": "e"},
                headers={"x-ledger-purpose": "jailbreak"},
            )
    sent = fake_provider.requests[-3:]
    assert all(not k.startswith("x-ledger-") for r in sent for k in r.headers)
    labels = [(b["purpose"], b["dataset"], b["tags"]) for b in (e.body for e in lg.entries())]
    assert labels == [
        ("red-team", "hdr", ["scoped"]),
        ("evaluate", "base", ["scoped"]),
        ("research", "base", ["x"]),
    ]


def test_query_string_credential_is_dropped(
    fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    rec = Recorder(lg, durability="sync")
    with httpx2.Client(transport=Httpx2RecordingTransport(rec)) as client:
        url = f"{fake_provider.gemini_base_url}/v1beta/models/gemini-test:streamGenerateContent"
        client.post(url, params={"alt": "sse", "key": API_KEY}, json={"contents": []})
    body = _only(lg)
    assert body["account"] == lg.account_fingerprint(API_KEY)
    assert body["stream"] is True
    assert body["endpoint"]["path"] == "/v1beta/models/gemini-test:streamGenerateContent"
    assert API_KEY not in json.dumps(body)
    # The provider still got the key (recording never changes the request it needs).
    assert API_KEY in fake_provider.requests[-1].path


@pytest.mark.parametrize("pkg", PACKAGES, ids=lambda p: p.__name__)
def test_async_transports(pkg: Any, fake_provider: FakeProviderServer, lg: ledger.Ledger) -> None:
    rec = Recorder(lg, purpose="evaluate", hosts=HOSTS)  # async durability

    async def run() -> tuple[str, str, str]:
        async with _async_client(pkg, rec) as client:
            full = await client.post(f"{fake_provider.openai_base_url}/chat/completions", json=CHAT)
            async with client.stream(
                "POST",
                f"{fake_provider.openai_base_url}/chat/completions",
                json={**CHAT, "stream": True},
                headers={"x-fake-chunks": "50", "x-fake-chunk-delay-ms": "2"},
            ) as early:
                async for _ in early.aiter_raw():
                    break
            broken_ids: list[str] = []

            async def read_broken() -> None:
                async with client.stream(
                    "POST",
                    f"{fake_provider.openai_base_url}/chat/completions",
                    json={**CHAT, "stream": True},
                    headers={"x-fake-abort-after": "1"},
                ) as broken:
                    broken_ids.append(broken.headers["x-ledger-entry-id"])
                    async for _ in broken.aiter_raw():
                        pass

            with pytest.raises(pkg.HTTPError):
                await read_broken()
            return (
                full.headers["x-ledger-entry-id"],
                early.headers["x-ledger-entry-id"],
                broken_ids[0],
            )

    ids = asyncio.run(run())
    flush()
    outcomes = [lg.entry_by_id(i).body["outcome"] for i in ids]
    assert outcomes == ["complete", "truncated", "error"]


def test_abandoned_stream_is_recorded_when_collected(
    fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    rec = Recorder(lg, hosts=HOSTS)
    transport = Httpx2RecordingTransport(rec)
    request = httpx2.Request(
        "POST",
        f"{fake_provider.openai_base_url}/chat/completions",
        json={**CHAT, "stream": True},
    )
    response = transport.handle_request(request)
    stream = response.stream
    next(iter(stream))
    # Dropped without close(): the stream's finalizer records it as truncated.
    del response, stream
    import gc

    gc.collect()
    flush()
    transport.close()
    body = _only(lg)
    assert body["outcome"] == "truncated"
