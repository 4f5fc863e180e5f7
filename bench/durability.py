"""Durability under crashes and outages: kill -9 storms and a PostgreSQL outage, longer than CI.

Run: ``.venv/bin/python bench/durability.py [--rounds N] [--outage SECONDS] [--json]``.
PostgreSQL parts need ``LEDGER_TEST_POSTGRES_URL`` (a schema is created and dropped; the server
itself is never stopped: the outage is a local TCP forwarder that the run closes).

What it reports, per scenario: acknowledged entries, lost, duplicated, and whether the log
verified afterwards. Harnesses: ``tests/recorder/storm.py`` (the test suite runs them shorter).

- SQLite: ``append``, ``append_many``, ``submit`` + ``flush``, and sync-durability recorded calls
  through the real openai SDK against the fake provider; one child, SIGKILLed at random
  acknowledged counts, ``--rounds`` times on the same ledger.
- PostgreSQL: four children running ``append_many`` into one ledger, all SIGKILLed together.
- PostgreSQL outage: async recorded calls through an outage of ``--outage`` seconds (default
  20), then ``ledger spool flush``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import ledger  # noqa: E402
from ledger.testing.fake_provider import FakeProviderServer  # noqa: E402
from tests.recorder import storm  # noqa: E402


def _sqlite_ledger(home: Path) -> str:
    url = f"sqlite:///{home / 'ledger.db'}"
    ledger.open(url, home=home).close()
    return url


def run(rounds: int, outage: float) -> dict[str, Any]:
    """Every scenario; returns one summary per scenario."""
    results: dict[str, Any] = {}
    postgres = os.environ.get("LEDGER_TEST_POSTGRES_URL")
    with FakeProviderServer() as fake, tempfile.TemporaryDirectory() as tmp:
        for mode in ("append", "append_many", "submit", "sync"):
            home = Path(tmp) / f"sqlite-{mode}"
            home.mkdir()
            started = time.perf_counter()
            result = storm.kill_storm(
                mode,
                _sqlite_ledger(home),
                home,
                rounds=rounds,
                acks=(5, 200),
                base_url=fake.openai_base_url,
            )
            results[f"sqlite {mode}"] = _summary(result, started)
        if postgres:
            schema = storm.new_postgres_schema(postgres)
            try:
                home = Path(tmp) / "pg-storm"
                home.mkdir()
                url = storm.postgres_schema_url(postgres, schema)
                ledger.open(url, home=home).close()
                started = time.perf_counter()
                result = storm.kill_storm("append_many", url, home, processes=4, rounds=rounds)
                results["postgres 4 processes append_many"] = _summary(result, started)
            finally:
                storm.drop_postgres_schema(postgres, schema)
            schema = storm.new_postgres_schema(postgres)
            try:
                home = Path(tmp) / "pg-outage"
                home.mkdir()
                started = time.perf_counter()
                outage_result = storm.postgres_outage(
                    postgres, schema, home, fake.openai_base_url, outage
                )
                results[f"postgres outage {outage:g} s"] = {
                    "returned": len(outage_result.returned),
                    "spooled": outage_result.spooled,
                    "replayed": outage_result.replayed,
                    "lost": outage_result.lost,
                    "duplicated": outage_result.duplicated,
                    "seconds": round(time.perf_counter() - started, 1),
                }
            finally:
                storm.drop_postgres_schema(postgres, schema)
    return results


def _summary(result: storm.StormResult, started: float) -> dict[str, Any]:
    return {
        "rounds": result.rounds,
        "acknowledged": len(result.acknowledged),
        "lost": result.lost,
        "duplicated": result.duplicated,
        "verified": result.verified,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> int:
    """Run and print the figures; exit 1 if anything was lost or duplicated."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=10, help="kills per storm")
    parser.add_argument("--outage", type=float, default=20.0, help="outage length (seconds)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    results = run(args.rounds, args.outage)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name, figures in results.items():
            print(f"{name:36} " + "  ".join(f"{k}={v}" for k, v in figures.items()))
    bad = any(f["lost"] or f["duplicated"] for f in results.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
