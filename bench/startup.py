"""CLI start-up: wall time of each read command on a small ledger (issue 8 point 18).

Each command runs as a fresh process, as a person or a script would run it, several times in
turn with the others (so a burst of load on the machine hits every command alike). Printed
next to two floors measured the same way: the bare interpreter and the interpreter importing
SQLAlchemy (which every command that opens a ledger needs), so the figures can be compared
across machines as ratios.

    python bench/startup.py [--entries 200] [--rounds 9]

Prints a Markdown table (wall time median and min, CPU time (user + system) median, and the
ratios of the medians to ``import sqlalchemy``'s), with the date and the load average before and
after the run, then the figures as JSON. On a loaded machine the CPU time is the steadier
figure: it is what the wall time would be on an idle one (every command runs on one core).

Commands run as an installed wheel runs them, from compiled byte code (pip compiles modules
on install): the children get a byte-code cache of their own (``PYTHONPYCACHEPREFIX`` in the
temporary folder, ``PYTHONDONTWRITEBYTECODE`` unset) and one untimed round fills it. Without
that, a checkout whose ``__pycache__`` is stale or never written compiles every changed
module on every run (about 0.1 s for the CLI's modules here).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = [
    ["--version"],
    ["verify"],
    ["entries", "list"],
    ["entries", "show", "0"],
    ["checkpoint"],
    ["key", "show"],
    ["proof", "inclusion", "0"],
    ["proof", "consistency", "1", "2"],
    ["audit", "conduct"],
    ["policy", "list"],
]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    import ledger

    exe = str(Path(sys.executable).with_name("ledger"))
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.UTC)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        with ledger.open(home=home) as lg:
            lg.append_many(
                {"provider": "openai", "request_model": "gpt-4.1", "purpose": "train-model",
                 "started_at": "2026-03-01T10:00:00Z", "n": i}
                for i in range(args.entries)
            )  # fmt: skip
            lg.checkpoint()
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        runs: dict[str, list[tuple[float, float]]] = {}
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import sqlalchemy'": [sys.executable, "-c", "import sqlalchemy"],
            **{"ledger " + " ".join(c): [exe, "--home", str(home), *c] for c in COMMANDS},
        }
        for argv in commands.values():  # untimed: fills the byte-code cache
            timed(argv, env)
        for _ in range(args.rounds):
            for name, argv in commands.items():
                runs.setdefault(name, []).append(timed(argv, env))
    load_after = os.getloadavg()
    floor_runs = runs["python -c 'import sqlalchemy'"]
    floor = statistics.median(w for w, _ in floor_runs)
    cpu_floor = statistics.median(c for _, c in floor_runs)
    rows = []
    print(
        f"Run of {started:%Y-%m-%d %H:%M} UTC, {args.entries} entries, {args.rounds} rounds, "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after:\n"
    )
    print(
        "| command | median s | min s | x `import sqlalchemy` | CPU median s "
        "| CPU x `import sqlalchemy` |\n|---|---|---|---|---|---|"
    )
    for name, pairs in runs.items():
        walls = [w for w, _ in pairs]
        median, cpu = statistics.median(walls), statistics.median(c for _, c in pairs)
        rows.append({
            "command": name, "median_s": round(median, 3), "min_s": round(min(walls), 3),
            "cpu_median_s": round(cpu, 3),
        })  # fmt: skip
        print(
            f"| `{name}` | {median:.3f} | {min(walls):.3f} | {median / floor:.2f} "
            f"| {cpu:.3f} | {cpu / cpu_floor:.2f} |"
        )
    print(
        json.dumps(
            {
                "date": started.isoformat(timespec="seconds"),
                "load_average": [round(load_before[0], 2), round(load_after[0], 2)],
                "entries": args.entries,
                "rounds": args.rounds,
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
