"""Offline verification of an evidence pack: no database, no private key, no network.

Invariants:

* Trust starts from one thing only, the log's verifier key the auditor passes in. The DSSE
  envelope and the checkpoint must both be signed by exactly that key; everything else is
  checked against the signed statement: every member's SHA-256, the recorder keys that entries
  may be signed by, the checkpoint root that the multiproof must reach.
* Checks run in a fixed order and stop at the first failure, which names the member, the
  example (file and line) or the leaf it is about. Order: envelope, checkpoint, member digests,
  entry signatures, multiproof, records, verdicts, summary, then (when given) the dataset
  files, then the auditor's earlier checkpoint. The dataset's examples are compared before the
  files' digests, so that an edited example is named by its line, not only by its file.
* Links are re-derived from the dataset text with the pack's fingerprint key over the pack's
  entries only: ``id``, ``exact``, ``template`` and ``part`` links must come out identical;
  each ``near`` link's similarity is re-estimated from the entry's sketch and must reach the
  recorded threshold. Verdicts are re-evaluated from the entries under the pack's policies,
  and under the auditor's own set with ``policies``, whose differences are reported, not
  failed.
* A path that is not a pack, or a malformed key, is an input error (:class:`InputError`);
  anything wrong inside a pack is a failed check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import operator
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import orjson

from ledger.audit import Example
from ledger.audit import read_dataset as _read_dataset
from ledger.audit.index import ID, FingerprintIndex, IndexBuilder, id_key
from ledger.audit.matching import MATCH_CLASSES, Matcher
from ledger.crypto.canonical import json_string
from ledger.crypto.dsse import Envelope, verify_envelope
from ledger.crypto.fingerprint import decode_sketch, parse_key_file, similarity
from ledger.crypto.keys import VerifyingKey
from ledger.crypto.merkle import leaf_hash, verify_consistency
from ledger.crypto.multiproof import MultiProof
from ledger.crypto.multiproof import verify as verify_multiproof
from ledger.crypto.note import Checkpoint, NoteVerifier, verify_checkpoint
from ledger.crypto.tree import TreeFrontier
from ledger.errors import (
    CheckpointError,
    InputError,
    LedgerError,
    PolicyError,
    VerificationError,
)
from ledger.manifest import pack as layout
from ledger.manifest.signatures import SignatureStream
from ledger.manifest.verdicts import CallFields, Judgements, example_verdict
from ledger.policy import DeclaredFacts, PolicySet, load_policies
from ledger.policy.verdict import VERDICTS

__all__ = ["Difference", "Failure", "VerifyResult", "verify", "verify_pack"]

_KNOWN_VERDICTS = frozenset(VERDICTS)
_STRENGTH = {name: rank for rank, name in enumerate(MATCH_CLASSES)}
# A re-estimated near similarity may differ from the recorded one only by rounding (4 places).
_NEAR_TOLERANCE = 1e-3
# A compressed entries member this large holds more than INLINE_LIMIT entries (about 0.45 KB
# each): its worker starts before the first entry is read.
_MANY_BYTES = 12 << 20
# Without datasets, what waits for the signature worker when the entries pass ends is its work
# while this process checks the proof, the leaf verdicts and the records (about 15 s at 1M
# entries, where 64 MB kept it busy for 9.5 s of them). With datasets the dataset pass is
# longer than any backlog could cover, so the stream's default stands there.
_TAIL_BACKLOG = 128 << 20
# Items a C-level pass (``all(map(...))``) takes before the interpreter may switch threads.
_C_SLICE = 20_000


@dataclass(frozen=True, slots=True)
class Failure:
    """The first check that failed: which check, where (member, file:line or leaf), and why."""

    check: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.check} failed at {self.where}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "where": self.where, "message": self.message}


@dataclass(frozen=True, slots=True)
class Difference:
    """A verdict that differs under the auditor's policies from the pack's."""

    leaf_index: int
    pack: str | None
    auditor: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"leaf_index": self.leaf_index, "pack": self.pack, "auditor": self.auditor}


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What :func:`verify` found; ``ok`` when every check ran and passed."""

    path: str
    passed: tuple[str, ...]
    failure: Failure | None
    differences: tuple[Difference, ...] = ()
    example_differences: int = 0
    summary: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.failure is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "passed": list(self.passed),
            "failure": self.failure.to_dict() if self.failure else None,
            "policy_differences": [d.to_dict() for d in self.differences],
            "example_verdict_differences": self.example_differences,
            "summary": dict(self.summary),
        }


