"""Shared helpers for the dataset-audit tests: entry bodies as the recorder writes them, rows."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ledger
from ledger.crypto.fingerprint import output_record
from ledger.log.records import uuid7
from ledger.policy import DeclaredFacts

# The openai and anthropic terms allow training when the student does not compete.
FACTS = DeclaredFacts(competes_with_provider="no")
HOSTS = {"openai": "api.openai.com", "anthropic": "api.anthropic.com"}


def v2_body(
    lg: ledger.Ledger,
    outputs: Sequence[tuple[str | None, str | None]],
    *,
    dataset: str | None = "tutor",
    purpose: str | None = "train-model",
    provider: str = "openai",
    model: str = "gpt-4o",
    day: str = "2026-06-01",
) -> dict[str, Any]:
    """A version-2 body whose outputs are ``(answer, reasoning)`` pairs, keyed as the recorder
    keys them (the ledger's fingerprint key of ``dataset``)."""
    key = lg.fingerprint_key(dataset)
    return {
        "v": 2,
        "id": uuid7(),
        "started_at": f"{day}T10:00:00.000000Z",
        "provider": provider,
        "operation": "chat",
        "endpoint": {
            "scheme": "https",
            "host": HOSTS.get(provider, "example.com"),
            "port": 443,
            "path": "/v1/chat/completions",
        },
        "request_model": model,
        "response_model": model,
        "account": "acct-1",
        "status": 200,
        "finish_reasons": ["stop"] * len(outputs),
        "fingerprint_version": 1,
        "outputs": [
            {"index": i, **output_record(key, answer, reasoning)}
            for i, (answer, reasoning) in enumerate(outputs)
        ],
        "purpose": purpose,
        "dataset": dataset,
        "tags": [],
    }


def chat_row(*assistant: str, **extra: Any) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for text in assistant:
        messages += [
            {"role": "user", "content": "question"},
            {"role": "assistant", "content": text},
        ]
    return {"messages": messages, **extra}


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any] | str]) -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def by_line(audit: Any) -> dict[int, Any]:
    return {result.line: result for result in audit.results}
