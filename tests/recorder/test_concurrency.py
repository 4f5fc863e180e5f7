"""Concurrent calls: every HTTP attempt recorded exactly once, from threads and asyncio tasks."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

import ledger
from ledger.recorder import flush, recording, wrap
from ledger.testing.fake_provider import FakeProviderServer
from tests.recorder.helpers import API_KEY, HOSTS, answer_fps, answers, open_ledger

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def lg(tmp_path: Path) -> Iterator[ledger.Ledger]:
    lg = open_ledger(tmp_path)
    yield lg
    lg.close()


def test_sixteen_threads(fake_provider: FakeProviderServer, lg: ledger.Ledger) -> None:
    # The fake server's listen backlog is small (socketserver's default of 5): a pool of 4
    # connections shared by the 16 threads keeps connects from being reset under load.
    http = openai.DefaultHttpxClient(limits=httpx2.Limits(max_connections=4))
    bare = openai.OpenAI(
        api_key=API_KEY, base_url=fake_provider.openai_base_url, max_retries=0, http_client=http
    )
    client = wrap(bare, ledger=lg, purpose="train-model", hosts=HOSTS)
    per_thread = 8
    seen: list[str] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        with recording(tags=[f"thread-{n}"]):
            for i in range(per_thread):
                stream = i % 2 == 1
                raw = client.chat.completions.with_raw_response.create(
                    model=f"m-{n}", messages=MESSAGES, stream=stream
                )
                if stream:
                    for _ in raw.parse():
                        pass
                else:
                    raw.parse()
                with lock:
                    seen.append(raw.headers["x-ledger-entry-id"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        # copy_context: each thread starts from the caller's context, then scopes its own tags.
        futures = [pool.submit(contextvars.copy_context().run, work, n) for n in range(16)]
        for f in futures:
            f.result()
    flush()
    client.close()
    bodies = [e.body for e in lg.entries()]
    assert len(bodies) == 16 * per_thread
    assert sorted(b["id"] for b in bodies) == sorted(seen)
    assert len(set(seen)) == len(seen)
    # Each thread's scope stayed with its own calls.
    assert all(b["tags"] == [f"thread-{b['request_model'][2:]}"] for b in bodies)
    assert Counter(b["outcome"] for b in bodies) == {"complete": 16 * per_thread}


def test_hundred_asyncio_tasks(fake_provider: FakeProviderServer, lg: ledger.Ledger) -> None:
    async def run() -> list[tuple[str, str]]:
        # The fake server's listen backlog is small; a user-supplied HTTP client with a pool of
        # 10 keeps the 100 concurrent tasks from overflowing it (and checks that wrap keeps
        # the user's client settings: its transport is the one the recorder wraps).
        http = openai.DefaultAsyncHttpxClient(limits=httpx2.Limits(max_connections=4))
        bare = openai.AsyncOpenAI(
            api_key=API_KEY,
            base_url=fake_provider.openai_base_url,
            max_retries=0,
            http_client=http,
        )
        client = wrap(bare, ledger=lg, purpose="evaluate", hosts=HOSTS)

        async def one(n: int) -> tuple[str, str]:
            with recording(dataset=f"ds-{n}"):
                raw = await client.chat.completions.with_raw_response.create(
                    model="m", messages=MESSAGES
                )
                completion = raw.parse()
                return raw.headers["x-ledger-entry-id"], completion.choices[0].message.content

        results = await asyncio.gather(*(one(n) for n in range(100)))
        assert client._client._transport.inner is http._transport
        await client.close()
        return list(results)

    results = asyncio.run(run())
    flush()
    bodies = {e.body["id"]: e.body for e in lg.entries()}
    assert len(bodies) == 100
    assert set(bodies) == {entry_id for entry_id, _ in results}
    for entry_id, text in results:
        assert answers(bodies[entry_id]) == answer_fps(lg, bodies[entry_id], [text or ""])
    assert sorted(b["dataset"] for b in bodies.values()) == sorted(f"ds-{n}" for n in range(100))


def test_retries_are_separate_entries(fake_provider: FakeProviderServer, lg: ledger.Ledger) -> None:
    bare = openai.OpenAI(api_key=API_KEY, base_url=fake_provider.openai_base_url, max_retries=2)
    client = wrap(bare, ledger=lg, purpose="evaluate", durability="sync", hosts=HOSTS)
    fake_provider.clear()
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={"x-fake-status": "500"}
        )
    client.close()
    bodies = [e.body for e in lg.entries()]
    assert len(bodies) == len(fake_provider.requests) == 3
    assert [b["status"] for b in bodies] == [500, 500, 500]
    assert [b["client"]["headers"]["x-stainless-retry-count"] for b in bodies] == ["0", "1", "2"]
