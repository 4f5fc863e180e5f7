"""Recorder overhead: the same openai SDK call bare, wrapped (async / sync durability) and OTel.

Run: ``.venv/bin/python bench/recorder.py [--iterations N] [--json]`` (under a minute with
the defaults on a 2-core machine). Needs the ``bench`` extra (OpenTelemetry SDK and
``opentelemetry-instrumentation-openai-v2==2.4b0`` with ``opentelemetry-util-genai==0.4b0``).

Method:

- The fake provider (``ledger/testing/fake_provider.py``) runs in its own process, so its CPU is not
  counted against the client; calls go over loopback HTTP/1.1 keep-alive.
- End to end: per iteration, every arm makes one non-streamed ``chat.completions.create`` call,
  in a shuffled order, so drift and noise hit all arms alike. Reported: median and p95 per arm,
  the added median (difference of medians) and the median of the per-iteration paired
  differences, and the ratio wrapped-async / OTel.
- OTel arm: ``OpenAIInstrumentor`` with ``SimpleSpanProcessor(InMemorySpanExporter())``. The
  instrumentor patches the openai classes globally, so the patched method is captured once and
  uninstrumented again; the OTel arm calls that captured wrapper bound to its own client, which
  is exactly what attribute access does while instrumented, and the other arms stay bare.
- Streaming: time to first chunk (create() until the first chunk is yielded), bare vs wrapped.
- Hot path in isolation: an in-process ``httpx2.MockTransport`` returns a canned chat
  completion. The recorder's background worker is parked (jobs kept, not run) while the
  caller thread's CPU per call (``thread_time``) is measured, bare vs wrapped, interleaved;
  then the parked jobs are run and the process CPU per entry of that background work
  (decode, parse, build the body, sign, commit) is reported.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import httpx2  # noqa: E402
import openai  # noqa: E402

import ledger  # noqa: E402
from ledger.recorder import Httpx2RecordingTransport, Recorder, flush, wrap  # noqa: E402

MESSAGES: list[Any] = [{"role": "user", "content": "Say three words."}]
KEY = "sk-bench"


def _start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledger.testing", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line[0] == "PORT", line
    return proc, f"http://127.0.0.1:{line[1]}/v1"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(values) * 1e3, 4),
        "p95_ms": round(_pct(values, 0.95) * 1e3, 4),
    }


def _otel_create(client: openai.OpenAI) -> tuple[Callable[..., Any], Any]:
    from openai.resources.chat.completions import Completions
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    patched = Completions.__dict__["create"]
    instrumentor.uninstrument()
    bound = patched.__get__(client.chat.completions, Completions)
    return bound, exporter


def end_to_end(base_url: str, iterations: int, warmup: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    lg = ledger.open(f"sqlite:///{home / 'ledger.db'}", home=home)
    # The same sync arm on a ledger whose SQLite commits skip the power-loss fsync
    # (LEDGER_SQLITE_SYNCHRONOUS=normal: still safe against a crash of the application).
    normal_home = Path(tempfile.mkdtemp(prefix="bench-ledger-normal-"))
    lg_normal = ledger.Ledger.from_settings(
        ledger.Settings(
            home=normal_home,
            database_url=f"sqlite:///{normal_home / 'ledger.db'}",
            sqlite_synchronous="normal",
        )
    )

    def sdk() -> openai.OpenAI:
        return openai.OpenAI(api_key=KEY, base_url=base_url, max_retries=0)

    bare = sdk()
    # The stand-in teacher answers on 127.0.0.1: say it is OpenAI, as a user of a local proxy
    # would, so the entries are parsed, judged and fingerprinted as an official host's are
    # (an unknown host's calls are recorded without outputs, which is less work).
    hosts = {"127.0.0.1": "openai"}
    wrapped_async = wrap(sdk(), ledger=lg, purpose="evaluate", durability="async", hosts=hosts)
    wrapped_sync = wrap(sdk(), ledger=lg, purpose="evaluate", durability="sync", hosts=hosts)
    wrapped_sync_normal = wrap(
        sdk(), ledger=lg_normal, purpose="evaluate", durability="sync", hosts=hosts
    )
    otel_client = sdk()
    otel_call, exporter = _otel_create(otel_client)

    arms: dict[str, Callable[[], Any]] = {
        "bare": lambda: bare.chat.completions.create(model="m", messages=MESSAGES),
        "wrapped_async": lambda: wrapped_async.chat.completions.create(
            model="m", messages=MESSAGES
        ),
        "wrapped_sync": lambda: wrapped_sync.chat.completions.create(model="m", messages=MESSAGES),
        "sync_normal": lambda: wrapped_sync_normal.chat.completions.create(
            model="m", messages=MESSAGES
        ),
        "otel": lambda: otel_call(model="m", messages=MESSAGES),
    }
    times: dict[str, list[float]] = {name: [] for name in arms}
    order = list(arms)
    rng = random.Random(7)
    for i in range(warmup + iterations):
        rng.shuffle(order)
        for name in order:
            start = time.perf_counter()
            arms[name]()
            elapsed = time.perf_counter() - start
            if i >= warmup:
                times[name].append(elapsed)
    spans = len(exporter.get_finished_spans())

    # Streaming: time to first chunk.
    ttfc: dict[str, list[float]] = {"bare": [], "wrapped_async": []}
    stream_clients = {"bare": bare, "wrapped_async": wrapped_async}
    for i in range(warmup // 2 + iterations // 2):
        names = list(ttfc)
        rng.shuffle(names)
        for name in names:
            start = time.perf_counter()
            stream = stream_clients[name].chat.completions.create(
                model="m",
                messages=MESSAGES,
                stream=True,
                extra_headers={"x-fake-chunks": "20"},
            )
            next(iter(stream))
            first = time.perf_counter() - start
            for _ in stream:
                pass
            if i >= warmup // 2:
                ttfc[name].append(first)

    flush()
    entries = lg.size
    for c in (bare, wrapped_async, wrapped_sync, wrapped_sync_normal, otel_client):
        c.close()
    lg.close()
    lg_normal.close()

    base = times["bare"]
    result: dict[str, Any] = {"arms": {k: _summary(v) for k, v in times.items()}}
    for name in ("wrapped_async", "wrapped_sync", "sync_normal", "otel"):
        paired = [w - b for w, b in zip(times[name], base, strict=True)]
        result["arms"][name]["added_median_ms"] = round(
            (statistics.median(times[name]) - statistics.median(base)) * 1e3, 4
        )
        result["arms"][name]["paired_diff_median_ms"] = round(statistics.median(paired) * 1e3, 4)
    result["ratio_wrapped_async_over_otel"] = round(
        statistics.median(times["wrapped_async"]) / statistics.median(times["otel"]), 4
    )
    result["ttfc"] = {k: _summary(v) for k, v in ttfc.items()}
    result["ttfc"]["added_median_ms"] = round(
        (statistics.median(ttfc["wrapped_async"]) - statistics.median(ttfc["bare"])) * 1e3, 4
    )
    result["entries_recorded"] = entries
    result["otel_spans"] = spans
    result["iterations"] = iterations
    return result


_CANNED = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "one two three"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }
).encode()


class _Parked:
    """Stands in for the recorder's background worker: keeps finished-call jobs to run later.

    This separates the two costs: the caller's hot path (snapshot, tee, hand-off) and the
    background work per entry (decode, parse, build, sign, commit), which otherwise run
    interleaved and blur each other in a tight in-process loop.
    """

    def __init__(self) -> None:
        self.jobs: list[Callable[[], None]] = []

    def put(self, job: Callable[[], None]) -> None:
        self.jobs.append(job)

    def drain(self, timeout: float | None = None) -> bool:
        return True


def hot_path(calls: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    lg = ledger.open(f"sqlite:///{home / 'ledger.db'}", home=home)

    def handler(request: httpx2.Request) -> httpx2.Response:
        # A stream (not ``content=``), as a network transport returns: the body is read
        # through the tee and closed, which is what finalizes the entry.
        return httpx2.Response(
            200,
            headers={"content-type": "application/json", "x-request-id": "req_1"},
            stream=httpx2.ByteStream(_CANNED),
        )

    mock = httpx2.MockTransport(handler)
    recorder = Recorder(lg, purpose="evaluate", hosts={"bench.local": "openai"})
    parked = _Parked()
    recorder._worker = parked  # type: ignore[assignment]  # duck-typed stand-in, bench only
    clients = {
        "bare": httpx2.Client(transport=mock),
        "wrapped": httpx2.Client(transport=Httpx2RecordingTransport(recorder, mock)),
    }
    headers = {"authorization": f"Bearer {KEY}", "user-agent": "bench"}
    body = {"model": "m", "messages": MESSAGES}
    url = "http://bench.local/v1/chat/completions"
    cpu: dict[str, list[int]] = {"bare": [], "wrapped": []}
    for client in clients.values():  # warm-up
        for _ in range(200):
            client.post(url, json=body, headers=headers)
    parked.jobs.clear()
    for _ in range(calls):
        for name, client in clients.items():
            t0 = time.thread_time_ns()
            client.post(url, json=body, headers=headers)
            cpu[name].append(time.thread_time_ns() - t0)
    jobs = parked.jobs[:]
    p0 = time.process_time_ns()
    for job in jobs:
        job()  # decode, parse, build the body, submit to the ledger's writer
    lg.flush()
    background = time.process_time_ns() - p0
    stored = lg.size
    for client in clients.values():
        client.close()
    lg.close()
    assert stored == len(jobs) == calls, (stored, len(jobs))
    bare, wrapped = statistics.median(cpu["bare"]), statistics.median(cpu["wrapped"])
    return {
        "calls": calls,
        "caller_cpu_us": {"bare": round(bare / 1e3, 2), "wrapped": round(wrapped / 1e3, 2)},
        "caller_cpu_added_us": round((wrapped - bare) / 1e3, 2),
        "background_cpu_per_entry_us": round(background / len(jobs) / 1e3, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="Recorder overhead benchmark.")
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--hot-calls", type=int, default=3000)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()

    proc, base_url = _start_server()
    started = time.perf_counter()
    try:
        e2e = end_to_end(base_url, args.iterations, args.warmup)
    finally:
        proc.terminate()
        proc.wait(10)
    hot = hot_path(args.hot_calls)
    result = {"end_to_end": e2e, "hot_path": hot, "seconds": round(time.perf_counter() - started)}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"end to end, non-streamed chat, {e2e['iterations']} interleaved iterations per arm")
    print(f"{'arm':<15}{'median ms':>11}{'p95 ms':>9}{'added ms':>10}{'paired ms':>11}")
    for name, s in e2e["arms"].items():
        added = s.get("added_median_ms", 0.0)
        paired = s.get("paired_diff_median_ms", 0.0)
        print(f"{name:<15}{s['median_ms']:>11.3f}{s['p95_ms']:>9.3f}{added:>10.3f}{paired:>11.3f}")
    print(f"ratio wrapped_async / otel: {e2e['ratio_wrapped_async_over_otel']:.3f}")
    t = e2e["ttfc"]
    print(
        f"time to first chunk (20-chunk stream): bare {t['bare']['median_ms']:.3f} ms, "
        f"wrapped {t['wrapped_async']['median_ms']:.3f} ms (added {t['added_median_ms']:.3f})"
    )
    print(f"entries recorded {e2e['entries_recorded']}, otel spans {e2e['otel_spans']}")
    print(f"hot path, in-process MockTransport, {hot['calls']} calls per arm")
    print(
        f"  caller CPU per call: bare {hot['caller_cpu_us']['bare']} us, wrapped "
        f"{hot['caller_cpu_us']['wrapped']} us, added {hot['caller_cpu_added_us']} us"
    )
    print(
        "  background CPU per entry (decode, parse, build, sign, commit): "
        f"{hot['background_cpu_per_entry_us']} us"
    )
    print(f"total {result['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
