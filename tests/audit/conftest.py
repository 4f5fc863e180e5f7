"""Fixtures for dataset-audit tests: a ledger on each backend, the stand-in teacher."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.testing.fake_provider import FakeProviderServer


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeProviderServer]:
    """The local fake OpenAI/Anthropic/Gemini server (``ledger.testing``)."""
    with FakeProviderServer() as server:
        yield server
