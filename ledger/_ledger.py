"""The :class:`Ledger` facade: one object that records, proves and verifies.

Invariants:

* Opening checks, in this order and before writing anything: the database is reachable and its
  schema is not newer than this code; the key files load (passphrase, corruption). Only then is
  anything created or migrated.
* Entries are signed with the recorder key; checkpoints with the log key as C2SP signed notes
  whose key name is the log's origin. Both public keys are registered in the ``keys`` table
  (rotation adds rows; retired keys keep verifying old signatures).
* A checkpoint is signed automatically after ``checkpoint_every`` new entries or when entries
  are ``checkpoint_interval`` seconds old; never two inconsistent ones (see
  :meth:`LogStore.add_checkpoint`).
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from ledger._judge import Judge
from ledger.crypto.keys import SigningKey
from ledger.crypto.note import Checkpoint, NoteSigner, sign_checkpoint, verifier_key_string
from ledger.errors import ConfigError, InputError, LedgerError, NotFoundError, StoreError
from ledger.log import schema
from ledger.log.keyring import Keyring
from ledger.log.records import Receipt, StoredEntry, prepare_entries
from ledger.log.signing import BatchSigner
from ledger.log.store import CheckpointRecord, KeyRecord, LogStore
from ledger.log.verify import VerifyReport, verify_log
from ledger.log.writer import Writer
from ledger.policy import DeclaredFacts, Verdict, load_facts_file
from ledger.settings import Settings

__all__ = ["Ledger", "open_ledger"]

_open_ledgers: weakref.WeakSet[Ledger] = weakref.WeakSet()


class Ledger:
    """A provenance ledger: a signed, append-only Merkle log of teacher-call entries.

    Example:
        >>> import ledger
        >>> lg = ledger.open(home="/tmp/demo-ledger")
        >>> receipt = lg.append({"provider": "openai", "purpose": "evaluate"})
        >>> lg.verify().ok
        True
    """

    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        *,
        origin: str | None = None,
        batch_size: int = 2_000,
        checkpoint_every: int = 10_000,
        checkpoint_interval: float = 60.0,
        judge: bool = True,
        profile: DeclaredFacts | None = None,
    ) -> None:
        self._engine = engine
        self.store = LogStore(engine)
        self._keyring = keyring
        meta = self.store.meta()
        self.install_id = meta.get("install_id", "unknown")
        self.origin = origin or f"ledger.local/{self.install_id}"
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval = checkpoint_interval
        self._batch_size = batch_size
        self._register_keys()
        self._judge = Judge(self.store, profile=profile) if judge else None
        # Verdicts are written in the transaction of the entries they judge.
        self._annex = self._judge.annex if self._judge is not None else None
        self._checkpoint_lock = threading.Lock()
        latest = self.store.latest_checkpoint()
        self._checkpointed_size = latest.tree_size if latest else 0
        self._oldest_unsigned: float | None = None
        self._signer = BatchSigner(keyring.recorder)
        self._writer = Writer(
            self.store,
            lambda: self._signer,
            batch_size=batch_size,
            annex=self._annex,
            after_commit=self._maybe_checkpoint,
            idle_tick=checkpoint_interval / 4 if checkpoint_interval else None,
        )
        self._inline = threading.Lock()  # held by the one append committing in its own thread
        self._closed = False
        _open_ledgers.add(self)

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings, *, profile: DeclaredFacts | None = None) -> Ledger:
        """Open (creating and migrating if needed) the ledger ``settings`` describe.

        ``profile`` (the organization's declared facts) overrides ``settings.facts_file``.
        """
        home = settings.home
        url = settings.resolved_database_url()
        if url.startswith("sqlite:///") and settings.database_url is None:
            try:
                home.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create ledger home {home}: {exc.strerror}") from exc
        engine = schema.make_engine(
            url,
            sqlite_synchronous=settings.sqlite_synchronous,
            sqlite_busy_timeout=settings.sqlite_busy_timeout,
        )
        try:
            schema.current_revision(engine)  # reachable, and not from a newer ledger
            passphrase = (
                settings.key_passphrase.get_secret_value().encode()
                if settings.key_passphrase
                else None
            )
            keyring = Keyring.open(home, passphrase)
            schema.migrate(engine)
            return cls(
                engine,
                keyring,
                origin=settings.origin,
                batch_size=settings.batch_size,
                checkpoint_every=settings.checkpoint_every,
                checkpoint_interval=settings.checkpoint_interval,
                judge=settings.judge,
                profile=profile
                or (load_facts_file(settings.facts_file) if settings.facts_file else None),
            )
        except BaseException:
            engine.dispose()
            raise

    def _register_keys(self) -> None:
        recorder, log_key = self._keyring.recorder, self._keyring.log
        self.store.register_key("recorder", recorder.key_id, "recorder", recorder.public_key.raw)
        self.store.register_key("log", log_key.key_id, self.origin, log_key.public_key.raw)

    # -- properties --------------------------------------------------------------------------

    @property
    def home(self) -> Path:
        """The folder holding the key files (and the default SQLite database)."""
        return self._keyring.home

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return schema.redact_url(str(self._engine.url))

    @property
    def size(self) -> int:
        """Number of entries committed."""
        return self.store.size()

    @property
    def recorder_key_id(self) -> str:
        return self._keyring.recorder.key_id

    @property
    def verifier_key(self) -> str:
        """The C2SP verifier key string of the log key (``name+hexid+base64key``)."""
        return verifier_key_string(self.origin, self._keyring.log.public_key.raw)

    def account_fingerprint(self, credential: str) -> str:
        """HMAC-SHA256 fingerprint of an API credential; the credential is never stored."""
        return self._keyring.account_fingerprint(credential)

    # -- appending ---------------------------------------------------------------------------

    def append(self, body: Mapping[str, Any]) -> Receipt:
        """Sign ``body`` with the recorder key and commit it; return its receipt.

        A caller alone commits in its own thread (handing the body to the writer thread and
        waiting for it cost 0.17 ms more per call). While another append or the writer is
        busy, the caller joins the writer's next group commit instead, so concurrent callers
        still share commits, and an append never overtakes bodies submitted before it.
        """
        if self._inline.acquire(blocking=False):
            try:
                if self._writer.idle():
                    _check_body(body)
                    if self._closed:
                        raise StoreError("the ledger is closed")
                    if self._oldest_unsigned is None:
                        self._oldest_unsigned = time.monotonic()
                    self._writer.start_ticking()  # time-based checkpoints after the last call
                    return self._commit([body])[0]
            finally:
                self._inline.release()
        return self.submit(body).result()

    def append_many(self, bodies: Iterable[Mapping[str, Any]]) -> list[Receipt]:
        """Sign and commit many bodies, ``batch_size`` per transaction, in this thread."""
        receipts: list[Receipt] = []
        batch: list[Mapping[str, Any]] = []
        for body in bodies:
            batch.append(body)
            if len(batch) >= self._batch_size:
                receipts.extend(self._commit(batch))
                batch = []
        if batch:
            receipts.extend(self._commit(batch))
        return receipts

    def _commit(self, bodies: Sequence[Mapping[str, Any]]) -> list[Receipt]:
        batch = []
        for result in prepare_entries(bodies, self._signer):
            if isinstance(result, LedgerError):
                raise result  # nothing of this batch is committed
            batch.append(result)
        receipts = self.store.append(batch, self._annex)
        self._maybe_checkpoint()
        return receipts

    def submit(self, body: Mapping[str, Any]) -> Future[Receipt]:
        """Queue ``body`` for the background writer and return at once."""
        _check_body(body)
        if self._oldest_unsigned is None:
            self._oldest_unsigned = time.monotonic()
        return self._writer.submit(body)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted entry is committed (or failed); False on timeout."""
        return self._writer.flush(timeout)

    def close(self) -> None:
        """Commit what is queued, stop the writer and release the database."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        self._signer.close()
        self._engine.dispose()
        _open_ledgers.discard(self)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------------

    def entry(self, leaf_index: int) -> StoredEntry:
        """The entry at ``leaf_index`` (NotFoundError if there is none)."""
        return self.store.entry(leaf_index)

    def entry_by_id(self, entry_id: str) -> StoredEntry:
        """The entry whose body ``id`` is ``entry_id``."""
        return self.store.entry_by_id(entry_id)

    def entries(
        self,
        start: int = 0,
        stop: int | None = None,
        *,
        provider: str | None = None,
        dataset: str | None = None,
    ) -> Iterator[StoredEntry]:
        """Entries in leaf order, optionally only one provider's or one dataset's."""
        filters = {k: v for k, v in (("provider", provider), ("dataset", dataset)) if v is not None}
        return self.store.entries(start, stop, filters)

    # -- proofs and checkpoints --------------------------------------------------------------

    def root(self, tree_size: int | None = None) -> bytes:
        """Root hash of the first ``tree_size`` entries (default: all)."""
        return self.store.root(tree_size)

    def inclusion_proof(self, leaf_index: int, tree_size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof of ``leaf_index`` in the tree of ``tree_size`` entries."""
        return self.store.inclusion_proof(leaf_index, self.size if tree_size is None else tree_size)

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof from size ``first`` to ``second`` (default: now)."""
        return self.store.consistency_proof(first, self.size if second is None else second)

    def checkpoint(self) -> CheckpointRecord:
        """Sign a checkpoint of the log as it is now (or return the latest if nothing changed)."""
        signer = NoteSigner(self.origin, self._keyring.log)

        def sign(size: int, root_hash: bytes) -> str:
            return sign_checkpoint(Checkpoint(self.origin, size, root_hash), signer)

        with self._checkpoint_lock:
            record = self.store.add_checkpoint(sign)
            self._checkpointed_size = record.tree_size
            self._oldest_unsigned = None
        return record

    def latest_checkpoint(self) -> CheckpointRecord | None:
        """The newest signed checkpoint, if any."""
        return self.store.latest_checkpoint()

    def checkpoints(self) -> list[CheckpointRecord]:
        """Every checkpoint, oldest first."""
        return self.store.checkpoints()

    def _maybe_checkpoint(self) -> None:
        due_by_count = (
            self._checkpoint_every > 0
            and self.store_size_hint() - self._checkpointed_size >= self._checkpoint_every
        )
        due_by_time = (
            self._checkpoint_interval > 0
            and self._oldest_unsigned is not None
            and time.monotonic() - self._oldest_unsigned >= self._checkpoint_interval
        )
        if due_by_count or due_by_time:
            self.checkpoint()

    def store_size_hint(self) -> int:
        """The size this process last committed (no query); exact when it is the only writer."""
        frontier = self.store._frontier
        return frontier.size if frontier is not None else self.size

    # -- verdicts ----------------------------------------------------------------------------

    def verdict(
        self,
        leaf_index: int,
        *,
        purpose: str | None = None,
        facts: DeclaredFacts | Mapping[str, Any] | None = None,
    ) -> Verdict:
        """The entry's verdict under today's policies for its declared purpose (or ``purpose``).

        A query: nothing is stored (``reevaluate`` stores). ``facts`` are merged over the
        organization profile, so a what-if ("if the student competed...") is one call. The
        verdict reports what the dated terms say, with their sources; it is not legal advice.
        """
        judge = self._judge or Judge(self.store)
        verdict = judge.evaluate(self.entry(leaf_index).body, purpose, facts)
        if verdict is None:
            raise NotFoundError(f"entry {leaf_index} declares no purpose: pass one to judge it for")
        return verdict

    def verdict_history(self, leaf_index: int) -> list[Verdict]:
        """Every verdict stored for the entry, oldest first (earlier policies and facts too)."""
        return (self._judge or Judge(self.store)).history(leaf_index, self.entry(leaf_index).body)

    def reevaluate(
        self,
        *,
        purpose: str | None = None,
        facts: DeclaredFacts | Mapping[str, Any] | None = None,
        dataset: str | None = None,
    ) -> int:
        """Judge every entry (of ``dataset``) again and store the verdicts that are new.

        Use after policies or declared facts change; earlier verdicts are kept. Returns the
        number of entries judged.
        """
        judge = self._judge or Judge(self.store)
        pairs = ((e.leaf_index, e.body) for e in self.entries(dataset=dataset))
        return len(judge.reevaluate(pairs, purpose=purpose, facts=facts))

    # -- verification and keys ---------------------------------------------------------------

    def verify(
        self,
        *,
        trusted: Sequence[Checkpoint] = (),
        workers: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> VerifyReport:
        """Recompute and check everything (:mod:`ledger.log.verify`); problems go in the report.

        ``progress(done, total)``, if given, is called as chunks of leaves are checked.
        """
        return verify_log(self.store, trusted=trusted, workers=workers, progress=progress)

    def keys(self) -> list[KeyRecord]:
        """Every public key registered, oldest first (retired ones included)."""
        return self.store.keys()

    @property
    def recorder_key(self) -> SigningKey:
        return self._keyring.recorder

    def rotate_key(self, kind: str) -> KeyRecord:
        """Replace the recorder or log key; old public keys stay registered."""
        if kind == "log":
            # Seal what the old key vouches for before it retires.
            self.checkpoint()
        self._writer.flush()
        key = self._keyring.rotate(kind)
        if kind == "recorder":
            retired, self._signer = self._signer, BatchSigner(key)
            retired.close()
        name = self.origin if kind == "log" else "recorder"
        self.store.register_key(kind, key.key_id, name, key.public_key.raw)
        return [k for k in self.store.keys() if k.key_id == key.key_id][-1]


def open_ledger(url: str | None = None, *, home: str | Path | None = None) -> Ledger:
    """Open the ledger at ``url`` (default: SQLite under ``LEDGER_HOME``, ``./.ledger``).

    Creates the database and fresh recorder and log keys when none exist, and migrates the
    schema to the newest revision.

    Example:
        >>> import ledger
        >>> lg = ledger.open()            # ./.ledger/ledger.db
    """
    overrides: dict[str, Any] = {}
    if url is not None:
        overrides["database_url"] = url
    if home is not None:
        overrides["home"] = Path(home)
    return Ledger.from_settings(Settings(**overrides))


def _check_body(body: object) -> None:
    if not isinstance(body, Mapping):
        raise InputError(f"an entry body must be a JSON object, not {type(body).__name__}")


def _reset_after_fork() -> None:
    # A forked child inherits the writer's queue but not its thread, and pooled connections
    # it must not share with the parent: start afresh, the parent commits what it queued.
    for lg in list(_open_ledgers):
        lg.store.after_fork()
        lg._writer.after_fork()
        lg._signer.after_fork()
        lg._inline = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


@atexit.register
def _flush_open_ledgers() -> None:
    # A normal interpreter exit commits what the writers still hold.
    for lg in list(_open_ledgers):
        lg.close()
