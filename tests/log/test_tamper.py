"""With the triggers dropped, every kind of tampering makes `ledger verify` exit 1 and name it."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from typer.testing import CliRunner

from ledger._ledger import Ledger
from ledger.cli import app
from ledger.crypto.canonical import canonical_json
from ledger.crypto.keys import SigningKey
from ledger.crypto.note import Checkpoint, NoteSigner, sign_checkpoint
from ledger.crypto.tree import stored_index
from tests.conftest import LedgerFactory
from tests.log.test_store_contract import body, drop_triggers

runner = CliRunner()


def verify_cli(lg: Ledger, *extra: str) -> tuple[int, str]:
    url = str(lg.store.engine.url.render_as_string(hide_password=False))
    result = runner.invoke(app, ["--home", str(lg.home), "--db", url, "verify", *extra])
    return result.exit_code, result.stderr + result.stdout


@pytest.fixture
def tampered(make_ledger: LedgerFactory) -> Callable[[str, dict[str, object]], tuple[int, str]]:
    """Build a 12-entry ledger with checkpoints at 6 and 12, tamper with it, run verify."""

    def run(statement: str, params: dict[str, object]) -> tuple[int, str]:
        lg = make_ledger()
        lg.append_many([body(i) for i in range(6)])
        lg.checkpoint()
        lg.append_many([body(i) for i in range(6, 12)])
        lg.checkpoint()
        assert verify_cli(lg)[0] == 0
        drop_triggers(lg)
        with lg.store.engine.begin() as conn:
            for part in statement.split(";"):
                conn.execute(text(part), params)
        lg.close()
        return verify_cli(lg)

    return run


def entry_bytes(conn: Connection, leaf: int) -> bytes:
    return bytes(
        conn.execute(text(f"SELECT entry FROM entries WHERE leaf_index = {leaf}")).scalar()
    )


def test_untouched_ledger_verifies(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    lg.append_many([body(i) for i in range(20)])
    lg.checkpoint()
    code, out = verify_cli(lg, "--json")
    assert code == 0
    assert json.loads(out)["entries"] == 20


def test_modified_body(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    lg.append_many([body(i) for i in range(10)])
    lg.checkpoint()
    drop_triggers(lg)
    with lg.store.engine.begin() as conn:
        data = entry_bytes(conn, 4).replace(b'"request_model":"m-4"', b'"request_model":"m-X"')
        conn.execute(text("UPDATE entries SET entry = :e WHERE leaf_index = 4"), {"e": data})
    code, out = verify_cli(lg)
    assert code == 1
    assert "leaf 4:" in out


def test_modified_signature(make_ledger: LedgerFactory) -> None:
    lg = make_ledger()
    lg.append_many([body(i) for i in range(10)])
    drop_triggers(lg)
    with lg.store.engine.begin() as conn:
        signed = json.loads(entry_bytes(conn, 7))
        other = SigningKey.generate()
        import base64

        from ledger.crypto.canonical import canonical_json
        from ledger.crypto.merkle import leaf_hash

        signed["sig"] = base64.b64encode(other.sign(canonical_json(signed["body"]))).decode()
        data = canonical_json(signed)
        # The attacker even fixes the leaf hash column: the signature still gives it away.
        conn.execute(
            text("UPDATE entries SET entry = :e, leaf_hash = :h WHERE leaf_index = 7"),
            {"e": data, "h": leaf_hash(data)},
        )
    code, out = verify_cli(lg)
    assert code == 1
    assert "leaf 7: signature does not verify" in out


def test_modified_stored_hash(tampered: Callable[..., tuple[int, str]]) -> None:
    code, out = tampered(
        "UPDATE tree_hashes SET hash = :h WHERE idx = :i",
        {"h": b"\x01" * 32, "i": stored_index(0, 9)},
    )
    assert code == 1
    assert "leaf 9: stored subtree hash" in out


def test_deleted_entry(tampered: Callable[..., tuple[int, str]]) -> None:
    code, out = tampered("DELETE FROM entries WHERE leaf_index = 5", {})
    assert code == 1
    assert "leaf 5: leaf 5 is missing" in out


def test_swapped_entries(tampered: Callable[..., tuple[int, str]]) -> None:
    # Swap whole rows 2 and 8 (entry, its id and its leaf hash move together).
    code, out = tampered(
        "UPDATE entries SET leaf_index = -1 WHERE leaf_index = 2;"
        "UPDATE entries SET leaf_index = 2 WHERE leaf_index = 8;"
        "UPDATE entries SET leaf_index = 8 WHERE leaf_index = -1",
        {},
    )
    assert code == 1
    assert "leaf 2:" in out


def test_truncated_tail(tampered: Callable[..., tuple[int, str]]) -> None:
    code, out = tampered(
        "DELETE FROM entries WHERE leaf_index >= 9; DELETE FROM tree_hashes WHERE idx >= :i",
        {"i": stored_index(0, 9)},
    )
    assert code == 1
    assert "checkpoint 1: size 12 is beyond the log's 9 entries" in out


def test_replaced_checkpoint(tampered: Callable[..., tuple[int, str]], tmp_path: Path) -> None:
    forged = sign_checkpoint(
        Checkpoint("ledger.local/forged", 6, b"\x02" * 32),
        NoteSigner("ledger.local/forged", SigningKey.generate()),
    )
    code, out = tampered("UPDATE checkpoints SET note = :n WHERE seq = 0", {"n": forged})
    assert code == 1
    assert "checkpoint 0: signed note does not verify" in out


def test_rollback_and_fork_caught_by_auditor_checkpoint(
    make_ledger: LedgerFactory, tmp_path: Path
) -> None:
    lg = make_ledger()
    lg.append_many([body(i) for i in range(10)])
    auditor_copy = tmp_path / "auditor.checkpoint"
    auditor_copy.write_text(lg.checkpoint().note)
    # The operator rewrites history with the log's own keys: drop everything from leaf 6 on,
    # checkpoints included, and append different entries. The log is internally consistent.
    drop_triggers(lg)
    with lg.store.engine.begin() as conn:
        conn.execute(text("DELETE FROM entries WHERE leaf_index >= 6"))
        conn.execute(text("DELETE FROM tree_hashes WHERE idx >= :i"), {"i": stored_index(0, 6)})
        conn.execute(text("DELETE FROM checkpoints"))
    lg.close()
    lg = make_ledger()
    lg.append_many([body(100 + i) for i in range(3)])
    lg.checkpoint()
    assert verify_cli(lg)[0] == 0
    code, out = verify_cli(lg, "--checkpoint", str(auditor_copy))
    assert code == 1
    assert "auditor checkpoint 0 (size 10) is beyond the log's 9 entries" in out
    lg.append_many([body(200 + i) for i in range(5)])
    code, out = verify_cli(lg, "--checkpoint", str(auditor_copy))
    assert code == 1
    assert "the log was forked" in out


def test_tampering_found_across_worker_chunks(sqlite_ledger: Ledger) -> None:
    # Large enough for worker processes and several aligned chunks of 2,048 leaves.
    lg = sqlite_ledger
    lg.append_many([body(i) for i in range(5_000)])
    lg.checkpoint()
    assert lg.verify().ok
    drop_triggers(lg)
    with lg.store.engine.begin() as conn:
        # A hash above the chunk level (only the main process checks those) ...
        conn.execute(
            text("UPDATE tree_hashes SET hash = :h WHERE idx = :i"),
            {"h": b"\x05" * 32, "i": stored_index(12, 0)},
        )
        # ... and a forged signature just past a chunk boundary, outside those leaves.
        data = entry_bytes(conn, 4_097).replace(b'"sig":"', b'"sig":"AAAA')
        conn.execute(text("UPDATE entries SET entry = :e WHERE leaf_index = 4097"), {"e": data})
    report = lg.verify()
    found = [str(p) for p in report.problems]
    assert str(report.first_problem).startswith("leaf 0: stored subtree hash")
    assert "(level 12, leaves 0..4095)" in found[0]
    assert any(p.startswith("leaf 4097: signature does not verify") for p in found)


@pytest.mark.parametrize(
    "form",
    [
        '{{"id":"{id}","n":5.0}}',  # an integral number written as a float
        '{{"id":"{id}","n":1e+16}}',  # exponent where JCS writes digits
        '{{"n":5,"id":"{id}"}}',  # members out of order
        '{{"id": "{id}","n":5}}',  # white space
        '{{"id":"{id}","s":"\\u0041"}}',  # an escape JCS does not use
        '{{"id":"{id}","t":9.9e-6}}',  # JCS writes 0.0000099 (orjson would write this)
    ],
)
def test_signed_but_not_canonical(make_ledger: LedgerFactory, form: str) -> None:
    # The recorder key itself signed these exact bytes: only the form check can object.
    from ledger.crypto.merkle import leaf_hash
    from ledger.log.records import signed_entry_bytes

    lg = make_ledger()
    lg.append_many([body(i) for i in range(6)])
    entry_id = lg.entry(3).body["id"]
    body_bytes = form.format(id=entry_id).encode()
    key = lg.recorder_key
    sig = base64.b64encode(key.sign(body_bytes)).decode()
    data = signed_entry_bytes(body_bytes, key.key_id, sig)
    drop_triggers(lg)
    with lg.store.engine.begin() as conn:
        conn.execute(
            text("UPDATE entries SET entry = :e, leaf_hash = :h WHERE leaf_index = 3"),
            {"e": data, "h": leaf_hash(data)},
        )
    report = lg.verify()
    assert str(report.first_problem) == "leaf 3: entry bytes are not in RFC 8785 canonical form"


def test_numbers_jcs_writes_as_integers_verify(make_ledger: LedgerFactory) -> None:
    # JCS writes these doubles as 10000000000000000, 1152921504606846976, 5, 0.0000099: verify
    # must read them back as doubles, not as integers JCS cannot represent.
    lg = make_ledger()
    lg.append_many(
        [body(0, big=1e16, huge=2.0**60, whole=5.0, tiny=9.9e-6, neg=-1e20), body(1, x=1e21)]
    )
    stored = lg.entry(0).entry
    assert b'"big":10000000000000000' in canonical_json(stored)
    report = lg.verify()
    assert report.ok, report.first_problem
