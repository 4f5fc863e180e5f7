"""CLI start-up: wall time of each read command on a small ledger (issue 8 point 18).

Each command runs as a fresh process, as a person or a script would run it, several times in
turn with the others (so a burst of load on the machine hits every command alike). Printed
next to two floors measured the same way: the bare interpreter and the interpreter importing
SQLAlchemy (which every command that opens a ledger needs), so the figures can be compared
across machines as ratios.

    python bench/startup.py [--entries 200] [--rounds 9]
"""

from __future__ import annotations

import argparse
import json
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
    ["audit", "conduct"],
    ["policy", "list"],
]


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    import ledger

    exe = str(Path(sys.executable).with_name("ledger"))
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        with ledger.open(home=home) as lg:
            lg.append_many(
                {"provider": "openai", "request_model": "gpt-4.1", "purpose": "train-model",
                 "started_at": "2026-03-01T10:00:00Z", "n": i}
                for i in range(args.entries)
            )  # fmt: skip
            lg.checkpoint()
        runs: dict[str, list[float]] = {}
        floors = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import sqlalchemy'": [sys.executable, "-c", "import sqlalchemy"],
        }
        for _ in range(args.rounds):
            for name, argv in floors.items():
                runs.setdefault(name, []).append(timed(argv))
            for command in COMMANDS:
                name = "ledger " + " ".join(command)
                runs.setdefault(name, []).append(timed([exe, "--home", str(home), *command]))
    floor = statistics.median(runs["python -c 'import sqlalchemy'"])
    rows = []
    print(f"{'command':<34} {'median s':>9} {'min s':>7} {'x sqlalchemy import':>20}")
    for name, times in runs.items():
        median = statistics.median(times)
        rows.append({"command": name, "median_s": round(median, 3), "min_s": round(min(times), 3)})
        print(f"{name:<34} {median:9.3f} {min(times):7.3f} {median / floor:20.2f}")
    print(json.dumps({"entries": args.entries, "rounds": args.rounds, "rows": rows}))


if __name__ == "__main__":
    main()