class _CheckFailedError(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(str(failure))
        self.failure = failure


def _fail(check: str, where: str, message: str) -> _CheckFailedError:
    return _CheckFailedError(Failure(check, where, message))


@contextmanager
def _checking(check: str, where: str) -> Iterator[None]:
    """Map a ledger error raised inside a check to that check's failure."""
    try:
        yield
    except _CheckFailedError:
        raise
    except LedgerError as exc:
        raise _fail(check, where, str(exc)) from exc


@dataclass(slots=True)
class _State:
    pack: layout.Pack
    verifier: NoteVerifier
    passed: list[str] = field(default_factory=list)
    predicate: dict[str, Any] = field(default_factory=dict)
    subjects: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Checkpoint | None = None
    # What the checks after the entries pass need of each entry; bodies are not kept (a
    # million of them would not fit): the index for re-linking and each entry's re-evaluated
    # verdict (document digest and verdict; own: the auditor's). Sketches (about 0.5 KB each)
    # are read again only for the outputs that records link as near.
    # Every leaf of the pack is a key of ``judged`` (None: the entry cannot be judged); the
    # pairs are shared objects, one per distinct document, not one per entry.
    # None without datasets: nothing re-links examples then, so no index is built.
    index: IndexBuilder | None = field(default_factory=IndexBuilder)
    near_wanted: set[tuple[int, int]] = field(default_factory=set)
    sketches: dict[tuple[int, int], str] = field(default_factory=dict)
    judged: dict[int, tuple[str, str] | None] = field(default_factory=dict)
    pairs: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    own: dict[int, str | None] = field(default_factory=dict)
    by_match: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MATCH_CLASSES, 0))
    by_verdict: dict[str, int] = field(default_factory=dict)
    records: int = 0
    differences: list[Difference] = field(default_factory=list)
    example_differences: int = 0


