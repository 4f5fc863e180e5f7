"""What opening a ledger read-only needs from ``LEDGER_*``, read without pydantic-settings.

:class:`ledger.settings.Settings` is the one settings object of the project (pydantic-settings,
env prefix ``LEDGER_``); importing it costs about 0.1 s (pydantic, pydantic-settings), a fifth
of a read command's start-up budget. A read-only open (``ledger verify``, ``entries list``,
``ledger.open(..., read_only=True)``) and ``audit conduct`` need six of its fields, so
:class:`ReadSettings` reads those six the way ``Settings`` does and nothing else.

Invariants:

* For every variable it reads (:data:`FIELDS`), :meth:`ReadSettings.from_env` gives the value
  ``Settings`` gives, or refuses (``ConfigError``) what ``Settings`` refuses; a test compares
  the two on valid and invalid values. Names match case-insensitively, as in pydantic-settings.
* Other ``LEDGER_*`` variables are not read: a read-only open does not fail on a bad value of
  a setting it does not use (``LEDGER_BATCH_SIZE=x``).
* Nothing here writes, creates or imports pydantic.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ledger.errors import ConfigError

__all__ = ["FIELDS", "ReadSettings"]

#: The Settings fields a read-only open and ``audit conduct`` use (read from ``LEDGER_<FIELD>``).
FIELDS = (
    "home",
    "database_url",
    "origin",
    "sqlite_busy_timeout",
    "facts_file",
    "conduct_config",
)

_PREFIX = "ledger_"


@dataclass(frozen=True, slots=True)
class ReadSettings:
    """The part of :class:`~ledger.settings.Settings` that reading a ledger needs.

    Example:
        >>> ReadSettings.from_env({"LEDGER_HOME": "/srv/ledger"}).resolved_database_url()
        'sqlite:////srv/ledger/ledger.db'
    """

    home: Path = field(default_factory=lambda: Path(".ledger"))
    database_url: str | None = None
    origin: str | None = None
    sqlite_busy_timeout: float = 30.0
    facts_file: Path | None = None
    conduct_config: Path | None = None

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        home: Path | None = None,
        database_url: str | None = None,
    ) -> ReadSettings:
        """Read ``LEDGER_*`` from ``environ`` (default ``os.environ``); arguments win over it.

        Raises:
            ConfigError: a value ``Settings`` would refuse (e.g. a non-positive busy timeout).
        """
        source = os.environ if environ is None else environ
        # pydantic-settings (case_sensitive=False) lowercases every name; the last of two names
        # that differ only in case wins there, and here.
        env = {name.lower(): value for name, value in source.items()}

        def get(name: str) -> str | None:
            return env.get(_PREFIX + name)

        raw_home, raw_facts, raw_conduct = get("home"), get("facts_file"), get("conduct_config")
        raw_timeout = get("sqlite_busy_timeout")
        return cls(
            home=home
            if home is not None
            else Path(raw_home)
            if raw_home is not None
            else Path(".ledger"),
            database_url=database_url if database_url is not None else get("database_url"),
            origin=get("origin"),
            sqlite_busy_timeout=30.0 if raw_timeout is None else _positive_float(raw_timeout),
            facts_file=None if raw_facts is None else Path(raw_facts),
            conduct_config=None if raw_conduct is None else Path(raw_conduct),
        )

    def resolved_database_url(self) -> str:
        """The database URL to use: the configured one, or SQLite under ``home``."""
        return resolve_database_url(self.database_url, self.home)


def resolve_database_url(database_url: str | None, home: Path) -> str:
    """The configured URL, or the default SQLite file under ``home`` (one rule for both
    settings objects)."""
    if database_url:
        return database_url
    return f"sqlite:///{(home / 'ledger.db').resolve()}"


def _positive_float(raw: str) -> float:
    """``LEDGER_SQLITE_BUSY_TIMEOUT`` as pydantic reads a ``float`` with ``gt=0`` from a string."""
    try:
        if not raw.isascii():  # pydantic reads ASCII digits only; float() takes any Unicode digit
            raise ValueError(raw)
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"invalid LEDGER_* setting: sqlite_busy_timeout: not a number: {raw!r}"
        ) from None
    if math.isnan(value) or value <= 0:
        raise ConfigError(
            f"invalid LEDGER_* setting: sqlite_busy_timeout must be greater than 0, not {raw!r}"
        )
    return value
