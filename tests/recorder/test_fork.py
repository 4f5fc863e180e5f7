"""A forked child records through its own worker (the parent's thread does not survive fork)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import openai

from ledger.recorder import Recorder, flush, wrap
from ledger.testing.fake_provider import FakeProviderServer
from tests.recorder.helpers import API_KEY, HOSTS, open_ledger


def _child(home: str, base_url: str) -> None:
    lg = open_ledger(Path(home))
    client = wrap(
        openai.OpenAI(api_key=API_KEY, base_url=base_url, max_retries=0),
        ledger=lg,
        purpose="evaluate",
        hosts=HOSTS,
    )
    for _ in range(3):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    flush(30)
    client.close()
    lg.close()


def test_forked_child_gets_a_fresh_worker(
    fake_provider: FakeProviderServer, tmp_path: Path
) -> None:
    parent = open_ledger(tmp_path / "parent")
    Recorder(parent)  # the parent's worker thread exists before the fork
    process = multiprocessing.get_context("fork").Process(
        target=_child, args=(str(tmp_path / "child"), fake_provider.openai_base_url)
    )
    process.start()
    process.join(60)
    assert process.exitcode == 0
    parent.close()
    child = open_ledger(tmp_path / "child")
    try:
        assert child.size == 3
        assert {e.body["outcome"] for e in child.entries()} == {"complete"}
    finally:
        child.close()
