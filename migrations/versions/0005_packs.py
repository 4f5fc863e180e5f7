"""Stored evidence packs: each build's zip in 1 MiB chunks, append-only, so any worker serves it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.log.schema import append_only_ddl, drop_append_only_ddl

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("manifest_packs", "manifest_pack_chunks")


def upgrade() -> None:
    op.create_table(
        "manifest_pack_chunks",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("part", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["seq"], ["manifest_builds.seq"]),
        sa.PrimaryKeyConstraint("seq", "part"),
    )
    op.create_table(
        "manifest_packs",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chunk_size", sa.BigInteger(), nullable=False),
        sa.Column("chunks", sa.BigInteger(), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["seq"], ["manifest_builds.seq"]),
        sa.PrimaryKeyConstraint("seq"),
    )
    for statement in append_only_ddl(op.get_bind().dialect.name, TABLES):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_append_only_ddl(op.get_bind().dialect.name, TABLES):
        op.execute(statement)
    op.drop_table("manifest_packs")
    op.drop_table("manifest_pack_chunks")
