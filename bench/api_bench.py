"""Audit service benchmark: latency of the proof-carrying reads next to a bare endpoint (issue 12).

Builds a ledger of N entries (or reuses ``--home``), starts ``ledger serve --port 0`` in a child
process, and drives it from C client threads on loopback, each with its own HTTP connection:

- ``bare``: ``GET /healthz`` (no database, no auth): what FastAPI and uvicorn cost by themselves;
- ``checkpoint``: ``GET /v1/log/checkpoint``;
- ``entry+proof``: ``GET /v1/entries/{random leaf}`` (auth, entry, RFC 9162 inclusion proof);
- ``page100+proof``: ``GET /v1/entries?provider=openai&limit=100`` from a random cursor (auth,
  filtered page, one multiproof);
- ``ingest``: ``POST /v1/entries`` batches of 500 entries sealed beforehand (entries/s).

Prints p50/p99 (ms) and requests/s per target, all in the same run against the same server,
with where the time goes: CPU per request of the server processes (every worker, from
``/proc``) and of the client threads, and the server's work alone (the same calls on the
``Service`` in this process, no HTTP). In a closed loop of C clients the mean latency is
C / throughput (Little's law), so when server and client CPU per request add up to the two
cores' worth, the wait is queueing for a core, not work. The load average is printed too.
Figures on a shared two-core machine are noisy.

Load generator (``--load``): ``wrk`` (Debian's ``wrk`` package; the default when it is on
PATH) keeps C connections busy from two native threads at a few microseconds of CPU per
request, so the two cores go to the server and the latency is the server's; each target
runs for ``--seconds`` after a short warm-up, on paths drawn at random from a list made
beforehand (random leaves, random page cursors). ``python`` drives C httpx client threads in
this interpreter instead (``--requests`` in all): at about 1.7 ms of client CPU per request
they take most of a core from the server, and their GIL is part of what is measured.

Usage:
    python bench/api_bench.py [--entries 20000] [--clients 8] [--load wrk|python]
        [--seconds 10] [--requests 2000] [--workers 1] [--batches 10] [--ingest-clients 1]
        [--db URL] [--home DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx


def build(home: Path, database_url: str | None, entries: int) -> None:
    from ledger._ledger import Ledger
    from ledger.settings import Settings

    settings = Settings(home=home, database_url=database_url, checkpoint_every=0,
                        checkpoint_interval=0, judge=False)  # fmt: skip
    with Ledger.from_settings(settings) as lg:
        have = lg.size
        providers = ("openai", "anthropic", "gcp.gemini")
        batch = []
        for n in range(have, entries):
            batch.append({"provider": providers[n % 3], "request_model": f"m{n % 7}",
                          "purpose": "evaluate", "dataset": f"d{n % 5}", "n": n})  # fmt: skip
            if len(batch) == 5000:
                lg.append_many(batch)
                batch = []
        if batch:
            lg.append_many(batch)
        lg.checkpoint()
        if lg.store.engine.dialect.name == "postgresql":
            # Fresh statistics, as autovacuum keeps them on a normal server: without them
            # (autovacuum off, or just after this bulk load) PostgreSQL answers the filtered
            # page from a bitmap of every matching row, 1.2 s instead of 0.4 ms at 1M.
            from sqlalchemy import text

            with lg.store.engine.begin() as conn:
                conn.execute(text("ANALYZE entries"))
                conn.execute(text("ANALYZE tree_hashes"))


def tokens(home: Path, database_url: str | None) -> tuple[str, str, Any, str]:
    from ledger._ledger import Ledger
    from ledger.api.keys import register_recorder_key
    from ledger.api.tokens import create_token
    from ledger.crypto.keys import SigningKey
    from ledger.settings import Settings

    settings = Settings(home=home, database_url=database_url, checkpoint_every=0,
                        checkpoint_interval=0, judge=False)  # fmt: skip
    key = SigningKey.generate()
    with Ledger.from_settings(settings, create=False) as lg:
        register_recorder_key(lg, key.public_key.raw, "bench")
        engine = lg.store.engine
        auditor = create_token(engine, role="auditor", name="bench")[0]
        recorder = create_token(engine, role="recorder", name="bench", recorder_key_id=key.key_id)
        return auditor, recorder[0], key, lg.install_id


def start(home: Path, database_url: str | None, workers: int) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_HOME=str(home), LEDGER_JUDGE="false", LEDGER_API_CHECKPOINT_AGE="1")
    if database_url:
        env["LEDGER_DATABASE_URL"] = database_url
    ledger_cli = str(Path(sys.executable).with_name("ledger"))
    process = subprocess.Popen(
        [ledger_cli, "serve", "--port", "0", "--workers", str(workers), "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    threading.Thread(target=process.stdout.read, daemon=True).start()
    found = re.search(r"(http://\S+) ", line)
    if not found:
        process.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    url = found.group(1)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return process, url
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and all its descendants, from /proc."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0.0))[1]
        todo += [child for child, (parent, _) in stats.items() if parent == current]
    return total


def server_alone(home: Path, database_url: str | None, size: int, n: int = 300) -> dict[str, float]:
    """Mean ms of each route's work on a Service in this process: no HTTP, no queueing."""
    from ledger.api.service import EntryFilters, Service
    from ledger.api.settings import ApiSettings

    settings = ApiSettings(home=home, database_url=database_url, judge=False,
                           api_checkpoint_age=1)  # fmt: skip
    service = Service(settings)
    token = tokens(home, database_url)[0]
    rng = random.Random(7)
    filters = EntryFilters(provider="openai")

    def page() -> None:
        service.page_proof(service.page(filters, None, rng.randrange(max(1, size - 400)), 100))

    work: dict[str, Callable[[], object]] = {
        "token check": lambda: service.tokens.authenticate(token),
        "checkpoint": service.checkpoint,
        "entry+proof": lambda: service.entry(rng.randrange(size), None),
        "page100+proof": page,
    }
    out = {}
    try:
        for name, call in work.items():
            for _ in range(20):
                call()
            t0 = time.perf_counter()
            for _ in range(n):
                call()
            out[name] = (time.perf_counter() - t0) / n * 1000
    finally:
        service.close()
    return out


