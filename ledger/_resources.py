"""Where the files that ship inside the wheel live: Alembic migrations and provider policies.

In a source checkout they are the top-level ``migrations/`` and ``policies/`` folders; in an
installed wheel they are copied under ``ledger/_migrations`` and ``ledger/_policies``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["migrations_dir", "policies_dir"]

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE / f"_{name}", _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the ledger's {name}/ folder is missing from this installation")


def migrations_dir() -> Path:
    """The Alembic script folder."""
    return _find("migrations")


def policies_dir() -> Path:
    """The folder of provider policy YAML files."""
    return _find("policies")
