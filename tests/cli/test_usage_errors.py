"""Usage errors (an unknown option or command, a missing or malformed argument) are reported
like every other input error: one line on stderr naming the problem, exit 2, nothing on
stdout; a group called bare still prints its help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger.cli import app


def _console(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``ledger --home HOME ARGS`` through the console script's entry point, in a fresh
    interpreter (it loads only the named group and coerces parameters its own way)."""
    argv = ["ledger", "--home", str(home), *args]
    script = f"import sys\nsys.argv = {argv!r}\nfrom ledger.cli import main\nmain()"
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["entries", "--limt", "3"], ["--limt", "'ledger entries --help'"]),
        (["--hom", "x", "entries"], ["--hom", "--home"]),
        (["bogus"], ["'bogus'", "'ledger --help'"]),
        (["manifest", "bogus"], ["'bogus'", "'ledger manifest --help'"]),
        (["manifest", "verify", "pack"], ["'--key'", "'ledger manifest verify --help'"]),
        (["manifest", "verify", "pack", "--key"], ["'--key'", "requires an argument"]),
        (["serve", "--port", "abc"], ["'--port'", "'abc'"]),
        (["policy", "show"], ["'provider'"]),
    ],
)
def test_a_usage_error_is_one_line_exit_2(
    tmp_path: Path, args: list[str], names: list[str]
) -> None:
    proc = _console(tmp_path / "h", *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ledger: ")
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert not (tmp_path / "h").exists()  # refused before anything was opened


def test_a_bare_group_still_prints_its_help(tmp_path: Path) -> None:
    proc = _console(tmp_path / "h", "manifest")
    assert "verify" in proc.stdout
    assert "build" in proc.stdout
    assert proc.stderr == ""
    helped = _console(tmp_path / "h", "manifest", "verify", "--help")
    assert helped.returncode == 0
    assert "--key" in helped.stdout
    assert helped.stderr == ""


def test_the_app_for_embedders_reports_the_same(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "h"), "manifest", "verify", "x"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "ledger: Missing option '--key' (see 'ledger manifest verify --help')"
    ]
