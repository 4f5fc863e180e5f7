"""Signed evidence packs for distilled datasets: build one from a ledger, verify one offline.

Invariants:

- A pack (folder or zip) holds a DSSE envelope around an in-toto Statement v1 whose subject
  is the dataset files and whose predicate carries the signed checkpoint, the keys, policies,
  facts, summary and the SHA-256 of every other member (:mod:`ledger.manifest.pack`).
- Building needs the ledger open for writing (the log key signs); verifying needs only the
  pack and the log's verifier key: no database, no private key, no network.
- Verdicts report what dated terms say; nothing here decides what is lawful.

Example:
    >>> import ledger
    >>> from ledger import manifest
    >>> lg = ledger.open(home="/tmp/demo-ledger")                        # doctest: +SKIP
    >>> manifest.build(lg, ["train.jsonl"], "pack", name="tutor")        # doctest: +SKIP
    >>> manifest.verify("pack", lg.verifier_key, datasets=["train.jsonl"]).ok  # doctest: +SKIP
    True
"""

from __future__ import annotations

from ledger.manifest.build import BuildResult, build
from ledger.manifest.pack import PREDICATE_TYPE
from ledger.manifest.registry import BuildRecord, list_builds
from ledger.manifest.verify import Difference, Failure, VerifyResult, verify, verify_pack

__all__ = [
    "PREDICATE_TYPE",
    "BuildRecord",
    "BuildResult",
    "Difference",
    "Failure",
    "VerifyResult",
    "build",
    "list_builds",
    "verify",
    "verify_pack",
]
