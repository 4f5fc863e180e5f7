"""Ledger core benchmark: signed appends, proofs and verify, on SQLite and PostgreSQL.

Prints, in one run and side by side:
- raw Ed25519 sign rate (one core) and verify rate (one core and all cores);
- sustained signed appends with group commit, entries/s: through ``append_many`` (the caller's
  thread) and through ``submit`` (the background writer), and the ratio to the raw signing
  rate (policy verdicts are judged and stored for every entry, as by default);
- median inclusion and consistency proof time at the full size (default 1,000,000 entries);
- ``verify`` of the whole log, entries/s, and the ratio to the raw all-core verify rate
  measured just before and just after it (the higher of the two).

Usage:
    python bench/ledger_bench.py [--entries 1000000] [--backends sqlite,postgres]
        [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, text

from ledger._ledger import Ledger
from ledger.crypto.canonical import canonical_json
from ledger.crypto.keys import SigningKey, VerifyingKey
from ledger.log.records import format_timestamp, uuid7
from ledger.settings import Settings


def sample_body(n: int) -> dict[str, Any]:
    """A body shaped like the recorder's (about 1 KB signed)."""
    from datetime import UTC, datetime

    return {
        "id": uuid7(),
        "started_at": format_timestamp(datetime.now(UTC)),
        "duration_ms": 412.337 + n % 97,
        "provider": "openai",
        "operation": "chat",
        "endpoint": {"scheme": "https", "host": "api.openai.com", "port": 443,
                     "path": "/v1/chat/completions"},
        "request_model": "gpt-4.1",
        "response_model": "gpt-4.1-2025-04-14",
        "response_id": f"chatcmpl-{n:024d}",
        "provider_request_id": f"req_{n:032x}",
        "account": "9f" * 32,
        "org_headers": {"openai-organization": "org-abc", "openai-project": "proj_def"},
        "client": {"user_agent": "OpenAI/Python 3.57.0",
                   "headers": {"x-stainless-lang": "python",
                               "x-stainless-package-version": "3.57.0"}},
        "status": 200,
        "outcome": "complete",
        "stream": bool(n % 2),
        "finish_reasons": ["stop"],
        "usage": {"input_tokens": 812 + n % 13, "output_tokens": 233 + n % 31},
        "output_modality": "text",
        "request_sha256": "ab" * 32,
        "response_sha256": "cd" * 32,
        "content_encoding": None,
        "output_sha256": ["ef" * 32],
        "rate_limit": {"x-ratelimit-remaining-requests": "4999"},
        "purpose": "train-model",
        "dataset": "distill-v1",
        "tags": ["bench"],
    }  # fmt: skip


# -- raw crypto rates ------------------------------------------------------------------------


def _verify_many(args: tuple[bytes, list[tuple[bytes, bytes]]]) -> int:
    raw, items = args
    key = VerifyingKey.from_raw(raw)
    return sum(key.is_valid(sig, msg) for sig, msg in items)


class RawVerify:
    """The raw Ed25519 verify rate on all cores: plain verify loops in one process per core.

    Measured several times in a run (at the start, and just before and after each backend's
    verify), because this shared machine's rate moves by 10% or more from minute to minute;
    each verify is compared with the higher of the two measurements around it.
    """

    def __init__(self, samples: int = 4_000) -> None:
        key = SigningKey.generate()
        messages = [canonical_json(sample_body(i)) for i in range(samples)]
        self.raw = key.public_key.raw
        self.pairs = [(key.sign(m), m) for m in messages]
        self.cores = os.cpu_count() or 1
        self.pool = ProcessPoolExecutor(self.cores, mp_context=get_context("spawn"))
        list(self.pool.map(_verify_many, [(self.raw, self.pairs[:10])] * self.cores))

    def one_core(self) -> float:
        started = time.perf_counter()
        _verify_many((self.raw, self.pairs))
        return len(self.pairs) / (time.perf_counter() - started)

    def all_cores(self, seconds: float = 3.0) -> float:
        chunk = len(self.pairs) // (self.cores * 4)
        jobs = [(self.raw, self.pairs[i : i + chunk]) for i in range(0, len(self.pairs), chunk)]
        total = 0
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            total += sum(self.pool.map(_verify_many, jobs))
        return total / elapsed

    def close(self) -> None:
        self.pool.shutdown()