def _obj(value: object, check: str, where: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(check, where, f"{what} is not a JSON object")
    return value


def _check_envelope(state: _State) -> None:
    where = layout.MANIFEST
    with _checking("signature", where):
        envelope = Envelope.from_json(state.pack.read(where))
        payload = verify_envelope(envelope, state.verifier.public_key)
    try:
        statement = json.loads(payload)
    except ValueError as exc:
        raise _fail("statement", where, f"the signed payload is not JSON: {exc}") from exc
    statement = _obj(statement, "statement", where, "the statement")
    if statement.get("_type") != layout.STATEMENT_TYPE:
        raise _fail("statement", where, f"_type is not {layout.STATEMENT_TYPE}")
    if statement.get("predicateType") != layout.PREDICATE_TYPE:
        raise _fail("statement", where, f"predicateType is not {layout.PREDICATE_TYPE}")
    state.predicate = _obj(statement.get("predicate"), "statement", where, "the predicate")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not all(isinstance(s, dict) for s in subjects):
        raise _fail("statement", where, "subject is not a list of objects")
    state.subjects = subjects
    state.passed.append("signature")


def _check_checkpoint(state: _State) -> None:
    where = f"{layout.MANIFEST} (predicate.ledger.checkpoint)"
    ledger_info = _obj(state.predicate.get("ledger"), "checkpoint", where, "predicate.ledger")
    note = ledger_info.get("checkpoint")
    if not isinstance(note, str):
        raise _fail("checkpoint", where, "no checkpoint note")
    with _checking("checkpoint", where):
        state.checkpoint = verify_checkpoint(note, state.verifier)
    if ledger_info.get("origin") != state.checkpoint.origin:
        raise _fail("checkpoint", where, "the checkpoint's origin is not the statement's")
    state.passed.append("checkpoint")


def _check_files(state: _State) -> None:
    files = state.predicate.get("files")
    if not isinstance(files, dict):
        raise _fail("digests", layout.MANIFEST, "predicate.files is not an object")
    present = [n for n in state.pack.names() if n != layout.MANIFEST]
    for name in present:
        if name not in files:
            raise _fail("digests", name, "this file is in the pack but not in the statement")
    for name, digest in sorted(files.items()):
        if not state.pack.has(name):
            raise _fail("digests", name, "listed in the statement but missing from the pack")
        actual = state.pack.digest(name)  # a block at a time, from a folder or a zip
        if actual != digest:
            raise _fail("digests", name, f"SHA-256 is {actual}, the statement says {digest}")
    state.passed.append("digests")


def _recorder_keys(state: _State) -> dict[str, VerifyingKey]:
    raw = _obj(state.predicate.get("ledger"), "entries", layout.MANIFEST, "predicate.ledger")
    listed = raw.get("recorder_keys")
    if not isinstance(listed, dict):
        raise _fail("entries", layout.MANIFEST, "predicate.ledger.recorder_keys is missing")
    keys = {}
    for key_id, encoded in listed.items():
        try:
            key = VerifyingKey.from_raw(base64.b64decode(str(encoded), validate=True))
        except (binascii.Error, ValueError, InputError) as exc:
            raise _fail("entries", layout.MANIFEST, f"recorder key {key_id} is malformed") from exc
        if key.key_id != key_id:
            raise _fail("entries", layout.MANIFEST, f"recorder key {key_id} has another id")
        keys[key_id] = key
    return keys


_LINE_HEAD = re.compile(rb'\{"leaf_index":(0|[1-9][0-9]*),"entry":')
_BODY_HEAD = b'{"body":'
# ``,"key_id":"...","sig":`` by key id: the fixed part of every entry's tail.
_KEY_TAILS: dict[str, bytes] = {}


def _signed_parts(data: bytes) -> tuple[dict[str, Any], bytes, str, str] | None:
    """``(entry, body bytes, key id, sig)`` when ``data`` is laid out as the ledger writes it.

    The body bytes are cut out of the leaf data itself (RFC 8785 puts ``body`` first and the
    two strings after it), so the signature is checked over exactly the bytes the leaf hash
    covers, without serializing the body again. Any other layout returns None.
    """
    try:
        entry = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(entry, dict) or set(entry) != {"body", "key_id", "sig"}:
        return None
    key_id, sig = entry["key_id"], entry["sig"]
    if not isinstance(key_id, str) or not isinstance(sig, str):
        return None
    body = _body_bytes(data, key_id, sig)
    return (entry, body, key_id, sig) if body is not None else None


def _body_bytes(data: bytes, key_id: str, sig: str) -> bytes | None:
    """The body's bytes cut out of ``data``, when the body comes first and the two strings
    follow it exactly as RFC 8785 writes them; else None."""
    head = _KEY_TAILS.get(key_id)
    if head is None:
        head = b',"key_id":' + json_string(key_id) + b',"sig":'
        if len(_KEY_TAILS) < 64:  # a pack lists a few recorder keys; others fail later
            _KEY_TAILS[key_id] = head
    tail = head + json_string(sig) + b"}"
    if not (data.startswith(_BODY_HEAD) and data.endswith(tail)):
        return None
    return data[len(_BODY_HEAD) : -len(tail)]


class _Judged(CallFields):
    """The body fields that judging reads on its cached path, and the entry's id."""

    id: Any = None


class _Indexed(_Judged):
    """With the fields the fingerprint index reads too (verify with datasets)."""

    dataset: Any = None
    outputs: Any = None


class _Signed(msgspec.Struct, forbid_unknown_fields=True):
    body: _Judged
    key_id: str
    sig: str


class _SignedIndexed(msgspec.Struct, forbid_unknown_fields=True):
    body: _Indexed
    key_id: str
    sig: str


_DECODERS: dict[bool, msgspec.json.Decoder[Any]] = {
    False: msgspec.json.Decoder(_Signed),
    True: msgspec.json.Decoder(_SignedIndexed),
}


def _signed_view(data: bytes, indexed: bool) -> tuple[_Judged, bytes, str, str] | None:
    """:func:`_signed_parts` with only the body fields the checks read (as a struct), or None.

    Decoding a whole body costs six times as much as these fields (msgspec validates the
    syntax of the fields it skips). None sends the line to :func:`_signed_parts`, whose answer
    stands: non-ASCII data (msgspec does not check the UTF-8 of skipped strings), any decoding
    error, any other layout. A missing field and a null one read the same (``.get``). One
    difference is left: a number beyond a double's range in a skipped field passes here
    (RFC 8259 leaves the range to the parser; the ledger writes RFC 8785 numbers, which are
    doubles). The bytes are what the signature and the leaf hash cover either way.
    """
    if not data.isascii():
        return None
    try:
        entry = _DECODERS[indexed].decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    body = _body_bytes(data, entry.key_id, entry.sig)
    if body is None:
        return None
    return entry.body, body, entry.key_id, entry.sig


def _remember(state: _State, leaf: int, view: _Judged | dict[str, Any], body_bytes: bytes,
              judging: _Judging) -> None:  # fmt: skip
    """Index and judge one entry from ``view`` (the fields the checks read, or the whole body
    from the slow path); the whole body only for a combination not judged before."""
    full: dict[str, Any] | None = None
    if isinstance(view, _Judged):
        # The judging key straight off the struct: a million entries skip making a dict.
        key = view.judging_key()
    else:
        full, key = view, None
    if state.index is not None:
        fields = msgspec.structs.asdict(view) if isinstance(view, _Judged) else view
        entry_id = fields.get("id")
        state.index.add_entry(leaf, entry_id if isinstance(entry_id, str) else None, fields)
    judged = judging.pack.cached_key(key)
    if judged is None:
        full = full if full is not None else orjson.loads(body_bytes)
        judged = judging.pack.document(full)
    pair = (judged[0], judged[2].verdict) if judged is not None else None
    state.judged[leaf] = state.pairs.setdefault(pair, pair) if pair is not None else None
    if judging.own is not None:
        mine = judging.own.cached_key(key)
        if mine is None:
            full = full if full is not None else orjson.loads(body_bytes)
            mine = judging.own.document(full)
        state.own[leaf] = mine[2].verdict if mine is not None else None


def _check_entries(
    state: _State, judging: _Judging, keys: Mapping[str, VerifyingKey], stream: SignatureStream
) -> dict[int, bytes]:
    """The entries' layout, order, leaf hashes and listed keys; their signatures go to
    ``stream``, checked beside the later passes and settled by :func:`_settle_signatures`."""
    hashes: dict[int, bytes] = {}
    previous = -1
    indexed = state.index is not None
    with _checking("entries", layout.ENTRIES):
        for number, line in state.pack.lines(layout.ENTRIES):
            head = _LINE_HEAD.match(line)
            data = line[head.end() : -1] if head and line.endswith(b"}") else b""
            parts: tuple[Any, bytes, str, str] | None = (
                _signed_view(data, indexed) if head else None
            )
            if head is not None and parts is None:
                slow = _signed_parts(data)
                if slow is not None:
                    parts = (slow[0]["body"], *slow[1:])
            if head is None or parts is None:
                where = f"{layout.ENTRIES} line {number}"
                raise _fail("entries", where, 'not a leaf line {"leaf_index": N, "entry": ...} '
                            "holding a signed entry")  # fmt: skip
            leaf = int(head.group(1))
            if leaf <= previous:
                where = f"{layout.ENTRIES} line {number}"
                raise _fail("entries", where, "leaf indexes are not ascending")
            previous = leaf
            view, body_bytes, key_id, sig = parts
            if not isinstance(view, _Judged | dict):
                raise _fail("entries", f"leaf {leaf}", "the entry's body is not an object")
            if key_id not in keys:
                raise _fail("entries", f"leaf {leaf}", f"signed by recorder key {key_id}, "
                            "which the statement does not list")  # fmt: skip
            try:
                # Strict mode refuses what ``b64decode(validate=True)`` refuses, in C alone.
                signature = binascii.a2b_base64(sig, strict_mode=True)
            except (binascii.Error, ValueError) as exc:
                raise _fail("entries", f"leaf {leaf}", "the signature is not base64") from exc
            # Signature checks are the largest single cost of a big pack: a worker interpreter
            # runs them while this process goes on with the layout, the index, the proof, the
            # records and the dataset (the queue is bounded; when it is full this process
            # checks a chunk itself).
            stream.add((leaf, body_bytes, key_id, signature))
            hashes[leaf] = leaf_hash(data)
            _remember(state, leaf, view, body_bytes, judging)
    state.passed.append("entries")
    return hashes


def _settle_signatures(state: _State, stream: SignatureStream) -> None:
    """Wait for the entry signatures; a bad one is the entries check's failure.

    It outranks the failure of any later check (the fixed order puts entries first): the
    caller settles the signatures before reporting one, and ``passed`` loses the checks that
    came after entries.
    """
    bad = stream.finish()
    if bad is None:
        return
    if "entries" in state.passed:
        del state.passed[state.passed.index("entries") :]
    raise _fail("entries", f"leaf {bad[0]}", bad[1])


def _check_proof(state: _State, hashes: dict[int, bytes]) -> None:
    assert state.checkpoint is not None  # noqa: S101 - set by _check_checkpoint
    where = layout.PROOF
    with _checking("multiproof", where):
        proof = MultiProof.from_dict(state.pack.json(where))
    if proof.tree_size != state.checkpoint.size:
        raise _fail("multiproof", where, f"tree_size {proof.tree_size} is not the checkpoint's "
                    f"{state.checkpoint.size}")  # fmt: skip
    # The entries' leaves are ascending: the same list as the proof's means the same set.
    listed = proof.leaf_indexes
    if len(hashes) != len(listed) or not all(map(operator.eq, hashes, listed)):
        missing = sorted(set(hashes) - set(listed))
        if missing:
            raise _fail("multiproof", f"leaf {missing[0]}", "the proof does not cover this entry")
        stray = sorted(set(listed) - set(hashes))
        if stray:
            raise _fail("multiproof", f"leaf {stray[0]}", f"no entry in {layout.ENTRIES}")
    with _checking("multiproof", where):
        verify_multiproof(proof, hashes, state.checkpoint.root_hash)
    state.passed.append("multiproof")


def _label(record: Mapping[str, Any]) -> str:
    """Where a record's failure is reported: the example's ``file:line``."""
    return f"{record.get('file')}:{record.get('line')}"


def _records(state: _State) -> Iterator[tuple[dict[str, Any], bytes]]:
    """``(record, line)`` for every records line, checked for shape and for links."""
    # Failure texts are made only on failure: a million lines pass.
    with _checking("records", layout.RECORDS):
        for number, line in state.pack.lines(layout.RECORDS):
            try:
                # The line's own bytes are what the records root covers; parsing needs no
                # canonical form, so the fast parser is enough here.
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                where = f"{layout.RECORDS} line {number}"
                raise _fail("records", where, f"not JSON: {exc}") from exc
            if not isinstance(record, dict):
                raise _fail("records", f"{layout.RECORDS} line {number}", "the record is not "
                            "a JSON object")  # fmt: skip
            links = record.get("links")
            if not isinstance(links, list) or record.get("match") not in _STRENGTH:
                where = f"{layout.RECORDS} line {number}"
                raise _fail("records", where, "the record needs match and links")
            for link in links:
                leaf = link.get("leaf_index") if isinstance(link, dict) else None
                if not isinstance(leaf, int) or leaf not in state.judged:
                    raise _fail("records", _label(record), f"links to leaf {leaf}, which the "
                                "pack lacks")  # fmt: skip
                if link.get("match") == "near" and isinstance(link.get("output"), int):
                    state.near_wanted.add((leaf, link["output"]))
            yield record, line


def _check_leaf_verdicts(state: _State) -> None:
    stored = _obj(state.pack.json(layout.VERDICTS), "verdicts", layout.VERDICTS, "the file")
    documents, leaves = stored.get("documents"), stored.get("leaves")
    if not isinstance(documents, dict) or not isinstance(leaves, dict):
        raise _fail("verdicts", layout.VERDICTS, "needs documents and leaves")
    # Leaves were judged in ascending order. The common case, every document as the pack has
    # it, is a pass in C over the two sequences (no list of a million names is made), a slice
    # at a time: one C loop over a million leaves holds the GIL for most of a second, and the
    # thread that feeds the signature worker, waiting for it, lets the worker idle. The loop
    # below runs only to name the first difference, or to compare with the auditor's own
    # verdicts.
    first = {pair: pair[0] if pair is not None else None for pair in set(state.judged.values())}
    expected = map(first.__getitem__, state.judged.values())
    same = map(operator.eq, expected, map(leaves.get, map(str, state.judged)))
    slices = range(0, len(state.judged), _C_SLICE)
    if all(all(itertools.islice(same, _C_SLICE)) for _ in slices) and not state.own:
        return
    for leaf in state.judged:
        judged, sha = state.judged.get(leaf), leaves.get(str(leaf))
        if judged is None:
            if sha is not None:
                raise _fail("verdicts", f"leaf {leaf}", "the entry cannot be judged, but "
                            "the pack gives it a verdict")  # fmt: skip
            continue
        if judged[0] != sha:
            pack_verdict = (documents.get(sha) or {}).get("verdict") if sha else None
            raise _fail("verdicts", f"leaf {leaf}", f"re-evaluated as {judged[1]} (document "
                        f"{judged[0][:12]}), the pack says {pack_verdict} (document "
                        f"{str(sha)[:12]})")  # fmt: skip
        if state.own and state.own.get(leaf) != judged[1]:
            state.differences.append(Difference(leaf, judged[1], state.own.get(leaf)))


def _verdict_of(table: Mapping[int, Any], record: dict[str, Any], own: bool) -> str | None:
    if record["match"] == "none":
        return None
    links = record["links"]
    if len(links) == 1:  # most examples: no ranking needed
        found = table.get(links[0]["leaf_index"])
        verdict = found if own or found is None else found[1]
        return verdict if verdict in _KNOWN_VERDICTS else example_verdict([verdict])
    if own:
        return example_verdict(table.get(x["leaf_index"]) for x in links)
    found = (table.get(x["leaf_index"]) for x in links)
    return example_verdict(j[1] if j is not None else None for j in found)


def _check_records(state: _State) -> None:
    """One pass: shape, links into the pack, each example's verdict, counts, the records root."""
    frontier = TreeFrontier()
    for record, line in _records(state):
        expected = _verdict_of(state.judged, record, own=False)
        if record.get("verdict") != expected:
            raise _fail("verdicts", _label(record), f"verdict {record.get('verdict')}, "
                        f"re-evaluated {expected}")  # fmt: skip
        if state.own and record["match"] != "none":
            if _verdict_of(state.own, record, own=True) != expected:
                state.example_differences += 1
        state.records += 1
        state.by_match[record["match"]] += 1
        if expected is not None:
            state.by_verdict[expected] = state.by_verdict.get(expected, 0) + 1
        frontier.append(leaf_hash(line))
    if frontier.root().hex() != state.predicate.get("records_root"):
        raise _fail("records", layout.RECORDS, "the records' Merkle root is not the statement's")
    state.passed += ["records", "verdicts"]


@contextmanager
def _policy_set(state: _State) -> Iterator[PolicySet]:
    names = [n for n in state.pack.names() if n.startswith(f"{layout.POLICIES_DIR}/")]
    if not names:
        raise _fail("verdicts", layout.POLICIES_DIR, "the pack carries no policies")
    # The loader reads files; a zipped pack's policies go to a private temporary folder.
    with tempfile.TemporaryDirectory(prefix="ledger-pack-policies-") as folder:
        paths = []
        for name in names:
            path = Path(folder) / Path(name).name
            path.write_bytes(state.pack.read(name))
            paths.append(path)
        with _checking("verdicts", layout.POLICIES_DIR):
            policies = load_policies(paths)
        yield policies


def _facts(state: _State) -> DeclaredFacts:
    with _checking("verdicts", f"{layout.MANIFEST} (predicate.facts)"):
        return DeclaredFacts.coerce(state.predicate.get("facts") or {})


@dataclass(frozen=True, slots=True)
class _Judging:
    pack: Judgements
    own: Judgements | None


def _auditor_policies(folder: str | Path) -> PolicySet:
    """The auditor's own policy set, loaded before any check: a folder that does not load is
    a mistake in what was given, not a failure of the pack."""
    try:
        return load_policies(Path(folder))
    except PolicyError as exc:
        raise InputError(f"your policies at {folder} do not load: {exc}") from exc


@contextmanager
def _judging(state: _State, auditor_policies: PolicySet | None) -> Iterator[_Judging]:
    purpose = state.predicate.get("purpose")
    if not isinstance(purpose, str):
        raise _fail("verdicts", layout.MANIFEST, "predicate.purpose is missing")
    facts = _facts(state)
    with _policy_set(state) as policies:
        own = None if auditor_policies is None else Judgements(purpose, facts, auditor_policies)
        yield _Judging(Judgements(purpose, facts, policies), own)


def _check_summary(state: _State) -> None:
    summary = _obj(state.predicate.get("summary"), "summary", layout.MANIFEST, "the summary")
    recomputed = {
        "examples": state.records,
        "unlinked": state.by_match["none"],
        "linked": state.records - state.by_match["none"],
        "by_match": state.by_match,
    }
    for key, value in recomputed.items():
        if summary.get(key) != value:
            raise _fail("summary", layout.MANIFEST, f"summary {key} is {summary.get(key)}, "
                        f"the records give {value}")  # fmt: skip
    claimed = {k: v for k, v in (summary.get("by_verdict") or {}).items() if v}
    if claimed != state.by_verdict:
        raise _fail("summary", layout.MANIFEST, f"summary by_verdict is {claimed}, the records "
                    f"give {state.by_verdict}")  # fmt: skip
    state.passed.append("summary")


def _matcher_over_pack(state: _State) -> tuple[Matcher, FingerprintIndex]:
    builder = state.index
    assert builder is not None  # noqa: S101 - built whenever datasets are given
    keys: dict[str | None, bytes] = {}
    for item in state.predicate.get("fingerprint_keys") or []:
        member = item.get("file") if isinstance(item, dict) else None
        with _checking("links", str(member)):
            dataset, key = parse_key_file(state.pack.read(str(member)).decode("utf-8"))
        keys[dataset] = key
    datasets = dict(builder.datasets)
    index = builder.build()
    slot_keys = {slot: keys[name] for name, slot in datasets.items() if name in keys}
    params = state.predicate.get("matcher") or {}
    wrappers = params.get("wrappers")
    with _checking("links", layout.MANIFEST):
        matcher = (
            Matcher(index, slot_keys, wrappers=wrappers) if wrappers else Matcher(index, slot_keys)
        )
    return matcher, index


def _rederive(
    example: Example, matcher: Matcher, index: FingerprintIndex
) -> tuple[str, set[tuple[int, str, int]]]:
    """The example's class and its non-near links, from its text over the pack's entries.

    A turn that links by none of the keyed stages but has enough words for a sketch counts
    as ``near`` here: whether it reached the threshold is checked link by link.
    """
    named: dict[str, frozenset[int]] = {}
    for entry_id in {*example.entry_ids, *(i for ids in example.turn_ids for i in ids)}:
        named[entry_id] = frozenset(
            h.leaf_index for h in index.lookup(id_key(entry_id)) if h.kind == ID
        )
    row = frozenset().union(*(named[i] for i in example.entry_ids))
    classes = []
    links: set[tuple[int, str, int]] = set()
    for number, text in enumerate(example.turns):
        own = example.turn_ids[number] if number < len(example.turn_ids) else ()
        leaves = row.union(*(named[i] for i in own)) if own else row
        result = matcher.match(text, leaves)
        if result.match == "none":
            classes.append("near" if matcher.near_text(text) is not None else "none")
        else:
            classes.append(result.match)
            links.update((x.leaf_index, x.match, x.output) for x in result.links)
    match = max(classes, key=_STRENGTH.__getitem__) if classes else "none"
    return match, links


def _load_sketches(state: _State) -> None:
    """The sketches of the outputs that records link as near, from a second entries pass
    (only when there are near links: most packs have none, and a million sketches would
    take about 0.5 GB)."""
    if not state.near_wanted:
        return
    leaves = {leaf for leaf, _ in state.near_wanted}
    with _checking("links", layout.ENTRIES):
        for _, line in state.pack.lines(layout.ENTRIES):
            head = _LINE_HEAD.match(line)
            if head is None or int(head.group(1)) not in leaves:
                continue  # the layout was checked in the entries pass
            leaf = int(head.group(1))
            try:
                body = orjson.loads(line[head.end() : -1]).get("body")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            outputs = body.get("outputs") if isinstance(body, dict) else None
            for position, record in enumerate(outputs if isinstance(outputs, list) else ()):
                if isinstance(record, dict) and isinstance(record.get("sketch"), str):
                    number = record.get("index", position)
                    key = (leaf, number if isinstance(number, int) else position)
                    if key in state.near_wanted:
                        state.sketches[key] = record["sketch"]


def _near_ok(
    state: _State, example: Example, link: dict[str, Any], matcher: Matcher, threshold: float
) -> bool:
    output = link.get("output")
    encoded = state.sketches.get((link["leaf_index"], output)) if isinstance(output, int) else None
    if encoded is None:
        return False
    try:
        theirs = decode_sketch(encoded)
    except InputError:
        return False
    for text in example.turns:
        near_text = matcher.near_text(text)
        if near_text is None:
            continue
        for _, fingerprinter in matcher.slots:
            mine = fingerprinter.sketch(near_text)
            if mine is None:
                continue
            score = similarity(mine, theirs)
            recorded = link.get("similarity")
            if score >= threshold and (
                not isinstance(recorded, int | float) or abs(score - recorded) <= _NEAR_TOLERANCE
            ):
                return True
    return False


def _check_dataset(state: _State, datasets: Sequence[Path]) -> None:
    subjects = {str(s.get("name")): s for s in state.subjects}
    given = {p.name: p for p in datasets}
    for name in sorted(set(subjects) - set(given)):
        raise _fail("dataset", name, "the statement's subject was not given with --dataset")
    for name in sorted(set(given) - set(subjects)):
        raise _fail("dataset", name, "this file is not a subject of the statement")
    params = state.predicate.get("matcher") or {}
    threshold = float(params.get("near_threshold", 0.6))
    ordered = [given[str(s.get("name"))] for s in state.subjects]
    matcher, index = _matcher_over_pack(state)
    _load_sketches(state)
    examples = _read_dataset(
        [str(p) for p in ordered],
        format=str(params.get("format") or "auto"),
        text_field=params.get("text_field"),
        id_field=str(params.get("id_field") or "ledger_entry_id"),
    )
    records = (record for record, _ in _records(state))
    names: dict[str, str] = {}  # file -> its name: one Path per file, not one per example
    with _checking("dataset", "the dataset files"):
        for item in examples:
            if not isinstance(item, Example):
                continue
            file_name = names.get(item.file)
            if file_name is None:
                file_name = names[item.file] = Path(item.file).name
            label = f"{file_name}:{item.line}"
            record = next(records, None)
            if record is None:
                raise _fail("dataset", label, "this example is not in the pack's records")
            if (record.get("file"), record.get("line")) != (file_name, item.line):
                raise _fail(
                    "dataset",
                    f"{record.get('file')}:{record.get('line')}",
                    f"the dataset has {label} here: an example was removed or added",
                )
            if record.get("example_sha256") != layout.example_digest(item):
                raise _fail("dataset", label, "the example's text is not the one the pack "
                            "recorded (edited after the build)")  # fmt: skip
            _check_links(state, item, record, matcher, index, threshold, label)
    extra = next(records, None)
    if extra is not None:
        raise _fail(
            "dataset",
            f"{extra.get('file')}:{extra.get('line')}",
            "the pack records this example but the dataset no longer has it",
        )
    for path in ordered:
        subject = subjects[path.name]
        try:
            digest = hashlib.sha256()
            with path.open("rb") as source:
                while block := source.read(1 << 20):
                    digest.update(block)
            actual = digest.hexdigest()
        except OSError as exc:
            raise InputError(f"cannot read dataset file {path}: {exc.strerror}") from exc
        if actual != (subject.get("digest") or {}).get("sha256"):
            raise _fail("dataset", path.name, "SHA-256 differs from the statement's subject")
    state.passed.append("dataset")


def _check_links(
    state: _State,
    example: Example,
    record: dict[str, Any],
    matcher: Matcher,
    index: FingerprintIndex,
    threshold: float,
    label: str,
) -> None:
    match, links = _rederive(example, matcher, index)
    recorded = {(x["leaf_index"], x["match"], x["output"]) for x in record["links"]
                if x["match"] != "near"}  # fmt: skip
    if recorded != links:
        missing = sorted(recorded - links)
        if missing:
            raise _fail("links", label, f"recorded link to leaf {missing[0][0]} ({missing[0][1]})"
                        " does not follow from the text and that entry")  # fmt: skip
        extra = sorted(links - recorded)[0]
        raise _fail("links", label, f"the text links to leaf {extra[0]} ({extra[1]}), "
                    "which the record omits")  # fmt: skip
    for link in record["links"]:
        if link["match"] == "near" and not _near_ok(state, example, link, matcher, threshold):
            raise _fail("links", label, f"near link to leaf {link['leaf_index']} does not reach "
                        f"similarity {threshold}")  # fmt: skip
    recorded_match = record["match"]
    if recorded_match == "near" and match == "near":
        return
    if match == "near" and recorded_match == "none":
        return  # near candidates outside the pack cannot be re-found here; none is consistent
    if match != recorded_match:
        raise _fail("links", label, f"re-derived class {match}, the record says {recorded_match}")


def _earlier_checkpoint(note: str, verifier: NoteVerifier) -> Checkpoint:
    """The auditor's earlier checkpoint, checked before any of the pack's checks: a file that
    is not a checkpoint note signed by the same key is a mistake in what was given (the pack's
    checks take a minute at a million entries, and their verdict would not be about the pack).
    """
    try:
        return verify_checkpoint(note, verifier)
    except CheckpointError as exc:
        raise InputError(f"the earlier checkpoint is not one this key signed: {exc}") from exc


def _check_earlier(state: _State, old: Checkpoint) -> None:
    assert state.checkpoint is not None  # noqa: S101 - set by _check_checkpoint
    where = "--checkpoint"
    new = state.checkpoint
    if old.origin != new.origin:
        raise _fail("consistency", where, f"your checkpoint is of log {old.origin}")
    if old.size > new.size:
        raise _fail("consistency", where, f"the pack's checkpoint (size {new.size}) is older "
                    f"than yours (size {old.size}): the log was rolled back")  # fmt: skip
    if old.size == new.size:
        if old.root_hash != new.root_hash:
            raise _fail("consistency", where, f"two roots for size {old.size}: the log forked")
        state.passed.append("consistency")
        return
    data = _obj(state.pack.json(layout.CONSISTENCY), "consistency", layout.CONSISTENCY, "file")
    for item in data.get("from") or []:
        if isinstance(item, dict) and item.get("tree_size") == old.size:
            try:
                proof = [bytes.fromhex(p) for p in item.get("proof") or []]
            except (TypeError, ValueError) as exc:
                raise _fail("consistency", layout.CONSISTENCY, "a proof hash is not hex") from exc
            with _checking("consistency", layout.CONSISTENCY):
                verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)
            state.passed.append("consistency")
            return
    raise _fail("consistency", layout.CONSISTENCY, f"no consistency proof from your size "
                f"{old.size} to the pack's {new.size}")  # fmt: skip


