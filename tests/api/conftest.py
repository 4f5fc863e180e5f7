"""A ledger with entries in two datasets, an app serving it, and one token of every kind."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ledger._ledger import Ledger
from ledger.api import create_app
from ledger.api.keys import register_recorder_key
from ledger.api.settings import ApiSettings
from ledger.api.tokens import create_token, revoke_token
from ledger.crypto.keys import SigningKey
from ledger.log.records import seal_entry
from ledger.settings import Settings

DATASETS = ("alpha", "beta")


def body(n: int) -> dict[str, Any]:
    return {
        "provider": "openai" if n % 3 else "anthropic",
        "request_model": "gpt-4o-mini" if n % 3 else "claude-3-5-haiku",
        "purpose": "evaluate",
        "dataset": DATASETS[n % 2],
        "account": f"acct{n % 2}",
        "n": n,
    }


@dataclass
class Served:
    app: FastAPI
    client: TestClient
    tokens: dict[str, str]
    recorder_key: SigningKey
    ledger_id: str
    verifier_key: str
    settings: ApiSettings

    def headers(self, who: str) -> dict[str, str]:
        return {} if who == "none" else {"Authorization": f"Bearer {self.tokens[who]}"}

    def seal(self, extra: dict[str, Any]) -> dict[str, Any]:
        return seal_entry({"purpose": "evaluate", **extra}, self.recorder_key, self.ledger_id)


def api_settings(home: Path, database_url: str, **extra: Any) -> ApiSettings:
    return ApiSettings(
        home=home,
        database_url=database_url,
        checkpoint_every=0,
        checkpoint_interval=0,
        api_checkpoint_age=0,
        **extra,
    )


def fill(home: Path, database_url: str | None, count: int, start: int = 0) -> tuple[str, str]:
    """Append ``count`` entries to the ledger there; return (install id, verifier key)."""
    settings = Settings(
        home=home, database_url=database_url, checkpoint_every=0, checkpoint_interval=0
    )
    with Ledger.from_settings(settings) as lg:
        lg.append_many([body(n) for n in range(start, start + count)])
        lg.checkpoint()
        return lg.install_id, lg.verifier_key


ServeFactory = Callable[..., Served]


def open_served(home: Path, database_url: str, count: int = 12, **extra: Any) -> Served:
    """A served ledger with ``count`` entries and one token of every kind (close it after)."""
    ledger_id, verifier_key = fill(home, database_url, count)
    settings = api_settings(home, database_url, **extra)
    app = create_app(settings)
    service = app.state.service
    writer = service.writer
    key = SigningKey.generate()
    register_recorder_key(writer, key.public_key.raw, "test-recorder")
    engine = writer.store.engine
    tokens = {
        role: create_token(engine, role=role, name=role, **kw)[0]
        for role, kw in (
            ("admin", {}),
            ("auditor", {}),
            ("recorder", {"recorder_key_id": key.key_id}),
        )
    }
    tokens["scoped_beta"] = create_token(
        engine, role="auditor", name="beta only", datasets=["beta"]
    )[0]
    tokens["expired"] = create_token(
        engine, role="admin", name="old", expires_in=timedelta(seconds=-1)
    )[0]
    revoked, info = create_token(engine, role="admin", name="gone")
    revoke_token(engine, info.token_id)
    tokens["revoked"] = revoked
    return Served(app, TestClient(app), tokens, key, ledger_id, verifier_key, settings)


def build_alpha_pack(served: Served, folder: Path) -> Path:
    """Build 1, dataset name ``alpha``: a stored evidence pack zip of one unlinked example."""
    from ledger.manifest import build
    from tests.audit.helpers import chat_row, write_jsonl

    dataset = write_jsonl(folder / "alpha.jsonl", [chat_row("An answer written by a person.")])
    writer = served.app.state.service.writer
    return build(writer, [dataset], folder / "alpha-pack", name="alpha", zip_pack=True).path


def close_served(served: Served) -> None:
    served.client.close()
    served.app.state.service.close()


@pytest.fixture
def serve(database_url: str, tmp_path: Path) -> Iterator[ServeFactory]:
    """Build a served ledger with ``count`` entries; everything closed at teardown."""
    opened: list[Served] = []

    def factory(count: int = 12, **extra: Any) -> Served:
        served = open_served(tmp_path / "home", database_url, count, **extra)
        opened.append(served)
        return served

    yield factory
    for served in opened:
        close_served(served)


@pytest.fixture
def served(serve: ServeFactory) -> Served:
    return serve()
