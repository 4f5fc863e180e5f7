"""SQL tables of the ledger (SQLModel). The schema is created only by the Alembic migrations.

Invariants:

* Every table here is append-only: the migration installs triggers that abort any UPDATE or
  DELETE (and TRUNCATE on PostgreSQL). The store offers no way to change a row.
* ``entries.leaf_index`` runs 0..n-1 without gaps; ``entries.entry`` holds the exact leaf data
  (RFC 8785 bytes of the signed entry) and ``leaf_hash`` = SHA-256(0x00 || entry).
* ``tree_hashes.idx`` runs 0..stored_count(n)-1 (see :mod:`ledger.crypto.tree`).
* The active key of a kind is the row with the highest ``seq`` of that kind; earlier rows are
  retired keys that still verify old signatures.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, LargeBinary
from sqlmodel import Field, SQLModel

__all__ = [
    "ApiToken",
    "ApiTokenRevocation",
    "Checkpoint",
    "Entry",
    "Key",
    "ManifestBuild",
    "Meta",
    "TreeHash",
    "VerdictDocument",
    "VerdictRecord",
]


class Entry(SQLModel, table=True):
    """One signed entry, i.e. one leaf of the Merkle log."""

    __tablename__ = "entries"

    leaf_index: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    entry_id: str = Field(max_length=64, unique=True, nullable=False)
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    entry: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_id: str = Field(max_length=64, nullable=False)
    recorded_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    provider: str | None = Field(default=None, max_length=64, index=True)
    request_model: str | None = Field(default=None, max_length=256)
    dataset: str | None = Field(default=None, max_length=256, index=True)
    purpose: str | None = Field(default=None, max_length=64)
    account: str | None = Field(default=None, max_length=64)


class TreeHash(SQLModel, table=True):
    """The hash of one complete aligned subtree, numbered as in :func:`stored_index`."""

    __tablename__ = "tree_hashes"

    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class Checkpoint(SQLModel, table=True):
    """A signed C2SP checkpoint the log issued."""

    __tablename__ = "checkpoints"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    tree_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    note: str = Field(nullable=False)
    signed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class Key(SQLModel, table=True):
    """A public key the ledger has used: ``recorder`` keys sign entries, ``log`` keys notes."""

    __tablename__ = "keys"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    kind: str = Field(max_length=16, nullable=False)
    key_id: str = Field(max_length=64, nullable=False, index=True)
    name: str = Field(max_length=256, nullable=False)
    public_key: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class Meta(SQLModel, table=True):
    """Facts fixed when the ledger was created (its install id)."""

    __tablename__ = "ledger_meta"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(nullable=False, max_length=256)


class VerdictRecord(SQLModel, table=True):
    """A policy verdict on one entry, kept per policy digest and declared-facts digest.

    The log stores verdicts without interpreting them (it knows nothing of policies);
    re-evaluating under new policies or facts adds rows and never replaces one. The verdict's
    reasons live in :class:`VerdictDocument`, shared by every entry judged the same way.
    """

    __tablename__ = "verdicts"

    leaf_index: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    purpose: str = Field(primary_key=True, max_length=64)
    policy_digest: str = Field(primary_key=True, max_length=64)
    facts_digest: str = Field(primary_key=True, max_length=64)
    verdict: str = Field(max_length=16, nullable=False, index=True)
    document_sha256: str = Field(max_length=64, nullable=False)
    evaluated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class VerdictDocument(SQLModel, table=True):
    """The full verdict (layers, reasons, cited clauses), content-addressed by its SHA-256."""

    __tablename__ = "verdict_documents"

    sha256: str = Field(primary_key=True, max_length=64)
    document: str = Field(nullable=False)


class ApiToken(SQLModel, table=True):
    """A bearer token of the audit service, stored only as the SHA-256 of the token string.

    ``datasets`` is a JSON list of dataset names the token may see (None: every dataset);
    ``recorder_key_id`` binds a recorder token to the one recorder key whose entries it may
    submit. A token is never changed: revoking it adds an :class:`ApiTokenRevocation`.
    """

    __tablename__ = "api_tokens"

    token_id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=128, nullable=False)
    role: str = Field(max_length=16, nullable=False)
    token_sha256: str = Field(max_length=64, unique=True, nullable=False)
    datasets: str | None = Field(default=None)
    recorder_key_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class ApiTokenRevocation(SQLModel, table=True):
    """The revocation of one token (a row, since rows are never updated)."""

    __tablename__ = "api_token_revocations"

    token_id: str = Field(primary_key=True, max_length=32)
    revoked_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class ManifestBuild(SQLModel, table=True):
    """One evidence pack built for a dataset name: the checkpoint it proves against.

    Later builds of the same name carry a consistency proof from the checkpoints listed here,
    so an auditor holding an earlier pack can check that the log only grew.
    """

    __tablename__ = "manifest_builds"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    name: str = Field(max_length=256, nullable=False, index=True)
    version: str | None = Field(default=None, max_length=128)
    tree_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    checkpoint: str = Field(nullable=False)
    manifest_sha256: str = Field(max_length=64, nullable=False)
    examples: int = Field(sa_column=Column(BigInteger, nullable=False))
    built_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
