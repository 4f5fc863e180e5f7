"""Packs stored in the ledger: parts round-trip, members read without the whole zip, the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from ledger.cli import app
from ledger.errors import NotFoundError, StoreError
from ledger.manifest import build, verify
from ledger.manifest.registry import record_build
from ledger.manifest.stored import (
    PACK_CHUNK,
    iter_chunks,
    pick_stored,
    read_member,
    store_pack,
    stored_packs,
)
from tests.audit.helpers import FACTS
from tests.conftest import LedgerFactory
from tests.manifest.conftest import Scenario

runner = CliRunner()


def _big_zip(path: Path) -> Path:
    # Random bytes stored uncompressed: the zip spans three parts, a member straddles two.
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("first.bin", os.urandom(PACK_CHUNK + 1000))
        archive.writestr("small.txt", b"hello")
        archive.writestr("last.bin", os.urandom(PACK_CHUNK))
    return path


def _register(lg: object, name: str = "big") -> int:
    record = record_build(
        lg.store,  # type: ignore[attr-defined]
        name=name, version=None, tree_size=0, root_hash=bytes(32), checkpoint="-",
        manifest_sha256="0" * 64, examples=0,
    )  # fmt: skip
    return record.seq


def test_a_zip_is_stored_in_parts_and_read_back(make_ledger: LedgerFactory, tmp_path: Path) -> None:
    lg = make_ledger()
    seq = _register(lg)
    source = _big_zip(tmp_path / "big.zip")
    stored = store_pack(lg.store.engine, seq, source)
    data = source.read_bytes()
    assert (stored.size, stored.chunks) == (len(data), 3)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    parts = list(iter_chunks(lg.store.engine, stored))
    assert [len(p) for p in parts[:-1]] == [PACK_CHUNK, PACK_CHUNK]
    assert b"".join(parts) == data
    with zipfile.ZipFile(source) as archive:
        for name in ("first.bin", "small.txt", "last.bin"):
            assert read_member(lg.store.engine, stored, name) == archive.read(name)
    with pytest.raises(NotFoundError, match=r"no nothing\.txt"):
        read_member(lg.store.engine, stored, "nothing.txt")
    assert stored_packs(lg.store.engine) == {seq: stored}
    # A build has one pack: storing again is refused and leaves the first intact.
    with pytest.raises(StoreError, match=f"build {seq}"):
        store_pack(lg.store.engine, seq, source)
    assert b"".join(iter_chunks(lg.store.engine, stored)) == data


def test_a_damaged_stored_pack_is_caught(make_ledger: LedgerFactory, tmp_path: Path) -> None:
    lg = make_ledger()
    stored = store_pack(lg.store.engine, _register(lg), _big_zip(tmp_path / "big.zip"))
    engine = lg.store.engine
    with engine.begin() as conn:  # an attacker with database access
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE manifest_pack_chunks DISABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER manifest_pack_chunks_no_update"))
        conn.execute(
            text("UPDATE manifest_pack_chunks SET data = :d WHERE part = 2"),
            {"d": b"\x00" * (stored.size - 2 * PACK_CHUNK)},
        )
    with pytest.raises(StoreError, match="does not match its SHA-256"):
        list(iter_chunks(lg.store.engine, stored))


def test_build_stores_folder_and_zip_packs_unless_told_not_to(
    scenario: Scenario, tmp_path: Path
) -> None:
    lg = scenario.lg
    zipped = build(lg, [scenario.dataset], tmp_path / "z", name="tutor", zip_pack=True,
                   profile=FACTS)  # fmt: skip
    folder = build(lg, [scenario.dataset], tmp_path / "f", name="tutor", profile=FACTS)
    skipped = build(lg, [scenario.dataset], tmp_path / "n", name="tutor", profile=FACTS,
                    store=False)  # fmt: skip
    assert zipped.stored is not None
    assert folder.stored is not None
    assert skipped.stored is None
    assert zipped.stored.sha256 == hashlib.sha256(zipped.path.read_bytes()).hexdigest()
    assert zipped.to_dict()["stored"]["sha256"] == zipped.stored.sha256
    assert set(stored_packs(lg.store.engine)) == {zipped.record.seq, folder.record.seq}
    record, pack = pick_stored(lg.store, "tutor")
    assert (record.seq, pack) == (folder.record.seq, folder.stored)
    with pytest.raises(NotFoundError, match="--no-store"):
        pick_stored(lg.store, "tutor", skipped.record.seq)
    with pytest.raises(NotFoundError, match="no build of dataset 'other'"):
        pick_stored(lg.store, "other")
    # The folder's zip holds exactly the folder's files and verifies like the folder.
    out = tmp_path / "folder.zip"
    out.write_bytes(b"".join(iter_chunks(lg.store.engine, folder.stored)))
    with zipfile.ZipFile(out) as archive:
        assert sorted(archive.namelist()) == sorted(
            p.relative_to(folder.path).as_posix() for p in folder.path.rglob("*") if p.is_file()
        )
        assert (
            archive.read("manifest.dsse.json") == (folder.path / "manifest.dsse.json").read_bytes()
        )
    assert verify(out, lg.verifier_key, datasets=[scenario.dataset]).ok


def test_cli_build_list_and_get(scenario: Scenario, tmp_path: Path) -> None:
    vkey = scenario.lg.verifier_key
    scenario.lg.close()  # the CLI opens the ledger itself
    home = ["--home", str(scenario.home)]
    for out, extra in [("a", ["--zip"]), ("b", ["--no-store"])]:
        result = runner.invoke(app, [*home, "manifest", "build", str(scenario.dataset), "--out",
                                     str(tmp_path / out), "--name", "tutor", *extra])  # fmt: skip
        assert result.exit_code == 0, result.stderr
    assert "stored in the ledger" in runner.invoke(app, [*home, "manifest", "build",
        str(scenario.dataset), "--out", str(tmp_path / "c"), "--name", "other"]).stdout  # fmt: skip
    listed = runner.invoke(app, [*home, "manifest", "list", "tutor", "--json"])
    assert listed.exit_code == 0, listed.stderr
    builds = json.loads(listed.stdout)["builds"]
    assert [(b["seq"], b["name"]) for b in builds] == [(1, "tutor"), (2, "tutor")]
    assert (
        builds[0]["stored"]["sha256"]
        == hashlib.sha256((tmp_path / "a.zip").read_bytes()).hexdigest()
    )
    assert builds[1]["stored"] is None
    text_out = runner.invoke(app, [*home, "manifest", "list"]).stdout
    assert "not stored" in text_out
    assert "other" in text_out

    got = runner.invoke(app, [*home, "manifest", "get", "tutor", "--out", str(tmp_path / "g.zip")])
    assert got.exit_code == 0, got.stderr
    assert (tmp_path / "g.zip").read_bytes() == (tmp_path / "a.zip").read_bytes()
    check = runner.invoke(app, ["manifest", "verify", str(tmp_path / "g.zip"), "--key", vkey])
    assert check.exit_code == 0, check.stderr
    for args, message in [
        (["tutor", "--build", "2", "--out", str(tmp_path / "x.zip")], "--no-store"),
        (["nope", "--out", str(tmp_path / "x.zip")], "no build of dataset 'nope'"),
        (["tutor", "--out", str(tmp_path / "g.zip")], "already exists"),
    ]:
        result = runner.invoke(app, [*home, "manifest", "get", *args])
        assert result.exit_code == 2, (args, result.stdout)
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.zip").exists()
