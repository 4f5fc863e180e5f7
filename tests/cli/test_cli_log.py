"""The core CLI: every command, its JSON, and its errors (one stderr line, exit 2)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from ledger.cli import app
from ledger.crypto.merkle import leaf_hash, verify_consistency, verify_inclusion

runner = CliRunner()


def run(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--home", str(home), *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def seeded(home: Path, count: int = 7) -> None:
    import ledger

    with ledger.open(home=home) as lg:
        lg.append_many({"provider": "openai", "n": i} for i in range(count))


def test_init_then_entries_and_proofs(tmp_path: Path) -> None:
    home = tmp_path / "h"
    code, out, _ = run(home, "init", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["entries"] == 0
    assert info["verifier_key"].startswith(info["origin"] + "+")
    assert (home / "keys" / "recorder.pem").stat().st_mode & 0o777 == 0o600
    seeded(home)

    code, out, _ = run(home, "entries", "list", "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [e["leaf_index"] for e in lines] == list(range(7))
    assert {"body", "key_id", "sig"} <= set(lines[0])
    code, out, _ = run(home, "entries", "show", "3", "--json")
    shown = json.loads(out)
    assert shown["body"]["n"] == 3

    code, out, _ = run(home, "proof", "inclusion", "3", "--size", "7", "--json")
    proof = json.loads(out)
    assert code == 0
    assert proof["leaf_hash"] == shown["leaf_hash"]
    verify_inclusion(
        3, 7, bytes.fromhex(proof["leaf_hash"]), [bytes.fromhex(h) for h in proof["hashes"]],
        bytes.fromhex(proof["root"]),
    )  # fmt: skip
    code, out, _ = run(home, "proof", "consistency", "2", "7", "--json")
    cons = json.loads(out)
    verify_consistency(
        2, 7, [bytes.fromhex(h) for h in cons["hashes"]],
        bytes.fromhex(cons["first_root"]), bytes.fromhex(cons["second_root"]),
    )  # fmt: skip
    assert cons["second_root"] == proof["root"]


def test_leaf_hash_in_listing_is_hash_of_entry(tmp_path: Path) -> None:
    home = tmp_path / "h"
    seeded(home, 2)
    import ledger
    from ledger.crypto.canonical import canonical_json

    with ledger.open(home=home) as lg:
        stored = lg.entry(1)
    assert stored.leaf_hash == leaf_hash(canonical_json(stored.entry))


def test_checkpoint_new_print_and_verify(tmp_path: Path) -> None:
    home = tmp_path / "h"
    seeded(home)
    code, _, err = run(home, "checkpoint")
    assert code == 2
    assert "no checkpoint yet" in err
    code, out, _ = run(home, "checkpoint", "--new", "--json")
    doc = json.loads(out)
    assert doc["tree_size"] == 7
    note = tmp_path / "cp.txt"
    note.write_text(doc["note"])
    code, out, _ = run(home, "checkpoint")
    assert out == doc["note"]
    code, out, _ = run(home, "checkpoint", "verify", str(note), "--key", doc["verifier_key"])
    assert code == 0
    assert "size 7" in out
    other_home = tmp_path / "other"
    _, other, _ = run(other_home, "init", "--json")
    code, _, err = run(
        home, "checkpoint", "verify", str(note), "--key", json.loads(other)["verifier_key"]
    )
    assert code == 1
    assert len(err.strip().splitlines()) == 1


def test_checkpoint_verify_external_note(tmp_path: Path) -> None:
    # Checkpoints from other logs verify without any ledger or database.
    from tests.crypto.test_note import FOO_NOTE, FOO_VKEY, LEDGER_CHECKPOINT, LEDGER_VKEY

    other = tmp_path / "other.txt"
    other.write_text(LEDGER_CHECKPOINT)
    code, out, _ = run(tmp_path / "none", "checkpoint", "verify", str(other), "--key", LEDGER_VKEY)
    assert code == 0
    assert "example.com/ledger size 8" in out
    # The C2SP example note is a valid signed note but not a checkpoint: one line, no traceback.
    plain = tmp_path / "foo.txt"
    plain.write_text(FOO_NOTE)
    code, _, err = run(tmp_path / "none", "checkpoint", "verify", str(plain), "--key", FOO_VKEY)
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "none").exists()


def test_key_rotation_keeps_old_signatures_valid(tmp_path: Path) -> None:
    home = tmp_path / "h"
    seeded(home, 3)
    _, before, _ = run(home, "key", "show", "--json")
    code, out, _ = run(home, "key", "rotate", "recorder", "--json")
    assert code == 0
    new_recorder = json.loads(out)["key_id"]
    code, out, _ = run(home, "key", "rotate", "log", "--json")
    assert code == 0
    seeded(home, 2)
    code, _, _ = run(home, "checkpoint", "--new")
    assert code == 0
    _, after, _ = run(home, "key", "show", "--json")
    keys = json.loads(after)
    assert keys["recorder"]["key_id"] == new_recorder
    assert "BEGIN PUBLIC KEY" in keys["recorder"]["public_key_pem"]
    assert keys["log"]["verifier_key"] != json.loads(before)["log"]["verifier_key"]
    assert {k["kind"] for k in keys["retired"]} == {"recorder", "log"}
    code, out, err = run(home, "verify", "--json")
    assert code == 0, err
    # The old key seals the head before it retires, the new key signs it at once, and then
    # the two new entries get their own checkpoint.
    assert json.loads(out)["checkpoints"] == 3
    code, _, err = run(home, "key", "rotate", "bogus")
    assert code == 2
    assert "unknown key kind" in err


def test_bad_inputs_exit_2_with_one_line(tmp_path: Path) -> None:
    home = tmp_path / "h"
    seeded(home, 3)
    not_a_note = tmp_path / "train.jsonl"
    not_a_note.write_text('{"prompt": "p", "completion": "c"}\n', encoding="utf-8")
    for args, needle in [
        (["proof", "inclusion", "5", "--size", "3"], "leaf 5"),
        (["proof", "inclusion", "1", "--size", "9"], "larger than the log"),
        (["proof", "consistency", "3", "2"], "no consistency proof"),
        (["entries", "show", "99"], "no entry at leaf index 99"),
        (["--db", "mysql://nope/x", "init"], "unsupported database"),
        (["--db", "sqlite:////nonexistent-dir/x/y.db", "init"], "cannot reach database"),
        (["verify", "--checkpoint", str(tmp_path / "missing.txt")], "cannot read checkpoint"),
        # Some other file given as the auditor's checkpoint: not a failed check of the log.
        (["verify", "--checkpoint", str(not_a_note)], "is not a checkpoint note: malformed"),
    ]:
        code, _, err = run(home, *args)
        assert code == 2, (args, err)
        assert needle in err, (args, err)
        assert len(err.strip().splitlines()) == 1, err


def test_wrong_passphrase_and_corrupt_key_write_nothing(tmp_path: Path) -> None:
    home = tmp_path / "h"
    env = {"LEDGER_KEY_PASSPHRASE": "correct horse"}
    code, _, _ = run(home, "init", env=env)
    assert code == 0
    assert b"ENCRYPTED" in (home / "keys" / "log.pem").read_bytes()
    db = home / "ledger.db"
    before = db.read_bytes()
    for bad_env in ({"LEDGER_KEY_PASSPHRASE": "wrong"}, {}):
        code, _, err = run(home, "checkpoint", "--new", env=bad_env)
        assert code == 2
        assert "log.pem" in err or "recorder.pem" in err
        assert len(err.strip().splitlines()) == 1
    (home / "keys" / "recorder.pem").write_text("not a key")
    code, _, err = run(home, "checkpoint", "--new", env=env)
    assert code == 2
    assert "recorder.pem" in err
    assert db.read_bytes() == before


def test_newer_schema_exits_2(tmp_path: Path) -> None:
    home = tmp_path / "h"
    seeded(home, 1)
    engine = create_engine(f"sqlite:///{home / 'ledger.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    engine.dispose()
    code, _, err = run(home, "verify")
    assert code == 2
    assert "newer than this ledger" in err


@pytest.mark.postgres
def test_unreachable_postgres_exits_2(tmp_path: Path) -> None:
    if not os.environ.get("LEDGER_TEST_POSTGRES_URL"):
        pytest.skip("LEDGER_TEST_POSTGRES_URL is not set: PostgreSQL tests need a server")
    code, _, err = run(
        tmp_path / "h", "--db", "postgresql+psycopg://postgres@127.0.0.1:1/test", "init"
    )
    assert code == 2
    assert "cannot reach database" in err
    assert not (tmp_path / "h" / "keys").exists()


def test_demo_runs(tmp_path: Path) -> None:
    code, out, err = run(tmp_path / "demo", "demo")
    assert code == 0, err
    assert "stand-in teacher API" in out
    assert "verify: ok" in out
    assert "prohibited" in out  # the competing-LLM column


#: A lower bar threshold for the progress test: the bar is the point, not 20,000 entries.
PROGRESS_FROM = 300
#: The real console script's code with the threshold lowered (the threshold is a constant).
PROGRESS_CLI = (
    "import sys; import ledger.cli.log as log; log._PROGRESS_FROM = int(sys.argv.pop(1)); "
    "from ledger.cli import main; main()"
)


def test_verify_shows_progress_on_a_terminal_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pty
    import subprocess
    import sys
    import threading

    import ledger.cli.log

    assert ledger.cli.log._PROGRESS_FROM == 20_000  # what users get; lowered below
    home = tmp_path / "h"
    seeded(home, PROGRESS_FROM)
    command = [sys.executable, "-c", PROGRESS_CLI, str(PROGRESS_FROM), "--home", str(home)]
    main, replica = pty.openpty()
    shown = bytearray()

    def drain() -> None:
        # Read the terminal while the child runs: a full pty would block the child's writes.
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal closed (the child exited)
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.run(  # stderr is a terminal, stdout a pipe
            [*command, "verify"], stdout=subprocess.PIPE, stderr=replica, timeout=300, check=False
        )
        os.close(replica)
        reader.join(timeout=60)
    finally:
        os.close(main)
    assert proc.returncode == 0
    assert proc.stdout.decode().startswith(f"ok: {PROGRESS_FROM} entries")
    assert b"verifying" in shown
    # Without a terminal (CliRunner, pipes, CI logs) there is no bar.
    monkeypatch.setattr(ledger.cli.log, "_PROGRESS_FROM", PROGRESS_FROM)
    code, out, err = run(home, "verify")
    assert code == 0
    assert out.startswith(f"ok: {PROGRESS_FROM} entries")
    assert "verifying" not in err


def test_verify_progress_callback_reaches_the_end(tmp_path: Path) -> None:
    import ledger

    seen: list[tuple[int, int]] = []
    with ledger.open(home=tmp_path) as lg:
        lg.append_many({"n": i} for i in range(5_000))
        assert lg.verify(progress=lambda done, total: seen.append((done, total))).ok
    assert seen == [(2048, 5000), (4096, 5000), (5000, 5000)]
