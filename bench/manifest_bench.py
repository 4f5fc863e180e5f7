"""Evidence-pack benchmark (issue 11): multiproof sizes, and build / verify speed.

Part 1, pure and in memory: a tree of ``--tree`` leaves (default 1,000,000) built with the
frontier, then multiproofs for a contiguous run and for 1,000 and 100,000 random leaves,
each next to the sum of the separate RFC 9162 inclusion proofs of the same leaves. Sizes are
hash counts and JSON bytes (the ``proof.json`` form).

Part 2: a ledger of ``--entries`` version-2 entries (the dataset benchmark's bodies, built
once and reusable with ``--home``: a folder that already holds enough entries is reused), a
dataset of one exact row per entry, then ``manifest build`` without and (unless
``--no-report``) with ``report.html``, and ``manifest verify`` without the dataset (the pack's
own checks: signatures, proof, records, verdicts) and with it (links re-derived too), each in a
fresh child process: wall time, peak RSS of the process and of its largest child interpreter, pack
bytes per example, and the raw Ed25519 verify rates on one core and on two (two processes at
once) measured in the same run, before and after, so that the verify rate can be read as a
ratio on a loaded machine (issue 11's target: >= 0.8 x the two-core rate). Each verify also
gets a CPU split: the signatures' CPU at that rate against both processes' own work, and the
ratio a perfect split of the two over two cores would reach.

Usage:
    python bench/manifest_bench.py [--tree 1000000] [--entries 20000] [--home DIR]
        [--skip-proofs] [--no-report]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataset_bench import build as build_ledger
from dataset_bench import open_bench_ledger, write_datasets

from ledger.crypto import multiproof, tree
from ledger.crypto.keys import SigningKey
from ledger.crypto.merkle import leaf_hash
from ledger.crypto.tree import TreeFrontier


def proof_sizes(size: int) -> None:
    started = time.perf_counter()
    frontier = TreeFrontier()
    stored: list[bytes] = []
    for i in range(size):
        stored.extend(frontier.append(leaf_hash(i.to_bytes(8, "big"))))
    print(f"tree of {size:,} leaves built in {time.perf_counter() - started:.1f} s")

    def read(indexes: object) -> list[bytes]:
        return [stored[i] for i in indexes]  # type: ignore[attr-defined]

    rng = random.Random(7)
    cases = [
        ("contiguous 1,000", list(range(size // 3, size // 3 + 1_000))),
        ("contiguous 100,000", list(range(size // 5, size // 5 + 100_000))),
        ("random 1,000", rng.sample(range(size), 1_000)),
        ("random 100,000", rng.sample(range(size), 100_000)),
    ]
    root = frontier.root()
    print(f"{'leaves':<20} {'nodes':>9} {'JSON KB':>9} {'separate hashes':>16} "
          f"{'separate KB':>12} {'ratio':>6} {'build s':>8} {'verify s':>9}")  # fmt: skip
    for label, leaves in cases:
        t0 = time.perf_counter()
        proof = multiproof.build(size, leaves, read)
        t1 = time.perf_counter()
        multiproof.verify(proof, {i: stored[tree.stored_index(0, i)] for i in leaves}, root)
        t2 = time.perf_counter()
        json_bytes = len(json.dumps(proof.to_dict()))
        separate = sum(len(tree.inclusion_proof(i, size, read)) for i in leaves)
        # Separate proofs as a client gets them: hex hashes in a JSON list, one per leaf.
        separate_bytes = separate * 67
        print(f"{label:<20} {len(proof.nodes):>9,} {json_bytes / 1024:>9.1f} {separate:>16,} "
              f"{separate_bytes / 1024:>12.1f} {separate / max(len(proof.nodes), 1):>6.1f} "
              f"{t1 - t0:>8.2f} {t2 - t1:>9.2f}")  # fmt: skip


def ed25519_rate(seconds: float = 1.0) -> float:
    key = SigningKey.generate()
    message = b"x" * 600
    signature = key.sign(message)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(200):
            key.public_key.verify(signature, message)
        count += 200
    return count / (time.perf_counter() - started)


def _rate_child(seconds: str) -> None:
    print(json.dumps({"rate": ed25519_rate(float(seconds))}))


def rates(seconds: float = 3.0) -> tuple[float, float]:
    """Raw Ed25519 verifies per second on one core, and on two (two processes at once)."""
    one = float(_child("rate", str(seconds))["rate"])  # type: ignore[arg-type]
    both = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", "rate", str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    two = sum(float(json.loads(p.communicate()[0].strip().splitlines()[-1])["rate"]) for p in both)
    return one, two


def child_build(home: str, dataset: str, out: str, report: str) -> None:
    from ledger.manifest import build
    from ledger.policy import DeclaredFacts

    lg = open_bench_ledger(Path(home), None)
    started = time.perf_counter()
    result = build(lg, [dataset], out, name="bench", report=report == "1",
                   profile=DeclaredFacts(competes_with_provider="no"))  # fmt: skip
    seconds = time.perf_counter() - started
    vkey = lg.verifier_key
    lg.close()
    size = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
    print(json.dumps({"seconds": seconds, "rss_mb": _rss(), "child_rss_mb": _child_rss(),
                      "bytes": size, "vkey": vkey, "examples": result.audit.examples}))  # fmt: skip


def child_verify(pack: str, vkey: str, dataset: str = "") -> None:
    from ledger.manifest import verify

    started = time.perf_counter()
    result = verify(pack, vkey, datasets=[dataset] if dataset else [])
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rss_mb": _rss(), "child_rss_mb": _child_rss(),
                      "cpu": _cpu(resource.RUSAGE_SELF),
                      "child_cpu": _cpu(resource.RUSAGE_CHILDREN), "ok": result.ok,
                      "failure": str(result.failure) if result.failure else None}))  # fmt: skip


def _rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu(who: int) -> float:
    # User and system CPU seconds: with the wall time they show how the work split between
    # the main process and its worker interpreter.
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _child_rss() -> float:
    # The largest child (worker interpreters, the conduct worker) the process waited for.
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _child(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--skip-proofs", action="store_true")
    parser.add_argument("--no-report", action="store_true", help="build without report.html")
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "build":
            child_build(*rest)
        elif kind == "rate":
            _rate_child(*rest)
        else:
            child_verify(*rest)
        return
    if not args.skip_proofs:
        proof_sizes(args.tree)
    if args.entries <= 0:
        return
    home = args.home or Path(tempfile.mkdtemp(prefix="manifest-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    build_ledger(home, None, args.entries)
    exact, _ = write_datasets(home, args.entries, args.entries, 0)
    packs = Path(tempfile.mkdtemp(prefix="manifest-pack-"))
    print(f"load average {_load()}")
    one, two = rates()
    print(f"raw Ed25519 verify: one core {one:,.0f}/s, two cores {two:,.0f}/s")
    plain = _child("build", str(home), str(exact), str(packs / "plain"), "0")
    examples = int(plain["examples"])  # type: ignore[call-overload]
    _show("build --no-report", plain, examples)
    before = two
    for label, extra in (("verify", ()), ("verify --dataset", (str(exact),))):
        print(f"load average {_load()}")
        checked = _child("verify", str(packs / "plain"), str(plain["vkey"]), *extra)
        print(f"load average {_load()}")
        one_after, two_after = rates()
        print(
            f"raw Ed25519 verify after: one core {one_after:,.0f}/s, two cores {two_after:,.0f}/s"
        )
        # The reference is the two-core rate measured just before and just after this verify.
        raw_two = (before + two_after) / 2
        before = two_after
        seconds = float(checked["seconds"])  # type: ignore[arg-type]
        rate = examples / seconds
        print(f"{label} {seconds:.1f} s ({rate:,.0f} examples/s = "
              f"{rate / raw_two:.2f} x the two-core raw rate {raw_two:,.0f}/s, "
              f"{rate / ((one + one_after) / 2):.2f} x one core), RSS {checked['rss_mb']:.0f} MB "
              f"+ worker {checked['child_rss_mb']:.0f} MB, CPU {checked['cpu']:.1f} s "
              f"+ worker {checked['child_cpu']:.1f} s, "
              f"ok={checked['ok']} {checked['failure'] or ''}")  # fmt: skip
        _show_split(checked, examples, raw_two)
    if not args.no_report:
        full = _child("build", str(home), str(exact), str(packs / "full"), "1")
        _show("build with report.html", full, examples)
        page = (packs / "full" / "report.html").stat().st_size
        print(f"report.html {page / 1e6:.1f} MB; load average {_load()}")
    shutil.rmtree(packs, ignore_errors=True)


def _show(label: str, built: dict[str, object], examples: int) -> None:
    print(f"{label}: {examples:,} examples, {built['seconds']:.1f} s, RSS {built['rss_mb']:.0f} MB"
          f" + child {built['child_rss_mb']:.0f} MB, pack "
          f"{int(built['bytes']) / examples:.0f} B per example")  # type: ignore[call-overload]  # fmt: skip


def _show_split(checked: dict[str, object], examples: int, raw_two: float) -> None:
    """What the CPU of a verify says apart from the machine's speed.

    At the two-core raw rate each core checks ``raw_two / 2`` signatures a second, so the
    signatures alone need ``2 * examples / raw_two`` CPU seconds; the rest of both processes'
    CPU is their own work. Split perfectly over two cores, the verify then reaches at most
    signature CPU / all CPU of the raw rate: 0.8 x needs the own work under a quarter of the
    signatures' CPU.
    """
    spent = float(checked["cpu"]) + float(checked["child_cpu"])  # type: ignore[arg-type]
    signatures = 2 * examples / raw_two
    own = max(spent - signatures, 0.0)
    print(f"  CPU split: signatures {signatures:.1f} s ({signatures / examples * 1e6:.0f} us "
          f"each), own work {own:.1f} s ({own / examples * 1e6:.0f} us per example, "
          f"{own / signatures:.2f} of the signatures'); with a perfect split at most "
          f"{signatures / spent:.2f} x")  # fmt: skip


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
