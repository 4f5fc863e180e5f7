"""The facts a verdict rests on: what the call was (recorded) and what the user declares.

Invariants:

- :class:`CallFacts` is read from a recorded entry body and never guessed: a field the entry
  lacks stays ``None`` and any rule that needs it yields ``unknown``.
- :class:`DeclaredFacts` fields are all optional; ``None`` means "nobody declared it", which is
  different from a declared ``False``/``"no"``. Layers (organization profile, dataset, call)
  are merged with :meth:`DeclaredFacts.merged`, later layers overriding earlier ones field by
  field.
- Times are timezone-aware UTC; a naive datetime is refused rather than assumed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ledger.entry_body import read_call
from ledger.errors import InputError

__all__ = ["CallFacts", "DeclaredFacts", "OutputModality", "load_facts_file"]

OutputModality = Literal["text", "embedding", "image", "audio"]
_TRUE = {"yes", "true", "1", "y", "on"}
_FALSE = {"no", "false", "0", "n", "off"}
_BOOL_FACTS = (
    "distributed",
    "on_provider_platform",
    "written_permission",
    "commercial",
    "web_search_outputs",
)


class CallFacts(BaseModel):
    """What the recorded call itself says: who served which model, when, producing what."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(min_length=1, description="gen_ai.provider.name style slug")
    model: str | None = None
    at: datetime | None = Field(default=None, description="when the request was sent (UTC)")
    host: str | None = None
    output_modality: OutputModality | None = None

    @field_validator("at")
    @classmethod
    def _aware_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("the call time must carry a time zone")
        return value.astimezone(UTC)

    @classmethod
    def from_entry_body(cls, body: Mapping[str, Any]) -> CallFacts:
        """Read the call facts from a recorded entry body (any version).

        The rules are :func:`ledger.entry_body.read_call`'s: the model is the one that answered
        (``response_model``, else ``request_model``); the time is ``started_at``, else
        ``recorded_at``, and must carry a zone.

        Raises:
            InputError: a field has a malformed value (e.g. an unparseable timestamp).
        """
        view = read_call(body)
        if view.time_error is not None:
            raise InputError(view.time_error)
        try:
            return cls(
                provider=view.provider,
                model=view.model,
                at=view.at,
                host=view.host,
                output_modality=view.output_modality,  # pydantic validates the vocabulary
            )
        except ValidationError as exc:
            raise InputError(f"entry body has bad call facts: {_first_error(exc)}") from exc


class DeclaredFacts(BaseModel):
    """Facts about the student and the organization that only the user can declare."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    competes_with_provider: Literal["yes", "no", "unsure"] | None = Field(
        default=None, description="whether the student competes with the provider's products"
    )
    student_kind: Literal["llm", "classifier", "embedding", "image-generator", "other"] | None = (
        None
    )
    distributed: bool | None = Field(
        default=None, description="the student is distributed or made available to others"
    )
    on_provider_platform: bool | None = Field(
        default=None, description="fine-tuning runs through the provider's own service"
    )
    written_permission: bool | None = Field(
        default=None, description="the provider authorized this use in writing"
    )
    monthly_active_users: int | None = Field(default=None, ge=0)
    region: str | None = Field(
        default=None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 country code"
    )
    commercial: bool | None = None
    web_search_outputs: bool | None = Field(
        default=None,
        description="the outputs used include results of the provider's web-search tool",
    )

    @field_validator("competes_with_provider", mode="before")
    @classmethod
    def _yes_no(cls, value: object) -> object:
        # YAML 1.1 reads an unquoted ``no`` as False: a facts file saying
        # ``competes_with_provider: no`` means "no", not a type error.
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return "yes" if value.strip().lower() in _TRUE else "no"
        return value

    @field_validator("region", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @classmethod
    def coerce(cls, value: DeclaredFacts | Mapping[str, Any] | None) -> DeclaredFacts:
        """Accept a ``DeclaredFacts``, a mapping of field values, or None (nothing declared).

        Raises:
            InputError: an unknown fact name or a value of the wrong kind.
        """
        if value is None:
            return cls()
        if isinstance(value, DeclaredFacts):
            return value
        try:
            return cls.model_validate(dict(value))
        except ValidationError as exc:
            raise InputError(f"bad declared facts: {_first_error(exc)}") from exc

    def merged(self, *overrides: DeclaredFacts | Mapping[str, Any] | None) -> DeclaredFacts:
        """These facts with each override's declared (non-None) fields laid on top, in order."""
        values = self.model_dump()
        for override in overrides:
            layer = DeclaredFacts.coerce(override)
            values.update(layer.model_dump(exclude_none=True))
        return DeclaredFacts.model_validate(values)

    @classmethod
    def parse_pairs(cls, pairs: Iterable[str]) -> DeclaredFacts:
        """Parse ``key=value`` strings (CLI ``--fact``); booleans take yes/no/true/false.

        Raises:
            InputError: a pair without ``=``, an unknown fact, or a value of the wrong kind.
        """
        values: dict[str, object] = {}
        for pair in pairs:
            key, sep, raw = pair.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or not key:
                raise InputError(f"fact {pair!r} is not key=value")
            if key not in cls.model_fields:
                raise InputError(f"unknown fact {key!r} (known: {', '.join(cls.model_fields)})")
            values[key] = _parse_value(key, raw.strip())
        return cls.coerce(values)

    def declared(self) -> dict[str, object]:
        """Only the facts somebody declared."""
        return self.model_dump(exclude_none=True)


def _parse_value(key: str, raw: str) -> object:
    if key in _BOOL_FACTS:
        lowered = raw.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise InputError(f"fact {key!r} takes yes or no, got {raw!r}")
    if key == "monthly_active_users":
        try:
            return int(raw.replace("_", "").replace(",", ""))
        except ValueError:
            raise InputError(f"fact {key!r} takes a whole number, got {raw!r}") from None
    return raw


def load_facts_file(path: Path) -> DeclaredFacts:
    """Read an organization profile: a YAML mapping of declared facts.

    Raises:
        InputError: the file is missing, not YAML, or holds unknown facts or bad values.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read facts file {path}: {exc}") from exc
    if data is None:
        return DeclaredFacts()
    if not isinstance(data, dict):
        raise InputError(f"facts file {path} must hold a mapping of fact: value")
    try:
        return DeclaredFacts.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"facts file {path}: {_first_error(exc)}") from exc


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
