"""`ledger serve` in a real uvicorn process, and the `ledger token` commands."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

import ledger
from ledger.cli import build_app
from ledger.crypto.keys import SigningKey
from ledger.log.records import seal_entry
from tests.api.conftest import fill
from tests.api.server_process import ServerProcess


def _cli(home: Path, *args: str, db: str | None = None) -> tuple[int, str, str]:
    runner = CliRunner()
    root = ["--home", str(home), *(["--db", db] if db else [])]
    result = runner.invoke(build_app(["token"]), [*root, "token", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """A ledger with 6 entries served by `ledger serve --port 0 --workers 2`."""
    home = tmp_path / "home"
    fill(home, database_url, 6)
    process = ServerProcess(home, tmp_path / "server.err", workers=2, database_url=database_url)
    try:
        yield process.url, home, database_url
    finally:
        process.stop()


def test_remote_recording_and_verified_reads_through_a_real_server(
    server: tuple[str, Path, str], tmp_path: Path
) -> None:
    url, home, db = server
    key = SigningKey.generate()
    pem = tmp_path / "remote-recorder.pub.pem"
    pem.write_text(key.public_key.to_pem())
    code, recorder_token, _ = _cli(
        home, "create", "--role", "recorder", "--name", "box1", "--recorder-key", str(pem), db=db
    )
    assert code == 0
    code, auditor_token, _ = _cli(home, "create", "--role", "auditor", "--name", "aud", db=db)
    assert code == 0
    with ledger.open(db, home=home, read_only=True) as lg:
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
    with ledger.open(db, home=home, read_only=True) as lg:
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
    secret = token.split("_", 2)[2].encode()  # ldt_<id>_<secret>; the secret may hold "_"
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
