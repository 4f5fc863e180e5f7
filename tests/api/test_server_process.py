"""`ledger serve` in a real uvicorn process, and the `ledger token` commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

import ledger
from ledger.cli import build_app
from ledger.crypto.keys import SigningKey
from ledger.log.records import seal_entry
from tests.api.conftest import fill

LEDGER = str(Path(sys.executable).with_name("ledger"))


def _cli(home: Path, *args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(build_app(["token"]), ["--home", str(home), "token", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    """A ledger with 6 entries served by `ledger serve --port 0` (2 workers)."""
    home = tmp_path / "home"
    fill(home, None, 6)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_HOME=str(home), LEDGER_API_CHECKPOINT_AGE="0")
    errors = (tmp_path / "server.err").open("w")
    process = subprocess.Popen(
        [LEDGER, "serve", "--port", "0", "--workers", "2", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    # Keep reading stdout while the server runs, so it can never block on a full pipe.
    drain = threading.Thread(target=process.stdout.read, daemon=True)
    drain.start()
    found = re.search(r"serving on (http://127\.0\.0\.1:\d+) ", line)
    try:
        assert found, line
        url = found.group(1)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
            time.sleep(0.05)  # polling interval of a bounded wait, not a synchronization
        yield url, home, process
    finally:
        process.terminate()
        process.wait(timeout=30)
        drain.join(timeout=10)
        process.stdout.close()
        errors.close()


def test_remote_recording_and_verified_reads_through_a_real_server(
    server: tuple[str, Path, subprocess.Popen[str]], tmp_path: Path
) -> None:
    url, home, _ = server
    key = SigningKey.generate()
    pem = tmp_path / "remote-recorder.pub.pem"
    pem.write_text(key.public_key.to_pem())
    code, recorder_token, _ = _cli(
        home, "create", "--role", "recorder", "--name", "box1", "--recorder-key", str(pem)
    )
    assert code == 0
    code, auditor_token, _ = _cli(home, "create", "--role", "auditor", "--name", "aud")
    assert code == 0
    with ledger.open(home=home, read_only=True) as lg:
        verifier_key = lg.verifier_key
    recorder = ledger.connect(url, recorder_token.strip())
    sealed = [
        seal_entry({"purpose": "evaluate", "n": n}, key, recorder.ledger_id) for n in range(5)
    ]
    receipts = recorder.append_sealed(sealed)
    assert [r.leaf_index for r in receipts] == [6, 7, 8, 9, 10]
    assert recorder.append_sealed(sealed) == receipts  # a retry stores nothing twice
    auditor = ledger.connect(url, auditor_token.strip(), verifier_key=verifier_key)
    entries = list(auditor.entries(limit=4))
    assert [e.leaf_index for e in entries] == list(range(11))
    assert auditor.entry(10).entry == sealed[4]  # the record-time signature, kept
    recorder.close()
    auditor.close()
    with ledger.open(home=home, read_only=True) as lg:
        assert lg.verify().ok  # the remote key is registered; the log verifies


def test_token_commands_store_only_a_hash(tmp_path: Path) -> None:
    home = tmp_path / "home"
    fill(home, None, 1)
    code, out, err = _cli(home, "create", "--role", "auditor", "--name", "ann",
                          "--dataset", "alpha", "--expires", "30d")  # fmt: skip
    assert code == 0
    token = out.strip()
    assert token.startswith("ldt_")
    assert "shown only now" in err
    code, listed, _ = _cli(home, "list", "--json")
    assert code == 0
    assert token not in listed
    assert '"datasets": ["alpha"]' in listed
    database = (home / "ledger.db").read_bytes()
    secret = token.rsplit("_", 1)[1].encode()
    assert secret not in database
    wal = home / "ledger.db-wal"
    assert not wal.exists() or secret not in wal.read_bytes()
    token_id = token.split("_")[1]
    assert _cli(home, "revoke", token_id)[0] == 0
    code, listed, _ = _cli(home, "list")
    assert "revoked" in listed
    # Append-only: a revocation is a row, and neither table takes an UPDATE or DELETE.
    engine = create_engine(f"sqlite:///{home / 'ledger.db'}")
    with engine.connect() as conn:
        for statement in (
            "UPDATE api_tokens SET role = 'admin'",
            "DELETE FROM api_token_revocations",
        ):
            with pytest.raises(Exception, match="append-only"):
                conn.execute(text(statement))
    engine.dispose()


@pytest.mark.parametrize(
    "args",
    [
        ["create", "--role", "god", "--name", "x"],
        ["create", "--role", "recorder", "--name", "x"],
        ["create", "--role", "recorder", "--name", "x", "--recorder-key", "ab" * 32],
        ["create", "--role", "auditor", "--name", "x", "--expires", "tomorrow"],
        ["create", "--role", "admin", "--name", "x", "--dataset", "d"],
        ["revoke", "0000000000000000"],
    ],
)
def test_bad_token_commands_exit_2_with_one_line(tmp_path: Path, args: list[str]) -> None:
    home = tmp_path / "home"
    fill(home, None, 1)
    code, _, err = _cli(home, *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("ledger: ")


def test_the_listening_socket_says_tcp_so_answers_are_not_delayed() -> None:
    # asyncio sets TCP_NODELAY on accepted connections only for sockets whose proto is TCP;
    # with proto 0 every answer waited ~40 ms on a delayed ACK.
    import socket

    from ledger.cli.serve import _bind

    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
