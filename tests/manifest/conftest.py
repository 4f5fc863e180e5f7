"""Fixtures for evidence-pack tests: a ledger filled by real SDK calls and a dataset built from
their outputs (exact, post-processed, assembled and hand-written rows)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

import ledger
from ledger.policy import DeclaredFacts
from ledger.recorder import wrap
from ledger.testing.fake_provider import FakeProviderServer
from tests.audit.conftest import fake_provider  # noqa: F401 - the shared stand-in teacher
from tests.audit.helpers import FACTS, chat_row, write_jsonl
from tests.recorder.helpers import API_KEY, open_ledger

CHAT: list[Any] = [{"role": "user", "content": "Teach me something."}]
HUMAN = "I wrote this answer myself after reading three chemistry textbooks over the summer."


@dataclass
class Scenario:
    lg: ledger.Ledger
    home: Path
    dataset: Path
    outputs: list[str]
    client: Any

    def call(self, chunks: int, n: int = 1) -> list[str]:
        """One more recorded teacher call; the texts of its choices."""
        response = self.client.chat.completions.create(
            model="gpt-4o", messages=CHAT, n=n, extra_headers={"x-fake-chunks": str(chunks)}
        )
        return [choice.message.content for choice in response.choices]


def _near_copy(text: str) -> str:
    # Two words of a long output changed: the near stage's job (sketch similarity).
    words = text.split()
    words[3], words[10] = "changed", "edited"
    return " ".join(words)


@contextmanager
def scenario_on(
    lg: ledger.Ledger, home: Path, server: FakeProviderServer, folder: Path
) -> Iterator[Scenario]:
    """Record teacher calls into ``lg`` with the real openai SDK and write a dataset of them."""
    bare = openai.OpenAI(base_url=server.openai_base_url, api_key=API_KEY, max_retries=0)
    client = wrap(bare, ledger=lg, purpose="train-model", dataset="tutor", durability="sync",
                  hosts={"127.0.0.1": "openai"})  # fmt: skip
    scene = Scenario(lg, home, folder / "train.jsonl", [], client)
    try:
        first = scene.call(12, n=2)
        second = scene.call(14)
        long = scene.call(40, n=3)
        third = scene.call(16)
        scene.outputs = [*first, *second, *long, *third]
        rows: list[Any] = [
            chat_row(first[0]),
            chat_row(first[1].upper()),  # truecased
            chat_row(f"Answer: {second[0]}"),  # a wrapper: template
            chat_row(_near_copy(long[2])),  # near
            chat_row(HUMAN),  # none
            chat_row(third[0], long[0]),  # two turns, both exact
        ]
        write_jsonl(scene.dataset, rows)
        yield scene
    finally:
        client.close()
        bare.close()


@pytest.fixture
def scenario(
    fake_provider: FakeProviderServer,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> Iterator[Scenario]:
    lg = open_ledger(tmp_path / "home")
    try:
        with scenario_on(lg, tmp_path / "home", fake_provider, tmp_path) as scene:
            yield scene
    finally:
        lg.close()


@pytest.fixture
def facts() -> DeclaredFacts:
    return FACTS
