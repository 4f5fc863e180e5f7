"""The builds registry: which evidence packs were built, against which checkpoints.

Invariants:

* One append-only row per build (table ``manifest_builds``, migration 0004); rows are never
  changed, so the list of a dataset name's builds only grows.
* ``seq`` is assigned inside the log's write transaction (the single-writer lock), so builds
  are numbered in commit order even when several processes build at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from ledger.errors import StoreError
from ledger.log.core_tables import MANIFEST_BUILDS as _TABLE
from ledger.log.schema import write_transaction
from ledger.log.store import LogStore

__all__ = ["BuildRecord", "list_builds", "record_build"]


@dataclass(frozen=True, slots=True)
class BuildRecord:
    """One registered build."""

    seq: int
    name: str
    version: str | None
    tree_size: int
    root_hash: bytes
    checkpoint: str
    manifest_sha256: str
    examples: int
    built_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "name": self.name,
            "version": self.version,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "checkpoint": self.checkpoint,
            "manifest_sha256": self.manifest_sha256,
            "examples": self.examples,
            "built_at": self.built_at.isoformat(),
        }


def record_build(
    store: LogStore,
    *,
    name: str,
    version: str | None,
    tree_size: int,
    root_hash: bytes,
    checkpoint: str,
    manifest_sha256: str,
    examples: int,
) -> BuildRecord:
    """Append one build to the registry and return it."""
    built_at = datetime.now(UTC)
    try:
        with write_transaction(store.engine) as conn:
            seq = int(conn.execute(select(func.coalesce(func.max(_TABLE.c.seq), 0))).scalar_one())
            seq += 1
            conn.execute(
                insert(_TABLE),
                [
                    {
                        "seq": seq,
                        "name": name,
                        "version": version,
                        "tree_size": tree_size,
                        "root_hash": root_hash,
                        "checkpoint": checkpoint,
                        "manifest_sha256": manifest_sha256,
                        "examples": examples,
                        "built_at": built_at,
                    }
                ],
            )
    except SQLAlchemyError as exc:
        raise StoreError(f"registering the build failed: {exc}") from exc
    return BuildRecord(
        seq, name, version, tree_size, root_hash, checkpoint, manifest_sha256, examples, built_at
    )


def list_builds(store: LogStore, name: str | None = None) -> list[BuildRecord]:
    """Registered builds (of one dataset name, or all), oldest first."""
    query = select(_TABLE).order_by(_TABLE.c.seq)
    if name is not None:
        query = query.where(_TABLE.c.name == name)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(query).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"reading the builds registry failed: {exc}") from exc
    out = []
    for r in rows:
        moment = r.built_at if r.built_at.tzinfo else r.built_at.replace(tzinfo=UTC)
        out.append(
            BuildRecord(
                int(r.seq),
                r.name,
                r.version,
                int(r.tree_size),
                bytes(r.root_hash),
                r.checkpoint,
                r.manifest_sha256,
                int(r.examples),
                moment,
            )
        )
    return out
