"""Dataset audit benchmark: ``ledger audit dataset`` against a large ledger (issue 9).

Builds (once, reusable with ``--home``) a ledger of N version-2 entries whose answers are
distinct two-paragraph texts with keyed fingerprints, then writes two datasets and audits each
in a fresh child process (so the figures are the audit's own, not the build's):

- ``exact``: one row per entry (OpenAI chat format), shuffled: every row links ``exact``;
- ``near``: M rows, each an entry's answer truecased and with one word replaced: they link only
  by the ``near`` stage, after the earlier stages missed them.

Prints wall time, CPU time (user + system, the audit's process and any children: the figure
that stays comparable on a loaded machine) and peak RSS (``ru_maxrss``) of each audit (and,
apart, the largest child process, if the audit started any), with and without the conduct
detectors. The conduct facts are collected in the audit's own pass over the log; no worker
interpreter is started. Targets:
1,000,000 rows vs 1,000,000 entries, exact, <= 90 s and <= 1 GB RSS on two cores; 50,000 near
rows vs 1,000,000 entries <= 120 s.

Usage:
    python bench/dataset_bench.py [--entries 1000000] [--examples 1000000] [--near 50000]
        [--home DIR] [--db URL] [--no-conduct-run] [--only exact|near] [--conduct-cost]

    ``--home`` keeps the built ledger and the datasets: a second run with the same ``--home``
    (and ``--db``) reuses them instead of building again (building 1M entries takes 10-40 min).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

WORDS = [
    f"{a}{b}"
    for a in ("ka", "lo", "mi", "ne", "po", "ru", "sa", "ti", "vu", "ze", "bri", "dra")
    for b in ("n", "la", "rok", "ten", "mis", "vo", "del", "spa", "quo", "fen", "gar", "lin")
]


def answer(n: int) -> str:
    """A distinct, deterministic two-paragraph answer of about 60 words for entry ``n``."""
    rng = random.Random(n)
    first = " ".join(rng.choice(WORDS) for _ in range(30))
    second = " ".join(rng.choice(WORDS) for _ in range(30))
    return f"Answer {n}: {first}.\n\n{second} (item {n})."


def bodies(count: int, key: bytes) -> Iterator[dict[str, Any]]:
    from ledger.crypto.fingerprint import output_record
    from ledger.log.records import uuid7

    for n in range(count):
        day = 1 + n % 28
        yield {
            "v": 2,
            "id": uuid7(),
            "started_at": f"2026-06-{day:02d}T10:00:00.000000Z",
            "duration_ms": 412.5,
            "provider": "openai",
            "operation": "chat",
            "endpoint": {
                "scheme": "https",
                "host": "api.openai.com",
                "port": 443,
                "path": "/v1/chat/completions",
            },
            "request_model": "gpt-4.1",
            "response_model": "gpt-4.1-2025-04-14",
            "account": "9f" * 32,
            "org_headers": {"openai-organization": "org-abc"},
            "client": {
                "user_agent": "OpenAI/Python 1.99.0",
                "headers": {"x-stainless-lang": "python", "x-stainless-package-version": "1.99.0"},
            },
            "status": 200,
            "outcome": "complete",
            "stream": False,
            "finish_reasons": ["stop"],
            "usage": {"input_tokens": 40, "output_tokens": 90},
            "output_modality": "text",
            "fingerprint_version": 1,
            "outputs": [{"index": 0, **output_record(key, answer(n), None)}],
            "purpose": "train-model",
            "dataset": "bench",
            "tags": [],
        }


def open_bench_ledger(home: Path, db: str | None) -> Any:
    from ledger._ledger import Ledger
    from ledger.settings import Settings

    fields: dict[str, Any] = {"home": home, "checkpoint_every": 0, "checkpoint_interval": 0}
    if db:
        fields["database_url"] = db
    return Ledger.from_settings(Settings(**fields))


def build(home: Path, db: str | None, entries: int) -> None:
    lg = open_bench_ledger(home, db)
    have = lg.size
    if have >= entries:
        print(f"ledger at {home}: {have:,} entries (reused)")
        lg.close()
        return
    if have:
        raise SystemExit(f"{home} holds {have:,} entries, fewer than {entries:,}: use a new --home")
    started = time.perf_counter()
    key = lg.fingerprint_key("bench")
    done = 0
    batch: list[dict[str, Any]] = []
    for body in bodies(entries, key):
        batch.append(body)
        if len(batch) == 20_000:
            lg.append_many(batch)
            done += len(batch)
            batch = []
            print(f"  built {done:,} entries, {time.perf_counter() - started:.0f} s", flush=True)
    if batch:
        lg.append_many(batch)
    print(f"built {entries:,} entries in {time.perf_counter() - started:.0f} s")
    lg.close()


def _write_whole(path: Path, answers: Iterable[str]) -> None:
    # Written aside and renamed when whole: a run killed mid-write leaves no short dataset
    # for the next run to reuse.
    partial = path.with_suffix(".partial")
    with partial.open("w") as out:
        for text in answers:
            row = {"messages": [{"role": "user", "content": "q"},
                                {"role": "assistant", "content": text}]}  # fmt: skip
            out.write(json.dumps(row) + "\n")
    partial.replace(path)


def write_datasets(folder: Path, entries: int, examples: int, near: int) -> tuple[Path, Path]:
    exact = folder / f"exact-{examples}.jsonl"
    edited = folder / f"near-{near}.jsonl"
    rng = random.Random(1)
    if not exact.exists():
        order = [n % entries for n in range(examples)]
        rng.shuffle(order)
        _write_whole(exact, (answer(n) for n in order))
    if not edited.exists():
        texts = []
        for n in rng.sample(range(entries), near):
            words = answer(n).upper().split(" ")
            words[5] = "EDITED"
            texts.append(" ".join(words))
        _write_whole(edited, texts)
    return exact, edited


def run_audit(home: str, db: str | None, dataset: str, conduct: bool) -> None:
    """Child process: one audit, then its figures as one JSON line."""
    from ledger.policy import DeclaredFacts

    lg = open_bench_ledger(Path(home), db)
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = before.ru_utime + before.ru_stime
    started = time.perf_counter()
    audit = lg.audit_dataset(
        [dataset], profile=DeclaredFacts(competes_with_provider="no"), conduct=conduct
    )
    seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime - cpu_before
    rss_mb = own.ru_maxrss / 1024
    worker_mb = children.ru_maxrss / 1024  # any child interpreter, reported apart
    summary = audit.summary()
    print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_mb": rss_mb, "worker_mb": worker_mb,
                      "examples": summary["examples"],
                      "by_match": summary["by_match"], "by_verdict": summary["by_verdict"],
                      "conduct_findings": summary["conduct_findings"]}))  # fmt: skip


def conduct_cost(home: str, db: str | None) -> None:
    """The conduct part alone over the whole log: CPU of collecting the columns (the bodies are
    parsed first, as the audit's pass does anyway) and of the detectors, pruned and over every
    call (the plain path's cost: a log in which every group could fire), and the columns' size.
    """
    import orjson

    from ledger.policy.conduct import CallColumns, detect_columns

    lg = open_bench_ledger(Path(home), db)
    store = lg.store
    columns = CallColumns()
    parse = collect = 0.0
    for leaf, data, _, _ in store.raw_entries(batch=10_000):
        t0 = time.process_time()
        body = orjson.loads(data)["body"]
        t1 = time.process_time()
        columns.add(leaf, body)
        collect += time.process_time() - t1
        parse += t1 - t0
    t0 = time.process_time()
    pruned = detect_columns(columns)
    t1 = time.process_time()
    plain = detect_columns(columns, prune=False)
    t2 = time.process_time()
    assert pruned == plain, "pruned and plain conduct findings differ"
    print(f"conduct over {len(columns):,} entries: parse {parse:.1f} s CPU (shared with the "
          f"index), collect {collect:.1f} s, detect pruned {t1 - t0:.2f} s, every call "
          f"{t2 - t1:.1f} s, columns {columns.nbytes() / 1e6:.0f} MB ({columns.profiles} "
          f"profiles), findings {len(pruned)}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--examples", type=int, default=1_000_000)
    parser.add_argument("--near", type=int, default=50_000)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in --home)")
    parser.add_argument("--no-conduct-run", action="store_true",
                        help="also audit without the conduct detectors")  # fmt: skip
    parser.add_argument("--only", choices=("exact", "near"), default=None,
                        help="run only this dataset's audits")  # fmt: skip
    parser.add_argument("--conduct-cost", action="store_true",
                        help="only measure the conduct part over the built ledger")  # fmt: skip
    parser.add_argument("--child", nargs=3, metavar=("HOME", "DATASET", "CONDUCT"))
    args = parser.parse_args()
    if args.child:
        home, dataset, conduct = args.child
        run_audit(home, args.db, dataset, conduct == "1")
        return
    home = args.home or Path(tempfile.mkdtemp(prefix="dataset-bench-"))
    build(home, args.db, args.entries)
    if args.conduct_cost:
        conduct_cost(str(home), args.db)
        return
    exact, edited = write_datasets(home, args.entries, args.examples, args.near)
    runs = [("exact", exact, True), ("near", edited, True)]
    if args.no_conduct_run:
        runs += [("exact", exact, False), ("near", edited, False)]
    if args.only:
        runs = [run for run in runs if run[0] == args.only]
    print(f"{'dataset':<8} {'rows':>10} {'conduct':>8} {'seconds':>8} {'CPU s':>7} {'RSS MB':>8} "
          f"{'child MB':>9}  by match / conduct findings")  # fmt: skip
    for name, path, conduct in runs:
        command = [
            sys.executable,
            __file__,
            "--child",
            str(home),
            str(path),
            "1" if conduct else "0",
        ]
        if args.db:
            command += ["--db", args.db]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        figures = json.loads(out.strip().splitlines()[-1])
        matched = {k: v for k, v in figures["by_match"].items() if v}
        print(f"{name:<8} {figures['examples']:>10,} {'yes' if conduct else 'no':>8} "
              f"{figures['seconds']:>8.1f} {figures['cpu']:>7.1f} {figures['rss_mb']:>8.0f} "
              f"{figures['worker_mb']:>9.0f}  {matched} / {figures['conduct_findings']}",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