def _readable_datasets(datasets: Sequence[str | Path]) -> list[Path]:
    """The dataset paths, each a file or a folder that is there, checked before any work: a
    mistyped path is the caller's input, not a failed check found after the pack's own
    (minutes at a million entries), nor a subject "not given"."""
    paths = [Path(p) for p in datasets]
    for path in paths:
        try:
            path.stat()
        except OSError as exc:
            raise InputError(f"cannot read dataset file {path}: {exc.strerror}") from exc
        if not path.is_file() and not path.is_dir():
            raise InputError(f"cannot read dataset file {path}: not a file or folder")
    return paths


def verify(
    path: str | Path,
    key: str | NoteVerifier,
    *,
    datasets: Sequence[str | Path] | None = None,
    checkpoint: str | None = None,
    policies: str | Path | None = None,
) -> VerifyResult:
    """Check an evidence pack offline; the result names the first failure, if any.

    Args:
        path: the pack folder or zip.
        key: the log's verifier key (``name+hexid+base64key``); the only thing trusted.
        datasets: the dataset files, to check digests and re-derive every link.
        checkpoint: a checkpoint note the auditor kept from earlier (fork/rollback check).
        policies: a folder of the auditor's own policy files, to compare verdicts.

    Raises:
        InputError: the path is not a pack, the key is malformed, a dataset is unreadable,
            ``checkpoint`` is not a checkpoint note that ``key`` signed, ``policies`` does
            not load.

    Example:
        >>> result = verify("pack", vkey, datasets=["train.jsonl"])  # doctest: +SKIP
        >>> result.ok, result.failure                                 # doctest: +SKIP
        (True, None)
    """
    pack = layout.Pack(Path(path))
    verifier = key if isinstance(key, NoteVerifier) else NoteVerifier.from_string(key.strip())
    dataset_paths = _readable_datasets(datasets or ())
    earlier = _earlier_checkpoint(checkpoint, verifier) if checkpoint is not None else None
    own_policies = _auditor_policies(policies) if policies is not None else None
    state = _State(pack, verifier, index=IndexBuilder() if dataset_paths else None)
    failure: Failure | None = None
    stream: SignatureStream | None = None
    try:
        _check_envelope(state)
        _check_checkpoint(state)
        # The signature worker boots while the files are hashed (half a second each at a
        # million entries); a bad key list is still reported after the digests, in order.
        try:
            keys = _recorder_keys(state)
        except _CheckFailedError:
            _check_files(state)
            raise
        many = pack.size(layout.ENTRIES) > _MANY_BYTES
        stream = SignatureStream(keys, many=many, backlog=_TAIL_BACKLOG if not datasets else None)
        _check_files(state)
        with _judging(state, own_policies) as judging:
            hashes = _check_entries(state, judging, keys, stream)
        _check_proof(state, hashes)
        del hashes
        _check_leaf_verdicts(state)
        _check_records(state)
        _check_summary(state)
        if dataset_paths:
            _check_dataset(state, dataset_paths)
        if earlier is not None:
            _check_earlier(state, earlier)
        _settle_signatures(state, stream)
    except _CheckFailedError as exc:
        failure = exc.failure
        if stream is not None and failure.check != "entries":
            try:
                _settle_signatures(state, stream)  # a bad signature comes first in the order
            except _CheckFailedError as earlier:
                failure = earlier.failure
    finally:
        if stream is not None:
            stream.close()
    summary = state.predicate.get("summary") if failure is None else {}
    return VerifyResult(
        str(path),
        tuple(state.passed),
        failure,
        tuple(state.differences),
        state.example_differences,
        summary if isinstance(summary, dict) else {},
    )


def verify_pack(
    path: str | Path,
    key: str | NoteVerifier,
    *,
    datasets: Sequence[str | Path] | None = None,
    checkpoint: str | None = None,
    policies: str | Path | None = None,
) -> VerifyResult:
    """:func:`verify` that raises on the first failure.

    Raises:
        VerificationError: a check failed (the message names the check and where).
        InputError: as :func:`verify`.
    """
    result = verify(path, key, datasets=datasets, checkpoint=checkpoint, policies=policies)
    if result.failure is not None:
        raise VerificationError(str(result.failure))
    return result