def drive(
    url: str,
    clients: int,
    requests: int,
    one: Callable[[httpx.Client, random.Random], None],
    server_pid: int | None = None,
) -> dict[str, float]:
    per_client = max(1, requests // clients)
    latencies: list[float] = []
    lock = threading.Lock()

    def run(seed: int) -> None:
        rng = random.Random(seed)
        mine = []
        with httpx.Client(base_url=url, timeout=60) as http:
            one(http, rng)  # warm the connection
            for _ in range(per_client):
                t0 = time.perf_counter()
                one(http, rng)
                mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    server0 = tree_cpu(server_pid) if server_pid else 0.0
    client0 = time.process_time()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    client_cpu = time.process_time() - client0
    server_cpu = tree_cpu(server_pid) - server0 if server_pid else 0.0
    latencies.sort()
    count = len(latencies) + clients  # the warm-up requests use CPU too
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "per_s": len(latencies) / wall,
        "n": len(latencies),
        "server_cpu_ms": server_cpu / count * 1000,
        "client_cpu_ms": client_cpu / count * 1000,
    }


_LUA = """
local paths = {%(paths)s}
local headers = {%(headers)s}
local count = #paths
request = function()
  return wrk.format("GET", paths[math.random(count)], headers)
end
"""

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not found:
        raise SystemExit(f"cannot read wrk's latency {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def _lua_string(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_./?=&%:+ -]*", value):
        raise SystemExit(f"unexpected characters for the wrk script: {value!r}")
    return f'"{value}"'


def drive_wrk(
    url: str,
    clients: int,
    seconds: float,
    paths: list[str],
    headers: dict[str, str],
    server_pid: int | None = None,
) -> dict[str, float]:
    """``wrk`` with ``clients`` connections on two threads for ``seconds``, after a 2 s warm-up."""
    with tempfile.TemporaryDirectory(prefix="api-bench-wrk-") as scratch:
        script = Path(scratch) / "paths.lua"
        script.write_text(_LUA % {
            "paths": ",".join(_lua_string(p) for p in paths),
            "headers": ",".join(f"[{_lua_string(k)}]={_lua_string(v)}" for k, v in headers.items()),
        })  # fmt: skip

        def run(duration: float) -> str:
            command = ["wrk", "-t", "2", "-c", str(clients), "-d", f"{duration:g}s", "--latency",
                       "--timeout", "30s", "-s", str(script), url]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"wrk failed: {done.stderr.strip() or done.stdout.strip()}")
            return done.stdout

        run(2)
        server0 = tree_cpu(server_pid) if server_pid else 0.0
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        split: list[int] = []
        # Halfway through, how the connections are spread over the workers (each accepted
        # connection stays with the worker that took it for the whole run).
        timer = threading.Timer(seconds / 2, lambda: split.extend(connections(url)))
        timer.start()
        out = run(seconds)
        timer.cancel()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_cpu = tree_cpu(server_pid) - server0 if server_pid else 0.0
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise SystemExit(f"{bad.group(1)} answers were errors:\n{out}")
    if "Socket errors" in out:
        raise SystemExit(f"wrk saw socket errors:\n{out}")
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    # The "Latency Distribution" lines ("     99%   12.34ms"), not the "+/- Stdev" column.
    p50 = re.search(r"^\s+50%\s+(\S+)\s*$", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)\s*$", out, re.MULTILINE)
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if not (p50 and p99 and rate and total):
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    client_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "p50_ms": _ms(p50.group(1)),
        "p99_ms": _ms(p99.group(1)),
        "per_s": float(rate.group(1)),
        "n": total,
        "server_cpu_ms": server_cpu / total * 1000,
        "client_cpu_ms": client_cpu / total * 1000,
        "connections_per_worker": split,
    }


