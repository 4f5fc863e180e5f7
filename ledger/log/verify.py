"""Full verification of a ledger, recomputed from the stored entries.

What is checked, in one pass in leaf order:

1. leaf indexes run 0..n-1 without a gap;
2. every entry is the RFC 8785 form of a signed entry ``{"body", "key_id", "sig"}``, its body
   ``id`` matches the indexed ``entry_id`` column, and its Ed25519 signature verifies under a
   recorder key registered in the ``keys`` table;
3. the stored leaf hash equals SHA-256(0x00 || entry);
4. the tree is rebuilt from those leaf hashes and every stored subtree hash is compared with
   the recomputed one (and no stored hash lies beyond the tree);
5. every checkpoint's signed note verifies under a registered log key, says what its row says,
   and its root equals the recomputed root at its size; consecutive checkpoints are also
   checked with a consistency proof served from the stored hashes;
6. every stored verdict row (derived data, but reports read it): its document exists and hashes
   to the recorded digest, and the row's leaf, purpose, verdict, policy digest and facts digest
   say what the document says (re-judging the verdicts needs the policy engine:
   ``Ledger.recheck_verdicts``);
7. optionally, checkpoints obtained earlier by an auditor (``trusted``): their size must not
   exceed the log and their root must equal the recomputed root, which catches a rollback or a
   fork even when the attacker re-signed everything with the log's own key.

Signature checks dominate the cost, so steps 1-4 run in worker processes on every core, one
aligned chunk of leaves each (:mod:`ledger.log.rebuild`); the main process only folds chunk
roots. The report names every problem; the first one (lowest leaf index, then checkpoints)
is the headline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.crypto.canonical import canonical_json, sha256_hex
from ledger.crypto.keys import VerifyingKey
from ledger.crypto.merkle import EMPTY_ROOT, verify_consistency
from ledger.crypto.note import Checkpoint, NoteVerifier, verifier_key_string, verify_checkpoint
from ledger.errors import LedgerError, StoreError
from ledger.log.rebuild import Progress, rebuild
from ledger.log.store import CheckpointRecord, LogStore
from ledger.log.workers import WorkerError

__all__ = ["Problem", "VerifyReport", "verify_log"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that is wrong, located as precisely as the check allows."""

    what: str
    leaf_index: int | None = None
    checkpoint: int | None = None
    # Within one leaf, problems with the entry itself (signature, form) come first: they are
    # the cause when the tree hashes over that leaf differ too.
    stage: int = 1

    def sort_key(self) -> tuple[int, int, int]:
        if self.leaf_index is not None:
            return (0, self.leaf_index, self.stage)
        return (1, self.checkpoint if self.checkpoint is not None else 1 << 62, 0)

    def __str__(self) -> str:
        if self.leaf_index is not None:
            return f"leaf {self.leaf_index}: {self.what}"
        if self.checkpoint is not None:
            return f"checkpoint {self.checkpoint}: {self.what}"
        return self.what

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "leaf_index": self.leaf_index, "checkpoint": self.checkpoint}


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What :func:`verify_log` found."""

    entries: int
    root: bytes
    checkpoints: int
    trusted_checkpoints: int
    seconds: float
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "root": self.root.hex(),
            "checkpoints": self.checkpoints,
            "trusted_checkpoints": self.trusted_checkpoints,
            "seconds": round(self.seconds, 3),
            "entries_per_second": round(self.entries / self.seconds) if self.seconds else None,
            "first_problem": None if self.first_problem is None else str(self.first_problem),
            "problems": [p.to_dict() for p in self.problems],
        }


# -- the pass over the log ---------------------------------------------------------------------


def verify_log(
    store: LogStore,
    *,
    trusted: Sequence[Checkpoint] = (),
    workers: int | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Verify everything in ``store``; see the module docstring for the list of checks.

    ``progress(done, total)`` hears how many leaves have been checked, chunk by chunk.
    """
    started = time.perf_counter()
    problems: list[Problem] = []
    recorder_keys: dict[str, bytes] = {}
    log_verifiers: list[NoteVerifier] = []
    for k in store.keys():
        # A registered key that is no usable Ed25519 key (a small-order point accepts forged
        # signatures) verifies nothing: what it signed then reads as signed by an unknown key.
        try:
            if k.kind == "recorder":
                VerifyingKey.from_raw(k.public_key)
                recorder_keys[k.key_id] = k.public_key
            elif k.kind == "log":
                log_verifiers.append(
                    NoteVerifier.from_string(verifier_key_string(k.name, k.public_key))
                )
        except LedgerError as exc:
            problems.append(Problem(f"registered {k.kind} key {k.key_id[:16]} is refused: {exc}"))
    checkpoints = store.checkpoints()
    # Sizes at which the recomputed root must be known.
    wanted = {c.tree_size for c in checkpoints} | {t.size for t in trusted}

    try:
        rebuilt = rebuild(store, recorder_keys, wanted, workers, progress)
    except (StoreError, WorkerError) as exc:
        # The log cannot be read to the end (a damaged page, a dropped table): that is the
        # finding, not a crash.
        return VerifyReport(
            entries=0,
            root=EMPTY_ROOT,
            checkpoints=len(checkpoints),
            trusted_checkpoints=len(trusted),
            seconds=time.perf_counter() - started,
            problems=(Problem(f"the database cannot be read to the end: {exc}"),),
        )
    size, roots = rebuilt.size, rebuilt.roots
    final_root = roots[size]
    problems.extend(
        Problem(what, leaf_index=leaf, stage=stage) for leaf, what, stage in rebuilt.problems
    )
    problems.extend(_check_checkpoints(store, checkpoints, log_verifiers, roots, size))
    try:
        problems.extend(_check_verdicts(store, size))
    except StoreError as exc:
        problems.append(Problem(f"the stored verdicts cannot be read: {exc}"))
    for number, auditor in enumerate(trusted):
        where = f"auditor checkpoint {number} (size {auditor.size})"
        if auditor.size > size:
            problems.append(
                Problem(f"{where} is beyond the log's {size} entries: the log was rolled back")
            )
        elif roots.get(auditor.size) != auditor.root_hash:
            problems.append(
                Problem(f"{where}: the log's root at that size differs: the log was forked")
            )
    problems.sort(key=Problem.sort_key)
    return VerifyReport(
        entries=size,
        root=final_root,
        checkpoints=len(checkpoints),
        trusted_checkpoints=len(trusted),
        seconds=time.perf_counter() - started,
        problems=tuple(problems),
    )


