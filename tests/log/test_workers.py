"""Worker interpreters: ordered results, errors carried back, no second run of the caller."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ledger.log.workers import WorkerError, WorkerPool


def test_results_come_back_in_task_order() -> None:
    # Uneven costs, so the two workers finish out of order.
    tasks = [4000, 1, 3000, 2, 5, 2500, 7, 1, 1, 3500]
    with WorkerPool(2, "math:factorial", "time:time") as pool:
        assert list(pool.map(tasks)) == [math.factorial(n) for n in tasks]
        assert list(pool.map([3, 4])) == [6, 24]  # the pool serves more than one map


def test_task_exception_is_raised_in_the_caller() -> None:
    with (
        WorkerPool(2, "math:factorial", "time:time") as pool,
        pytest.raises(ValueError, match="negative"),
    ):
        list(pool.map([3, -1, 4]))


def test_initializer_failure_is_raised_in_the_caller() -> None:
    with (
        WorkerPool(1, "math:factorial", "no_such_module_here:setup") as pool,
        pytest.raises(ModuleNotFoundError, match="no_such_module_here"),
    ):
        list(pool.map([1]))


def test_a_dying_worker_raises_worker_error() -> None:
    with (
        WorkerPool(1, "os:_exit", "time:time") as pool,
        pytest.raises(WorkerError, match="exited with code 3"),
    ):
        list(pool.map([3]))


def test_printing_in_a_worker_does_not_break_the_protocol() -> None:
    with WorkerPool(1, "builtins:print", "time:time") as pool:
        assert list(pool.map(["to stderr", "again"])) == [None, None]


def test_a_consumer_that_stops_early_does_not_hang() -> None:
    pool = WorkerPool(2, "math:factorial", "time:time")
    results = pool.map([2000] * 50)
    assert next(results) == math.factorial(2000)
    results.close()  # type: ignore[attr-defined]
    pool.close()


def test_unguarded_script_verifies_without_running_again(tmp_path: Path) -> None:
    # multiprocessing would import this script again in every worker (no __main__ guard):
    # its appends would run twice and the pool would break.
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, sys
            import ledger
            lg = ledger.open(home=sys.argv[1])
            print("script body ran", file=sys.stderr)
            lg.append_many({"n": i} for i in range(5_000))
            report = lg.verify(workers=2)
            print(json.dumps({"size": lg.size, "ok": report.ok}))
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "home")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"size": 5_000, "ok": True}
    assert done.stderr.count("script body ran") == 1


def test_in_memory_sqlite_verifies_in_one_process(tmp_path: Path) -> None:
    # Workers opening "sqlite://" would each get a new, empty database.
    import ledger

    with ledger.open("sqlite://", home=tmp_path) as lg:
        lg.append_many({"n": i} for i in range(5_000))
        report = lg.verify(workers=2)
    assert report.ok, report.first_problem
    assert report.entries == 5_000


def test_verify_falls_back_to_one_process_when_workers_cannot_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import ledger

    with ledger.open(home=tmp_path) as lg:
        lg.append_many({"n": i} for i in range(5_000))
        monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
        report = lg.verify(workers=2)
    assert report.ok, report.first_problem
    assert "verifying in one process: cannot start a worker process" in caplog.text


def test_tasks_sent_ahead_come_back_in_the_order_sent() -> None:
    with WorkerPool(1, "math:factorial", "time:time") as pool:
        for n in (5, 6, 7):
            pool.send(0, n)
        assert [pool.receive(0) for _ in range(3)] == [120, 720, 5040]
        assert pool.run(0, 3) == 6  # and the worker goes on as before