def connections(url: str) -> list[int]:
    """Established connections to ``url``'s port by server process, most first (from ``ss``)."""
    port = url.rsplit(":", 1)[1]
    try:
        out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True, check=False).stdout  # fmt: skip
    except OSError:
        return []
    counts: dict[str, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        counts[pid] = counts.get(pid, 0) + 1
    return sorted(counts.values(), reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--load", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per target, with wrk")
    parser.add_argument("--requests", type=int, default=2_000, help="in all, with python")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batches", type=int, default=10, help="ingest batches of 500")
    parser.add_argument("--ingest-clients", type=int, default=1, help="concurrent ingest clients")
    parser.add_argument("--db")
    parser.add_argument("--home", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from ledger.api.service import EntryFilters, encode_cursor
    from ledger.log.records import seal_entry

    home = args.home or Path(tempfile.mkdtemp(prefix="api-bench-"))
    build(home, args.db, args.entries)
    auditor, recorder, key, ledger_id = tokens(home, args.db)
    process, url = start(home, args.db, args.workers)
    size = args.entries
    filters = EntryFilters(provider="openai")
    auth = {"Authorization": f"Bearer {auditor}"}

    def bare(http: httpx.Client, _rng: random.Random) -> None:
        http.get("/healthz").raise_for_status()

    def checkpoint(http: httpx.Client, _rng: random.Random) -> None:
        http.get("/v1/log/checkpoint").raise_for_status()

    def entry(http: httpx.Client, rng: random.Random) -> None:
        http.get(f"/v1/entries/{rng.randrange(size)}", headers=auth).raise_for_status()

    def page(http: httpx.Client, rng: random.Random) -> None:
        cursor = encode_cursor(rng.randrange(max(1, size - 400)), filters)
        answer = http.get(f"/v1/entries?provider=openai&limit=100&cursor={cursor}", headers=auth)
        answer.raise_for_status()

    results: dict[str, Any] = {"entries": size, "clients": args.clients, "workers": args.workers,
                               "database": "postgresql" if args.db else "sqlite",
                               "load": args.load, "load_before": os.getloadavg()}  # fmt: skip
    rng = random.Random(11)
    paths = {
        "bare": ["/healthz"],
        "checkpoint": ["/v1/log/checkpoint"],
        "entry+proof": [f"/v1/entries/{rng.randrange(size)}" for _ in range(5000)],
        "page100+proof": [
            f"/v1/entries?provider=openai&limit=100&cursor="
            f"{encode_cursor(rng.randrange(max(1, size - 400)), filters)}"
            for _ in range(2000)
        ],
    }
    try:
        for name, one in (("bare", bare), ("checkpoint", checkpoint), ("entry+proof", entry),
                          ("page100+proof", page)):  # fmt: skip
            if args.load == "wrk":
                results[name] = drive_wrk(url, args.clients, args.seconds, paths[name],
                                          auth, process.pid)  # fmt: skip
            else:
                results[name] = drive(url, args.clients, args.requests, one, process.pid)
        batches = [[seal_entry({"purpose": "evaluate", "dataset": "ingest", "b": b, "i": i},
                               key, ledger_id) for i in range(500)]
                   for b in range(args.batches)]  # fmt: skip
        post = {"Authorization": f"Bearer {recorder}"}
        senders = max(1, min(args.ingest_clients, len(batches)))

        def send(mine: list[list[dict[str, Any]]]) -> None:
            with httpx.Client(base_url=url, timeout=120) as http:
                for batch in mine:
                    answer = http.post("/v1/entries", json={"entries": batch}, headers=post)
                    answer.raise_for_status()

        shares = [batches[i::senders] for i in range(senders)]
        workers = [threading.Thread(target=send, args=(share,)) for share in shares]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        results["ingest_entries_per_s"] = 500 * len(batches) / (time.perf_counter() - t0)
        results["ingest_clients"] = senders
    finally:
        process.terminate()
        process.wait(timeout=60)
    results["load_after"] = os.getloadavg()
    results["server_alone_ms"] = server_alone(home, args.db, size)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{results['database']}, {size} entries, {args.clients} clients ({args.load}), "
          f"{args.workers} worker(s)")  # fmt: skip
    for name in ("bare", "checkpoint", "entry+proof", "page100+proof"):
        r = results[name]
        print(f"  {name:<15} p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
              f"{r['per_s']:8.0f} req/s  (n={r['n']})  CPU/request: server "
              f"{r['server_cpu_ms']:.2f} ms, client {r['client_cpu_ms']:.2f} ms"
              + (f"; connections per worker {'/'.join(map(str, r['connections_per_worker']))}"
                 if r.get("connections_per_worker") else ""))  # fmt: skip
    rate, senders = results["ingest_entries_per_s"], results["ingest_clients"]
    print(f"  ingest          {rate:8.0f} entries/s (batches of 500, {senders} client(s))")
    alone = ", ".join(f"{k} {v:.2f} ms" for k, v in results["server_alone_ms"].items())
    print(f"  server work alone (no HTTP): {alone}")
    before, after = results["load_before"], results["load_after"]
    print(f"  load average before {before[0]:.1f} / {before[1]:.1f}, "
          f"after {after[0]:.1f} / {after[1]:.1f} (1 / 5 min)")  # fmt: skip


if __name__ == "__main__":
    main()
