"""Without a usable Chromium the browser tests skip with the reason, except in CI, where they
fail: a CI machine that lost its browser must not pass by running nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ONE_TEST = "tests/report/test_verify_browser.py::test_streaming_sha256_agrees_with_hashlib"


def _run(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["LEDGER_TEST_CHROMIUM"] = str(tmp_path / "no-such-chromium")
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", ONE_TEST],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("ci", [False, True])
def test_missing_chromium_skips_locally_and_fails_in_ci(tmp_path: Path, ci: bool) -> None:
    done = _run(tmp_path, ci)
    if ci:
        assert done.returncode == 1, done.stdout
        assert "browser tests need Chromium in CI" in done.stdout
    else:
        assert done.returncode == 0, done.stdout
        assert "1 skipped" in done.stdout
        assert "browser tests skipped: no Chromium at" in done.stdout
