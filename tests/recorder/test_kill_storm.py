"""kill -9 storms: no acknowledged entry is ever lost (issue 8, "Done means").

Children append, append_many, submit+flush or make sync-durability calls and send each id as
it is acknowledged; they are SIGKILLed at random points (see ``tests/recorder/storm.py``), and
each storm must have killed children mid-write (after a write began, before its ack) several
times, so a storm that only ever killed idle children fails.
``bench/durability.py`` runs the same storms longer.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import ledger
from ledger.testing.fake_provider import FakeProviderServer
from tests.recorder import storm
from tests.recorder.helpers import open_ledger


def _sqlite(home: Path) -> str:
    open_ledger(home).close()  # the children open an existing ledger
    return f"sqlite:///{home / 'ledger.db'}"


@pytest.mark.parametrize("mode", ["append", "append_many", "submit"])
def test_sqlite_storm_loses_no_acknowledged_entry(tmp_path: Path, mode: str) -> None:
    url = _sqlite(tmp_path)
    result = storm.kill_storm(mode, url, tmp_path, rounds=3, acks=(10, 80))
    assert len(result.acknowledged) >= 30
    assert result.mid_write >= 2, storm.describe(result)

    assert result.lost == 0, storm.describe(result)
    assert result.duplicated == 0
    assert result.verified


def test_sync_durability_calls_survive_kill(
    tmp_path: Path, fake_provider: FakeProviderServer
) -> None:
    url = _sqlite(tmp_path)
    result = storm.kill_storm(
        "sync", url, tmp_path, rounds=3, acks=(5, 30), base_url=fake_provider.openai_base_url
    )
    assert len(result.acknowledged) >= 15
    assert result.mid_write >= 2, storm.describe(result)

    assert result.lost == 0, storm.describe(result)
    assert result.duplicated == 0


@pytest.mark.postgres
@pytest.mark.slow
def test_four_postgres_processes_storm(tmp_path: Path) -> None:
    base = os.environ.get("LEDGER_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("LEDGER_TEST_POSTGRES_URL is not set")
    schema = storm.new_postgres_schema(base)
    try:
        url = storm.postgres_schema_url(base, schema)
        ledger.open(url, home=tmp_path).close()
        result = storm.kill_storm("append_many", url, tmp_path, processes=4, rounds=2)
        assert result.kills == 8
        assert result.mid_write >= 4, storm.describe(result)

        assert result.lost == 0, storm.describe(result)
        assert result.duplicated == 0
        assert result.verified
    finally:
        storm.drop_postgres_schema(base, schema)
