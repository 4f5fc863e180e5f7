"""Pure cryptography and formats of the ledger: canonical JSON, Ed25519 keys, RFC 6962 Merkle
trees, and C2SP signed notes and checkpoints.

Nothing here does I/O (except ``SigningKey.save``/``load`` on key files), SQL or HTTP.
"""

from __future__ import annotations

from ledger.crypto.canonical import canonical_json, normalize_output, output_sha256, sha256_hex
from ledger.crypto.keys import SigningKey, VerifyingKey
from ledger.crypto.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    leaf_hash,
    node_hash,
    reference_consistency_proof,
    reference_inclusion_proof,
    reference_root,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from ledger.crypto.note import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    VerifiedNote,
    note_key_id,
    open_note,
    sign_checkpoint,
    sign_note,
    verifier_key_string,
    verify_checkpoint,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Checkpoint",
    "NoteSigner",
    "NoteVerifier",
    "SigningKey",
    "VerifiedNote",
    "VerifyingKey",
    "canonical_json",
    "leaf_hash",
    "node_hash",
    "normalize_output",
    "note_key_id",
    "open_note",
    "output_sha256",
    "reference_consistency_proof",
    "reference_inclusion_proof",
    "reference_root",
    "root_from_inclusion_proof",
    "sha256_hex",
    "sign_checkpoint",
    "sign_note",
    "verifier_key_string",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
]
