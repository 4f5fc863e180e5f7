"""Alembic environment: runs on a connection handed over by the ledger, or on a URL.

``ledger.log.schema`` passes its own connection in ``config.attributes["connection"]``; a
developer running ``alembic upgrade head`` gets ``$LEDGER_DATABASE_URL`` instead.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from ledger.log import tables

target_metadata = tables.SQLModel.metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = os.environ.get("LEDGER_DATABASE_URL")
    if not url:
        raise SystemExit("set LEDGER_DATABASE_URL to the database to migrate")
    engine = create_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        conn.commit()
    engine.dispose()


run_migrations()
