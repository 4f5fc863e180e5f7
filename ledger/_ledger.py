"""The :class:`Ledger` facade: one object that records, proves and verifies.

Invariants:

* Opening for writing checks, in this order and before writing anything: the database is
  reachable and its schema is not newer than this code; the key files load (passphrase,
  corruption); the home's keys are the ones the database lists as active (a home never
  silently replaces another's keys). Only then is anything created or migrated.
* Opening read-only (``read_only=True``) needs only public data: the database (which must exist
  and be at this code's schema) and nothing under the home. It never creates, migrates or
  writes anything: the engine itself cannot write (:func:`ledger.log.schema.read_only_url`),
  and every write method raises :class:`ReadOnlyError`.
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
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Engine

from ledger.crypto.keys import VerifyingKey
from ledger.crypto.note import Checkpoint, NoteSigner, sign_checkpoint, verifier_key_string
from ledger.errors import (
    ConfigError,
    InputError,
    LedgerError,
    NotFoundError,
    ReadOnlyError,
    StoreError,
)
from ledger.log import schema
from ledger.log.keyring import Keyring
from ledger.log.records import (
    PreparedEntry,
    Receipt,
    StoredEntry,
    open_sealed_many,
    prepare_entries,
    seal_entry,
)
from ledger.log.store import CheckpointRecord, KeyRecord, LogStore
from ledger.log.verify import VerifyReport, verify_log
from ledger.read_settings import ReadSettings

if TYPE_CHECKING:
    from ledger._judge import Judge, VerdictCheck
    from ledger.audit import DatasetAudit
    from ledger.crypto.keys import SigningKey
    from ledger.crypto.multiproof import MultiProof
    from ledger.log.signing import BatchSigner
    from ledger.log.writer import Writer
    from ledger.policy import DeclaredFacts, Verdict
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
        keyring: Keyring | None,
        *,
        origin: str | None = None,
        batch_size: int = 2_000,
        checkpoint_every: int = 10_000,
        checkpoint_interval: float = 60.0,
        judge: bool = True,
        profile: DeclaredFacts | None = None,
        home: Path | None = None,
    ) -> None:
        """Wrap an open engine; ``keyring=None`` makes a read-only ledger (no key is needed)."""
        self._engine = engine
        self.store = LogStore(engine)
        self._keyring = keyring
        self._home = keyring.home if keyring is not None else (home or Path(".ledger"))
        meta = self.store.meta()
        self.install_id = meta.get("install_id", "unknown")
        self.origin = origin or self._registered_origin() or f"ledger.local/{self.install_id}"
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval = checkpoint_interval
        self._batch_size = batch_size
        self._profile = profile
        self._judge: Judge | None = None
        self._annex: Any = None
        self._checkpoint_lock = threading.Lock()
        self._checkpointed_size = 0
        self._oldest_unsigned: float | None = None
        self._signer: BatchSigner | None = None
        self._writer: Writer | None = None
        if keyring is not None:
            self._start_writing(keyring, judge)
        self._inline = threading.Lock()  # held by the one append committing in its own thread
        self._closed = False
        # Defaults for recorders that wrap() builds on this ledger (from LEDGER_CONTENT and
        # LEDGER_DURABILITY when opened from settings); the library itself reads no environment.
        self.default_content: Literal["hash", "full"] = "hash"
        self.default_durability: Literal["async", "sync"] = "async"
        # Run first by flush(): recorders drain the calls that returned but are not submitted.
        self._flush_hooks: list[Callable[[float | None], object]] = []
        self._recorder_keys: dict[str, VerifyingKey] | None = None
        if keyring is not None:
            _open_ledgers.add(self)

    def _start_writing(self, keyring: Keyring, judge: bool) -> None:
        from ledger._judge import Judge
        from ledger.log.signing import BatchSigner
        from ledger.log.writer import Writer

        self._register_keys()
        self._judge = Judge(self.store, profile=self._profile) if judge else None
        # Verdicts are written in the transaction of the entries they judge.
        self._annex = self._judge.annex if self._judge is not None else None
        latest = self.store.latest_checkpoint()
        self._checkpointed_size = latest.tree_size if latest else 0
        self._signer = BatchSigner(keyring.recorder)
        self._writer = Writer(
            self.store,
            self._signing,
            batch_size=self._batch_size,
            annex=self._annex,
            after_commit=self._maybe_checkpoint,
            idle_tick=self._checkpoint_interval / 4 if self._checkpoint_interval else None,
        )

    @property
    def read_only(self) -> bool:
        """True when the ledger was opened without keys and cannot write."""
        return self._keyring is None

    def _keys(self) -> Keyring:
        if self._keyring is None:
            raise ReadOnlyError("the ledger was opened read-only: it cannot sign or write")
        return self._keyring

    def _signing(self) -> BatchSigner:
        if self._signer is None:
            raise ReadOnlyError("the ledger was opened read-only: it cannot sign or write")
        return self._signer

    def _writing(self) -> Writer:
        if self._writer is None:
            raise ReadOnlyError("the ledger was opened read-only: it cannot sign or write")
        return self._writer

    def _registered_origin(self) -> str | None:
        """The name of the active log key (it signs as the log's origin), if any."""
        log_keys = [k for k in self.store.keys() if k.kind == "log"]
        return log_keys[-1].name if log_keys else None

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def from_settings(
        cls,
        settings: Settings | ReadSettings,
        *,
        profile: DeclaredFacts | None = None,
        read_only: bool = False,
        create: bool = True,
    ) -> Ledger:
        """Open the ledger ``settings`` describe.

        By default it is created (database and keys) and migrated if needed. ``create=False``
        opens an existing ledger for writing and refuses (ConfigError) to make a new one.
        ``read_only=True`` opens an existing ledger from public data only; see the module
        docstring. ``profile`` (the organization's declared facts) overrides
        ``settings.facts_file``. A :class:`ReadSettings` (what a read command reads from the
        environment, without pydantic-settings) opens read-only only.
        """
        if read_only:
            return cls._open_read_only(settings, profile)
        if isinstance(settings, ReadSettings):
            raise TypeError("ReadSettings opens a ledger read-only only: pass read_only=True")
        home = settings.home
        url = settings.resolved_database_url()
        if not create:
            _require_existing(settings, url)
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
            _check_home_keys(engine, keyring)
            opened = cls(
                engine,
                keyring,
                origin=settings.origin,
                batch_size=settings.batch_size,
                checkpoint_every=settings.checkpoint_every,
                checkpoint_interval=settings.checkpoint_interval,
                judge=settings.judge,
                profile=profile or _profile(settings),
            )
            opened.default_content = settings.content
            opened.default_durability = settings.durability
            return opened
        except BaseException:
            engine.dispose()
            raise

    @classmethod
    def _open_read_only(
        cls, settings: Settings | ReadSettings, profile: DeclaredFacts | None
    ) -> Ledger:
        url = schema.read_only_url(settings.resolved_database_url())
        engine = schema.make_engine(url, sqlite_busy_timeout=settings.sqlite_busy_timeout)
        try:
            schema.require_schema(engine)
            return cls(
                engine,
                None,
                origin=settings.origin,
                judge=False,
                profile=profile or _profile(settings),
                home=settings.home,
            )
        except BaseException:
            engine.dispose()
            raise

    def _register_keys(self) -> None:
        recorder, log_key = self._keys().recorder, self._keys().log
        self.store.register_key("recorder", recorder.key_id, "recorder", recorder.public_key.raw)
        self.store.register_key("log", log_key.key_id, self.origin, log_key.public_key.raw)

    # -- properties --------------------------------------------------------------------------

    @property
    def home(self) -> Path:
        """The folder holding the key files (and the default SQLite database)."""
        return self._home

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
        """Key id of the active recorder key (the last one registered)."""
        if self._keyring is not None:
            return self._keyring.recorder.key_id
        return self._active_key("recorder").key_id

    @property
    def verifier_key(self) -> str:
        """The C2SP verifier key string of the active log key (``name+hexid+base64key``)."""
        if self._keyring is not None:
            return verifier_key_string(self.origin, self._keyring.log.public_key.raw)
        record = self._active_key("log")
        return verifier_key_string(record.name, record.public_key)

    def _active_key(self, kind: str) -> KeyRecord:
        records = [k for k in self.store.keys() if k.kind == kind]
        if not records:
            raise NotFoundError(f"the ledger lists no {kind} key")
        return records[-1]

    def account_fingerprint(self, credential: str) -> str:
        """HMAC-SHA256 fingerprint of an API credential; the credential is never stored."""
        return self._keys().account_fingerprint(credential)

    def fingerprint_key(self, dataset: str | None) -> bytes:
        """The key of one dataset's output fingerprints (``None``: calls recorded without one).

        Derived from ``keys/fingerprint.secret``; it opens only that dataset's fingerprints, so
        it can be handed to the dataset's auditor. A read-only ledger reads the secret from its
        home when the file is there.

        Raises:
            ConfigError: the home has no fingerprint secret (read-only open of an old home) or
                its key folder cannot hold one.
        """
        from ledger.crypto.fingerprint import dataset_key
        from ledger.log.keyring import read_fingerprint_secret

        if self._keyring is not None:
            secret = self._keyring.fingerprint_secret
        else:
            found = read_fingerprint_secret(self.home)
            if found is None:
                raise ConfigError(f"no fingerprint secret under {self.home / 'keys'}")
            secret = found
        return dataset_key(secret, dataset)

    # -- appending ---------------------------------------------------------------------------

    def append(self, body: Mapping[str, Any]) -> Receipt:
        """Sign ``body`` with the recorder key and commit it; return its receipt.

        A caller alone commits in its own thread (handing the body to the writer thread and
        waiting for it cost 0.17 ms more per call). While another append or the writer is
        busy, the caller joins the writer's next group commit instead, so concurrent callers
        still share commits, and an append never overtakes bodies submitted before it.
        """
        writer = self._writing()
        if self._inline.acquire(blocking=False):
            try:
                if writer.idle():
                    _check_body(body)
                    if self._closed:
                        raise StoreError("the ledger is closed")
                    if self._oldest_unsigned is None:
                        self._oldest_unsigned = time.monotonic()
                    writer.start_ticking()  # time-based checkpoints after the last call
                    return self._commit([body])[0]
            finally:
                self._inline.release()
        return self.submit(body).result()

    def append_many(self, bodies: Iterable[Mapping[str, Any]]) -> list[Receipt]:
        """Sign and commit many bodies, ``batch_size`` per transaction, in this thread."""
        self._signing()
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
        for result in prepare_entries(bodies, self._signing()):
            if isinstance(result, LedgerError):
                raise result  # nothing of this batch is committed
            batch.append(result)
        receipts = self._store_append(batch)
        self._maybe_checkpoint()
        return receipts

    def _store_append(self, batch: Sequence[PreparedEntry]) -> list[Receipt]:
        from ledger.log.writer import read_only_error

        try:
            return self.store.append(batch, self._annex)
        except StoreError as exc:
            error = read_only_error(self.store, exc)
            if error is exc:
                raise
            raise error from exc

    def submit(self, body: Mapping[str, Any]) -> Future[Receipt]:
        """Queue ``body`` for the background writer and return at once."""
        writer = self._writing()
        _check_body(body)
        if self._oldest_unsigned is None:
            self._oldest_unsigned = time.monotonic()
        return writer.submit(body)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted entry is committed (or failed); False on timeout.

        Recorders bound to this ledger are drained first, so a recorded call that has returned
        to its caller is submitted (and then committed, or spooled) before this returns.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        for hook in list(self._flush_hooks):
            hook(timeout)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return True if self._writer is None else self._writer.flush(left)

    def add_flush_hook(self, hook: Callable[[float | None], object]) -> None:
        """Have :meth:`flush` call ``hook(timeout)`` first (once, however often it is added)."""
        if hook not in self._flush_hooks:
            self._flush_hooks.append(hook)

    def seal(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Sign ``body`` now, bound to this ledger, for storing later (the recorder's spool).

        Needs only the key and the install id read at open, not the database, so it works
        while the database is unreachable. :meth:`append_sealed` stores the result as it is.
        """
        return seal_entry(body, self._keys().recorder, self.install_id)

    def append_sealed(self, entries: Sequence[Mapping[str, Any]]) -> list[Receipt]:
        """Check and commit sealed entries in one transaction, keeping their signatures.

        Raises:
            InputError: an entry is not a sealed entry (for example an unsigned body).
            SignatureError: an entry is not signed by a recorder key of this ledger, its
                signature does not match, or it was sealed for another ledger.
        """
        self._keys()
        if self._closed:
            raise StoreError("the ledger is closed")
        # Every signature is checked (on all cores) before anything is stored.
        prepared = open_sealed_many(entries, self._recorder_public_keys, self.install_id)
        receipts = self._store_append(prepared)
        self._maybe_checkpoint()
        return receipts

    def _recorder_public_keys(self, entry: Mapping[str, Any]) -> dict[str, VerifyingKey]:
        key_id = entry.get("key_id") if isinstance(entry, Mapping) else None
        cached = self._recorder_keys
        if cached is None or (isinstance(key_id, str) and key_id not in cached):
            # Rotation adds keys; an unknown id is looked up again once before it is refused.
            cached = {
                k.key_id: VerifyingKey(k.public_key)
                for k in self.store.keys()
                if k.kind == "recorder"
            }
            self._recorder_keys = cached
        return cached

    def close(self) -> None:
        """Commit what is queued, stop the writer and release the database."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.close()
        if self._signer is not None:
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

    def multiproof(self, leaf_indexes: Sequence[int], tree_size: int | None = None) -> MultiProof:
        """One multiproof of every leaf in ``leaf_indexes`` (DESIGN.md, Multiproof)."""
        return self.store.multiproof(leaf_indexes, self.size if tree_size is None else tree_size)

    def checkpoint(self) -> CheckpointRecord:
        """Sign a checkpoint of the log as it is now (or return the latest if nothing changed)."""
        log_key = self._keys().log
        signer = NoteSigner(self.origin, log_key)

        def sign(size: int, root_hash: bytes) -> str:
            return sign_checkpoint(Checkpoint(self.origin, size, root_hash), signer)

        def reusable(record: CheckpointRecord) -> bool:
            # An unchanged tree keeps its checkpoint only if the active key signed it: after
            # a rotation the new key must vouch for the head.
            return _signed_by(record.note, self.origin, log_key.public_key.raw)

        with self._checkpoint_lock:
            record = self.store.add_checkpoint(sign, reusable=reusable)
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
        judge = self._judge_for_queries()
        verdict = judge.evaluate(self.entry(leaf_index).body, purpose, facts)
        if verdict is None:
            raise NotFoundError(f"entry {leaf_index} declares no purpose: pass one to judge it for")
        return verdict

    def verdict_history(self, leaf_index: int) -> list[Verdict]:
        """Every verdict stored for the entry, oldest first (earlier policies and facts too)."""
        return self._judge_for_queries().history(leaf_index, self.entry(leaf_index).body)

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
        self._keys()
        judge = self._judge_for_queries()
        pairs = ((e.leaf_index, e.body) for e in self.entries(dataset=dataset))
        return len(judge.reevaluate(pairs, purpose=purpose, facts=facts))

    def _judge_for_queries(self) -> Judge:
        if self._judge is None:
            from ledger._judge import Judge

            self._judge = Judge(self.store, profile=self._profile)
        return self._judge

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

    def recheck_verdicts(self, *, policies: Sequence[Path] | None = None) -> VerdictCheck:
        """Judge every stored verdict again and name the ones that come out differently.

        ``policies`` (policy files or folders) replaces the installed policy set, for verdicts
        stored under other policy versions. A query: nothing is stored.
        """
        from ledger._judge import recheck_verdicts
        from ledger.policy import load_policies

        return recheck_verdicts(self.store, load_policies(list(policies)) if policies else None)

    def keys(self) -> list[KeyRecord]:
        """Every public key registered, oldest first (retired ones included)."""
        return self.store.keys()

    @property
    def recorder_key(self) -> SigningKey:
        """The private recorder key (tests sign with it)."""
        return self._keys().recorder

    @property
    def log_key(self) -> SigningKey:
        """The private log key (signs checkpoints and evidence-pack manifests)."""
        return self._keys().log

    def rotate_key(self, kind: str) -> KeyRecord:
        """Replace the recorder or log key; old public keys stay registered."""
        keyring, writer = self._keys(), self._writing()
        if kind == "log":
            # Seal what the old key vouches for before it retires.
            self.checkpoint()
        writer.flush()
        # The database registers the new key before the home switches to it. If registering
        # fails (even after a commit the driver did not confirm) the prepared key stays, and
        # the next open for writing finishes or drops it by what the database says.
        key = keyring.prepare_rotation(kind)
        name = self.origin if kind == "log" else "recorder"
        self.store.register_key(kind, key.key_id, name, key.public_key.raw)
        keyring.finish_rotation(kind, key)
        if kind == "recorder":
            from ledger.log.signing import BatchSigner

            retired, self._signer = self._signing(), BatchSigner(key)
            retired.close()
        if kind == "log":
            self.checkpoint()  # the new key vouches for the head at once
        return [k for k in self.store.keys() if k.key_id == key.key_id][-1]

    # -- audits ------------------------------------------------------------------------------

    def audit_dataset(
        self,
        paths: Iterable[str | Path],
        *,
        purpose: str = "train-model",
        keys: Mapping[str | None, bytes] | Callable[[str | None], bytes] | None = None,
        profile: DeclaredFacts | None = None,
        **options: Any,
    ) -> DatasetAudit:
        """Link every example of a dataset to this ledger's entries and judge it for ``purpose``.

        ``keys`` (default: :meth:`fingerprint_key`) gives each dataset's fingerprint key, e.g.
        ``{"tutor-v1": key}`` from a key file an auditor was given; ``profile`` defaults to
        the organization profile this ledger was opened with. Other options are those of
        :func:`ledger.audit.audit_dataset` (``format``, ``text_field``, ``id_field``,
        ``datasets``, ``wrappers``, ``near_threshold``, ``conduct``, ``strict``,
        ``progress``). Reads only; reports what dated terms say, not what is lawful.

        Example:
            >>> audit = lg.audit_dataset(["train.jsonl"])   # doctest: +SKIP
            >>> audit.passed(), audit.summary()["by_match"]["exact"]  # doctest: +SKIP
            (True, 1000)
        """
        from ledger.audit import audit_dataset

        return audit_dataset(
            self.store,
            paths,
            keys if keys is not None else self.fingerprint_key,
            purpose=purpose,
            profile=profile if profile is not None else self._profile,
            **options,
        )


def open_ledger(
    url: str | None = None, *, home: str | Path | None = None, read_only: bool = False
) -> Ledger:
    """Open the ledger at ``url`` (default: SQLite under ``LEDGER_HOME``, ``./.ledger``).

    Creates the database and fresh recorder and log keys when none exist, and migrates the
    schema to the newest revision. With ``read_only=True`` it opens an existing ledger from
    public data only (no key file, no passphrase; a read-only file or role is enough), never
    creates, migrates or writes anything, and raises ConfigError when there is no ledger there.

    Example:
        >>> import ledger
        >>> lg = ledger.open()                                  # ./.ledger/ledger.db
        >>> audit = ledger.open("sqlite:///copy.db", read_only=True)
        >>> audit.verify().ok
        True
    """
    overrides: dict[str, Any] = {}
    if url is not None:
        overrides["database_url"] = url
    if home is not None:
        overrides["home"] = Path(home)
    if read_only:  # only what a read needs, without pydantic-settings (start-up time)
        return Ledger.from_settings(ReadSettings.from_env(**overrides), read_only=True)
    from ledger.settings import Settings

    return Ledger.from_settings(Settings(**overrides))


def _profile(settings: Settings | ReadSettings) -> DeclaredFacts | None:
    if settings.facts_file is None:
        return None
    from ledger.policy import load_facts_file

    return load_facts_file(settings.facts_file)


def _require_existing(settings: Settings, url: str) -> None:
    """Refuse to create a ledger where an existing one was expected (a typo'd path or URL)."""
    path = schema.sqlite_path(url)
    if path is not None and not path.is_file():
        raise ConfigError(f"no ledger database at {path}: run `ledger init` to create one")
    keys = settings.home / "keys"
    if not keys.is_dir():
        raise ConfigError(f"no ledger keys under {keys}: run `ledger init` to create them")


def _check_home_keys(engine: Engine, keyring: Keyring) -> None:
    """Refuse a home whose keys are not the database's active ones.

    Opening for writing registers the home's keys; had another home's keys simply been
    registered, they would have become active and the ledger's own would read as retired
    (which is what a stray ``--home`` did). A fresh database, or one whose active keys are the
    home's, is fine.
    """
    records = LogStore(engine).keys()
    for kind in ("recorder", "log"):
        rows = [r for r in records if r.kind == kind]
        keyring.settle_rotation(kind, rows[-1].key_id if rows else None)
        key = keyring.recorder if kind == "recorder" else keyring.log
        if rows and rows[-1].key_id != key.key_id:
            raise ConfigError(
                f"the {kind} key under {keyring.folder} ({key.key_id[:16]}) is not this "
                f"ledger's active {kind} key ({rows[-1].key_id[:16]}): open it with its own "
                "home, or read it with a read-only command"
            )


def _signed_by(note: str, origin: str, public_key: bytes) -> bool:
    from ledger.crypto.note import NoteVerifier, verify_checkpoint

    verifier = NoteVerifier.from_string(verifier_key_string(origin, public_key))
    try:
        verify_checkpoint(note, verifier)
    except LedgerError:
        return False
    return True


def _check_body(body: object) -> None:
    if not isinstance(body, Mapping):
        raise InputError(f"an entry body must be a JSON object, not {type(body).__name__}")


def _reset_after_fork() -> None:
    # A forked child inherits the writer's queue but not its thread, and pooled connections
    # it must not share with the parent: start afresh, the parent commits what it queued.
    for lg in list(_open_ledgers):
        lg.store.after_fork()
        if lg._writer is not None:
            lg._writer.after_fork()
        if lg._signer is not None:
            lg._signer.after_fork()
        lg._inline = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


@atexit.register
def _flush_open_ledgers() -> None:
    # A normal interpreter exit commits what the writers still hold.
    for lg in list(_open_ledgers):
        lg.close()
