"""Labels of a recorded call (purpose, dataset, tags) and the ``recording()`` scope.

Invariants:

- A purpose is None or one of ``PURPOSES``; anything else is an ``InputError`` wherever it is
  given (recorder, ``recording()`` block, ``x-ledger-purpose`` header).
- Precedence for one call: ``x-ledger-*`` request header, then the innermost ``recording()``
  block, then the recorder's own labels. A ``recording()`` block overrides only what it names.
- Scopes live in a ``ContextVar``: they follow asyncio tasks, and threads started through
  ``contextvars.copy_context().run``; they never leak between concurrent calls.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ledger.errors import InputError
from ledger.vocabulary import PURPOSES

__all__ = ["PURPOSES", "Labels", "as_tags", "check_purpose", "recording", "resolve_labels"]


@dataclass(frozen=True, slots=True)
class Labels:
    """Why a call was made: purpose, dataset and tags recorded with its entry."""

    purpose: str | None = None
    dataset: str | None = None
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_purpose(self.purpose)


def check_purpose(purpose: str | None) -> None:
    """Raise ``InputError`` unless ``purpose`` is None or one of ``PURPOSES``."""
    if purpose is not None and purpose not in PURPOSES:
        allowed = ", ".join(sorted(PURPOSES))
        raise InputError(f"unknown purpose {purpose!r}; use one of: {allowed}")


_UNSET: Any = object()
_scope: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "ledger_recording", default=None
)


@contextlib.contextmanager
def recording(
    *,
    purpose: str | None = _UNSET,
    dataset: str | None = _UNSET,
    tags: Iterable[str] = _UNSET,
) -> Iterator[None]:
    """Override purpose, dataset and/or tags for recorded calls made inside the block.

    Only the labels given are overridden; blocks nest. The labels live in a context variable,
    so they follow asyncio tasks and ``contextvars.copy_context().run`` into other threads.

    Raises:
        InputError: ``purpose`` is not one of ``PURPOSES``.

    Example:
        >>> with ledger.recording(purpose="evaluate", tags=["nightly"]):  # doctest: +SKIP
        ...     client.chat.completions.create(...)
    """
    overrides = dict(_scope.get() or {})
    if purpose is not _UNSET:
        check_purpose(purpose)
        overrides["purpose"] = purpose
    if dataset is not _UNSET:
        overrides["dataset"] = dataset
    if tags is not _UNSET:
        overrides["tags"] = as_tags(tags)
    token = _scope.set(overrides)
    try:
        yield
    finally:
        _scope.reset(token)


def as_tags(tags: Iterable[str] | str) -> tuple[str, ...]:
    """Tags as a tuple of non-empty stripped strings (a string is split on commas)."""
    if isinstance(tags, str):
        tags = tags.split(",")
    return tuple(t.strip() for t in tags if t and t.strip())


def resolve_labels(base: Labels, overrides: Mapping[str, str] | None) -> Labels:
    """The labels of one call: ``base`` under the current scope under header ``overrides``."""
    scope = _scope.get()
    if scope is None and overrides is None:
        return base
    purpose, dataset, tags = base.purpose, base.dataset, base.tags
    if scope:
        purpose = scope.get("purpose", purpose)
        dataset = scope.get("dataset", dataset)
        tags = scope.get("tags", tags)
    if overrides:
        purpose = overrides.get("x-ledger-purpose", purpose)
        dataset = overrides.get("x-ledger-dataset", dataset)
        if "x-ledger-tags" in overrides:
            tags = as_tags(overrides["x-ledger-tags"])
    return Labels(purpose=purpose, dataset=dataset, tags=tags)
