"""`ledger audit dataset` through the mounted CLI: exit codes, --json, --records, key files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.crypto.fingerprint import dataset_key, key_file_text
from tests.audit.helpers import chat_row, v2_body, write_jsonl
from tests.recorder.helpers import open_ledger

runner = CliRunner()
TIDES = (
    "Tides are caused mainly by the gravitational pull of the Moon on the oceans, with the Sun "
    "adding a smaller effect; when both line up we get spring tides, and neap tides otherwise."
)
STEAM = (
    "A steam engine boils water in a closed boiler, and the expanding steam pushes a piston "
    "back and forth inside a cylinder, which a crank then turns into rotary motion."
)
HUMAN = "I just like baking bread on Sundays, it calms me down after a long and busy week."


@pytest.fixture
def home(tmp_path: Path) -> Path:
    lg = open_ledger(tmp_path / "home")
    lg.append_many([v2_body(lg, [(TIDES, None)]), v2_body(lg, [(STEAM, None)])])
    lg.close()
    return tmp_path / "home"


@pytest.fixture
def facts(tmp_path: Path) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text('competes_with_provider: "no"\n', encoding="utf-8")
    return path


def _run(home: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--home", str(home), "audit", "dataset", *args])
    return result.exit_code, result.stdout, result.stderr


def test_gate_passes_when_everything_links_and_is_allowed(
    home: Path, facts: Path, tmp_path: Path
) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [chat_row(TIDES), chat_row(STEAM.upper())])
    code, out, err = _run(home, str(data), "--facts", str(facts))
    assert (code, err) == (0, "")
    assert "2 linked (100.0%)" in out
    assert "exact 1" in out
    assert "near 1" in out
    # Without the organization profile the terms cannot be read: unknown, the gate fails.
    code, out, _ = _run(home, str(data))
    assert code == 1
    assert "unknown 2" in out


def test_json_summary_and_records(home: Path, facts: Path, tmp_path: Path) -> None:
    data = write_jsonl(
        tmp_path / "d.jsonl", [chat_row(TIDES), chat_row(HUMAN), chat_row(STEAM.upper())]
    )
    records = tmp_path / "records.jsonl"
    code, out, _ = _run(home, str(data), "--facts", str(facts), "--json", "--records", str(records))
    assert code == 1  # one unlinked row
    document = json.loads(out)
    summary = document["summary"]
    assert {"examples", "linked", "unlinked", "by_match", "by_verdict"} <= set(summary)
    assert (summary["examples"], summary["linked"], summary["unlinked"]) == (3, 2, 1)
    assert summary["by_match"] == {"id": 0, "exact": 1, "template": 0, "part": 0, "near": 1,
                                   "none": 1}  # fmt: skip
    assert summary["by_verdict"]["allowed"] == 2
    assert summary["first_unlinked"] == [{"index": 1, "file": str(data), "line": 2}]
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    # --records never replaces a file: given the dataset's own path, it leaves it whole.
    kept = data.read_bytes()
    code, _, err = _run(home, str(data), "--facts", str(facts), "--records", str(data))
    assert code == 2
    assert "already exists" in err
    assert data.read_bytes() == kept
    assert [(r["index"], r["line"], r["match"], r["verdict"]) for r in lines] == [
        (0, 1, "exact", "allowed"), (1, 2, "none", None), (2, 3, "near", "allowed")
    ]  # fmt: skip
    assert lines[0]["links"] == [{"leaf_index": 0, "match": "exact", "output": 0,
                                  "kind": "answer"}]  # fmt: skip
    assert lines[2]["links"][0]["leaf_index"] == 1
    assert lines[2]["links"][0]["similarity"] == 1.0
    code, _, _ = _run(home, str(data), "--facts", str(facts), "--max-unlinked", "34")
    assert code == 0
    code, _, _ = _run(home, str(data), "--facts", str(facts), "--max-unlinked", "33")
    assert code == 1


def test_bad_rows_strict_and_bad_input(home: Path, facts: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [chat_row(TIDES), "{oops"])
    code, out, _ = _run(home, str(data), "--facts", str(facts), "--json")
    assert code == 1  # a bad row counts as unlinked
    document = json.loads(out)
    assert document["bad_rows"][0]["line"] == 2
    assert document["bad_rows"][0]["error"].startswith("not valid JSON")
    code, _, _ = _run(home, str(data), "--facts", str(facts), "--max-unlinked", "50")
    assert code == 0
    code, out, err = _run(home, str(data), "--strict")
    assert code == 2
    assert err.startswith(f"ledger: bad row {data}:2: not valid JSON")
    assert len(err.strip().splitlines()) == 1
    for args, message in (
        ([str(tmp_path / "missing.jsonl")], "no dataset file"),
        ([str(data), "--purpose", "fun"], "unknown purpose"),
        ([str(data), "--format", "xml"], "unknown --format"),
        ([str(data), "--facts", str(tmp_path / "none.yaml")], "cannot read facts file"),
        ([str(data), "--fingerprint-key", str(tmp_path / "none.key")], "cannot read key file"),
        ([str(data), "--wrapper", "("], "does not compile"),
    ):
        code, _, err = _run(home, *args)
        assert code == 2, args
        assert message in err
    code, _, err = _run(tmp_path / "nowhere", str(data))
    assert code == 2
    assert "no ledger" in err


def test_an_auditor_with_one_datasets_key(home: Path, facts: Path, tmp_path: Path) -> None:
    from ledger.log.keyring import read_fingerprint_secret

    secret = read_fingerprint_secret(home)
    assert secret is not None
    key_file = tmp_path / "tutor.key"
    exported = runner.invoke(app, ["--home", str(home), "audit", "key", "tutor", "--out",
                                   str(key_file)])  # fmt: skip
    assert exported.exit_code == 0
    assert key_file.read_text() == key_file_text("tutor", dataset_key(secret, "tutor"))
    assert key_file.stat().st_mode & 0o777 == 0o600
    # An existing file is not written into: it keeps its text, and its mode could be wider.
    shared = tmp_path / "shared.txt"
    shared.write_text("notes\n")
    again = runner.invoke(app, ["--home", str(home), "audit", "key", "tutor", "--out",
                                str(shared)])  # fmt: skip
    assert again.exit_code == 2
    assert "already exists" in again.stderr
    assert shared.read_text() == "notes\n"
    printed = runner.invoke(app, ["--home", str(home), "audit", "key"])
    assert printed.stdout == key_file_text(None, dataset_key(secret, None))
    data = write_jsonl(tmp_path / "d.jsonl", [chat_row(TIDES), chat_row(STEAM)])
    # The auditor's copy of the ledger has no secret: only the key file opens the fingerprints.
    (home / "keys" / "fingerprint.secret").unlink()
    code, out, _ = _run(
        home, str(data), "--facts", str(facts), "--fingerprint-key", str(key_file), "--json"
    )
    assert code == 0
    assert json.loads(out)["summary"]["by_match"]["exact"] == 2
    wrong = tmp_path / "wrong.key"
    wrong.write_text(key_file_text("tutor", dataset_key(b"x" * 32, "tutor")))
    code, out, _ = _run(home, str(data), "--fingerprint-key", str(wrong), "--json")
    assert code == 1
    assert json.loads(out)["summary"]["by_match"]["none"] == 2
    code, out, _ = _run(home, str(data), "--json")
    notes = json.loads(out)["notes"]
    assert code == 1
    assert notes == [
        "no fingerprint key for dataset 'tutor': its version 2 entries cannot be linked"
    ]


def test_csv_text_field_and_purpose(home: Path, facts: Path, tmp_path: Path) -> None:
    table = tmp_path / "d.csv"
    table.write_text(f'id,reply\n1,"{TIDES}"\n2,"{STEAM}"\n', encoding="utf-8")
    code, out, _ = _run(
        home, str(table), "--text-field", "reply", "--facts", str(facts), "--purpose",
        "evaluate", "--json", "--no-conduct",
    )  # fmt: skip
    summary = json.loads(out)["summary"]
    assert code == 0
    assert summary["purpose"] == "evaluate"
    assert summary["by_match"]["exact"] == 2
    # Recorded for train-model, audited as an evaluation set: drift is reported either way.
    assert summary["purpose_drift"] == 2
    assert summary["drift_purposes"] == {"train-model": 2}
