"""Fixtures for evidence-pack tests: a ledger filled by real SDK calls and a dataset built from
their outputs (exact, post-processed, assembled and hand-written rows).

Invariants:

- The teacher calls are recorded once per session into a template (a closed SQLite home: the
  ledger file and its keys, and the dataset beside it); a second template holds the same
  scenario after one build of ``tutor`` and its pack. Templates are never opened again.
- Every test gets its own copy of a template under its ``tmp_path`` (the same layout the
  recording wrote there before: ``home/``, ``train.jsonl``, ``pack/``) and a ledger opened on
  that copy, closed at teardown; ``Scenario.call`` records into the copy only.
- A test that uses ``built`` gets the ledger the pack was built from (the second template),
  as it did when the pack was built during its setup; every other test gets the unbuilt one.
- A copy's SDK client is made on its first ``Scenario.call`` and closed before its ledger.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest

import ledger
from ledger import manifest
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
    client: Any = None
    # Builds ``client`` on the first call (most copies never record again: an SDK client
    # costs two TLS contexts to make).
    connect: Callable[[], Any] | None = field(default=None, repr=False)

    def call(self, chunks: int, n: int = 1) -> list[str]:
        """One more recorded teacher call; the texts of its choices."""
        if self.client is None:
            assert self.connect is not None, "a scenario without a client"
            self.client = self.connect()
        response = self.client.chat.completions.create(
            model="gpt-4o", messages=CHAT, n=n, extra_headers={"x-fake-chunks": str(chunks)}
        )
        return [choice.message.content for choice in response.choices]


@dataclass(frozen=True, slots=True)
class Template:
    """A recorded scenario at rest: ``folder`` holds ``home/`` (closed) and ``train.jsonl``,
    and ``pack/`` when ``build`` is the result of building it."""

    folder: Path
    outputs: tuple[str, ...]
    build: manifest.BuildResult | None = None


def _near_copy(text: str) -> str:
    # Two words of a long output changed: the near stage's job (sketch similarity).
    words = text.split()
    words[3], words[10] = "changed", "edited"
    return " ".join(words)


@contextmanager
def _client(lg: ledger.Ledger, server: FakeProviderServer) -> Iterator[Any]:
    """The real openai SDK, wrapped to record into ``lg``."""
    bare = openai.OpenAI(base_url=server.openai_base_url, api_key=API_KEY, max_retries=0)
    client = wrap(bare, ledger=lg, purpose="train-model", dataset="tutor", durability="sync",
                  hosts={"127.0.0.1": "openai"})  # fmt: skip
    try:
        yield client
    finally:
        client.close()
        bare.close()


@contextmanager
def scenario_on(
    lg: ledger.Ledger, home: Path, server: FakeProviderServer, folder: Path
) -> Iterator[Scenario]:
    """Record teacher calls into ``lg`` with the real openai SDK and write a dataset of them."""
    with _client(lg, server) as client:
        scene = Scenario(lg, home, folder / "train.jsonl", [], client)
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


@contextmanager
def scenario_copy(
    template: Template, server: FakeProviderServer, folder: Path
) -> Iterator[Scenario]:
    """A private copy of ``template`` under ``folder``, its ledger open (closed on exit)."""
    shutil.copytree(template.folder / "home", folder / "home")
    shutil.copy2(template.folder / "train.jsonl", folder / "train.jsonl")
    if template.build is not None:
        shutil.copytree(template.folder / "pack", folder / "pack")
    lg = open_ledger(folder / "home")
    try:
        with ExitStack() as clients:  # closed before the ledger

            def connect() -> Any:
                return clients.enter_context(_client(lg, server))

            home, dataset = folder / "home", folder / "train.jsonl"
            yield Scenario(lg, home, dataset, [*template.outputs], connect=connect)
    finally:
        lg.close()


@pytest.fixture(scope="session")
def scenario_template(
    fake_provider: FakeProviderServer,  # noqa: F811 - the imported fixture
    tmp_path_factory: pytest.TempPathFactory,
) -> Template:
    """The teacher calls, recorded once for the whole session."""
    folder = tmp_path_factory.mktemp("scenario")
    lg = open_ledger(folder / "home")
    try:
        with scenario_on(lg, folder / "home", fake_provider, folder) as scene:
            outputs = tuple(scene.outputs)
    finally:
        lg.close()  # the copies must see a finished SQLite file, not a live one
    return Template(folder, outputs)


@pytest.fixture(scope="session")
def built_template(
    scenario_template: Template,
    fake_provider: FakeProviderServer,  # noqa: F811 - the imported fixture
    tmp_path_factory: pytest.TempPathFactory,
) -> Template:
    """The scenario after one build of ``tutor`` (folder pack, default report), once."""
    folder = tmp_path_factory.mktemp("built")
    with scenario_copy(scenario_template, fake_provider, folder) as scene:
        result = manifest.build(
            scene.lg, [scene.dataset], folder / "pack", name="tutor", profile=FACTS
        )
    return Template(folder, scenario_template.outputs, result)


@pytest.fixture
def scenario(
    request: pytest.FixtureRequest,
    fake_provider: FakeProviderServer,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> Iterator[Scenario]:
    name = "built_template" if "built" in request.fixturenames else "scenario_template"
    template: Template = request.getfixturevalue(name)
    with scenario_copy(template, fake_provider, tmp_path) as scene:
        yield scene


def built_result(template: Template, folder: Path) -> manifest.BuildResult:
    """The template's build result, pointing at the test's copy of the pack."""
    assert template.build is not None, "not a built template"
    return dataclasses.replace(template.build, path=folder / "pack")


@pytest.fixture
def facts() -> DeclaredFacts:
    return FACTS
