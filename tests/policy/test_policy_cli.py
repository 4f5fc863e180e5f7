"""`ledger policy ...` through Typer's CliRunner, with the sub-app mounted in a local Typer the
way the main CLI mounts it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ledger.cli.policy import app as policy_app
from ledger.policy.odrl import version_from_odrl

root = typer.Typer()
root.add_typer(policy_app, name="policy")
runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_FACTS_FILE", raising=False)


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(root, ["policy", *args])
    return result.exit_code, result.stdout, result.stderr


def test_list_json_and_text() -> None:
    code, out, _ = run("list", "--json")
    assert code == 0
    rows = json.loads(out)
    ids = {row["id"] for row in rows}
    assert {"openai", "anthropic", "llama", "gemma", "bedrock", "cohere"} <= ids
    openai = next(row for row in rows if row["id"] == "openai")
    assert openai["versions"][0] == {
        "id": "tou-2023-03-14",
        "effective_from": "2023-03-14",
        "effective_until": "2023-11-13",
    }
    code, out, _ = run("list")
    assert code == 0
    assert "chosen by model id" in out
    assert "osa-2026-01-01" in out


def test_show_by_provider_slug_and_json() -> None:
    code, out, _ = run("show", "gcp.gemini", "--json")
    assert code == 0
    (policy,) = json.loads(out)
    assert policy["id"] == "gemini-api"
    assert set(policy["version_sha256"]) == {v["id"] for v in policy["versions"]}
    code, out, _ = run("show", "cohere")
    assert code == 0
    assert "UNVERIFIED" in out
    assert "not legal advice" in out


def test_show_unknown_is_input_error() -> None:
    code, out, err = run("show", "nobody")
    assert code == 2
    assert out == ""
    assert err.strip() == "ledger: no policy or provider named 'nobody'"


def test_lint_shipped_ok() -> None:
    code, out, _ = run("lint")
    assert code == 0
    assert "checked: ok" in out
    code, out, _ = run("lint", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True
    assert report["problems"] == []


def test_lint_bad_file_exits_1_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: bad\ntitle: t\nlayer: terms\nassigner: a\nassigner_url: https://a.example\n"
        "providers: [bad]\nversions:\n  - id: v1\n    effective_from: 2025-01-01\n"
        "    date_basis: effective\n    date_confidence: Q\n"
        "    documents:\n      - {id: d, title: t, url: https://a.example, confidence: P}\n",
        encoding="utf-8",
    )
    code, out, err = run("lint", str(bad))
    assert code == 1
    assert f"{bad}:11: versions.0.date_confidence" in err
    assert "1 problem(s)" in out
    code, out, _ = run("lint", str(bad), "--json")
    assert code == 1
    (problem,) = json.loads(out)["problems"]
    assert problem["line"] == 11


def test_export_odrl() -> None:
    code, out, _ = run("export", "--format", "odrl", "xai")
    assert code == 0
    docs = json.loads(out)
    assert [d["dl:version"] for d in docs] == ["aup-2025-01-02", "aup-2026-06-26", "aup-2026-08-14"]
    assert version_from_odrl(docs[1]).id == "aup-2026-06-26"
    code, _, err = run("export", "--format", "cedar")
    assert code == 2
    assert "unknown export format 'cedar'" in err


def test_check_json() -> None:
    code, out, _ = run(
        "check",
        "openai",
        "gpt-4o",
        "--purpose",
        "train-model",
        "--at",
        "2025-07-01T10:00:00Z",
        "--fact",
        "competes_with_provider=yes",
        "--fact",
        "student_kind=llm",
        "--fact",
        "on_provider_platform=no",
        "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert data["verdict"] == "prohibited"
    assert data["rules"][0]["rule_id"] == "openai/osa-2025-05-31/compete"
    assert data["duties"] == []
    assert data["policy_versions"][0]["version"] == "osa-2025-05-31"
    assert "not legal advice" in data["disclaimer"]


def test_check_exits_0_for_any_verdict_and_reports_duties() -> None:
    code, out, _ = run(
        "check",
        "self-hosted",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--purpose",
        "train-model",
        "--at",
        "2025-01-01",
        "--fact",
        "distributed=yes",
        "--fact",
        "monthly_active_users=10",
    )
    assert code == 0
    assert out.startswith("Verdict: CONDITIONAL")
    assert "not legal advice" in out
    assert "picked by model" in out
    assert 'start the student\'s name with "Llama"' in out
    assert 'display "Built with Llama"' in out


def test_check_text_marks_unverified_and_missing_facts() -> None:
    code, out, _ = run(
        "check", "cohere", "command-r", "--purpose", "train-model", "--at", "2025-01-01"
    )
    assert code == 0
    assert out.startswith("Verdict: UNKNOWN")
    assert "UNVERIFIED (confidence U)" in out
    assert "Undeclared facts needed: competes_with_provider" in out


def test_check_uses_the_profile_and_fact_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = tmp_path / "org.yaml"
    profile.write_text("competes_with_provider: 'yes'\nwritten_permission: false\n")
    monkeypatch.setenv("LEDGER_FACTS_FILE", str(profile))
    args = ["check", "x_ai", "grok-4", "--purpose", "train-model", "--at", "2026-01-01", "--json"]
    code, out, _ = run(*args)
    assert json.loads(out)["verdict"] == "prohibited"
    code, out, _ = run(*args, "--fact", "competes_with_provider=no")
    assert code == 0
    data = json.loads(out)
    assert data["verdict"] == "allowed"
    assert data["facts"] == {"competes_with_provider": "no", "written_permission": False}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--purpose", "sell"], "unknown purpose 'sell'"),
        (["--purpose", "evaluate", "--at", "last tuesday"], "is not an ISO 8601 date"),
        (["--purpose", "evaluate", "--fact", "colour=blue"], "unknown fact 'colour'"),
        (["--purpose", "evaluate", "--fact", "distributed"], "is not key=value"),
        (["--purpose", "evaluate", "--modality", "smell"], "unknown output modality"),
        (
            ["--purpose", "evaluate", "--facts-file", "/nonexistent/org.yaml"],
            "cannot read facts file",
        ),
    ],
)
def test_check_bad_input_exits_2_with_one_line(args: list[str], message: str) -> None:
    code, out, err = run("check", "openai", "gpt-4o", *args)
    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1
