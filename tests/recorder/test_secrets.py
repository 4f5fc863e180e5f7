"""The API key never appears in the database file, the spool, or the logs."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from ledger.recorder import Spool, flush, wrap
from ledger.testing.fake_provider import FakeProviderServer
from tests.recorder.helpers import API_KEY, HOSTS, open_ledger

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def _files_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


def test_api_key_never_stored_spooled_or_logged(
    fake_provider: FakeProviderServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    lg = open_ledger(tmp_path, sqlite_busy_timeout=0.1)
    oa = wrap(
        openai.OpenAI(api_key=API_KEY, base_url=fake_provider.openai_base_url, max_retries=0),
        ledger=lg,
        purpose="evaluate",
        hosts=HOSTS,
        content="full",
    )
    an = wrap(
        anthropic.Anthropic(
            api_key=API_KEY, base_url=fake_provider.anthropic_base_url, max_retries=0
        ),
        ledger=lg,
        purpose="evaluate",
        content="full",
    )
    gm = wrap(
        genai.Client(
            api_key=API_KEY, http_options=types.HttpOptions(base_url=fake_provider.gemini_base_url)
        ),
        ledger=lg,
        purpose="evaluate",
        content="full",
    )
    oa.chat.completions.create(model="m", messages=MESSAGES)
    for _ in oa.chat.completions.create(model="m", messages=MESSAGES, stream=True):
        pass
    an.messages.create(model="c", max_tokens=8, messages=MESSAGES)
    gm.models.generate_content(model="g", contents="hi")
    with pytest.raises(openai.APIStatusError):
        oa.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={"x-fake-status": "500"}
        )
    flush()
    assert lg.size == 5
    assert all(e.body["account"] == lg.account_fingerprint(API_KEY) for e in lg.entries())
    assert all("content" in e.body for e in lg.entries())

    # Now the ledger is locked: bodies go to the spool (and warnings to the log).
    blocker = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        oa.chat.completions.create(model="m", messages=MESSAGES)
        flush()
    finally:
        blocker.rollback()
        blocker.close()
    assert Spool(tmp_path / "spool").status().entries == 1
    assert any("spooled" in r.getMessage() for r in caplog.records)
    for client in (oa, an, gm):
        client.close()
    lg.close()

    secret = API_KEY.encode()
    everything = _files_bytes(tmp_path)  # database, WAL, keys, spool
    assert b"LEAKCANARY" not in everything
    assert secret not in everything
    assert API_KEY not in caplog.text
    for record in caplog.records:
        assert API_KEY not in record.getMessage()
