"""Four processes appending into one ledger: contiguous leaves, a valid tree, verify passes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from ledger._ledger import Ledger
from ledger.settings import Settings
from tests.conftest import LedgerFactory

PROCESSES = 4
PER_PROCESS = 2_000


def append_from_process(url: str, home: str, worker: int) -> list[int]:
    settings = Settings(
        home=Path(home), database_url=url, checkpoint_every=0, checkpoint_interval=0
    )
    with Ledger.from_settings(settings) as lg:
        indexes: list[int] = []
        for start in range(0, PER_PROCESS, 50):
            bodies = [{"worker": worker, "n": n} for n in range(start, start + 50)]
            indexes.extend(r.leaf_index for r in lg.append_many(bodies))
        return indexes


@pytest.mark.slow
def test_four_processes_append_concurrently(make_ledger: LedgerFactory, tmp_path: Path) -> None:
    lg = make_ledger()  # creates the schema and the keys the workers share
    url = lg.store.engine.url.render_as_string(hide_password=False)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as pool:
        results = pool.starmap(
            append_from_process, [(url, str(lg.home), w) for w in range(PROCESSES)]
        )
    all_indexes = sorted(i for indexes in results for i in indexes)
    assert all_indexes == list(range(PROCESSES * PER_PROCESS))
    # Every worker's own entries are in its append order.
    for worker, indexes in enumerate(results):
        assert indexes == sorted(indexes), worker
    assert lg.size == PROCESSES * PER_PROCESS
    checkpoint = lg.checkpoint()
    assert checkpoint.tree_size == PROCESSES * PER_PROCESS
    report = lg.verify()
    assert report.ok, report.first_problem
    assert report.entries == PROCESSES * PER_PROCESS
