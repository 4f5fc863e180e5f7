"""A client of the audit service that trusts the server for nothing it can check.

Invariants:

* Every checkpoint a :class:`RemoteLedger` accepts is a signed note that verifies under its
  verifier key: the key the caller passed, or, when none was passed, the active log key the
  server named on first contact (trust on first use, flagged by
  :attr:`RemoteLedger.trusted_on_first_use`: a server that lies from the very first answer is
  caught only by a caller who pins the key).
* It keeps the largest checkpoint it has accepted; every new one must be proved consistent with
  it (an RFC 9162 consistency proof fetched from the server between the smaller and the larger
  tree), so a server that rewinds, forks or rewrites its log is caught at the first answer
  that shows it. An equal size with another root is a fork.
* Entries are accepted only with a proof against the checkpoint in the same answer: an
  inclusion proof for one entry, a multiproof for a page. Leaf hashes are computed here, from
  the RFC 8785 bytes of each received entry, never taken from the server.
* Every accepted entry's Ed25519 signature verifies over its body under the recorder key it
  names, one of the recorder keys (retired ones included) of ``GET /v1/keys``, fetched once
  and kept; an unknown key id fetches the listing once more (a key registered since) before
  the entry is refused. A listed key counts only if its id is the SHA-256 of its bytes. So a
  server that holds the log key but not a recorder's key cannot log a changed body, even
  with a valid proof and checkpoint for it; trusting the listing itself is trust on first
  use of the server, as for the log key.
* Recording (only with a local ``home`` holding the recorder's keys): bodies are sealed here,
  with the local recorder key, for the server's ledger id, then batched to ``POST /v1/entries``
  by :class:`~ledger.remote_writer.RemoteWriter`; so a :class:`RemoteLedger` is a ledger that
  ``ledger.wrap(client, ledger=...)`` records into. After a send succeeds following a failure,
  the spool under ``home`` (what the recorder set aside meanwhile) is replayed to the server.
* Failed checks raise :class:`~ledger.errors.VerificationError` subclasses; HTTP refusals
  become the ledger's own errors (404 NotFoundError, 4xx InputError, 401/403 ConfigError,
  405 ReadOnlyError, 5xx and transport failures StoreError). The token is never in a message.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from ledger.crypto import multiproof
from ledger.crypto.canonical import canonical_json, parse_json
from ledger.crypto.keys import VerifyingKey
from ledger.crypto.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.crypto.note import Checkpoint, NoteVerifier, verify_checkpoint
from ledger.errors import (
    CheckpointError,
    ConfigError,
    ConsistencyError,
    InclusionProofError,
    InputError,
    NotFoundError,
    ReadOnlyError,
    SignatureError,
    StoreError,
)
from ledger.log.records import Receipt, StoredEntry, seal_entry
from ledger.log.verifier import check_many

if TYPE_CHECKING:
    from ledger.log.keyring import Keyring
    from ledger.remote_writer import RemoteWriter

#: Most sealed entries in one POST /v1/entries (the server's default limit is 1,000).
BATCH = 500

__all__ = ["RemoteLedger", "connect"]


class RemoteLedger:
    """Reads (verified) and sealed-entry appends against a ``ledger serve`` service.

    Example:
        >>> import ledger
        >>> remote = ledger.connect(url, token, verifier_key=vkey)  # doctest: +SKIP
        >>> remote.entry(0).body["provider"]  # proof and checkpoint checked  # doctest: +SKIP
        'openai'
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        verifier_key: str | None = None,
        last_checkpoint: str | None = None,
        verify: bool = True,
        timeout: float = 30.0,
        client: httpx.Client | None = None,
        home: str | Path | None = None,
        key_passphrase: bytes | None = None,
    ) -> None:
        """Connect to ``base_url`` with bearer ``token``.

        Args:
            verifier_key: the log's C2SP verifier key string (``name+hexid+base64key``); when
                omitted, the key the server names first is trusted from then on.
            last_checkpoint: a signed note saved from an earlier session (see
                :attr:`last_checkpoint_note`); new checkpoints must be consistent with it.
            verify: check proofs and checkpoints (default). ``False`` is for benchmarks only.
            client: an ``httpx.Client`` to send through (tests pass one bound to an app).
            home: a local folder with this recorder's keys (created when empty): makes the
                object a ledger to record into (``ledger.wrap(client, ledger=remote)``) with a
                recorder token bound to ``home``'s recorder key. Its spool lives there too.
                Account and output fingerprints use ``home``'s secrets: copy
                ``keys/account.secret`` and ``keys/fingerprint.secret`` from the server's home
                for them to agree with entries recorded elsewhere.
            key_passphrase: passphrase of ``home``'s key files, if any.
        """
        self._http = client or httpx.Client(base_url=base_url, timeout=timeout)
        self._owns_http = client is None
        self._headers = {"Authorization": f"Bearer {token}"}
        self._verify = verify
        self._lock = threading.Lock()
        self.trusted_on_first_use = verifier_key is None
        self._verifier: NoteVerifier | None = (
            NoteVerifier.from_string(verifier_key) if verifier_key is not None else None
        )
        self._last: Checkpoint | None = None
        self._last_note: str | None = None
        self._ledger_id: str | None = None
        self._recorder_keys: dict[str, VerifyingKey] | None = None
        if last_checkpoint is not None:
            self._last = verify_checkpoint(last_checkpoint, self._log_verifier())
            self._last_note = last_checkpoint
        self.default_content: Literal["hash", "full"] = "hash"
        self.default_durability: Literal["async", "sync"] = "async"
        self._home = Path(home) if home is not None else None
        self._keyring: Keyring | None = None
        self._writer: RemoteWriter | None = None
        self._flush_hooks: list[Callable[[float | None], object]] = []
        self._replay_after: float | None = None
        if self._home is not None:
            self._start_recording(self._home, key_passphrase)

    # -- plumbing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Send what is queued, then close the HTTP client (if this object made it)."""
        if self._writer is not None:
            self.flush(30.0)
            self._writer.close(30.0)
            self._writer = None
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> RemoteLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None
    ) -> httpx.Response:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(
                method, path, params=query, json=json, headers=self._headers
            )
        except httpx.HTTPError as exc:
            raise StoreError(f"the ledger server is unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise _error(response)
        return response

    def _get(self, path: str, **params: Any) -> Any:
        return parse_json(self._request("GET", path, params=params).content)

    def _log_verifier(self) -> NoteVerifier:
        if self._verifier is None:
            keys = self.keys()
            vkey = keys.get("verifier_key")
            if not isinstance(vkey, str):
                raise CheckpointError("the server names no log verifier key")
            self._verifier = NoteVerifier.from_string(vkey)
        return self._verifier

    # -- checkpoints -------------------------------------------------------------------------

    @property
    def verifier_key(self) -> str:
        """The verifier key checkpoints are checked with (passed in, or first seen)."""
        return self._log_verifier().to_string()

    @property
    def last_checkpoint(self) -> Checkpoint | None:
        """The largest checkpoint accepted so far."""
        return self._last

    @property
    def last_checkpoint_note(self) -> str | None:
        """Its signed note, to save and pass as ``last_checkpoint`` next session."""
        return self._last_note

    def checkpoint(self) -> Checkpoint:
        """The server's latest checkpoint, verified and proved consistent with earlier ones."""
        return self._accept(self._get("/v1/log/checkpoint"))

    def _accept(self, served: Any) -> Checkpoint:
        note = served.get("note") if isinstance(served, Mapping) else None
        if not isinstance(note, str):
            raise CheckpointError("the answer carries no checkpoint note")
        if not self._verify:
            return Checkpoint.from_text(note.split("\n\n", 1)[0] + "\n")
        checkpoint = verify_checkpoint(note, self._log_verifier())
        with self._lock:
            last = self._last
            if last is None:
                self._last, self._last_note = checkpoint, note
                return checkpoint
            if checkpoint.size == last.size:
                if checkpoint.root_hash != last.root_hash:
                    raise ConsistencyError(
                        f"two checkpoints of size {last.size} with different roots: the log forked"
                    )
                return checkpoint
        older, newer = sorted((last, checkpoint), key=lambda c: c.size)
        try:
            proof = self.consistency_proof(older.size, newer.size)
        except (InputError, NotFoundError) as exc:
            raise ConsistencyError(
                f"the server cannot prove tree size {newer.size} consistent with {older.size}: "
                f"its log was rewound or rewritten ({exc})"
            ) from exc
        verify_consistency(older.size, newer.size, proof, older.root_hash, newer.root_hash)
        with self._lock:
            if self._last is None or newer.size > self._last.size:
                self._last = newer
                self._last_note = note if newer is checkpoint else self._last_note
        return checkpoint

    # -- reads -------------------------------------------------------------------------------

    def keys(self) -> dict[str, Any]:
        """The server's key listing (``ledger_id``, ``verifier_key``, log and recorder keys).

        Unauthenticated data: the log key is trusted only as described in the module docstring.
        """
        keys: dict[str, Any] = self._get("/v1/keys")
        if isinstance(keys.get("ledger_id"), str):
            self._ledger_id = keys["ledger_id"]
        self._recorder_keys = _recorder_keys(keys)
        return keys

    def _check_signatures(self, entries: Sequence[StoredEntry]) -> None:
        """Each entry's signature verifies under the recorder key it names (SignatureError)."""
        if not self._verify or not entries:
            return
        known = self._recorder_keys
        if known is None or any(str(_key_id(e)) not in known for e in entries):
            self.keys()  # first use, or a key registered since the listing was fetched
            known = self._recorder_keys or {}
        keyed = [(e, known.get(str(_key_id(e)))) for e in entries]
        checks = [(key, _signature(e), canonical_json(e.body)) for e, key in keyed if key]
        valid = iter(check_many(checks))
        for entry, key in keyed:  # the first bad entry in leaf order is the one named
            if key is None:
                raise SignatureError(
                    f"entry {entry.leaf_index} is signed by key {str(_key_id(entry))[:16]}, "
                    "which the server does not list as a recorder key"
                )
            if not next(valid):
                raise SignatureError(
                    f"the signature of entry {entry.leaf_index} does not match its body"
                )

    @property
    def ledger_id(self) -> str:
        """The install id entries must be sealed for (from the server's key listing)."""
        if self._ledger_id is None:
            self.keys()
        if self._ledger_id is None:
            raise ConfigError("the server does not say which ledger it is")
        return self._ledger_id

    def entry(self, leaf_index: int) -> StoredEntry:
        """The entry at ``leaf_index``, checked against the checkpoint served with it."""
        answer = _object(self._get(f"/v1/entries/{int(leaf_index)}"))
        checkpoint = self._accept(answer.get("checkpoint"))
        stored = _stored(answer.get("entry"))
        if stored.leaf_index != leaf_index:
            raise InclusionProofError(f"asked for leaf {leaf_index}, got {stored.leaf_index}")
        if self._verify:
            proof = _object(answer.get("inclusion_proof"))
            if proof.get("tree_size") != checkpoint.size or proof.get("leaf_index") != leaf_index:
                raise InclusionProofError(
                    "the inclusion proof is not for this entry and checkpoint"
                )
            verify_inclusion(
                leaf_index,
                checkpoint.size,
                stored.leaf_hash,
                [_hex(h) for h in proof.get("hashes", [])],
                checkpoint.root_hash,
            )
            self._check_signatures([stored])
        return stored

    def page(
        self, *, cursor: str | None = None, limit: int = 100, **filters: Any
    ) -> tuple[list[StoredEntry], str | None]:
        """One page of entries (filters: dataset, provider, model, account, purpose, verdict,
        since, until), checked with its multiproof; returns the entries and the next cursor."""
        params = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in filters.items()}
        answer = _object(self._get("/v1/entries", cursor=cursor, limit=limit, **params))
        checkpoint = self._accept(answer.get("checkpoint"))
        items = answer.get("entries")
        if not isinstance(items, list):
            raise InclusionProofError("the page has no list of entries")
        entries = [_stored(item) for item in items]
        indexes = [e.leaf_index for e in entries]
        if indexes != sorted(set(indexes)):
            raise InclusionProofError("the page's entries are not in strictly rising leaf order")
        if self._verify:
            proof = multiproof.MultiProof.from_dict(_object(answer.get("multiproof")))
            if proof.tree_size != checkpoint.size:
                raise InclusionProofError("the page's multiproof is for another tree size")
            if list(proof.leaf_indexes) != indexes:
                raise InclusionProofError("the page's multiproof lists other leaves")
            leaves = {e.leaf_index: e.leaf_hash for e in entries}
            multiproof.verify(proof, leaves, checkpoint.root_hash)
            self._check_signatures(entries)
        next_cursor = answer.get("next_cursor")
        return entries, next_cursor if isinstance(next_cursor, str) else None

    def entries(self, *, limit: int = 100, **filters: Any) -> Iterator[StoredEntry]:
        """Every matching entry in leaf order, page by page, each page verified."""
        cursor: str | None = None
        while True:
            entries, cursor = self.page(cursor=cursor, limit=limit, **filters)
            yield from entries
            if cursor is None:
                return

    def inclusion_proof(self, leaf_index: int, tree_size: int | None = None) -> list[bytes]:
        """The server's RFC 9162 inclusion proof (unchecked: check it against a root you trust)."""
        answer = self._get("/v1/log/proof/inclusion", leaf_index=leaf_index, tree_size=tree_size)
        return [_hex(h) for h in answer["hashes"]]

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """The server's RFC 9162 consistency proof (checked by :meth:`checkpoint`, not here)."""
        answer = self._get("/v1/log/proof/consistency", first=first, second=second)
        return [_hex(h) for h in answer["hashes"]]

    def policies(self) -> list[dict[str, Any]]:
        """The provider policies the server judges by."""
        found: list[dict[str, Any]] = self._get("/v1/policies")
        return found

    def conduct(self, **filters: Any) -> dict[str, Any]:
        """Conduct findings over the entries this token may see (provider, dataset, since)."""
        found: dict[str, Any] = self._get("/v1/audit/conduct", **filters)
        self._accept(found.get("checkpoint"))
        return found

    # -- appends -----------------------------------------------------------------------------

    def append_sealed(self, entries: Sequence[Mapping[str, Any]]) -> list[Receipt]:
        """Store sealed entries (signed by this token's recorder key); idempotent by entry id.

        Sent in batches of :data:`BATCH`; each batch is stored whole or not at all.
        """
        receipts: list[Receipt] = []
        items = list(entries)
        for start in range(0, len(items), BATCH):
            chunk = items[start : start + BATCH]
            response = self._request("POST", "/v1/entries", json={"entries": chunk})
            answer = parse_json(response.content)
            receipts += [Receipt.from_dict(r) for r in answer["receipts"]]
        return receipts

    # -- recording (with a local home) -------------------------------------------------------

    def _start_recording(self, home: Path, passphrase: bytes | None) -> None:
        from ledger.log.keyring import Keyring
        from ledger.remote_writer import RemoteWriter

        self._keyring = Keyring.open(home, passphrase)
        # Sealing needs the server's ledger id. It is kept under home once learnt, so that a
        # recorder restarted while the server is down still seals (and spools) its entries.
        remembered = home / "keys" / "remote-ledger-id"
        try:
            self._ledger_id = remembered.read_text(encoding="ascii").strip() or None
        except OSError:
            self._ledger_id = None
        if self._ledger_id is None:
            try:
                remembered.write_text(self.ledger_id + "\n", encoding="ascii")
            except (StoreError, OSError):
                pass  # unreachable now (or a read-only home): learnt on first use
        self._writer = RemoteWriter(self._send_batch, after_success=self._maybe_replay)

    def _recording(self) -> Keyring:
        if self._keyring is None:
            raise ConfigError("this RemoteLedger records only when connected with home=")
        return self._keyring

    @property
    def home(self) -> Path:
        """The local folder of the recorder's keys and spool."""
        self._recording()
        assert self._home is not None  # noqa: S101 - set together with the keyring
        return self._home

    @property
    def recorder_key_id(self) -> str:
        """Key id of the local recorder key (bind the recorder token to it)."""
        return self._recording().recorder.key_id

    @property
    def recorder_public_pem(self) -> str:
        """The local recorder's public key as PEM (``ledger token create --recorder-key``)."""
        return self._recording().recorder.public_key.to_pem()

    def seal(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Sign ``body`` now with the local recorder key, for the server's ledger."""
        return seal_entry(body, self._recording().recorder, self.ledger_id)

    def submit(self, body: Mapping[str, Any]) -> Future[Receipt]:
        """Seal ``body`` and queue it for the next batch; the future gets its receipt."""
        sealed = self.seal(body)
        if self._writer is None:
            raise StoreError("the remote ledger is closed")
        future: Future[Receipt] = self._writer.submit(sealed)
        return future

    def append(self, body: Mapping[str, Any]) -> Receipt:
        """Seal ``body`` and store it now (one request)."""
        return self.append_sealed([self.seal(body)])[0]

    def append_many(self, bodies: Sequence[Mapping[str, Any]]) -> list[Receipt]:
        """Seal and store ``bodies`` now."""
        return self.append_sealed([self.seal(b) for b in bodies])

    def flush(self, timeout: float | None = None) -> bool:
        """Drain the recorders bound to this object, then wait for the batches in flight."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for hook in list(self._flush_hooks):
            hook(timeout)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return True if self._writer is None else self._writer.flush(left)

    def add_flush_hook(self, hook: Callable[[float | None], object]) -> None:
        """Have :meth:`flush` call ``hook(timeout)`` first (once, however often it is added)."""
        if hook not in self._flush_hooks:
            self._flush_hooks.append(hook)

    def account_fingerprint(self, credential: str) -> str:
        """HMAC-SHA256 of an API credential under ``home``'s account secret."""
        return self._recording().account_fingerprint(credential)

    def fingerprint_key(self, dataset: str | None) -> bytes:
        """The output-fingerprint key of ``dataset`` under ``home``'s fingerprint secret."""
        from ledger.crypto.fingerprint import dataset_key

        return dataset_key(self._recording().fingerprint_secret, dataset)

    def replay_spool(self) -> int:
        """Send what the recorder spooled under ``home``; return how many records were sent."""
        from ledger.recorder.spool import Spool

        return Spool.for_home(self.home).replay(self).replayed

    def _send_batch(self, entries: Sequence[Mapping[str, Any]]) -> list[Receipt]:
        try:
            return self.append_sealed(entries)
        except StoreError:
            with self._lock:
                self._replay_after = time.monotonic()
            raise

    def _maybe_replay(self) -> None:
        # After an outage the sink spooled what failed; once sends work again, replay it.
        with self._lock:
            since = self._replay_after
        if since is None:
            return
        try:
            self.replay_spool()
        except StoreError:
            return  # still flaky: the next success tries again
        if time.monotonic() - since > 5.0:
            with self._lock:
                self._replay_after = None


def connect(
    base_url: str,
    token: str,
    *,
    verifier_key: str | None = None,
    last_checkpoint: str | None = None,
    verify: bool = True,
    timeout: float = 30.0,
    client: httpx.Client | None = None,
    home: str | Path | None = None,
    key_passphrase: bytes | None = None,
) -> RemoteLedger:
    """Connect to a ledger server; reads verify proofs and checkpoints by default.

    Pass ``verifier_key`` (``ledger checkpoint`` or ``GET /v1/keys`` on a machine you trust
    prints it) to pin the log key; without it the first key the server names is trusted.
    With ``home`` (a recorder token bound to that home's recorder key) the result is also a
    ledger to record into: ``ledger.wrap(openai.OpenAI(), ledger=remote)``.

    Example:
        >>> remote = ledger.connect("https://ledger.example", token)  # doctest: +SKIP
        >>> for entry in remote.entries(dataset="tutor-v1"):  # doctest: +SKIP
        ...     print(entry.leaf_index, entry.body["provider"])
    """
    return RemoteLedger(
        base_url,
        token,
        verifier_key=verifier_key,
        last_checkpoint=last_checkpoint,
        verify=verify,
        timeout=timeout,
        client=client,
        home=home,
        key_passphrase=key_passphrase,
    )


def _object(answer: object) -> Mapping[str, Any]:
    if not isinstance(answer, Mapping):
        raise InclusionProofError("the server's answer is not a JSON object")
    return answer


def _hex(value: object) -> bytes:
    if not isinstance(value, str):
        raise InclusionProofError("a proof hash is not a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise InclusionProofError("a proof hash is not hex") from exc


def _recorder_keys(listing: Mapping[str, Any]) -> dict[str, VerifyingKey]:
    """The listing's recorder keys whose ids match their bytes (others are ignored)."""
    found: dict[str, VerifyingKey] = {}
    items = listing.get("recorder_keys")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping) or not isinstance(item.get("public_key"), str):
            continue
        try:
            key = VerifyingKey(base64.b64decode(item["public_key"], validate=True))
        except (ValueError, InputError):
            continue  # not base64, not a usable Ed25519 key
        if item.get("key_id") == key.key_id:
            found[key.key_id] = key
    return found


def _key_id(entry: StoredEntry) -> object:
    return entry.entry.get("key_id")


def _signature(entry: StoredEntry) -> bytes:
    sig = entry.entry.get("sig")
    try:
        return base64.b64decode(sig if isinstance(sig, str) else "", validate=True)
    except ValueError as exc:
        raise SignatureError(f"the signature of entry {entry.leaf_index} is not base64") from exc


def _stored(item: object) -> StoredEntry:
    if not isinstance(item, Mapping) or not isinstance(item.get("entry"), Mapping):
        raise InclusionProofError("an answer's entry is not {leaf_index, entry}")
    if not isinstance(item["entry"].get("body"), Mapping):
        raise InclusionProofError("an answer's entry has no object body")
    index = item.get("leaf_index")
    if not isinstance(index, int) or isinstance(index, bool):
        raise InclusionProofError("an answer's entry has no integer leaf_index")
    entry = dict(item["entry"])
    # RFC 8785 bytes of the received entry: the leaf the log must hold, hashed here.
    return StoredEntry(index, entry, leaf_hash(canonical_json(entry)))


def _error(response: httpx.Response) -> Exception:
    try:
        detail = response.json().get("error", {})
        message = str(detail.get("message") or response.reason_phrase)
    except (ValueError, AttributeError):
        message = response.reason_phrase or "no reason given"
    status = response.status_code
    text = f"server answered {status}: {message}"
    if status == 404:
        return NotFoundError(text)
    if status in (401, 403):
        return ConfigError(text)
    if status == 405:
        return ReadOnlyError(text)
    if status < 500:
        return InputError(text)
    return StoreError(text)
