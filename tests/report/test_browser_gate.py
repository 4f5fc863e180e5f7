"""Without a usable Chromium the browser tests skip with the reason, except in CI, where they
fail: a CI machine that lost its browser must not pass by running nothing.

The browser test runs in a nested pytest session in this interpreter (``pytest.main``), not a
child ``python -m pytest``: a child spent seconds of every case importing the plugins again
(hypothesis, schemathesis) before it reached the one fixture under test. The nested session
still reads the configuration, the conftest files and ``LEDGER_TEST_CHROMIUM`` as CI does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ONE_TEST = "tests/report/test_verify_browser.py::test_streaming_sha256_agrees_with_hashlib"
#: The conftest that reads ``LEDGER_TEST_CHROMIUM`` when it is imported.
REPORT_CONFTEST = "tests.report.conftest"


class _Outcomes:
    """A plugin for the nested session: every report of the one test."""

    def __init__(self) -> None:
        self.reports: list[pytest.TestReport] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.reports.append(report)


def _run(tmp_path: Path, ci: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """Exit code of a nested session running ONE_TEST without Chromium, and its reports."""
    monkeypatch.delenv("CI", raising=False)
    if ci:
        monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("LEDGER_TEST_CHROMIUM", str(tmp_path / "no-such-chromium"))
    outcomes = _Outcomes()
    # Imported again by the nested session, so it reads the environment set above; the
    # outer session's copy (its fixtures are registered from it) is put back afterwards.
    outer = sys.modules.pop(REPORT_CONFTEST, None)
    try:
        code = pytest.main(
            [
                "-q", "-rs", "-p", "no:cacheprovider", f"--rootdir={ROOT}",
                # Its exit would run gc.collect() over this whole interpreter's heap.
                "-p", "no:unraisableexception",
                "-c", str(ROOT / "pyproject.toml"),
                "-o", "timeout=0",  # the outer test's timeout timer stays the only one
                str(ROOT / ONE_TEST),
            ],
            plugins=[outcomes],
        )  # fmt: skip
    finally:
        sys.modules.pop(REPORT_CONFTEST, None)
        if outer is not None:
            sys.modules[REPORT_CONFTEST] = outer
    text = "\n".join(
        f"{r.when} {r.outcome}: {r.longreprtext}" for r in outcomes.reports if r.outcome != "passed"
    )
    return int(code), text


@pytest.mark.parametrize("ci", [False, True])
def test_missing_chromium_skips_locally_and_fails_in_ci(
    tmp_path: Path, ci: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, text = _run(tmp_path, ci, monkeypatch)
    if ci:
        assert code == pytest.ExitCode.TESTS_FAILED, text
        assert text.startswith("setup failed:"), text
        assert "browser tests need Chromium in CI" in text
    else:
        assert code == pytest.ExitCode.OK, text
        assert text.startswith("setup skipped:"), text
        assert "browser tests skipped: no Chromium at" in text
    assert str(tmp_path / "no-such-chromium") in text  # the nested session read the variable
