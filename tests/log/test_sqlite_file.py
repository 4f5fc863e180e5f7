"""SQLite-specific safety: a deleted database file and a forked process."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from ledger._ledger import Ledger
from ledger.errors import StoreError
from ledger.settings import Settings


def open_here(tmp_path: Path) -> Ledger:
    return Ledger.from_settings(
        Settings(home=tmp_path, checkpoint_every=0, checkpoint_interval=0, judge=False)
    )


def test_deleted_database_file_is_refused_not_written(tmp_path: Path) -> None:
    lg = open_here(tmp_path)
    lg.append({"n": 0})
    for file in tmp_path.glob("ledger.db*"):
        file.unlink()
    # The pooled connection could still write into the unlinked inode, and the entry would be
    # acknowledged and then lost; the store refuses instead.
    with pytest.raises(StoreError, match="deleted or replaced"):
        lg.append({"n": 1})
    with pytest.raises(StoreError, match="deleted or replaced"):
        lg.submit({"n": 2}).result(timeout=30)
    lg.close()


_inherited: list[Ledger] = []


def _append_in_child() -> None:
    lg = _inherited[0]
    lg.append({"from": "child"})
    lg.flush()


def test_forked_child_gets_its_own_writer_and_connections(tmp_path: Path) -> None:
    lg = open_here(tmp_path)
    _inherited[:] = [lg]
    lg.append({"from": "parent"})
    child = multiprocessing.get_context("fork").Process(target=_append_in_child)
    child.start()
    child.join(60)
    assert child.exitcode == 0
    lg.append({"from": "parent"})
    assert [e.body["from"] for e in lg.entries()] == ["parent", "child", "parent"]
    assert lg.verify().ok
    lg.close()
    _inherited.clear()


def test_schema_revisions_constant_matches_the_migrations() -> None:
    """Read-only opens check the schema without alembic; this keeps their list true."""
    from alembic.script import ScriptDirectory

    from ledger.log.schema import SCHEMA_REVISIONS, alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    walked = [rev.revision for rev in script.walk_revisions()]  # newest first
    assert list(SCHEMA_REVISIONS) == walked[::-1]
