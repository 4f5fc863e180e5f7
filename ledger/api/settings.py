"""Settings of the audit service: the ledger's :class:`~ledger.settings.Settings` plus ``api_*``.

Built only at the edge (``ledger serve`` or a caller of :func:`ledger.api.create_app`), read
from ``LEDGER_API_*`` environment variables like every other setting.
"""

from __future__ import annotations

from pydantic import Field

from ledger.settings import Settings

__all__ = ["ApiSettings"]


class ApiSettings(Settings):
    """Configuration of one audit service process (every worker builds the same one)."""

    api_max_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted; a larger one gets 413 before it is read.",
    )
    api_max_pack_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description=(
            "Largest evidence pack accepted by POST /v1/manifests/verify (its own limit, in "
            "place of api_max_body_bytes); a larger one gets 413."
        ),
    )
    api_max_page: int = Field(
        default=1000, ge=1, le=10_000, description="Largest `limit` of an entry listing."
    )
    api_max_batch: int = Field(
        default=1000, ge=1, description="Most sealed entries in one POST /v1/entries."
    )
    api_cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed by CORS; empty (default) means CORS is off.",
    )
    api_read_only: bool = Field(
        default=False,
        description=(
            "Serve reads only, from public data (no key files): recording, checkpoint signing "
            "and token or key management are refused."
        ),
    )
    api_checkpoint_age: float = Field(
        default=1.0,
        ge=0,
        description=(
            "A writable service signs a fresh checkpoint for a read when the latest is this "
            "many seconds old and the log has grown since (0: on every read that needs one)."
        ),
    )
    api_hash_cache_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description=(
            "Memory each worker keeps for stored tree hashes, which proofs are made of (they "
            "never change, so nothing kept is stale). The default holds every hash of a "
            "million-entry log; a larger log keeps its most used blocks of 128."
        ),
    )
    api_token_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description=(
            "How long a worker trusts a token it checked without asking the database again "
            "(0: ask on every request). A revocation through the same worker holds at once, "
            "one through another process within this many seconds."
        ),
    )
