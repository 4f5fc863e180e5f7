"""Four processes appending into one ledger: contiguous leaves, a valid tree, verify passes.

The workers open the ledger, then wait at a barrier, so all four append at the same time
(without it, a worker that started late could find the others done). The test counts how
often the writer changed between consecutive leaves and fails if the appends never
interleaved: a run in which they were serialized would prove nothing about concurrency.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from ledger._ledger import Ledger
from ledger.settings import Settings
from tests.conftest import LedgerFactory

PROCESSES = 4
PER_PROCESS = 600
BATCH = 30

_barrier: Barrier | None = None


def _init_worker(barrier: Barrier) -> None:
    global _barrier  # one barrier per pool worker, set once when it starts
    _barrier = barrier


def append_from_process(url: str, home: str, worker: int) -> list[int]:
    settings = Settings(
        home=Path(home), database_url=url, checkpoint_every=0, checkpoint_interval=0
    )
    with Ledger.from_settings(settings) as lg:
        assert _barrier is not None
        _barrier.wait(timeout=120)  # every worker has its ledger open: append together
        indexes: list[int] = []
        for start in range(0, PER_PROCESS, BATCH):
            bodies = [{"worker": worker, "n": n} for n in range(start, start + BATCH)]
            indexes.extend(r.leaf_index for r in lg.append_many(bodies))
        return indexes


@pytest.mark.slow
def test_four_processes_append_concurrently(make_ledger: LedgerFactory, tmp_path: Path) -> None:
    lg = make_ledger()  # creates the schema and the keys the workers share
    url = lg.store.engine.url.render_as_string(hide_password=False)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    with ctx.Pool(PROCESSES, initializer=_init_worker, initargs=(barrier,)) as pool:
        results = pool.starmap(
            append_from_process, [(url, str(lg.home), w) for w in range(PROCESSES)]
        )
    all_indexes = sorted(i for indexes in results for i in indexes)
    assert all_indexes == list(range(PROCESSES * PER_PROCESS))
    # Every worker's own entries are in its append order.
    for worker, indexes in enumerate(results):
        assert indexes == sorted(indexes), worker
    # The appends really interleaved: serialized workers change hands PROCESSES - 1 times.
    writer = {i: worker for worker, indexes in enumerate(results) for i in indexes}
    changes = sum(writer[i] != writer[i + 1] for i in range(len(writer) - 1))
    assert changes >= 2 * PROCESSES, f"the writer changed only {changes} times"
    assert lg.size == PROCESSES * PER_PROCESS
    checkpoint = lg.checkpoint()
    assert checkpoint.tree_size == PROCESSES * PER_PROCESS
    report = lg.verify()
    assert report.ok, report.first_problem
    assert report.entries == PROCESSES * PER_PROCESS
