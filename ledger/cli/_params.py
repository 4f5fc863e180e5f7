"""Plain coercion of command-line values, so that a command runs without importing pydantic.

Typer (0.2x) turns every parameter value into its annotated type through a pydantic
``TypeAdapter`` built on first use; importing pydantic for that costs a read command about
0.15 s, a third of its start-up budget. The ledger's commands take only plain values: ``str``,
``int`` (with ``min``/``max``), ``pathlib.Path``, flags and lists of these.
:func:`use_plain_coercion` gives each such parameter a coercion that reproduces typer's results
without pydantic; anything else keeps typer's own.

Invariants:

* For the annotations handled here the result, or the refusal (click ``BadParameter``, exit
  2), is the one typer's pydantic coercion gives; a test runs both on valid and invalid values.
  A value of a kind not foreseen (not a string, an int or a list) goes to typer's coercion.
* Path checks (``exists``, ``file_okay``, ``readable``, ...) stay typer's: only the string to
  ``Path`` step, the one that needs pydantic, is done here.
* This relies on typer internals (``_TyperParameter.get_runtime_param``, ``RuntimeParam``,
  ``coerce_cli_path``). Without them (another typer) nothing is changed: typer's coercion runs,
  start-up is slower, behaviour is the same; the start-up test in ``tests/cli`` notices.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin

import typer

try:  # typer internals; see the module docstring
    from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
    from typer._param_types import coerce_cli_path
    from typer.core import _TyperParameter
except ImportError:  # pragma: no cover - another typer: keep its own coercion
    _TyperParameter = None  # type: ignore[assignment,misc]  # marks "not available"

if TYPE_CHECKING:
    from typer.models import ParameterInfo

__all__ = ["plain_converter", "use_plain_coercion"]

#: What a converter returns for a value it does not handle (typer's own coercion takes it).
UNSURE: Any = object()

# (value, typer parameter or None, context or None) -> the value, or UNSURE.
Converter = Callable[[Any, Any, Any], Any]

# pydantic's lax int from a string: ASCII digits, '_' between digits, an optional '.000' tail,
# surrounding Unicode White_Space (Python's isspace() less the separators U+001C..U+001F).
_INT = re.compile(r"[+-]?[0-9]+(?:_[0-9]+)*(?:\.0+)?")
_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _to_str(value: Any, param: Any, ctx: Any) -> Any:
    if isinstance(value, str):
        return value
    return UNSURE


def _to_bool(value: Any, param: Any, ctx: Any) -> Any:
    return value if isinstance(value, bool) else UNSURE  # a flag's value; typer parses strings


def _int_converter(info: ParameterInfo) -> Converter | None:
    if info.clamp:
        return None
    low, high = info.min, info.max

    def convert(value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            return UNSURE
        if isinstance(value, str):
            text = value.strip(_SPACE)
            if not _INT.fullmatch(text):
                raise typer.BadParameter(f"{value!r} is not a whole number", ctx=ctx, param=param)
            value = int(text.partition(".")[0])
        if low is not None and value < low:
            raise typer.BadParameter(
                f"{value} is less than the minimum {low}", ctx=ctx, param=param
            )
        if high is not None and value > high:
            raise typer.BadParameter(
                f"{value} is more than the maximum {high}", ctx=ctx, param=param
            )
        return value

    return convert


def _path_converter(info: ParameterInfo) -> Converter:
    def convert(value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, str):
            value = Path(value)  # what pydantic's Path validator does with a string
        if not isinstance(value, Path):
            return UNSURE
        return coerce_cli_path(value, info, path_type=Path, param=param, ctx=ctx)

    return convert


def _list_converter(item: Converter) -> Converter:
    def convert(value: Any, param: Any, ctx: Any) -> Any:
        items = value if isinstance(value, (list, tuple)) else [value]
        out = [item(v, param, ctx) for v in items]
        return UNSURE if any(v is UNSURE for v in out) else out

    return convert


def plain_converter(annotation: Any, info: ParameterInfo) -> Converter | None:
    """The plain converter for a parameter, or None when typer's coercion must do it."""
    if info.parser is not None:
        return None
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        inner = plain_converter(item, info)
        return None if inner is None else _list_converter(inner)
    if annotation is str:
        return _to_str
    if annotation is bool:
        return _to_bool
    if annotation is int:
        return _int_converter(info)
    if annotation is Path and info.path_type is None:
        return _path_converter(info)
    return None


if _TyperParameter is not None:

    @dataclass(frozen=True)
    class _PlainParam(RuntimeParam):
        """A typer runtime parameter that converts with a plain converter first."""

        convert: Converter
        descriptor: TypeDescriptor

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            result = self.convert(value, param, ctx)
            if result is UNSURE:
                return build_runtime_param(self.descriptor)._coerce_value(value, param, ctx)
            return result


def _plain_param(descriptor: TypeDescriptor) -> RuntimeParam | None:
    if descriptor.is_file or descriptor.is_choice or descriptor.is_datetime:
        return None
    convert = plain_converter(descriptor.annotation, descriptor.parameter_info)
    if convert is None:
        return None
    return _PlainParam(
        parameter_info=descriptor.parameter_info,
        annotation=descriptor.annotation,
        convert=convert,
        descriptor=descriptor,
    )


def use_plain_coercion() -> bool:
    """Make typer coerce plain parameters with :func:`plain_converter` in this process.

    Process-wide (typer builds some parameters, such as ``--help``, only while parsing), so
    only the console-script entry point calls it; results are typer's either way. Returns
    False when typer's internals are not there and nothing was changed.
    """
    if _TyperParameter is None or not hasattr(_TyperParameter, "get_runtime_param"):
        return False  # pragma: no cover - another typer
    original = _TyperParameter.get_runtime_param
    if getattr(original, "_ledger_plain", False):
        return True

    def get_runtime_param(self: _TyperParameter) -> RuntimeParam:
        if self._runtime_param is None:
            self._runtime_param = _plain_param(self.type_descriptor)
        return original(self)

    get_runtime_param._ledger_plain = True  # type: ignore[attr-defined]  # marks the patch
    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]  # see above
    return True
