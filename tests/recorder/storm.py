"""Crash and outage harnesses shared by the tests and ``bench/durability.py``.

``kill_storm``: child processes write into one ledger and send every entry id the moment the
ledger acknowledged it (``append``/``append_many`` returned, ``flush`` returned after
``submit``, a sync-durability call returned), and a start marker just before each write; the
parent reads their messages as they come and SIGKILLs them at a random acknowledged count. A
child whose last message was a start marker was killed mid-write: the storm counts those, so
a test can fail a storm that never hit the window. Afterwards every acknowledged id must be in
the ledger, once, and the log must verify. Rounds reuse the same ledger, so each one also
starts from whatever the previous kill left behind (a hot SQLite WAL, a PostgreSQL backend
gone): every child opens the ledger itself, after the previous round's children died.

The children are forked by a ``multiprocessing`` fork server that imported the ledger (and the
OpenAI SDK) once, so a round costs the writing, not a new interpreter's imports. The fork
server has no ledger open and no threads of ours when it forks.

``postgres_outage``: recorded async calls keep going while a local TCP forwarder in front of
PostgreSQL is closed for ``seconds`` (the server itself is never touched); then the spool is
replayed with ``ledger spool flush``. Every call that returned must be in the ledger exactly
once.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
#: Most calls made during one outage (each takes a few milliseconds against the local fake).
MAX_OUTAGE_CALLS = 20_000
#: The message a child sends just before each write (ids are 36 characters, never this).
STARTING = b"+"
#: Imported once by the fork server, not by every child: what a child imports to open a
#: ledger (the migration check, both dialects), to judge its first entry (the parsed shipped
#: policies) and to make its first recorded OpenAI call.
#: A name that is gone is skipped by the fork server; the child then imports what it needs.
_PRELOAD = [
    "ledger._ledger", "ledger.log.ids", "ledger.settings", "ledger.log.writer", "ledger._judge",
    "ledger.policy.engine", "ledger.recorder", "alembic.command", "alembic.runtime.migration",
    "sqlalchemy.dialects.sqlite", "sqlalchemy.dialects.postgresql.psycopg", "psycopg",
    "httpcore2", "openai", "openai.resources.chat", "tests.recorder.storm_warmup",
]  # fmt: skip


def _child(mode: str, url: str, home: str, worker: str, base_url: str, out: Connection) -> None:
    """One storm child: write in ``mode`` until killed, sending each acknowledged id."""
    with open(Path(home) / "storm-stderr.txt", "ab") as stderr:
        os.dup2(stderr.fileno(), 2)
    from ledger._ledger import Ledger
    from ledger.log.ids import uuid7
    from ledger.settings import Settings

    settings = Settings(home=Path(home), database_url=url, sqlite_busy_timeout=30)
    lg = Ledger.from_settings(settings, create=False)
    if mode == "sync":
        import openai

        from ledger.recorder import wrap

        client = wrap(
            openai.OpenAI(api_key="sk-storm", base_url=base_url, max_retries=0),
            ledger=lg,
            purpose="evaluate",
            durability="sync",
            hosts={"127.0.0.1": "openai"},
        )
    n = 0
    while True:
        n += 1
        out.send_bytes(STARTING)
        if mode == "append":
            body = {"v": 1, "id": uuid7(), "provider": "openai", "worker": worker, "n": n}
            lg.append(body)
            ids = [body["id"]]
        elif mode == "append_many":
            bodies = [{"v": 1, "id": uuid7(), "worker": worker, "n": n, "k": k} for k in range(25)]
            lg.append_many(bodies)
            ids = [b["id"] for b in bodies]
        elif mode == "submit":
            bodies = [{"v": 1, "id": uuid7(), "worker": worker, "n": n, "k": k} for k in range(25)]
            for body in bodies:
                lg.submit(body)
            if not lg.flush(timeout=60):
                raise SystemExit("flush timed out")
            ids = [b["id"] for b in bodies]
        elif mode == "sync":
            raw = client.chat.completions.with_raw_response.create(
                model="m", messages=[{"role": "user", "content": "x"}]
            )
            raw.parse()
            ids = [raw.headers["x-ledger-entry-id"]]
        else:
            raise SystemExit(f"unknown storm mode {mode!r}")
        # One message of at most 25 ids (under PIPE_BUF): one write, whole or not at all.
        out.send_bytes("\n".join(ids).encode())


@dataclass
class StormResult:
    """What one storm saw: acknowledged ids, kills, and what the ledger holds afterwards."""

    acknowledged: list[str] = field(default_factory=list)
    stored: Counter[str] = field(default_factory=Counter)
    rounds: int = 0
    #: Children SIGKILLed (every child of every round).
    kills: int = 0
    #: Kills that landed while the child was writing: after its start marker, before the ack.
    mid_write: int = 0
    verified: bool = False

    @property
    def lost(self) -> int:
        """Acknowledged ids the ledger does not hold."""
        return sum(1 for entry_id in set(self.acknowledged) if entry_id not in self.stored)

    @property
    def duplicated(self) -> int:
        """Ids stored more than once."""
        return sum(count - 1 for count in self.stored.values() if count > 1)


@dataclass
class _Feed:
    """One child's messages as its reader thread took them."""

    writing: bool = False  # the last message was a start marker


