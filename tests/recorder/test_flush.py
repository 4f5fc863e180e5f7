"""``flush()`` covers every call that has returned to its caller (issue 8, point 7).

The recorder finalizes a call on its background worker, after the SDK has already handed the
response to the caller; ``Ledger.flush`` and ``Recorder.flush`` must wait for that work too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

import ledger
from ledger.recorder import Httpx2RecordingTransport, Recorder, wrap
from ledger.recorder.sinks import worker
from ledger.testing.fake_provider import FakeProviderServer
from tests.recorder.helpers import API_KEY, HOSTS, open_ledger

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def lg(tmp_path: Path) -> Iterator[ledger.Ledger]:
    lg = open_ledger(tmp_path)
    yield lg
    lg.close()


def test_ledger_flush_counts_calls_that_returned(
    fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    bare = openai.OpenAI(api_key=API_KEY, base_url=fake_provider.openai_base_url, max_retries=0)
    client = wrap(bare, ledger=lg, purpose="evaluate", hosts=HOSTS)  # default: async
    for n in range(1, 11):
        client.chat.completions.create(model="m", messages=MESSAGES)
        assert lg.flush(timeout=30)
        assert lg.size == n  # not 0 while the worker lingers, and not spooled at exit
    assert not (lg.home / "spool" / "spool.jsonl").exists()
    client.close()


def test_recorder_flush_counts_calls_that_returned(
    fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    recorder = Recorder(lg, hosts=HOSTS)
    http = openai.DefaultHttpxClient(transport=Httpx2RecordingTransport(recorder))
    client = openai.OpenAI(
        api_key=API_KEY, base_url=fake_provider.openai_base_url, http_client=http, max_retries=0
    )
    client.chat.completions.create(model="m", messages=MESSAGES)
    assert recorder.flush(timeout=30)
    assert lg.size == 1
    client.close()


def test_flush_from_the_worker_thread_does_not_deadlock(lg: ledger.Ledger) -> None:
    Recorder(lg)  # binds the recorder's worker to this ledger's flush
    done = threading.Event()
    results: list[bool] = []

    def job() -> None:
        results.append(lg.flush(timeout=30))
        done.set()

    worker().put(job)
    assert worker().drain(timeout=30)
    assert done.is_set()
    assert results == [True]
