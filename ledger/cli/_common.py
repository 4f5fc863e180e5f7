"""What every CLI command shares: error-to-exit-code mapping, JSON output, settings.

Exit codes (the CLI contract): 0 ok, 1 a check failed, 2 usage or input error. Errors print one
line on stderr, never a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TextIO, TypeVar

import typer

from ledger.errors import ConfigError, LedgerError, VerificationError
from ledger.read_settings import ReadSettings

if TYPE_CHECKING:
    from ledger._ledger import Ledger
    from ledger.settings import Settings

__all__ = [
    "EXIT_CHECK_FAILED",
    "EXIT_INPUT",
    "current_settings",
    "fail",
    "handle_errors",
    "new_file",
    "open_ledger",
    "print_json",
    "read_settings",
    "set_overrides",
]

EXIT_CHECK_FAILED = 1
EXIT_INPUT = 2

P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, code: int = EXIT_INPUT) -> typer.Exit:
    """Print ``message`` as one line on stderr and return the ``typer.Exit`` to raise."""
    one_line = " ".join(str(message).split())
    typer.echo(f"ledger: {one_line}", err=True)
    return typer.Exit(code)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn :class:`LedgerError` into one stderr line and the contract's exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except VerificationError as exc:
            raise fail(str(exc), EXIT_CHECK_FAILED) from None
        except LedgerError as exc:
            raise fail(str(exc), EXIT_INPUT) from None

    return wrapper


@contextmanager
def new_file(path: Path, option: str, mode: int = 0o666) -> Iterator[TextIO]:
    """A text file that ``option`` writes, created here: a path that exists is refused (exit 2),
    so a mistyped path never replaces a dataset or a key. ``mode`` applies from creation (less
    the umask), which is what keeps a secret file 0600: an existing file would keep its own."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise fail(f"{path} already exists ({option} writes a new file)") from None
    except OSError as exc:
        raise fail(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            yield handle
    except OSError as exc:
        raise fail(f"cannot write {path}: {exc.strerror}") from None


def print_json(value: Any) -> None:
    """Print one JSON document on stdout (sorted keys, so output is stable)."""
    sys.stdout.write(json.dumps(value, sort_keys=True, ensure_ascii=False) + "\n")


# Set by the root command's callback from --home/--db on every invocation.
_overrides: dict[str, Any] = {}


def set_overrides(**values: Any) -> None:
    """Record the global options of this invocation (called by the root callback)."""
    _overrides.clear()
    _overrides.update(values)


def current_settings() -> Settings:
    """Settings from the environment, with the global ``--home``/``--db`` options applied."""
    from ledger.settings import Settings  # here: pydantic-settings costs a read command 0.1 s

    overrides = {k: v for k, v in _overrides.items() if v is not None}
    try:
        return Settings(**overrides)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        first = str(exc).splitlines()
        raise ConfigError(f"invalid LEDGER_* setting: {' '.join(first[:3])}") from exc


def read_settings() -> ReadSettings:
    """What a read-only open needs, from the environment and ``--home``/``--db``.

    The same values :func:`current_settings` gives for those fields (a test compares them),
    without importing pydantic-settings.
    """
    return ReadSettings.from_env(
        home=_overrides.get("home"), database_url=_overrides.get("database_url")
    )


def open_ledger(*, write: bool = False, create: bool = False) -> Ledger:
    """Open the ledger the current settings describe.

    Read-only unless ``write``: a reading command needs no key, never creates or migrates
    anything, and fails (exit 2) naming the place when there is no ledger there. ``write``
    opens an existing ledger for writing; only ``create`` (``ledger init``) makes a new one.
    """
    from ledger._ledger import Ledger

    if not (write or create):
        return Ledger.from_settings(read_settings(), read_only=True)
    settings = current_settings()
    if create:
        return Ledger.from_settings(settings)
    return Ledger.from_settings(settings, create=False)