def _reader(conn: Connection, feed: _Feed, sink: list[str], lock: threading.Lock) -> None:
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):  # the child died; a cut message was never acknowledged
            return
        with lock:
            if message == STARTING:
                feed.writing = True
            else:
                sink.extend(message.decode().split("\n"))
                feed.writing = False


def _context() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)  # takes effect if this starts the fork server
    return ctx


def kill_storm(
    mode: str,
    url: str,
    home: Path,
    *,
    processes: int = 1,
    rounds: int = 3,
    acks: tuple[int, int] = (5, 60),
    base_url: str = "",
    seed: int | None = None,
    round_timeout: float = 120.0,
) -> StormResult:
    """Run ``rounds`` rounds of ``processes`` children in ``mode`` and SIGKILL them mid-write.

    The ledger at ``url``/``home`` must exist (the children open it with ``create=False``).
    Each round kills every child once the round has seen a random number of acknowledgements
    in ``acks`` and every child is inside a write (or a child died). Children's messages are
    read by threads as they come, so no child ever blocks on a full pipe; their stderr goes to
    ``home/storm-stderr.txt``.
    """
    rng = random.Random(seed)  # noqa: S311 - picks kill moments, not secrets
    result = StormResult()
    ctx = _context()
    errors = home / "storm-stderr.txt"
    errors.touch()
    if str(REPO) not in sys.path:  # the fork server imports this module by name
        sys.path.insert(0, str(REPO))
    for _ in range(rounds):
        target = rng.randint(*acks)
        seen: list[str] = []
        lock = threading.Lock()
        procs: list[Any] = []
        feeds: list[_Feed] = []
        readers: list[threading.Thread] = []
        for worker in range(processes):
            receive, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(
                target=_child, args=(mode, url, str(home), str(worker), base_url, send)
            )
            proc.start()
            send.close()  # the child holds the only writing end: its death ends the feed
            feed = _Feed()
            reader = threading.Thread(target=_reader, args=(receive, feed, seen, lock), daemon=True)
            reader.start()
            procs.append(proc)
            feeds.append(feed)
            readers.append(reader)
        deadline = time.monotonic() + round_timeout
        while True:
            with lock:
                count = len(seen)
                # Kill while every child is inside a write: not while one is still opening
                # the ledger, nor in the instant between an ack and its next write (which a
                # loaded machine stretches by preempting the child right after the ack).
                writing = all(feed.writing for feed in feeds)
            alive = [p for p in procs if p.is_alive()]
            if (count >= target and writing) or not alive or time.monotonic() > deadline:
                break
            # Polling the count, not waiting for an event: the children are other
            # processes, and the kill must land at an arbitrary point of their work.
            readers[0].join(0.005)
        for proc in procs:
            if proc.is_alive():
                proc.kill()
        for proc in procs:
            proc.join(timeout=30)
        for reader in readers:
            reader.join(timeout=30)
        if count < target and time.monotonic() > deadline:
            raise AssertionError(f"{mode}: only {count} acknowledgements in {round_timeout}s")
        died = [p.exitcode for p in procs if p.exitcode != -signal.SIGKILL]
        if died:
            raise AssertionError(
                f"{mode}: a child exited by itself ({died}); see {errors}: "
                + errors.read_text()[-2000:]
            )
        result.acknowledged += seen
        result.rounds += 1
        result.kills += len(procs)
        result.mid_write += sum(feed.writing for feed in feeds)
    _check(result, url, home)
    return result


def _check(result: StormResult, url: str, home: Path) -> None:
    from ledger._ledger import Ledger
    from ledger.settings import Settings

    settings = Settings(home=home, database_url=url)
    with Ledger.from_settings(settings, read_only=True) as lg:
        result.stored = Counter(e.body["id"] for e in lg.entries())
        report = lg.verify()
        result.verified = report.ok
        if not report.ok:
            raise AssertionError(f"verify failed after the storm: {report.first_problem}")


# --- PostgreSQL outage --------------------------------------------------------------------------


