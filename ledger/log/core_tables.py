"""The ledger's SQL tables as SQLAlchemy Core ``Table`` objects: the one definition of the schema.

Everything that reads or writes rows (the store, verification, proofs, the keyring, the
service) uses these tables. :mod:`ledger.log.tables` maps SQLModel classes onto copies of them
(for Alembic's autogenerate and ORM-style users); it never declares a column of its own. Reading
a ledger therefore needs SQLAlchemy Core only: importing this module loads neither SQLModel,
pydantic nor the SQLAlchemy ORM (a CLI read command starts in about half the time).

Invariants:

* The schema is created and changed only by the Alembic migrations (``migrations/``); a test
  compares :data:`METADATA` with the migrated database (names, types, nullability, keys,
  indexes and unique constraints), and another compares the SQLModel models with these tables.
* Every table here is append-only: the migrations install triggers that abort any UPDATE or
  DELETE (and TRUNCATE on PostgreSQL). The store offers no way to change a row.
* ``entries.leaf_index`` runs 0..n-1 without gaps; ``entries.entry`` holds the exact leaf data
  (RFC 8785 bytes of the signed entry) and ``leaf_hash`` = SHA-256(0x00 || entry).
* ``tree_hashes.idx`` runs 0..stored_count(n)-1 (see :mod:`ledger.crypto.tree`).
* The active key of a kind is the row with the highest ``seq`` of that kind; earlier rows are
  retired keys that still verify old signatures.
* Index names follow SQLAlchemy's ``ix_<table>_<column>`` (what ``index=True`` produces), the
  names the migrations create.

Adding a table: define it here (a ``Table`` on :data:`METADATA`, foreign keys as
``ForeignKey("table.column")``), add a model over its copy in :mod:`ledger.log.tables` (fields
``Field(sa_column=_COPY.c.name)``), and write the migration; ``tests/log/test_core_tables.py``
fails until all three agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    LargeBinary,
    MetaData,
    String,
    Table,
)

__all__ = [
    "API_TOKENS",
    "API_TOKEN_REVOCATIONS",
    "CHECKPOINTS",
    "ENTRIES",
    "KEYS",
    "LEDGER_META",
    "MANIFEST_BUILDS",
    "MANIFEST_PACKS",
    "MANIFEST_PACK_CHUNKS",
    "METADATA",
    "TREE_HASHES",
    "VERDICTS",
    "VERDICT_DOCUMENTS",
]

#: The ledger's own metadata (not ``SQLModel.metadata``, which importing SQLModel would need).
METADATA = MetaData()


def _utc(name: str, *, nullable: bool = False) -> Column[object]:
    """A timezone-aware timestamp column (the ledger stores UTC only)."""
    return Column(name, DateTime(timezone=True), nullable=nullable)


def _seq(name: str) -> Column[object]:
    """A BigInteger primary key the ledger numbers itself (never auto-incremented)."""
    return Column(name, BigInteger, primary_key=True, autoincrement=False)


#: One signed entry, i.e. one leaf of the Merkle log. The indexed columns are copies of
#: fields of the signed body; ``verify`` checks that they agree with it.
ENTRIES = Table(
    "entries",
    METADATA,
    _seq("leaf_index"),
    Column("entry_id", String(64), nullable=False, unique=True),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("entry", LargeBinary, nullable=False),
    Column("key_id", String(64), nullable=False),
    _utc("recorded_at"),
    Column("provider", String(64), nullable=True, index=True),
    Column("request_model", String(256), nullable=True),
    Column("dataset", String(256), nullable=True, index=True),
    Column("purpose", String(64), nullable=True),
    Column("account", String(64), nullable=True),
)

#: The hash of one complete aligned subtree, numbered as in ``ledger.crypto.tree.stored_index``.
TREE_HASHES = Table(
    "tree_hashes",
    METADATA,
    _seq("idx"),
    Column("hash", LargeBinary(32), nullable=False),
)

#: A signed C2SP checkpoint the log issued.
CHECKPOINTS = Table(
    "checkpoints",
    METADATA,
    _seq("seq"),
    Column("tree_size", BigInteger, nullable=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("note", String, nullable=False),
    _utc("signed_at"),
)

#: A public key the ledger has used: ``recorder`` keys sign entries, ``log`` keys notes.
KEYS = Table(
    "keys",
    METADATA,
    _seq("seq"),
    Column("kind", String(16), nullable=False),
    Column("key_id", String(64), nullable=False, index=True),
    Column("name", String(256), nullable=False),
    Column("public_key", LargeBinary(32), nullable=False),
    _utc("created_at"),
)

#: Facts fixed when the ledger was created (its install id).
LEDGER_META = Table(
    "ledger_meta",
    METADATA,
    Column("name", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
)

#: A policy verdict on one entry, kept per policy digest and declared-facts digest. The log
#: stores verdicts without interpreting them; re-evaluation adds rows and never replaces one.
#: The reasons live in ``verdict_documents``, shared by every entry judged the same way.
VERDICTS = Table(
    "verdicts",
    METADATA,
    _seq("leaf_index"),
    Column("purpose", String(64), primary_key=True),
    Column("policy_digest", String(64), primary_key=True),
    Column("facts_digest", String(64), primary_key=True),
    Column("verdict", String(16), nullable=False, index=True),
    Column("document_sha256", String(64), nullable=False),
    _utc("evaluated_at"),
)

#: The full verdict (layers, reasons, cited clauses), content-addressed by its SHA-256.
VERDICT_DOCUMENTS = Table(
    "verdict_documents",
    METADATA,
    Column("sha256", String(64), primary_key=True),
    Column("document", String, nullable=False),
)

#: A bearer token of the audit service, stored only as the SHA-256 of the token string.
#: ``datasets`` is a JSON list of dataset names the token may see (NULL: every dataset);
#: ``recorder_key_id`` binds a recorder token to the one key whose entries it may submit.
#: A token is never changed: revoking it adds an ``api_token_revocations`` row.
API_TOKENS = Table(
    "api_tokens",
    METADATA,
    Column("token_id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("datasets", String, nullable=True),
    Column("recorder_key_id", String(64), nullable=True),
    _utc("created_at"),
    _utc("expires_at", nullable=True),
)

#: The revocation of one token (a row, since rows are never updated).
API_TOKEN_REVOCATIONS = Table(
    "api_token_revocations",
    METADATA,
    Column("token_id", String(32), primary_key=True),
    _utc("revoked_at"),
)

#: One evidence pack built for a dataset name: the checkpoint it proves against. Later builds
#: of the same name carry a consistency proof from the checkpoints listed here.
MANIFEST_BUILDS = Table(
    "manifest_builds",
    METADATA,
    _seq("seq"),
    Column("name", String(256), nullable=False, index=True),
    Column("version", String(128), nullable=True),
    Column("tree_size", BigInteger, nullable=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("checkpoint", String, nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("examples", BigInteger, nullable=False),
    _utc("built_at"),
)

#: One part of a stored evidence pack's zip: bytes ``[part * chunk_size, (part + 1) *
#: chunk_size)`` of the zip of build ``seq`` (see :mod:`ledger.manifest.stored`).
MANIFEST_PACK_CHUNKS = Table(
    "manifest_pack_chunks",
    METADATA,
    Column(
        "seq", BigInteger, ForeignKey("manifest_builds.seq"), primary_key=True, autoincrement=False
    ),
    Column("part", BigInteger, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)

#: The stored zip of one build's evidence pack. The row is written after every part, in the
#: same transaction, so a pack that has a row is complete.
MANIFEST_PACKS = Table(
    "manifest_packs",
    METADATA,
    Column(
        "seq", BigInteger, ForeignKey("manifest_builds.seq"), primary_key=True, autoincrement=False
    ),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("chunk_size", BigInteger, nullable=False),
    Column("chunks", BigInteger, nullable=False),
    _utc("stored_at"),
)
