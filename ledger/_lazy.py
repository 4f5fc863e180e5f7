"""Package attributes imported from their modules on first use (PEP 562).

A package whose ``__init__`` imported every submodule made a command that needs one name pay
for all of them (``ledger audit conduct`` loaded the policy engine and its pydantic models
through ``ledger.policy``). :func:`lazy_exports` gives such a package its module-level
``__getattr__`` and ``__dir__``: a public name is imported from its module when first read,
then kept in the package like an ordinary attribute.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose public names live in the submodules
    ``homes`` gives (name -> submodule, relative to the package)."""

    def getattr_(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.{home}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def dir_() -> list[str]:
        return sorted({*vars(sys.modules[package]), *homes})

    return getattr_, dir_
