"""Request and response shapes of the audit service (what ``/openapi.json`` describes).

Entry answers are written by the routes as the stored leaf bytes spliced into JSON, so their
models here document the shape without being used to serialize it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CheckpointOut",
    "ConsistencyProofOut",
    "EntryAnswer",
    "EntryItem",
    "EntryPage",
    "InclusionProofOut",
    "KeyIn",
    "ReceiptOut",
    "ReceiptsOut",
    "SealedBatch",
    "TokenIn",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckpointOut(BaseModel):
    tree_size: int
    root_hash: str = Field(description="Hex; the signed note is what a client should trust.")
    note: str = Field(description="C2SP signed note (tlog-checkpoint), Ed25519.")
    signed_at: str


class EntryItem(BaseModel):
    leaf_index: int
    entry: dict[str, Any] = Field(description="The signed entry {body, key_id, sig}.")


class InclusionProofOut(BaseModel):
    leaf_index: int
    tree_size: int
    hashes: list[str]


class EntryAnswer(BaseModel):
    checkpoint: CheckpointOut
    entry: EntryItem
    inclusion_proof: InclusionProofOut


class MultiProofOut(BaseModel):
    tree_size: int
    leaf_indexes: list[int]
    nodes: list[dict[str, Any]]


class EntryPage(BaseModel):
    checkpoint: CheckpointOut
    entries: list[EntryItem]
    multiproof: MultiProofOut
    next_cursor: str | None


class ConsistencyProofOut(BaseModel):
    first: int
    second: int
    hashes: list[str]


class SealedBatch(_Strict):
    entries: list[dict[str, Any]] = Field(
        description="Sealed entries {body, key_id, sig} signed by the token's recorder key."
    )


class ReceiptOut(BaseModel):
    leaf_index: int
    entry_id: str
    leaf_hash: str


class ReceiptsOut(BaseModel):
    receipts: list[ReceiptOut]


class TokenIn(_Strict):
    role: Literal["recorder", "auditor", "admin"]
    name: str = Field(min_length=1, max_length=128)
    datasets: list[str] | None = None
    recorder_key_id: str | None = None
    expires: str | None = Field(default=None, description="Lifetime such as 30d, 12h, 2w.")


class KeyIn(_Strict):
    name: str = Field(min_length=1, max_length=128)
    public_key: str = Field(description="Base64 of the raw 32-byte Ed25519 public key.")
