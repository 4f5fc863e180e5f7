"""SQLModel classes over the ledger's tables, for Alembic and for ORM-style users.

The tables themselves are defined once, as SQLAlchemy Core tables, in
:mod:`ledger.log.core_tables`; each model here maps a copy of one of them on
``SQLModel.metadata`` (``Table.to_metadata``) and declares each field with the copied column
(``Field(sa_column=...)``), so no column is written twice. The ledger's own code reads and
writes through the Core tables and never imports this module on a read path (importing SQLModel
costs pydantic and the SQLAlchemy ORM).

Invariants:

* ``SQLModel.metadata`` holds exactly the tables of :data:`core_tables.METADATA`, equal to them
  column by column (a test compares names, types, nullability, keys, indexes, constraints).
* Each model's fields are exactly its table's columns (the same test checks it).
* The schema is created only by the Alembic migrations; see :mod:`ledger.log.core_tables` for
  the invariants of the data.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table
from sqlmodel import Field, SQLModel

from ledger.log import core_tables

__all__ = [
    "ApiToken",
    "ApiTokenRevocation",
    "Checkpoint",
    "Entry",
    "Key",
    "ManifestBuild",
    "ManifestPack",
    "ManifestPackChunk",
    "Meta",
    "TreeHash",
    "VerdictDocument",
    "VerdictRecord",
]


def _copy(table: Table) -> Table:
    """``table`` copied onto ``SQLModel.metadata`` (a Table belongs to one MetaData)."""
    return table.to_metadata(SQLModel.metadata)


# Each model sets ``__table__`` to its copy (SQLAlchemy's declarative "existing table" form); the
# fields name the copied columns, so SQLAlchemy maps them as they are.
_ENTRIES = _copy(core_tables.ENTRIES)
_TREE_HASHES = _copy(core_tables.TREE_HASHES)
_CHECKPOINTS = _copy(core_tables.CHECKPOINTS)
_KEYS = _copy(core_tables.KEYS)
_LEDGER_META = _copy(core_tables.LEDGER_META)
_VERDICTS = _copy(core_tables.VERDICTS)
_VERDICT_DOCUMENTS = _copy(core_tables.VERDICT_DOCUMENTS)
_API_TOKENS = _copy(core_tables.API_TOKENS)
_API_TOKEN_REVOCATIONS = _copy(core_tables.API_TOKEN_REVOCATIONS)
_MANIFEST_BUILDS = _copy(core_tables.MANIFEST_BUILDS)
_MANIFEST_PACKS = _copy(core_tables.MANIFEST_PACKS)
_MANIFEST_PACK_CHUNKS = _copy(core_tables.MANIFEST_PACK_CHUNKS)


class Entry(SQLModel, table=True):
    """One signed entry, i.e. one leaf of the Merkle log (``entries``)."""

    __table__ = _ENTRIES

    leaf_index: int = Field(sa_column=_ENTRIES.c.leaf_index)
    entry_id: str = Field(sa_column=_ENTRIES.c.entry_id)
    leaf_hash: bytes = Field(sa_column=_ENTRIES.c.leaf_hash)
    entry: bytes = Field(sa_column=_ENTRIES.c.entry)
    key_id: str = Field(sa_column=_ENTRIES.c.key_id)
    recorded_at: datetime = Field(sa_column=_ENTRIES.c.recorded_at)
    provider: str | None = Field(default=None, sa_column=_ENTRIES.c.provider)
    request_model: str | None = Field(default=None, sa_column=_ENTRIES.c.request_model)
    dataset: str | None = Field(default=None, sa_column=_ENTRIES.c.dataset)
    purpose: str | None = Field(default=None, sa_column=_ENTRIES.c.purpose)
    account: str | None = Field(default=None, sa_column=_ENTRIES.c.account)


class TreeHash(SQLModel, table=True):
    """The hash of one complete aligned subtree (``tree_hashes``)."""

    __table__ = _TREE_HASHES

    idx: int = Field(sa_column=_TREE_HASHES.c.idx)
    hash: bytes = Field(sa_column=_TREE_HASHES.c.hash)


class Checkpoint(SQLModel, table=True):
    """A signed C2SP checkpoint the log issued (``checkpoints``)."""

    __table__ = _CHECKPOINTS

    seq: int = Field(sa_column=_CHECKPOINTS.c.seq)
    tree_size: int = Field(sa_column=_CHECKPOINTS.c.tree_size)
    root_hash: bytes = Field(sa_column=_CHECKPOINTS.c.root_hash)
    note: str = Field(sa_column=_CHECKPOINTS.c.note)
    signed_at: datetime = Field(sa_column=_CHECKPOINTS.c.signed_at)


class Key(SQLModel, table=True):
    """A public key the ledger has used (``keys``)."""

    __table__ = _KEYS

    seq: int = Field(sa_column=_KEYS.c.seq)
    kind: str = Field(sa_column=_KEYS.c.kind)
    key_id: str = Field(sa_column=_KEYS.c.key_id)
    name: str = Field(sa_column=_KEYS.c.name)
    public_key: bytes = Field(sa_column=_KEYS.c.public_key)
    created_at: datetime = Field(sa_column=_KEYS.c.created_at)


class Meta(SQLModel, table=True):
    """Facts fixed when the ledger was created (``ledger_meta``)."""

    __table__ = _LEDGER_META

    name: str = Field(sa_column=_LEDGER_META.c.name)
    value: str = Field(sa_column=_LEDGER_META.c.value)


class VerdictRecord(SQLModel, table=True):
    """A policy verdict on one entry (``verdicts``)."""

    __table__ = _VERDICTS

    leaf_index: int = Field(sa_column=_VERDICTS.c.leaf_index)
    purpose: str = Field(sa_column=_VERDICTS.c.purpose)
    policy_digest: str = Field(sa_column=_VERDICTS.c.policy_digest)
    facts_digest: str = Field(sa_column=_VERDICTS.c.facts_digest)
    verdict: str = Field(sa_column=_VERDICTS.c.verdict)
    document_sha256: str = Field(sa_column=_VERDICTS.c.document_sha256)
    evaluated_at: datetime = Field(sa_column=_VERDICTS.c.evaluated_at)


class VerdictDocument(SQLModel, table=True):
    """The full verdict, content-addressed by its SHA-256 (``verdict_documents``)."""

    __table__ = _VERDICT_DOCUMENTS

    sha256: str = Field(sa_column=_VERDICT_DOCUMENTS.c.sha256)
    document: str = Field(sa_column=_VERDICT_DOCUMENTS.c.document)


class ApiToken(SQLModel, table=True):
    """A bearer token of the audit service, stored as its SHA-256 (``api_tokens``)."""

    __table__ = _API_TOKENS

    token_id: str = Field(sa_column=_API_TOKENS.c.token_id)
    name: str = Field(sa_column=_API_TOKENS.c.name)
    role: str = Field(sa_column=_API_TOKENS.c.role)
    token_sha256: str = Field(sa_column=_API_TOKENS.c.token_sha256)
    datasets: str | None = Field(default=None, sa_column=_API_TOKENS.c.datasets)
    recorder_key_id: str | None = Field(default=None, sa_column=_API_TOKENS.c.recorder_key_id)
    created_at: datetime = Field(sa_column=_API_TOKENS.c.created_at)
    expires_at: datetime | None = Field(default=None, sa_column=_API_TOKENS.c.expires_at)


class ApiTokenRevocation(SQLModel, table=True):
    """The revocation of one token (``api_token_revocations``)."""

    __table__ = _API_TOKEN_REVOCATIONS

    token_id: str = Field(sa_column=_API_TOKEN_REVOCATIONS.c.token_id)
    revoked_at: datetime = Field(sa_column=_API_TOKEN_REVOCATIONS.c.revoked_at)


class ManifestBuild(SQLModel, table=True):
    """One evidence pack built for a dataset name (``manifest_builds``)."""

    __table__ = _MANIFEST_BUILDS

    seq: int = Field(sa_column=_MANIFEST_BUILDS.c.seq)
    name: str = Field(sa_column=_MANIFEST_BUILDS.c.name)
    version: str | None = Field(default=None, sa_column=_MANIFEST_BUILDS.c.version)
    tree_size: int = Field(sa_column=_MANIFEST_BUILDS.c.tree_size)
    root_hash: bytes = Field(sa_column=_MANIFEST_BUILDS.c.root_hash)
    checkpoint: str = Field(sa_column=_MANIFEST_BUILDS.c.checkpoint)
    manifest_sha256: str = Field(sa_column=_MANIFEST_BUILDS.c.manifest_sha256)
    examples: int = Field(sa_column=_MANIFEST_BUILDS.c.examples)
    built_at: datetime = Field(sa_column=_MANIFEST_BUILDS.c.built_at)


class ManifestPack(SQLModel, table=True):
    """The stored zip of one build's evidence pack (``manifest_packs``)."""

    __table__ = _MANIFEST_PACKS

    seq: int = Field(sa_column=_MANIFEST_PACKS.c.seq)
    sha256: str = Field(sa_column=_MANIFEST_PACKS.c.sha256)
    size: int = Field(sa_column=_MANIFEST_PACKS.c.size)
    chunk_size: int = Field(sa_column=_MANIFEST_PACKS.c.chunk_size)
    chunks: int = Field(sa_column=_MANIFEST_PACKS.c.chunks)
    stored_at: datetime = Field(sa_column=_MANIFEST_PACKS.c.stored_at)


class ManifestPackChunk(SQLModel, table=True):
    """One part of a stored pack's zip (``manifest_pack_chunks``)."""

    __table__ = _MANIFEST_PACK_CHUNKS

    seq: int = Field(sa_column=_MANIFEST_PACK_CHUNKS.c.seq)
    part: int = Field(sa_column=_MANIFEST_PACK_CHUNKS.c.part)
    data: bytes = Field(sa_column=_MANIFEST_PACK_CHUNKS.c.data)
