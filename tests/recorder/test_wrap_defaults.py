"""``wrap()`` defaults from the ledger's settings; the unknown-host warning (issue 8, 13 and 16).

Real SDKs against the local fake provider; settings come from real ``LEDGER_*`` variables read
by ``ledger.open()`` (the library classes themselves read no environment).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import ledger
from ledger.recorder import wrap
from ledger.testing.fake_provider import FakeProviderServer
from tests.recorder.helpers import API_KEY, HOSTS

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def env_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("LEDGER_DATABASE_URL", "LEDGER_CONTENT", "LEDGER_DURABILITY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEDGER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _openai(fake: FakeProviderServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=API_KEY, base_url=fake.openai_base_url, max_retries=0)


def test_content_and_durability_settings_are_wrap_defaults(
    fake_provider: FakeProviderServer, env_ledger: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_CONTENT", "full")
    monkeypatch.setenv("LEDGER_DURABILITY", "sync")
    lg = ledger.open()
    try:
        assert (lg.default_content, lg.default_durability) == ("full", "sync")
        client = wrap(_openai(fake_provider), ledger=lg, hosts=HOSTS)
        client.chat.completions.create(model="m", messages=MESSAGES)
        # Sync: committed before the call returned, no flush needed; full: content stored.
        assert lg.size == 1
        assert lg.entry(0).body["content"]["outputs"]
        client.close()

        explicit = wrap(
            _openai(fake_provider), ledger=lg, hosts=HOSTS, content="hash", durability="async"
        )
        explicit.chat.completions.create(model="m", messages=MESSAGES)
        assert lg.flush(timeout=30)
        assert lg.size == 2
        assert "content" not in lg.entry(1).body  # an argument beats the setting
        explicit.close()
    finally:
        lg.close()


def test_wrap_without_a_ledger_opens_one_with_the_settings(
    fake_provider: FakeProviderServer, env_ledger: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_CONTENT", "full")
    client = wrap(_openai(fake_provider), hosts=HOSTS)
    client.chat.completions.create(model="m", messages=MESSAGES)
    client.close()
    ledger.recorder.flush(30)
    lg = ledger.open()
    try:
        assert lg.size == 1
        assert "content" in lg.entry(0).body
    finally:
        lg.close()


def _unknown_host_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "ledger.recorder" and "recorded as provider 'unknown'" in r.getMessage()
    ]


def test_openai_client_on_an_unknown_host_warns_once_per_client(
    fake_provider: FakeProviderServer, env_ledger: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ledger.recorder")
    lg = ledger.open()
    try:
        client = wrap(_openai(fake_provider), ledger=lg)
        for _ in range(3):
            client.chat.completions.create(model="m", messages=MESSAGES)
        assert lg.flush(timeout=30)
        assert {e.body["provider"] for e in lg.entries()} == {"unknown"}
        (message,) = _unknown_host_warnings(caplog)
        assert "127.0.0.1" in message
        assert "hosts={'127.0.0.1': 'openai'}" in message
        second = wrap(_openai(fake_provider), ledger=lg)
        assert len(_unknown_host_warnings(caplog)) == 2  # one per client, not per call

        caplog.clear()
        named = wrap(_openai(fake_provider), ledger=lg, hosts=HOSTS)
        other_sdk = wrap(
            anthropic.Anthropic(api_key=API_KEY, base_url=fake_provider.anthropic_base_url),
            ledger=lg,
        )
        assert _unknown_host_warnings(caplog) == []  # named by hosts=, or by its own SDK
        for c in (client, second, named, other_sdk):
            c.close()
    finally:
        lg.close()
