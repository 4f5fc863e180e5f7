"""`ledger spool status|flush` through Typer's CliRunner, with the global options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from ledger.cli import app
from ledger.recorder import Spool, uuid7
from tests.recorder.helpers import open_ledger

runner = CliRunner()

# Every LEDGER_* the commands read comes from the options below, whatever the caller's shell has.
CLEAN_ENV = {"LEDGER_HOME": "", "LEDGER_DATABASE_URL": ""}


def _body(**extra: Any) -> dict[str, Any]:
    return {"v": 1, "id": uuid7(), "provider": "openai", **extra}


def _spooled(home: Path, count: int) -> list[str]:
    lg = open_ledger(home)
    try:
        records = [lg.seal(_body()) for _ in range(count)]
    finally:
        lg.close()
    Spool(home / "spool").write_many(records)
    return [r["body"]["id"] for r in records]


def test_status_and_flush_follow_home(tmp_path: Path, monkeypatch: Any) -> None:
    home = tmp_path / "home"
    ids = _spooled(home, 3)
    monkeypatch.chdir(tmp_path)  # ./.ledger/spool is not where the spool is
    opts = ["--home", str(home), "--db", f"sqlite:///{home / 'ledger.db'}"]

    result = runner.invoke(app, [*opts, "spool", "status", "--json"], env=CLEAN_ENV)
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert (status["entries"], status["files"]) == (3, 1)
    assert status["directory"] == str(home / "spool")

    result = runner.invoke(app, ["--home", str(home), "spool", "status"], env=CLEAN_ENV)
    assert result.exit_code == 0
    assert result.stdout.startswith("3 entries in 1 file(s)")

    result = runner.invoke(app, [*opts, "spool", "flush", "--json"], env=CLEAN_ENV)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["replayed"], out["rejected"], out["files"], out["ledger_size"]) == (3, 0, 1, 3)
    assert not (tmp_path / ".ledger").exists()
    lg = open_ledger(home)
    try:
        assert [e.body["id"] for e in lg.entries()] == ids
    finally:
        lg.close()

    result = runner.invoke(app, ["--home", str(home), "spool", "flush"], env=CLEAN_ENV)
    assert result.exit_code == 0
    assert "replayed 0 entries" in result.stdout


def test_flush_names_what_it_set_aside_and_exits_1(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _spooled(home, 1)
    spool = Spool(home / "spool")
    with spool.path.open("ab") as f:
        f.write(b'{"body": {"torn')  # torn at bytes size..size+15
    torn_at = spool.path.stat().st_size - 15
    result = runner.invoke(app, ["--home", str(home), "spool", "flush"], env=CLEAN_ENV)
    assert result.exit_code == 1, result.output
    assert "replayed 1 entries" in result.stdout
    assert f"set aside 1 line(s) in {spool.rejected_path}" in result.stderr
    assert f".replay line 2 bytes {torn_at}-{torn_at + 15}: not a spool record" in result.stderr


def test_flush_keeps_unsigned_records_unless_accepted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    open_ledger(home).close()
    Spool(home / "spool").write_many([_body(), _body()])  # a spool from before sealing
    opts = ["--home", str(home), "spool", "flush"]
    result = runner.invoke(app, opts, env=CLEAN_ENV)
    assert result.exit_code == 1
    assert "kept 2 unsigned record(s)" in result.stderr
    assert "--accept-unsigned" in result.stderr
    result = runner.invoke(app, [*opts, "--accept-unsigned", "--json"], env=CLEAN_ENV)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ledger_size"] == 2


def test_flush_into_unreachable_ledger_fails_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Spool(home / "spool").write(_body())
    db = "postgresql+psycopg://nobody@127.0.0.1:1/x"
    result = runner.invoke(app, ["--home", str(home), "--db", db, "spool", "flush"], env=CLEAN_ENV)
    assert result.exit_code == 2
    assert result.stderr.startswith("ledger: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert Spool(home / "spool").status().entries == 1  # nothing lost


def test_bad_setting_is_one_line_exit_2(tmp_path: Path) -> None:
    env = {**CLEAN_ENV, "LEDGER_BATCH_SIZE": "many"}
    result = runner.invoke(app, ["--home", str(tmp_path), "spool", "status"], env=env)
    assert result.exit_code == 2
    assert result.stderr.startswith("ledger: invalid LEDGER_* setting")
