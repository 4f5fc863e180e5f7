"""The curated public surface of `ledger`: nothing leaks in or out by accident."""

from __future__ import annotations

import pytest

import ledger


def test_all_is_exactly_the_public_names() -> None:
    # Names load on first use (PEP 562), so dir() is the list, and every name must resolve.
    public = {n for n in dir(ledger) if not n.startswith("_")} - {"annotations"}
    modules = {name for name in public if type(getattr(ledger, name)).__name__ == "module"}
    assert sorted(ledger.__all__) == sorted(public - modules)
    assert ledger.open.__name__ == "open_ledger"
    assert set(ledger._HOMES) == set(ledger.__all__)


def test_importing_ledger_loads_no_submodule_until_asked() -> None:
    import subprocess
    import sys

    code = (
        "import sys, ledger; print(sorted(m for m in sys.modules if m.startswith('ledger.')));"
        "ledger.Ledger; print('ledger._ledger' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split("\n")[:2] == ["[]", "True"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = ledger.nope  # type: ignore[attr-defined]


def test_core_contract_names_are_exported() -> None:
    for name in (
        "open",
        "Ledger",
        "Receipt",
        "StoredEntry",
        "VerifyReport",
        "LedgerError",
        "wrap",
        "recording",
        "RecordingTransport",
        "Httpx2RecordingTransport",
    ):
        assert name in ledger.__all__
    for method in (
        "append", "append_many", "submit", "flush", "entry", "entries", "checkpoint",
        "inclusion_proof", "consistency_proof", "root", "verify", "verifier_key", "size",
    ):  # fmt: skip
        assert hasattr(ledger.Ledger, method), method
