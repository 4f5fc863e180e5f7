"""`ledger spool status|flush` through Typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ledger.cli.spool import app
from ledger.recorder import Spool, uuid7
from tests.recorder.helpers import open_ledger

runner = CliRunner()


def _env(home: Path) -> dict[str, str]:
    return {"LEDGER_HOME": str(home), "LEDGER_DATABASE_URL": ""}


def test_status_and_flush(tmp_path: Path) -> None:
    home = tmp_path / "home"
    lg = open_ledger(home)
    lg.close()
    ids = [uuid7() for _ in range(3)]
    Spool(home / "spool").write_many({"v": 1, "id": i, "provider": "openai"} for i in ids)

    result = runner.invoke(app, ["status", "--json"], env=_env(home))
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["entries"] == 3
    assert status["files"] == 1
    assert status["directory"] == str(home / "spool")

    result = runner.invoke(app, ["status"], env=_env(home))
    assert result.exit_code == 0
    assert result.stdout.startswith("3 entries in 1 file(s)")

    result = runner.invoke(app, ["flush", "--json"], env=_env(home))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "replayed": 3,
        "rejected": 0,
        "files": 1,
        "ledger_size": 3,
    }
    lg = open_ledger(home)
    try:
        assert [e.body["id"] for e in lg.entries()] == ids
    finally:
        lg.close()

    result = runner.invoke(app, ["flush"], env=_env(home))
    assert result.exit_code == 0
    assert "replayed 0 entries" in result.stdout


def test_flush_into_unreachable_ledger_fails_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Spool(home / "spool").write({"v": 1, "id": uuid7()})
    env = {**_env(home), "LEDGER_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/x"}
    result = runner.invoke(app, ["flush"], env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith("ledger: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert Spool(home / "spool").status().entries == 1  # nothing lost
