"""`ledger policy ...` through Typer's CliRunner, with the sub-app mounted in a local Typer the
way the main CLI mounts it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ledger.cli.policy import app as policy_app
from ledger.policy.loader import default_policies
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
    counts = openai["rules_by_confidence"]
    assert set(counts) == {"P", "C", "S", "U"}
    assert counts["P"] > counts["S"] > 0  # the Business Terms rules are reported only
    assert openai["versions"][0] == {
        "id": "tou-2023-03-14",
        "effective_from": "2023-03-14",
        "effective_until": "2024-01-09",
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
    code, out, _ = run("show", "openai")
    assert code == 0
    assert "read from: OTA-old OpenAI/Terms of Service.md, commit a1da2dc" in out
    assert "[S UNVERIFIED]" in out  # the Business Terms text was not read
    assert "not legal advice" in out


def test_show_unknown_is_input_error() -> None:
    code, out, err = run("show", "nobody")
    assert code == 2
    assert out == ""
    assert err.strip().startswith("ledger: unknown provider 'nobody'")
    assert len(err.strip().splitlines()) == 1


def test_show_accepts_aliases() -> None:
    code, out, _ = run("show", "xai", "--json")
    assert code == 0
    assert [p["id"] for p in json.loads(out)] == ["xai"]
    code, out, _ = run("show", "bedrock", "--json")
    assert code == 0
    assert [p["id"] for p in json.loads(out)] == ["bedrock"]


def test_check_accepts_an_alias_and_refuses_a_typo() -> None:
    code, out, _ = run("check", "xai", "grok-4", "--purpose", "evaluate", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["call"]["provider"] == "x_ai"
    assert all(layer["policy"] == "xai" for layer in data["layers"])
    code, out, err = run("check", "xaii", "grok-4", "--purpose", "evaluate")
    assert code == 2
    assert out == ""
    assert err.strip() == "ledger: unknown provider 'xaii'; did you mean 'x_ai'?"


def test_lint_folder_without_policies_is_bad_input(tmp_path: Path) -> None:
    code, out, err = run("lint", str(tmp_path))
    assert code == 2
    assert out == ""
    assert "no policy files" in err


def test_lint_missing_path_is_bad_input(tmp_path: Path) -> None:
    code, out, err = run("lint", str(tmp_path / "nonexistent"))
    assert code == 2
    assert out == ""
    assert err.strip() == f"ledger: no such file or folder: {tmp_path / 'nonexistent'}"


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
    expected = [v.id for v in default_policies().get("xai").versions]  # type: ignore[union-attr]
    assert [d["dl:version"] for d in docs] == expected
    assert version_from_odrl(docs[1]).id == expected[1]
    code, json_out, _ = run("export", "xai", "--json")
    assert code == 0
    assert json.loads(json_out) == docs
    code, _, err = run("export", "xaii")
    assert code == 2
    assert "did you mean 'x_ai'" in err
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
    assert "Duties:" in out


def test_check_text_marks_unverified_and_missing_facts() -> None:
    code, out, _ = run("check", "openai", "gpt-4", "--purpose", "train-model", "--at", "2024-06-01")
    assert code == 0
    assert out.startswith("Verdict: UNKNOWN")
    # The Business Terms text was not read: the clause is shown as reported, not verified.
    assert "UNVERIFIED (confidence S)" in out
    assert "UNVERIFIED source (confidence S): OpenAI Business Terms" in out
    assert "Undeclared facts needed: competes_with_provider" in out
    code, out, _ = run(
        "check", "cohere", "command-r", "--purpose", "train-model", "--at", "2025-01-01"
    )
    assert code == 0
    assert out.startswith("Verdict: UNKNOWN")
    assert "UNVERIFIED source (confidence U): Cohere Terms of Use" in out
    assert "unreviewed" in out


def test_check_uses_the_profile_and_fact_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = tmp_path / "org.yaml"
    profile.write_text(
        "competes_with_provider: 'yes'\nwritten_permission: false\non_provider_platform: no\n"
        "student_kind: llm\n"
    )
    monkeypatch.setenv("LEDGER_FACTS_FILE", str(profile))
    args = ["check", "openai", "gpt-4o", "--purpose", "train-model", "--at", "2026-01-01", "--json"]
    code, out, err = run(*args)
    assert code == 0, err
    assert json.loads(out)["verdict"] == "prohibited"
    code, out, _ = run(*args, "--fact", "competes_with_provider=no")
    assert code == 0
    data = json.loads(out)
    assert data["verdict"] == "allowed"
    assert data["facts"] == {
        "competes_with_provider": "no",
        "on_provider_platform": False,
        "student_kind": "llm",
        "written_permission": False,
    }


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


def test_diff_reports_rule_changes_between_two_days() -> None:
    code, out, _ = run("diff", "openai", "--from", "2023-06-01", "--to", "2026-02-01", "--json")
    assert code == 0
    (found,) = json.loads(out)
    assert found["policy"] == "openai"
    assert found["from"]["version"] != found["to"]["version"]
    assert found["changed"] is True
    kinds = {c["change"] for key in ("added", "removed", "reworded") for c in found[key]}
    assert kinds
    code, text, _ = run("diff", "openai", "--from", "2023-06-01", "--to", "2026-02-01")
    assert code == 0
    assert f"{found['from']['version']} -> {found['to']['version']}" in text


def test_diff_same_version_is_unchanged() -> None:
    code, out, _ = run("diff", "xai", "--from", "2026-08-20", "--to", "2026-08-21")
    assert code == 0
    assert "unchanged (the same version)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["openai", "--from", "2025-13-01", "--to", "2026-01-01"], "is not a date"),
        (["openai", "--from", "2026-01-01", "--to", "2025-01-01"], "is before --from"),
        (["opnai", "--from", "2025-01-01", "--to", "2026-01-01"], "did you mean 'openai'"),
    ],
)
def test_diff_bad_input_exits_2(args: list[str], message: str) -> None:
    code, out, err = run("diff", *args)
    assert code == 2
    assert out == ""
    assert message in err


def test_check_takes_a_provider_slug_of_custom_policies(tmp_path: Path) -> None:
    # A team's own policy file may govern a provider the shipped vocabulary does not know.
    custom = tmp_path / "inhouse.yaml"
    custom.write_text(
        "id: inhouse\ntitle: In-house gateway terms\nlayer: terms\nassigner: Us\n"
        "assigner_url: https://us.example\nproviders: [inhouse-gw]\nversions:\n"
        "  - id: v1\n    effective_from: 2025-01-01\n    date_basis: effective\n"
        "    date_confidence: P\n    documents:\n"
        "      - {id: d, title: t, url: https://us.example/t, confidence: P, evidence: ours}\n"
        "    rules: []\n",
        encoding="utf-8",
    )
    args = ["--purpose", "evaluate", "--at", "2025-06-01", "--policies", str(custom), "--json"]
    code, out, err = run("check", "inhouse-gw", "m1", *args)
    assert code == 0, err
    assert json.loads(out)["call"]["provider"] == "inhouse-gw"
    code, _, err = run("check", "inhouse-gww", "m1", *args)
    assert code == 2
    assert "unknown provider 'inhouse-gww'" in err


def test_evidence_table_names_every_document_and_its_snapshot() -> None:
    code, out, _ = run("evidence", "--json")
    assert code == 0
    rows = json.loads(out)
    shipped = default_policies()
    documents = sum(len(v.documents) for p in shipped.policies for v in p.versions)
    assert len(rows) == documents
    tou = next(r for r in rows if r["policy"] == "openai" and r["version"] == "tou-2023-03-14")
    assert "a1da2dc" in tou["evidence"]
    assert tou["rules"] == 5
    assert tou["verified"] is True
    business = next(r for r in rows if r["document"] == "business-terms")
    assert business["verified"] is False
    code, text, _ = run("evidence", "xai")
    assert code == 0
    assert "xai/tos-2024-06-04/tos [P] 3 rule(s)" in text
    assert "read from: OTA-old xAI/Terms of Service.md, commit 518123d" in text
    assert "UNVERIFIED" not in text.split("xai/enterprise-2024-09-05")[0]