def _check_checkpoints(
    store: LogStore,
    checkpoints: Sequence[CheckpointRecord],
    verifiers: Sequence[NoteVerifier],
    roots: Mapping[int, bytes],
    size: int,
) -> list[Problem]:
    problems: list[Problem] = []
    previous: CheckpointRecord | None = None
    for record in checkpoints:
        where = f"size {record.tree_size}"
        parsed = _open_checkpoint(record, verifiers)
        if isinstance(parsed, str):
            problems.append(Problem(parsed, checkpoint=record.seq))
        elif parsed.size != record.tree_size or parsed.root_hash != record.root_hash:
            problems.append(
                Problem(
                    "signed note does not match the stored size and root", checkpoint=record.seq
                )
            )
        if record.tree_size > size:
            problems.append(
                Problem(
                    f"{where} is beyond the log's {size} entries: the log was truncated",
                    checkpoint=record.seq,
                )
            )
        elif roots.get(record.tree_size) != record.root_hash:
            problems.append(
                Problem(
                    f"root at {where} differs from the root recomputed from the entries",
                    checkpoint=record.seq,
                )
            )
        if previous is not None and record.tree_size <= size:
            if record.tree_size < previous.tree_size:
                problems.append(
                    Problem(
                        f"{where} is smaller than checkpoint {previous.seq}", checkpoint=record.seq
                    )
                )
            else:
                try:
                    proof = store.consistency_proof(previous.tree_size, record.tree_size)
                    verify_consistency(
                        previous.tree_size,
                        record.tree_size,
                        proof,
                        previous.root_hash,
                        record.root_hash,
                    )
                except LedgerError as exc:
                    problems.append(
                        Problem(
                            f"not consistent with checkpoint {previous.seq}: {exc}",
                            checkpoint=record.seq,
                        )
                    )
        previous = record
    return problems


def _check_verdicts(store: LogStore, size: int) -> list[Problem]:
    documents = store.verdict_documents()
    problems: list[Problem] = []
    parsed: dict[str, dict[str, Any] | str] = {}
    for sha, text in documents.items():
        if sha256_hex(text.encode("utf-8")) != sha:
            parsed[sha] = f"verdict document {sha[:16]} does not hash to its recorded digest"
            continue
        try:
            document = json.loads(text)
        except ValueError:
            parsed[sha] = f"verdict document {sha[:16]} is not JSON"
            continue
        parsed[sha] = (
            document
            if isinstance(document, dict)
            else f"verdict document {sha[:16]} is not an object"
        )
    for leaf, purpose, policy, facts, verdict, sha in store.verdict_rows():
        leaf = int(leaf)
        where = f"stored verdict ({purpose})"
        if leaf >= size:
            problems.append(
                Problem(
                    f"{where} judges a leaf beyond the log's {size} entries",
                    leaf_index=leaf,
                    stage=2,
                )
            )
            continue
        document = parsed.get(sha)
        if document is None:
            problems.append(
                Problem(f"{where} references missing document {sha[:16]}", leaf_index=leaf, stage=2)
            )
        elif isinstance(document, str):
            problems.append(Problem(f"{where}: {document}", leaf_index=leaf, stage=2))
        else:
            claimed = {"verdict": verdict, "purpose": purpose, "policy_digest": policy}
            for name, value in claimed.items():
                if document.get(name) != value:
                    problems.append(
                        Problem(
                            f"{where} says {name} {value!r}, its document {document.get(name)!r}",
                            leaf_index=leaf,
                            stage=2,
                        )
                    )
            if _facts_digest(document.get("facts")) != facts:
                problems.append(
                    Problem(
                        f"{where}: facts digest differs from its document's facts",
                        leaf_index=leaf,
                        stage=2,
                    )
                )
    return problems


def _facts_digest(facts: object) -> str | None:
    if not isinstance(facts, dict):
        return None
    try:
        return sha256_hex(canonical_json(facts))
    except LedgerError:
        return None


def _open_checkpoint(
    record: CheckpointRecord, verifiers: Sequence[NoteVerifier]
) -> Checkpoint | str:
    last_error = "no log key is registered"
    for verifier in verifiers:
        try:
            return verify_checkpoint(record.note, verifier)
        except LedgerError as exc:
            last_error = f"signed note does not verify: {exc}"
    return last_error
