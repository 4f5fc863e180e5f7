"""The curated public surface of `ledger`: nothing leaks in or out by accident."""

from __future__ import annotations

import ledger


def test_all_is_exactly_the_public_names() -> None:
    public = {n for n in vars(ledger) if not n.startswith("_")} - {"annotations"}
    modules = {name for name in public if type(getattr(ledger, name)).__name__ == "module"}
    assert sorted(ledger.__all__) == sorted(public - modules)


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
