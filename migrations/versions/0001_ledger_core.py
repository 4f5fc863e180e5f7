"""Ledger core: entries, stored subtree hashes, checkpoints, keys, meta; append-only triggers.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

# Shared DDL: the same trigger shape for every append-only table, in every revision.
from ledger.log.schema import append_only_ddl, drop_append_only_ddl

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

APPEND_ONLY_TABLES = ("entries", "tree_hashes", "checkpoints", "keys", "ledger_meta")


def upgrade() -> None:
    op.create_table(
        "entries",
        sa.Column("leaf_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("request_model", sa.String(length=256), nullable=True),
        sa.Column("dataset", sa.String(length=256), nullable=True),
        sa.Column("purpose", sa.String(length=64), nullable=True),
        sa.Column("account", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("leaf_index"),
        sa.UniqueConstraint("entry_id"),
    )
    op.create_index("ix_entries_provider", "entries", ["provider"])
    op.create_index("ix_entries_dataset", "entries", ["dataset"])
    op.create_table(
        "tree_hashes",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("idx"),
    )
    op.create_table(
        "checkpoints",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_table(
        "keys",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_keys_key_id", "keys", ["key_id"])
    meta = op.create_table(
        "ledger_meta",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.bulk_insert(
        meta,
        [
            {"name": "install_id", "value": uuid.uuid4().hex},
            {"name": "created_at", "value": datetime.now(UTC).isoformat()},
        ],
    )
    for statement in append_only_ddl(op.get_bind().dialect.name, APPEND_ONLY_TABLES):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_append_only_ddl(op.get_bind().dialect.name, APPEND_ONLY_TABLES):
        op.execute(statement)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
    op.drop_index("ix_keys_key_id", table_name="keys")
    op.drop_table("keys")
    op.drop_table("checkpoints")
    op.drop_table("tree_hashes")
    op.drop_index("ix_entries_dataset", table_name="entries")
    op.drop_index("ix_entries_provider", table_name="entries")
    op.drop_table("entries")
    op.drop_table("ledger_meta")
