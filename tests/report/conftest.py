"""Fixtures for the report tests: a real evidence pack built from real SDK calls, and a real
headless Chromium (the system one, driven by Playwright) to run the in-browser verifier."""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import ledger
from ledger import manifest
from ledger.crypto.canonical import canonical_json
from ledger.crypto.dsse import sign_envelope
from ledger.manifest.pack import MANIFEST, sha256_hex
from tests.audit.conftest import fake_provider  # noqa: F401 - the shared stand-in teacher
from tests.manifest.conftest import (  # noqa: F401 - shared fixtures
    Scenario,
    Template,
    built_result,
    built_template,
    facts,
    scenario,
    scenario_template,
)

CHROMIUM = Path(os.environ.get("LEDGER_TEST_CHROMIUM", "/usr/bin/chromium"))


@dataclass
class BuiltPack:
    lg: ledger.Ledger
    path: Path
    dataset: Path
    result: manifest.BuildResult

    def statement(self) -> dict[str, Any]:
        envelope = json.loads((self.path / MANIFEST).read_bytes())
        return json.loads(base64.b64decode(envelope["payload"]))

    def resign(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Edit the statement and sign it again with the real log key, so that only the
        tampering under test is left for the verifier to find."""
        statement = self.statement()
        change(statement)
        envelope = sign_envelope(canonical_json(statement), self.lg.log_key)
        (self.path / MANIFEST).write_bytes(envelope.to_json())

    def relist(self, member: str) -> None:
        """Record a member's new digest in the statement (and re-sign)."""
        digest = sha256_hex((self.path / member).read_bytes())
        self.resign(lambda s: s["predicate"]["files"].__setitem__(member, digest))


@pytest.fixture
def built(scenario: Scenario, built_template: Template, tmp_path: Path) -> BuiltPack:  # noqa: F811
    """This test's copy of the pack built once per session from the scenario (``scenario`` is
    a copy of the ledger it was built from): free to tamper with and to re-sign."""
    result = built_result(built_template, tmp_path)
    return BuiltPack(scenario.lg, result.path, scenario.dataset, result)


@contextmanager
def chromium_browser() -> Iterator[Any]:
    """Headless Chromium from the system, stopped on exit. In CI (CI=true) a browser that
    cannot start fails the tests; elsewhere they are skipped with the reason.

    Playwright's sync API keeps its event loop marked as running in this thread while it is
    open, and ``asyncio.run`` refuses to start under it: a browser must be closed before any
    later test uses asyncio, so only the last tests of a session may keep one for the session.
    """

    def unavailable(reason: str) -> None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests need Chromium in CI: {reason}")
        pytest.skip(f"browser tests skipped: {reason}")

    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as exc:
        unavailable(f"playwright is not installed ({exc}); pip install -e '.[browser]'")
    if not CHROMIUM.is_file() and shutil.which(str(CHROMIUM)) is None:
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as driver:
        try:
            # Root in a container has no user namespace for Chromium's sandbox.
            chromium = driver.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
            )
        except Error as exc:
            unavailable(f"Chromium at {CHROMIUM} did not start: {exc.message.splitlines()[0]}")
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module (see :func:`chromium_browser`)."""
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page; any uncaught script error fails the test."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield page
    context.close()
    assert errors == []
