"""Verdicts per entry, policy digest and declared-facts digest; content-addressed documents.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.log.schema import append_only_ddl, drop_append_only_ddl

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("verdicts", "verdict_documents")


def upgrade() -> None:
    op.create_table(
        "verdicts",
        sa.Column("leaf_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("policy_digest", sa.String(length=64), nullable=False),
        sa.Column("facts_digest", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("document_sha256", sa.String(length=64), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("leaf_index", "purpose", "policy_digest", "facts_digest"),
    )
    op.create_index("ix_verdicts_verdict", "verdicts", ["verdict"])
    op.create_table(
        "verdict_documents",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("document", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    for statement in append_only_ddl(op.get_bind().dialect.name, TABLES):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_append_only_ddl(op.get_bind().dialect.name, TABLES):
        op.execute(statement)
    op.drop_table("verdict_documents")
    op.drop_index("ix_verdicts_verdict", table_name="verdicts")
    op.drop_table("verdicts")
