"""`ledger manifest build|verify` through the mounted CLI: exit codes, --json, --zip, bad input."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from typer.testing import CliRunner

from ledger.cli import app
from tests.manifest.conftest import Scenario

runner = CliRunner()


def _profile(tmp_path: Path) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text('competes_with_provider: "no"\n', encoding="utf-8")
    return path


def test_build_then_verify_folder_and_zip(scenario: Scenario, tmp_path: Path) -> None:
    vkey = scenario.lg.verifier_key
    scenario.lg.close()  # the CLI opens the ledger itself, for writing
    home = ["--home", str(scenario.home)]
    for out, extra in [(tmp_path / "pack", []), (tmp_path / "pack2", ["--zip"])]:
        result = runner.invoke(app, [*home, "manifest", "build", str(scenario.dataset),
                                     "--out", str(out), "--facts", str(_profile(tmp_path)),
                                     "--name", "tutor", "--json", *extra])  # fmt: skip
        assert result.exit_code == 0, result.stderr
        built = json.loads(result.stdout)
        assert built["verifier_key"] == vkey
        assert built["summary"]["examples"] == 6
    key_file = tmp_path / "log.vkey"
    key_file.write_text(vkey + "\n", encoding="utf-8")
    for pack, key in [(tmp_path / "pack", vkey), (tmp_path / "pack2.zip", str(key_file))]:
        result = runner.invoke(app, ["manifest", "verify", str(pack), "--key", key,
                                     "--dataset", str(scenario.dataset)])  # fmt: skip
        assert (result.exit_code, result.stderr) == (0, ""), result.stderr
        assert "ok   dataset" in result.stdout
    # A --checkpoint file that is no checkpoint the key signed is refused before any check:
    # a wrong file given, not a failing pack.
    result = runner.invoke(app, ["manifest", "verify", str(tmp_path / "pack"), "--key", vkey,
                                 "--checkpoint", str(key_file)])  # fmt: skip
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "earlier checkpoint" in result.stderr
    assert "malformed note" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
    # The second build of the same name carries a consistency proof from the first.
    assert json.loads((tmp_path / "pack" / "consistency.json").read_text())["from"] == []
    with zipfile.ZipFile(tmp_path / "pack2.zip") as archive:
        earlier = json.loads(archive.read("consistency.json"))["from"]
    assert [item["seq"] for item in earlier] == [1]
    data = tmp_path / "pack" / "records.jsonl.gz"
    data.write_bytes(data.read_bytes()[:-1] + bytes([data.read_bytes()[-1] ^ 1]))
    result = runner.invoke(app, ["manifest", "verify", str(tmp_path / "pack"), "--key", vkey,
                                 "--json"])  # fmt: skip
    assert result.exit_code == 1
    assert json.loads(result.stdout)["failure"]["where"] == "records.jsonl.gz"
    assert "records.jsonl.gz" in result.stderr


def test_bad_input_exits_2(scenario: Scenario, tmp_path: Path) -> None:
    vkey = scenario.lg.verifier_key
    scenario.lg.close()
    (tmp_path / "empty").mkdir()
    cases = [
        (["manifest", "verify", str(tmp_path / "empty"), "--key", vkey], "not an evidence pack"),
        (["manifest", "verify", str(scenario.dataset), "--key", vkey], "not an evidence pack"),
        (["manifest", "verify", str(tmp_path / "nothing"), "--key", vkey], "no evidence pack"),
        (["manifest", "verify", str(tmp_path / "empty"), "--key", "garbage"], ""),
        (["--home", str(scenario.home), "manifest", "build", str(tmp_path / "missing.jsonl"),
          "--out", str(tmp_path / "p")], "missing.jsonl"),
        (["--home", str(scenario.home), "manifest", "build", str(scenario.dataset),
          "--out", str(scenario.dataset)], "already exists"),
    ]  # fmt: skip
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_build_names_the_rows_it_skipped(scenario: Scenario, tmp_path: Path) -> None:
    scenario.lg.close()
    dataset = tmp_path / scenario.dataset.name
    good = scenario.dataset.read_bytes()
    dataset.write_bytes(good + b"{not json\n")
    args = ["manifest", "build", str(dataset), "--out", str(tmp_path / "p"), "--no-report"]
    result = runner.invoke(app, ["--home", str(scenario.home), *args])
    assert result.exit_code == 0, result.stderr
    bad_line = good.count(b"\n") + 1
    assert "1 bad row(s) skipped, not in the pack:" in result.stdout
    assert f"  bad row: {dataset}:{bad_line}: not valid JSON" in result.stdout