class Forwarder:
    """A localhost TCP forwarder to PostgreSQL that can be cut (and restored on the same port)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.up = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """Refuse new connections and break every open one (the server is unreachable)."""
        self.up = False
        with self._lock:
            conns, self.conns = self.conns, []
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def restore(self) -> None:
        """Forward again."""
        self.up = True

    def close(self) -> None:
        """Cut and stop listening."""
        self.cut()
        self.listener.close()


@dataclass
class OutageResult:
    """What a PostgreSQL outage run saw."""

    returned: list[str]
    stored: Counter[str]
    spooled: int
    replayed: int
    seconds: float

    @property
    def lost(self) -> int:
        """Returned calls the ledger does not hold."""
        return sum(1 for entry_id in set(self.returned) if entry_id not in self.stored)

    @property
    def duplicated(self) -> int:
        """Calls stored more than once (or twice returned with one id)."""
        return sum(c - 1 for c in self.stored.values() if c > 1) + (
            len(self.returned) - len(set(self.returned))
        )


def postgres_outage(
    base_url: str, schema: str, home: Path, provider_url: str, seconds: float
) -> OutageResult:
    """Record async calls through an outage of ``seconds``, then ``ledger spool flush``."""
    import openai
    from typer.testing import CliRunner

    import ledger
    from ledger.cli import app
    from ledger.recorder import Spool, wrap

    parts = urlsplit(base_url)
    forwarder = Forwarder(parts.hostname or "127.0.0.1", parts.port or 5432)
    url = (
        f"{parts.scheme}://{parts.username}@127.0.0.1:{forwarder.port}{parts.path}"
        f"?options=-csearch_path%3D{schema}"
    )
    returned: list[str] = []
    try:
        lg = ledger.open(url, home=home)
        try:
            bare = openai.OpenAI(api_key="sk-outage", base_url=provider_url, max_retries=0)
            client = wrap(bare, ledger=lg, purpose="evaluate", hosts={"127.0.0.1": "openai"})

            def call() -> None:
                raw = client.chat.completions.with_raw_response.create(
                    model="m", messages=[{"role": "user", "content": "x"}]
                )
                raw.parse()
                returned.append(raw.headers["x-ledger-entry-id"])

            for _ in range(20):
                call()
            forwarder.cut()
            ends = time.monotonic() + seconds
            for _ in range(MAX_OUTAGE_CALLS):  # bounded in count and in time
                if time.monotonic() >= ends:
                    break
                call()
            forwarder.restore()
            for _ in range(20):
                call()
            lg.flush(timeout=60)
            from ledger.recorder import flush

            flush(60)
            client.close()
        finally:
            lg.close()
        spooled = Spool.for_home(home).status().entries
        done = CliRunner().invoke(
            app,
            ["--home", str(home), "--db", url, "spool", "flush", "--json"],
            env={"LEDGER_HOME": "", "LEDGER_DATABASE_URL": ""},
        )
        if done.exit_code != 0:
            raise AssertionError(f"spool flush failed: {done.output}")
        import json

        replayed = int(json.loads(done.stdout)["replayed"])
        lg = ledger.open(url, home=home)
        try:
            stored = Counter(e.body["id"] for e in lg.entries())
            if not lg.verify().ok:
                raise AssertionError("verify failed after the outage")
        finally:
            lg.close()
    finally:
        forwarder.close()
    return OutageResult(returned, stored, spooled, replayed, seconds)


def new_postgres_schema(base_url: str) -> str:
    """Create a fresh schema on the test server; return its name."""
    import uuid

    import psycopg

    schema = f"storm_{uuid.uuid4().hex[:12]}"
    plain = base_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema


def drop_postgres_schema(base_url: str, schema: str) -> None:
    """Drop a schema made by :func:`new_postgres_schema`."""
    import psycopg

    plain = base_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def postgres_schema_url(base_url: str, schema: str) -> str:
    """``base_url`` with its search path set to ``schema``."""
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options=-csearch_path%3D{schema}"


def describe(result: Any) -> str:
    """One line for a report."""
    if isinstance(result, StormResult):
        return (
            f"{result.rounds} rounds, {result.kills} kills ({result.mid_write} mid-write), "
            f"{len(result.acknowledged)} acknowledged, "
            f"{result.lost} lost, {result.duplicated} duplicated, verify ok={result.verified}"
        )
    return (
        f"{len(result.returned)} calls returned over a {result.seconds:g} s outage, "
        f"{result.spooled} spooled, {result.replayed} replayed by spool flush, "
        f"{result.lost} lost, {result.duplicated} duplicated"
    )
