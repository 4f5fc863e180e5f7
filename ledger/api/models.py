"""Request and response shapes of the audit service (what ``/openapi.json`` describes).

Entry answers are written by the routes as the stored leaf bytes spliced into JSON, so their
models here document the shape without being used to serialize it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BuildBrief",
    "BuildOut",
    "CheckpointOut",
    "ConsistencyProofOut",
    "DatasetAuditOut",
    "DatasetListOut",
    "DatasetOut",
    "DatasetSummaryOut",
    "EntryAnswer",
    "EntryItem",
    "EntryPage",
    "InclusionProofOut",
    "KeyIn",
    "ReceiptOut",
    "ReceiptsOut",
    "SealedBatch",
    "StoredPackOut",
    "TokenIn",
    "VerifyOut",
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


class BuildBrief(BaseModel):
    seq: int
    version: str | None
    tree_size: int
    built_at: str
    examples: int


class DatasetSummaryOut(BaseModel):
    name: str
    entries: int = Field(description="Entries recorded with this dataset label.")
    builds: int = Field(description="Evidence packs built under this name.")
    latest_build: BuildBrief | None


class DatasetListOut(BaseModel):
    datasets: list[DatasetSummaryOut]


class StoredPackOut(BaseModel):
    sha256: str = Field(description="SHA-256 of the stored zip (what /manifest serves).")
    size: int
    stored_at: str


class BuildOut(BaseModel):
    seq: int
    name: str
    version: str | None
    tree_size: int
    root_hash: str
    checkpoint: str = Field(description="The signed checkpoint note the pack proves against.")
    manifest_sha256: str
    examples: int
    built_at: str
    stored: bool
    pack: StoredPackOut | None
    consistency_proof: ConsistencyProofOut | None = Field(
        description="RFC 9162 proof from the build's tree size to the answer's checkpoint."
    )


class DatasetOut(BaseModel):
    name: str
    entries: int
    checkpoint: CheckpointOut
    builds: list[BuildOut]


class DatasetAuditOut(BaseModel):
    name: str
    build: BuildOut
    summary: dict[str, Any] = Field(description="The signed statement's predicate summary.")
    purpose: str | None
    subject: list[dict[str, Any]]
    envelope: dict[str, Any] = Field(
        description="manifest.dsse.json as stored: verify its signature with the log key."
    )


class VerifyOut(BaseModel):
    ok: bool
    passed: list[str]
    failure: dict[str, str] | None
    policy_differences: list[dict[str, Any]]
    example_verdict_differences: int
    summary: dict[str, Any]
    verifier_key: str = Field(description="The log verifier key the pack was checked against.")
    key_source: Literal["query", "log"]
    note: str
