"""`ledger audit conduct` end to end: entries appended to a real SQLite ledger, read back by the
mounted CLI, findings checked in JSON and in text, and the exit codes of the CLI contract."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import ledger
from ledger.cli import app
from ledger.policy import conduct_rules
from ledger.recorder import uuid7

runner = CliRunner()
T0 = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
HOSTS = {"openai": "api.openai.com", "anthropic": "api.anthropic.com"}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LEDGER_DATABASE_URL", "LEDGER_HOME", "LEDGER_CONDUCT_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def body(lg: ledger.Ledger, seconds: float, credential: str, **kw: Any) -> dict[str, Any]:
    """An entry body as the recorder writes it (the ledger fills in ``recorder``)."""
    provider = kw.get("provider", "openai")
    status = kw.get("status", 200)
    started = (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "v": 1,
        "id": uuid7(),
        "started_at": started,
        "duration_ms": 640.25,
        "provider": provider,
        "operation": "chat" if provider == "openai" else "messages",
        "endpoint": {
            "scheme": "https",
            "host": kw.get("host", HOSTS[provider]),
            "port": 443,
            "path": "/v1/chat/completions" if provider == "openai" else "/v1/messages",
        },
        "request_model": kw.get("model", "gpt-4o"),
        "response_model": kw.get("model", "gpt-4o"),
        "response_id": None,
        "provider_request_id": f"req_{seconds}",
        "account": lg.account_fingerprint(credential),
        "org_headers": {},
        "client": {"user_agent": "python-httpx/0.28.1", "headers": {}},
        "status": status,
        "outcome": "complete",
        "error": None,
        "stream": False,
        "finish_reasons": ["stop"] if status == 200 else [],
        "usage": {"input_tokens": 12, "output_tokens": 40},
        "output_modality": "text",
        "request_sha256": hashlib.sha256(f"request {seconds}".encode()).hexdigest(),
        "response_sha256": hashlib.sha256(f"response {seconds}".encode()).hexdigest(),
        "content_encoding": None,
        "output_sha256": [],
        "rate_limit": {"retry-after": "30"} if status == 429 else {},
        "purpose": "train-model",
        "dataset": "distill-v1",
        "tags": [],
    }


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A ledger with clean anthropic traffic, then an openai 429 followed by another account."""
    with ledger.open(home=tmp_path) as lg:
        lg.append_many([body(lg, i * 10, "sk-ant-1", provider="anthropic") for i in range(5)])
        lg.append_many(
            [
                body(lg, 100, "sk-one"),
                body(lg, 110, "sk-one", status=429),
                body(lg, 115, "sk-two"),
                body(lg, 116, "sk-two"),
            ]
        )
    return tmp_path


def audit(home: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--home", str(home), "audit", "conduct", *args])
    return result.exit_code, result.stdout, result.stderr


def test_findings_in_json_exit_1(home: Path) -> None:
    code, out, err = audit(home, "--json")
    assert code == 1, err
    document = json.loads(out)
    assert document["entries_examined"] == 9
    assert document["thresholds"]["evasion_window_seconds"] == 120.0
    (finding,) = document["findings"]
    assert finding["kind"] == "rate-limit-evasion"
    assert finding["provider"] == "openai"
    assert finding["leaf_indexes"] == [6, 7, 8]
    assert finding["evidence"]["rate_limited_calls_followed"] == 1
    expected = conduct_rules("openai", "rate-limit-evasion", T0 + timedelta(seconds=110))
    assert expected, "the shipped OpenAI policy names a rate-limit clause"
    assert finding["clauses"] == [r.to_dict() for r in expected]
    assert "may breach" in finding["summary"]


def test_findings_as_text(home: Path) -> None:
    code, out, _ = audit(home)
    assert code == 1
    assert "rate-limit-evasion" in out
    assert "may breach" in out


def test_provider_and_since_filters(home: Path) -> None:
    code, out, _ = audit(home, "--json", "--provider", "anthropic")
    assert (code, json.loads(out)["entries_examined"], json.loads(out)["findings"]) == (0, 5, [])
    since = (T0 + timedelta(seconds=112)).isoformat()
    code, out, _ = audit(home, "--json", "--since", since)
    assert (code, json.loads(out)["entries_examined"], json.loads(out)["findings"]) == (0, 2, [])
    code, out, _ = audit(home, "--json", "--since", "2025-07-01")
    assert code == 1
    assert json.loads(out)["entries_examined"] == 9


def test_config_file_thresholds(home: Path, tmp_path: Path) -> None:
    strict = tmp_path / "conduct.yaml"
    strict.write_text("evasion_window_seconds: 2\n", encoding="utf-8")
    code, out, _ = audit(home, "--json", "--config", str(strict))
    assert code == 0
    assert json.loads(out)["thresholds"]["evasion_window_seconds"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "not an ISO 8601"),
        (["--config", "missing.yaml"], "cannot read conduct config"),
    ],
)
def test_bad_input_exit_2(home: Path, args: list[str], message: str) -> None:
    code, _, err = audit(home, *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_bad_config_key_exit_2(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("no_such_threshold: 3\n", encoding="utf-8")
    code, _, err = audit(home, "--config", str(config))
    assert code == 2
    assert "unknown conduct threshold" in err


def test_clean_ledger_exit_0(tmp_path: Path) -> None:
    with ledger.open(home=tmp_path) as lg:
        lg.append_many([body(lg, i * 10, "sk-one") for i in range(6)])
    code, out, _ = audit(tmp_path, "--json")
    assert code == 0
    assert json.loads(out) == {
        "entries_examined": 6,
        "findings": [],
        "thresholds": json.loads(out)["thresholds"],
    }
    code, out, _ = audit(tmp_path)
    assert code == 0
    assert "No conduct findings in 6 entries" in out


def test_missing_ledger_exit_2(tmp_path: Path) -> None:
    code, _, err = audit(tmp_path / "nowhere")
    assert code == 2
    assert "no ledger at" in err
