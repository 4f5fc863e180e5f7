"""The one settings object, read from ``LEDGER_*`` environment variables at the edges.

Only the faces (``ledger.open``, the CLI, the API) build a :class:`Settings`; everything below
them takes explicit arguments. Secrets are ``SecretStr`` so that they never print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.read_settings import resolve_database_url

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Configuration of one ledger installation.

    Every field can be set from the environment as ``LEDGER_<FIELD>`` (for example
    ``LEDGER_DATABASE_URL``, ``LEDGER_HOME``, ``LEDGER_KEY_PASSPHRASE``).
    """

    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore")

    # --- ledger core -----------------------------------------------------------------------
    home: Path = Field(
        default=Path(".ledger"),
        description="Folder holding the key files, the default SQLite database and the spool.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the ledger database; default: SQLite file under home.",
    )
    key_passphrase: SecretStr | None = Field(
        default=None, description="Passphrase protecting the private key files, if any."
    )
    origin: str | None = Field(
        default=None,
        description="Checkpoint origin line; default: ledger.local/<install id>.",
    )
    checkpoint_every: int = Field(
        default=10_000, ge=0, description="Sign a checkpoint after this many new entries (0: off)."
    )
    checkpoint_interval: float = Field(
        default=60.0,
        ge=0,
        description="Sign a checkpoint when entries are this many seconds old (0: off).",
    )
    sqlite_synchronous: Literal["full", "normal"] = Field(
        default="full",
        description=(
            "SQLite durability: 'full' survives power loss (one fsync per commit); 'normal' "
            "survives an application crash only."
        ),
    )
    sqlite_busy_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds to wait for another writer's lock on a SQLite file before failing.",
    )
    batch_size: int = Field(
        default=2_000, ge=1, description="Most entries the writer commits in one transaction."
    )

    judge: bool = Field(
        default=True,
        description="Judge every entry under the provider policies as it is appended.",
    )

    # --- recorder --------------------------------------------------------------------------
    # Carried by the Ledger that ledger.open() builds (default_content, default_durability) and
    # used by wrap()/recording_client() when no argument is given.
    content: Literal["hash", "full"] = Field(
        default="hash",
        description="wrap() default: store prompts and outputs ('full') or only their hashes.",
    )
    durability: Literal["async", "sync"] = Field(
        default="async",
        description="wrap() default: whether a recorded call waits for its entry to commit.",
    )

    # --- conduct detectors (ledger audit conduct; owned by ledger/policy/conduct/) ----------
    conduct_config: Path | None = Field(
        default=None,
        description=(
            "YAML file of conduct detector thresholds and 'official_hosts' overrides "
            "(names and defaults in ledger.policy.conduct); default: the documented defaults."
        ),
    )

    # --- policy engine (ledger policy ...; owned by ledger/policy/engine.py and facts.py) -----
    facts_file: Path | None = Field(
        default=None,
        description=(
            "Organization profile: a YAML mapping of declared facts (competes_with_provider, "
            "student_kind, distributed, ...) used as defaults for every policy verdict."
        ),
    )

    def resolved_database_url(self) -> str:
        """The database URL to use: the configured one, or SQLite under ``home``."""
        return resolve_database_url(self.database_url, self.home)
