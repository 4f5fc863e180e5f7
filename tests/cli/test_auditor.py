"""The auditor's path (issue 8, points 1-6 and 17): read commands change nothing, need only
public data, bind checkpoints to the key the auditor holds, see through tampered columns, and
report a damaged database instead of crashing."""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

import ledger
from ledger.cli import app
from tests.conftest import LedgerFactory
from tests.log.test_store_contract import drop_triggers

runner = CliRunner()

READ_COMMANDS = [
    ["verify"],
    ["entries", "list"],
    ["entries", "show", "0"],
    ["proof", "inclusion", "0"],
    ["proof", "consistency", "1", "2"],
    ["checkpoint"],
    ["key", "show"],
    ["audit", "conduct"],
]


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback a user would have seen
    return result.exit_code, result.stdout, result.stderr


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def url_of(lg: ledger.Ledger) -> str:
    return lg.store.engine.url.render_as_string(hide_password=False)


def build(home: Path, count: int = 6) -> Path:
    """A SQLite ledger under ``home`` with ``count`` entries and a checkpoint; its db path."""
    with ledger.open(home=home) as lg:
        lg.append_many(
            {"provider": "openai", "request_model": "gpt-4.1", "purpose": "evaluate",
             "dataset": "d1", "n": i}
            for i in range(count)
        )  # fmt: skip
        lg.checkpoint()
    return home / "ledger.db"


def digest_tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# -- 1. read commands create nothing ---------------------------------------------------------


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: " ".join(c))
def test_read_command_on_a_missing_ledger_exits_2_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    home = tmp_path / "typo"
    code, _, err = cli("--home", str(home), *command)
    assert code == 2
    assert "no ledger" in one_line(err)
    assert str(home) in err
    assert not home.exists()
    code, _, err = cli("--home", str(tmp_path), "--db", f"sqlite:///{tmp_path}/nope.db", *command)
    assert code == 2
    assert "nope.db" in one_line(err)
    assert not (tmp_path / "nope.db").exists()


def test_write_commands_other_than_init_never_create_a_ledger(tmp_path: Path) -> None:
    home = tmp_path / "typo"
    for command in (["checkpoint", "--new"], ["key", "rotate", "log"]):
        code, _, err = cli("--home", str(home), *command)
        assert code == 2
        assert "run `ledger init`" in one_line(err)
    assert not home.exists()
    code, _, err = cli("--home", str(home), "init")
    assert code == 0, err
    assert (home / "ledger.db").is_file()


def test_verify_with_another_home_changes_no_key(tmp_path: Path) -> None:
    db = build(tmp_path / "team")
    before = digest_tree(tmp_path / "team")
    with ledger.open(home=tmp_path / "team", read_only=True) as lg:
        keys_before = [(k.kind, k.key_id) for k in lg.keys()]
    code, out, err = cli("--home", str(tmp_path / "NEW"), "--db", f"sqlite:///{db}", "verify")
    assert code == 0, err
    assert out.startswith("ok: 6 entries")
    assert not (tmp_path / "NEW").exists()
    assert digest_tree(tmp_path / "team") == before
    with ledger.open(home=tmp_path / "team", read_only=True) as lg:
        assert [(k.kind, k.key_id) for k in lg.keys()] == keys_before
    code, out, _ = cli("--home", str(tmp_path / "team"), "key", "show", "--json")
    assert json.loads(out)["retired"] == []


def test_opening_for_writing_with_foreign_keys_is_refused(tmp_path: Path) -> None:
    db = build(tmp_path / "team")
    with pytest.raises(ledger.ConfigError, match="not this ledger's active recorder key"):
        ledger.open(f"sqlite:///{db}", home=tmp_path / "other")