def sign_rate(samples: int = 4_000) -> float:
    key = SigningKey.generate()
    messages = [canonical_json(sample_body(i)) for i in range(samples)]
    started = time.perf_counter()
    for message in messages:
        key.sign(message)
    return samples / (time.perf_counter() - started)


# -- the ledger ------------------------------------------------------------------------------


def fresh_postgres_url(base: str) -> tuple[str, str]:
    schema = f"bench_{secrets.token_hex(4)}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}", schema


def drop_postgres_schema(base: str, schema: str) -> None:
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


def bench_backend(
    name: str, url: str, home: Path, entries: int, reference: RawVerify
) -> dict[str, float]:
    settings = Settings(
        home=home, database_url=url, checkpoint_every=100_000, checkpoint_interval=0
    )
    results: dict[str, float] = {}
    with Ledger.from_settings(settings) as lg:
        # Sustained appends: producers submit as fast as they can; the writer group-commits.
        # Bodies are made once; each append only gets a fresh id (a recorder's per-call
        # work is measured in bench/recorder.py, not here). The first half goes through
        # append_many (group commit in the caller's thread), the second through submit (the
        # background writer, as the recorder uses it, with this thread producing).
        window = 20_000
        templates = [sample_body(n) for n in range(window)]
        half = entries // 2
        started = time.perf_counter()
        for start in range(0, half, window):
            count = min(window, half - start)
            lg.append_many({**body, "id": uuid7()} for body in templates[:count])
        results["append_many_per_s"] = half / (time.perf_counter() - started)
        started = time.perf_counter()
        for start in range(half, entries, window):
            for body in templates[: min(window, entries - start)]:
                lg.submit({**body, "id": uuid7()})
        lg.flush()
        results["submit_per_s"] = (entries - half) / (time.perf_counter() - started)
        size = lg.size
        assert size == entries, (size, entries)

        rng = random.Random(7)
        inclusion, consistency = [], []
        for _ in range(500):
            leaf = rng.randrange(size)
            t0 = time.perf_counter()
            lg.inclusion_proof(leaf, size)
            inclusion.append(time.perf_counter() - t0)
            first = rng.randrange(1, size)
            t0 = time.perf_counter()
            lg.consistency_proof(first, size)
            consistency.append(time.perf_counter() - t0)
        results["inclusion_ms"] = statistics.median(inclusion) * 1e3
        results["consistency_ms"] = statistics.median(consistency) * 1e3
        lg.checkpoint()
        results["raw_verify_before"] = reference.all_cores()
        report = lg.verify()
        results["raw_verify_after"] = reference.all_cores()
        assert report.ok, report.first_problem
        results["verify_per_s"] = report.entries / report.seconds
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "LEDGER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, entries per backend: {args.entries:,}")
    reference = RawVerify()
    raw_sign = sign_rate()
    print(
        f"raw Ed25519: sign {raw_sign:,.0f}/s (1 core), verify {reference.one_core():,.0f}/s "
        f"(1 core), {reference.all_cores():,.0f}/s (all cores)"
    )
    rows = []
    try:
        for backend in args.backends.split(","):
            with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
                home = Path(tmp)
                schema = None
                if backend == "sqlite":
                    url = f"sqlite:///{home / 'ledger.db'}"
                else:
                    url, schema = fresh_postgres_url(args.postgres_url)
                try:
                    r = bench_backend(backend, url, home, args.entries, reference)
                finally:
                    if schema:
                        drop_postgres_schema(args.postgres_url, schema)
            rows.append((backend, r))
    finally:
        reference.close()
    print()
    print(
        f"{'backend':<10} {'append_many/s':>13} {'submit/s':>9} {'/raw sign':>10} {'incl ms':>8} "
        f"{'cons ms':>8} {'verify/s':>9} {'raw verify/s':>17} {'/raw verify':>11}"
    )
    for backend, r in rows:
        before, after = r["raw_verify_before"], r["raw_verify_after"]
        print(
            f"{backend:<10} {r['append_many_per_s']:>13,.0f} {r['submit_per_s']:>9,.0f} "
            f"{r['append_many_per_s'] / raw_sign:>10.2f} "
            f"{r['inclusion_ms']:>8.3f} {r['consistency_ms']:>8.3f} {r['verify_per_s']:>9,.0f} "
            f"{before:>8,.0f}/{after:<8,.0f} {r['verify_per_s'] / max(before, after):>11.2f}"
        )
    print("raw verify/s: all cores, just before/after that verify; the ratio uses the higher")


if __name__ == "__main__":
    main()
