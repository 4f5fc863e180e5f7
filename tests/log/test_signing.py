"""Batch signing with a helper process: same signatures, graceful fallback, no re-import."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ledger.crypto.keys import SigningKey
from ledger.log.signing import BatchSigner

MESSAGES = [bytes([n % 251]) * (100 + n) for n in range(300)]


def test_helper_signatures_equal_local_ones() -> None:
    key = SigningKey.generate()
    signer = BatchSigner(key, min_batch=10)
    try:
        signed = signer.sign_many(MESSAGES)
        assert signer._proc is not None  # the helper really took part
        assert signed == [key.sign(m) for m in MESSAGES]
        assert signer.sign_many(MESSAGES[:5]) == [key.sign(m) for m in MESSAGES[:5]]
    finally:
        signer.close()
    assert signer._proc is None


def test_a_dead_helper_falls_back_to_local_signing(caplog: pytest.LogCaptureFixture) -> None:
    key = SigningKey.generate()
    signer = BatchSigner(key, min_batch=10)
    signer.sign_many(MESSAGES)
    assert signer._proc is not None
    signer._proc.kill()
    signer._proc.wait()
    assert signer.sign_many(MESSAGES) == [key.sign(m) for m in MESSAGES]
    assert "signing helper unavailable" in caplog.text
    assert signer._proc is None
    assert signer.sign_many(MESSAGES) == [key.sign(m) for m in MESSAGES]  # stays local
    signer.close()


def test_an_unguarded_user_script_runs_once(tmp_path: Path) -> None:
    # multiprocessing workers would re-import this script (no __main__ guard) and run it twice.
    script = tmp_path / "user_script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import ledger
            print("top-level code ran")
            lg = ledger.open(home={str(tmp_path / "home")!r})
            lg.append_many({{"n": n}} for n in range(400))
            assert lg._signer._proc is not None
            print("entries", lg.size)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("top-level code ran") == 1
    assert "entries 400" in result.stdout