@pytest.mark.postgres
def test_read_command_never_migrates_an_empty_postgres_database(postgres_url: str) -> None:
    code, _, err = cli("--home", "/nonexistent/home", "--db", postgres_url, "verify")
    assert code == 2
    assert "holds no ledger" in one_line(err)
    engine = create_engine(postgres_url)
    with engine.connect() as conn:
        tables = conn.execute(
            text(
                "SELECT count(*) FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        ).scalar()
    engine.dispose()
    assert tables == 0


# -- 2. public data only ---------------------------------------------------------------------


def test_read_only_copy_verifies_without_keys_and_stays_byte_identical(tmp_path: Path) -> None:
    db = build(tmp_path / "team")
    audit = tmp_path / "audit"
    audit.mkdir()
    copy = audit / "ledger.db"
    shutil.copy(db, copy)
    copy.chmod(0o444)
    audit.chmod(0o555)
    before = digest_tree(audit)
    try:
        for command in READ_COMMANDS:
            code, _, err = cli(
                "--home", str(tmp_path / "none"), "--db", f"sqlite:///{copy}", *command
            )
            assert code == 0, (command, err)
        with ledger.open(f"sqlite:///{copy}", read_only=True) as lg:
            assert lg.verify().ok
            assert lg.read_only
            with pytest.raises(ledger.StoreError, match="read-only"):
                lg.append({"n": 1})
            with pytest.raises(ledger.StoreError, match="read-only"):
                lg.checkpoint()
    finally:
        audit.chmod(0o755)
    assert digest_tree(audit) == before  # no -wal, no -shm, no byte changed


def test_encrypted_or_corrupt_private_keys_do_not_block_verification(tmp_path: Path) -> None:
    home = tmp_path / "team"
    settings = ledger.Settings(home=home, key_passphrase=secrets.token_hex(8))  # type: ignore[arg-type]
    with ledger.Ledger.from_settings(settings) as lg:
        lg.append({"provider": "openai", "n": 1})
        lg.checkpoint()
    code, out, err = cli("--home", str(home), "verify")  # no passphrase given
    assert code == 0, err
    (home / "keys" / "log.pem").write_bytes(b"garbage")
    code, out, err = cli("--home", str(home), "entries", "list", "--json")
    assert code == 0, err
    assert json.loads(out.splitlines()[0])["body"]["n"] == 1


def _as_nobody() -> list[str] | None:
    """A command prefix that runs as an unprivileged user, or None when that is impossible."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return None
    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import ledger"],
        capture_output=True,
        check=False,
        timeout=120,
        cwd="/",
    )
    return prefix if probe.returncode == 0 else None


def test_a_user_without_write_access_verifies_a_copy(tmp_path: Path) -> None:
    prefix = _as_nobody()
    if prefix is None:
        pytest.skip("needs root, setpriv and an interpreter the 'nobody' user may run")
    db = build(tmp_path / "team")
    audit = Path("/tmp") / f"ledger-audit-{secrets.token_hex(4)}"  # noqa: S108 - test folder
    audit.mkdir(mode=0o755)
    try:
        shutil.copy(db, audit / "ledger.db")
        (audit / "ledger.db").chmod(0o444)
        audit.chmod(0o555)
        exe = str(Path(sys.executable).with_name("ledger"))
        for command in (["verify", "--json"], ["entries", "list"]):
            proc = subprocess.run(
                [*prefix, exe, "--home", "/nonexistent", "--db", f"sqlite:///{audit}/ledger.db",
                 *command],
                capture_output=True, text=True, check=False, timeout=120, cwd="/",
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
        assert json.loads(
            subprocess.run(
                [*prefix, exe, "--db", f"sqlite:///{audit}/ledger.db", "verify", "--json"],
                capture_output=True, text=True, check=True, timeout=120, cwd="/",
            ).stdout
        )["entries"] == 6  # fmt: skip
        assert sorted(p.name for p in audit.iterdir()) == ["ledger.db"]
    finally:
        audit.chmod(0o755)
        shutil.rmtree(audit)


@pytest.mark.postgres
def test_read_only_postgres_role_verifies(tmp_path: Path, postgres_url: str) -> None:
    settings = ledger.Settings(home=tmp_path / "team", database_url=postgres_url)
    with ledger.Ledger.from_settings(settings) as lg:
        lg.append_many([{"provider": "openai", "n": i} for i in range(5)])
        lg.checkpoint()
    role = f"ro_{secrets.token_hex(4)}"
    admin = create_engine(postgres_url)
    with admin.begin() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar()
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(text(f"GRANT USAGE ON SCHEMA {schema} TO {role}"))
        conn.execute(text(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}"))
    try:
        ro_url = postgres_url.replace("postgres@", f"{role}@", 1)
        for command in (["verify"], ["entries", "list"], ["key", "show"], ["checkpoint"]):
            code, _, err = cli("--home", "/nonexistent", "--db", ro_url, *command)
            assert code == 0, (command, err)
        with (
            ledger.open(ro_url, home=tmp_path / "team") as lg,
            pytest.raises(ledger.StoreError, match="permission denied"),
        ):
            lg.append({"provider": "openai", "n": 99})
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))
        admin.dispose()


# -- 3. the auditor's key --------------------------------------------------------------------


def test_checkpoint_must_carry_the_given_key(tmp_path: Path) -> None:
    build(tmp_path / "team")
    build(tmp_path / "other")
    team, other = (
        json.loads(cli("--home", str(tmp_path / h), "checkpoint", "--json")[1])
        for h in ("team", "other")
    )
    note = tmp_path / "cp.txt"
    note.write_text(team["note"])
    base = ("--home", str(tmp_path / "team"), "verify", "--checkpoint", str(note))
    code, out, err = cli(*base, "--key", team["verifier_key"])
    assert code == 0, err
    assert "checked only against" not in out
    code, _, err = cli(*base, "--key", other["verifier_key"])
    assert code == 1
    assert "not signed by the given key" in one_line(err)
    code, out, _ = cli(*base)
    assert code == 0
    assert "checked only against the log keys this database lists" in out
    # The other ledger's key against the log itself: its latest checkpoint is not theirs.
    code, _, err = cli("--home", str(tmp_path / "team"), "verify", "--key", other["verifier_key"])
    assert code == 1
    assert "latest checkpoint is not signed by the given key" in one_line(err)


def test_forged_checkpoint_is_a_failed_check_everywhere(tmp_path: Path) -> None:
    build(tmp_path / "team")
    cp = json.loads(cli("--home", str(tmp_path / "team"), "checkpoint", "--json")[1])
    lines = cp["note"].split("\n")
    lines[1] = str(int(lines[1]) + 1)  # claim a bigger tree under the same signature
    forged = tmp_path / "forged.txt"
    forged.write_text("\n".join(lines))
    code, _, err = cli("checkpoint", "verify", str(forged), "--key", cp["verifier_key"])
    assert code == 1, err
    code, _, err = cli(
        "--home", str(tmp_path / "team"), "verify", "--checkpoint", str(forged),
        "--key", cp["verifier_key"],
    )  # fmt: skip
    assert code == 1
    one_line(err)
    code, _, err = cli("--home", str(tmp_path / "team"), "verify", "--checkpoint", "/nope.txt")
    assert code == 2
    one_line(err)


# -- 4. indexed columns and verdict rows -----------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [("dataset", "other-set"), ("purpose", "train-model"), ("provider", "anthropic"),
     ("request_model", "x"), ("account", "acct"), ("key_id", "k" * 64),
     ("recorded_at", "2020-01-01 00:00:00.000000")],
)  # fmt: skip
def test_rewritten_columns_fail_verify_and_are_named(
    make_ledger: LedgerFactory, column: str, value: str
) -> None:
    lg = make_ledger()
    lg.append_many(
        [{"provider": "openai", "request_model": "m", "dataset": "d1", "purpose": "evaluate",
          "n": i} for i in range(4)]
    )  # fmt: skip
    lg.checkpoint()
    drop_triggers(lg)
    with lg.store.engine.begin() as conn:
        if column == "recorded_at" and lg.store.engine.dialect.name == "postgresql":
            value = "2020-01-01T00:00:00+00:00"
        conn.execute(text(f"UPDATE entries SET {column} = :v WHERE leaf_index = 2"), {"v": value})
    report = lg.verify()
    assert not report.ok
    assert report.first_problem is not None
    assert report.first_problem.leaf_index == 2
    assert f"indexed {column}" in str(report.first_problem)
    code, _, err = cli("--home", str(lg.home), "--db", url_of(lg), "verify")
    assert code == 1
    assert f"leaf 2: indexed {column}" in one_line(err)


def test_verdict_rows_are_checked_and_rejudged(make_ledger: LedgerFactory) -> None:
    lg = make_ledger(judge=True)
    lg.append_many(
        [{"provider": "openai", "request_model": "gpt-4.1", "purpose": "train-model",
          "started_at": "2026-03-01T10:00:00Z", "n": i} for i in range(3)]
    )  # fmt: skip
    lg.checkpoint()
    home, url = str(lg.home), url_of(lg)
    assert lg.verify().ok
    code, out, err = cli("--home", home, "--db", url, "verify", "--verdicts", "--json")
    assert code == 0, err
    assert json.loads(out)["verdicts"]["checked"] == 3
    drop_triggers(lg)
    with lg.store.engine.begin() as conn:
        conn.execute(text("UPDATE verdicts SET verdict = 'allowed' WHERE leaf_index = 1"))
    code, _, err = cli("--home", home, "--db", url, "verify")
    assert code == 1
    assert "leaf 1: stored verdict (train-model) says verdict 'allowed'" in one_line(err)
    # A consistent forgery: a new document, its own digest, the row pointing at it. The digests
    # agree, so only judging again shows it.
    with lg.store.engine.begin() as conn:
        _, document = conn.execute(text("SELECT sha256, document FROM verdict_documents")).first()
        forged = json.loads(document)
        forged["verdict"] = "allowed"
        forged_text = json.dumps(forged, sort_keys=True, ensure_ascii=False)
        forged_sha = hashlib.sha256(forged_text.encode()).hexdigest()
        conn.execute(
            text("INSERT INTO verdict_documents (sha256, document) VALUES (:s, :d)"),
            {"s": forged_sha, "d": forged_text},
        )
        conn.execute(
            text("UPDATE verdicts SET document_sha256 = :s WHERE leaf_index = 1"), {"s": forged_sha}
        )
    assert lg.verify().ok
    code, _, err = cli("--home", home, "--db", url, "verify", "--verdicts")
    assert code == 1
    assert "leaf 1: stored verdict (train-model) differs" in one_line(err)


# -- 5. rotation -----------------------------------------------------------------------------


def test_after_log_rotation_the_new_key_signs_the_head(tmp_path: Path) -> None:
    home = str(tmp_path / "team")
    build(tmp_path / "team")
    earlier = json.loads(cli("--home", home, "checkpoint", "--json")[1])
    (tmp_path / "earlier.txt").write_text(earlier["note"])
    code, out, _ = cli("--home", home, "key", "rotate", "log", "--json")
    assert code == 0
    new_key = json.loads(out)["verifier_key"]
    code, out, _ = cli("--home", home, "checkpoint", "--new", "--json")
    assert code == 0
    cp = json.loads(out)
    assert cp["verifier_key"] == new_key
    note = tmp_path / "cp.txt"
    note.write_text(cp["note"])
    code, _, err = cli("checkpoint", "verify", str(note), "--key", new_key)
    assert code == 0, err
    keys = json.loads(cli("--home", home, "key", "show", "--json")[1])
    assert [k["kind"] for k in keys["retired"]] == ["log"]
    assert keys["log"]["verifier_key"] == new_key
    # The auditor's earlier checkpoint carries the old key: they pass both keys they hold.
    audit = ("--home", home, "verify", "--checkpoint", str(tmp_path / "earlier.txt"))
    code, _, err = cli(*audit, "--key", new_key)
    assert code == 1
    assert "earlier.txt is not signed by the given key" in one_line(err)
    code, _, err = cli(*audit, "--key", earlier["verifier_key"], "--key", new_key)
    assert code == 0, err


# -- 6. damaged databases and out-of-range numbers -------------------------------------------


def _damaged(tmp_path: Path, how: str) -> Path:
    db = build(tmp_path / "team", count=300)
    data = bytearray(db.read_bytes())
    bad = tmp_path / f"{how}.db"
    if how.startswith("pages"):
        rng = random.Random(how)  # noqa: S311 - the same damage every run, another per seed
        for page in range(2, len(data) // 4096, 3):
            start = page * 4096 + rng.randrange(0, 4000)
            data[start : start + 64] = rng.randbytes(64)
        bad.write_bytes(data)
    elif how == "truncated":
        bad.write_bytes(data[: len(data) // 3])
    elif how == "header":
        data[:16] = secrets.token_bytes(16)
        bad.write_bytes(data)
    else:
        shutil.copy(db, bad)
        engine = create_engine(f"sqlite:///{bad}")
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE tree_hashes"))
        engine.dispose()
    return bad


@pytest.mark.parametrize(
    "how", [*(f"pages-{seed}" for seed in range(6)), "truncated", "header", "missing-table"]
)
def test_damaged_database_gives_a_report_not_a_traceback(tmp_path: Path, how: str) -> None:
    bad = _damaged(tmp_path, how)
    code, _, err = cli("--home", str(tmp_path / "none"), "--db", f"sqlite:///{bad}", "verify")
    assert code in (1, 2)
    line = one_line(err)
    assert str(bad) in line or "leaf" in line
    for command in READ_COMMANDS[1:]:
        code, _, err = cli("--home", str(tmp_path / "none"), "--db", f"sqlite:///{bad}", *command)
        assert code in (0, 1, 2)
        if code:
            one_line(err)


@pytest.mark.parametrize(
    "command",
    [["entries", "show", "99999999999999999999999"],
     ["proof", "inclusion", "0", "--size", "99999999999999999999999"],
     ["proof", "consistency", "1", "99999999999999999999999"]],
)  # fmt: skip
def test_out_of_range_integers_exit_2_with_one_line(tmp_path: Path, command: list[str]) -> None:
    build(tmp_path / "team")
    code, _, err = cli("--home", str(tmp_path / "team"), *command)
    assert code == 2
    assert "out of range" in one_line(err)


def test_version(tmp_path: Path) -> None:
    code, out, _ = cli("--version")
    assert code == 0
    assert out.strip() == f"distill-ledger {ledger.__version__}"
    code, out, _ = cli("--json", "--version")
    assert json.loads(out)["version"] == ledger.__version__


# -- 15. provider aliases in filters ---------------------------------------------------------


def test_entry_filters_take_provider_aliases(tmp_path: Path) -> None:
    home = tmp_path / "team"
    with ledger.open(home=home) as lg:
        lg.append_many([{"provider": "x_ai", "n": 1}, {"provider": "openai", "n": 2}])
    code, out, _ = cli("--home", str(home), "entries", "list", "--provider", "xai", "--json")
    assert code == 0
    assert [json.loads(line)["body"]["n"] for line in out.splitlines()] == [1]
    code, _, err = cli("--home", str(home), "entries", "list", "--provider", "xaii")
    assert code == 2
    assert "did you mean" in one_line(err)
    code, _, err = cli("--home", str(home), "audit", "conduct", "--provider", "xaii")
    assert code == 2
    assert "did you mean" in one_line(err)


# -- 18. start-up ----------------------------------------------------------------------------


#: What a core read command must not import (start-up; BENCHMARKS.md, bench/startup.py): the
#: policy engine, the recorders, the auditor, migrations, HTTP clients, the API, SQLModel and
#: the ORM (the read path uses ledger.log.core_tables), pydantic and pydantic-settings (read
#: settings come from ledger.read_settings, CLI values from ledger.cli._params).
HEAVY = (
    "ledger.policy", "ledger.recorder", "ledger.audit", "ledger.api", "ledger.log.tables",
    "alembic", "httpx", "sqlmodel", "sqlalchemy.orm", "pydantic", "pydantic_settings",
)  # fmt: skip


@pytest.mark.parametrize(
    "command",
    [*READ_COMMANDS[:-1], ["verify", "--json"], ["entries", "list", "--limit", "5"]],
    ids=lambda c: " ".join(c),
)
def test_core_read_commands_import_no_policy_engine_recorder_orm_or_pydantic(
    tmp_path: Path, command: list[str]
) -> None:
    """What start-up costs most (the figures are in BENCHMARKS.md, bench/startup.py)."""
    build(tmp_path / "team")
    proc = _run_reporting_imports(tmp_path / "team", command, HEAVY)
    assert proc.stderr.strip().splitlines()[-1] == "[]"


def _run_reporting_imports(
    home: Path, command: list[str], heavy: tuple[str, ...]
) -> subprocess.CompletedProcess[str]:
    """Run ``ledger --home HOME COMMAND`` in a fresh interpreter (exit 0 asserted); its last
    stderr line lists the modules of ``heavy`` (or under them) that the command imported."""
    script = (
        "import sys\n"
        "from ledger.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        f"heavy = {heavy!r}\n"
        "sys.stderr.write(repr(sorted(m for m in sys.modules\n"
        "    if m in heavy or m.startswith(tuple(h + '.' for h in heavy)))))\n"
    )
    argv = ["ledger", "--home", str(home), *command]
    proc = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.argv = {argv!r}\n{script}"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc


def test_a_small_order_recorder_key_in_the_database_forges_nothing(tmp_path: Path) -> None:
    """The identity point "verifies" R = identity, S = 0 over any message; it must not count."""
    import base64
    from datetime import UTC, datetime

    from ledger.crypto.canonical import canonical_json
    from ledger.crypto.merkle import leaf_hash

    db = build(tmp_path / "team", count=2)
    weak = bytes.fromhex("01" + "00" * 31)
    weak_id = hashlib.sha256(weak).hexdigest()
    body = {"v": 1, "id": "forged-1", "recorded_at": "2026-01-01T00:00:00.000000Z",
            "recorder": weak_id, "provider": "openai", "purpose": "evaluate"}  # fmt: skip
    sig = base64.b64encode(bytes.fromhex("01" + "00" * 63)).decode()
    data = canonical_json({"body": body, "key_id": weak_id, "sig": sig})
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO keys (seq, kind, key_id, name, public_key, created_at) "
                 "VALUES (99, 'recorder', :k, 'recorder', :p, :t)"),
            {"k": weak_id, "p": weak, "t": datetime.now(UTC)},
        )  # fmt: skip
        conn.execute(
            text("INSERT INTO entries (leaf_index, entry_id, leaf_hash, entry, key_id, "
                 "recorded_at, provider, purpose) VALUES (2, 'forged-1', :h, :e, :k, "
                 "'2026-01-01 00:00:00.000000', 'openai', 'evaluate')"),
            {"h": leaf_hash(data), "e": data, "k": weak_id},
        )  # fmt: skip
    engine.dispose()
    code, _, err = cli("--home", str(tmp_path / "none"), "--db", f"sqlite:///{db}", "verify")
    assert code == 1
    assert "leaf 2: signed by unknown recorder key" in one_line(err)
    with ledger.open(f"sqlite:///{db}", read_only=True) as lg:
        report = lg.verify()
    assert any(f"recorder key {weak_id[:16]} is refused" in str(p) for p in report.problems)
    assert all(p.leaf_index in (None, 2) for p in report.problems)


#: What `audit conduct` must not import when nothing is found: the policy files' models and
#: engine (loaded only to cite a clause), the dataset auditor, pydantic, pydantic-settings.
CONDUCT_HEAVY = (
    "ledger.policy.schema", "ledger.policy.engine", "ledger.policy.loader",
    "ledger.policy.facts", "ledger.audit.dataset", "ledger.recorder", "ledger.api",
    "alembic", "httpx", "sqlmodel", "pydantic", "pydantic_settings",
)  # fmt: skip


def test_audit_conduct_without_findings_imports_no_policy_engine_or_pydantic(
    tmp_path: Path,
) -> None:
    build(tmp_path / "team")
    proc = _run_reporting_imports(tmp_path / "team", ["audit", "conduct"], CONDUCT_HEAVY)
    assert "No conduct findings" in proc.stdout
    assert proc.stderr.strip().splitlines()[-1] == "[]"
