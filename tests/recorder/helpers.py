"""Shared helpers for the recorder tests (not fixtures: conftest.py belongs to the fake server)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ledger
from ledger.crypto.fingerprint import output_record
from ledger.entry_body import ENTRY_VERSION

API_KEY = "sk-test-LEAKCANARY-9f3b2a7c"
HOSTS = {"127.0.0.1": "openai"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def open_ledger(home: Path, **settings: Any) -> ledger.Ledger:
    """A fresh SQLite ledger under ``home`` (explicit settings: tests never read LEDGER_*)."""
    home.mkdir(parents=True, exist_ok=True)
    return ledger.Ledger.from_settings(
        ledger.Settings(home=home, database_url=f"sqlite:///{home / 'ledger.db'}", **settings)
    )


def bodies(lg: ledger.Ledger) -> list[dict[str, Any]]:
    """Every entry body in leaf order."""
    return [stored.body for stored in lg.entries()]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def answers(body: Mapping[str, Any]) -> list[str | None]:
    """The keyed answer fingerprints of a version-2 body, in output order."""
    return [output["answer"] for output in body.get("outputs", [])]


def answer_fps(lg: ledger.Ledger, body: Mapping[str, Any], texts: list[str]) -> list[str | None]:
    """What ``answers(body)`` must be for outputs ``texts``, under the body's dataset key."""
    key = lg.fingerprint_key(body["dataset"])
    return [output_record(key, text, None)["answer"] for text in texts]


def client_headers(sent: Mapping[str, str]) -> dict[str, str]:
    """The SDK identity headers the recorder should have kept from what the server received."""
    return {
        k: v
        for k, v in sent.items()
        if k.startswith("x-stainless-")
        or k in ("x-goog-api-client", "anthropic-version", "anthropic-beta")
    }


def rate_limit_headers(received: Mapping[str, str]) -> dict[str, str]:
    return {
        k.lower(): v
        for k, v in received.items()
        if k.lower().startswith(("x-ratelimit-", "anthropic-ratelimit-"))
        or k.lower() in ("retry-after", "retry-after-ms")
    }


def assert_common(body: Mapping[str, Any], *, port: int, path: str) -> None:
    """Fields every successful recorded call shares."""
    assert body["v"] == ENTRY_VERSION
    assert UUID7.match(body["id"])
    assert TIMESTAMP.match(body["started_at"])
    assert TIMESTAMP.match(body["recorded_at"])
    assert body["started_at"] <= body["recorded_at"]
    assert isinstance(body["duration_ms"], float | int)
    assert body["duration_ms"] > 0
    assert body["endpoint"] == {"scheme": "http", "host": "127.0.0.1", "port": port, "path": path}
    assert len(body["request_sha256"]) == 64
    assert body["error"] is None
