"""The plain coercion of CLI values gives typer's (pydantic) results without importing pydantic."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import typer
from typer._coercion import build_runtime_param, resolve_type_descriptor

from ledger.cli._params import UNSURE, plain_converter

INTS = [
    "0", "5", " 5", "5 ", "\t7\n", "+5", "-0", "-3", "0005", "1_000", "5.0", "-5.000",
    "99999999999999999999999", "5.5", "1.", ".0", "1e0", "5e2", "0x10", "", " ", "1__0", "_1",
    "1_", "inf", "nan", "5\x00", "\u0663", "\uff15", "--5", "+-5", 0, 7, -2,
    "5\u00a0", "\u30005", "\u20285", "\x855", "\x1c5", "5\x1f",  # spaces pydantic strips or not
]  # fmt: skip
STRINGS = ["", "x", " spaced ", "é", "a\x00b", "-", "--json"]
PATHS = ["", ".", "-", "rel/file", "/abs/dir/", "~/x", "a//b", "é"]
OPTIONS: list[tuple[Any, Any]] = [
    (int, typer.Option()),
    (int, typer.Option(min=0)),
    (int, typer.Option(min=1)),
    (int, typer.Argument(min=0)),
    (int, typer.Option(min=2, max=9)),
    (str, typer.Option()),
    (str, typer.Argument()),
    (Path, typer.Option()),
    (Path, typer.Argument()),
    (list[str], typer.Option()),
    (list[Path], typer.Option()),
    (list[int], typer.Option(min=0)),
    (bool, typer.Option()),
]


def typer_result(annotation: Any, info: Any, value: Any) -> object:
    descriptor = resolve_type_descriptor(annotation, info)
    try:
        return build_runtime_param(descriptor)._coerce_value(value, None, None)  # type: ignore[arg-type]  # no parameter or context, as in typer's own prompts
    except typer.BadParameter:
        return "refused"


def plain_result(annotation: Any, info: Any, value: Any) -> object:
    convert = plain_converter(annotation, info)
    assert convert is not None, annotation
    try:
        return convert(value, None, None)
    except typer.BadParameter:
        return "refused"


def values_for(annotation: Any) -> list[Any]:
    base = {int: INTS, str: STRINGS, Path: PATHS, bool: [True, False]}
    if annotation in base:
        return base[annotation]
    (item,) = annotation.__args__
    return [[v] for v in base[item]] + [list(base[item][:3]), (base[item][0],), base[item][1]]


CASES = [
    pytest.param(annotation, info, value, id=f"{annotation}-{i}-{j}")
    for i, (annotation, info) in enumerate(OPTIONS)
    for j, value in enumerate(values_for(annotation))
]


@pytest.mark.parametrize(("annotation", "info", "value"), CASES)
def test_plain_coercion_agrees_with_typer(annotation: Any, info: Any, value: Any) -> None:
    plain = plain_result(annotation, info, value)
    if plain is UNSURE:  # handed to typer's coercion at run time
        return
    expected = typer_result(annotation, info, value)
    assert plain == expected
    assert type(plain) is type(expected)


def test_unsure_values_go_to_typer() -> None:
    # Values of kinds the plain converters do not take are typer's to coerce.
    assert plain_result(int, typer.Option(), 5.0) is UNSURE
    assert plain_result(str, typer.Option(), 5) is UNSURE
    assert plain_result(bool, typer.Option(), "yes") is UNSURE
    assert plain_result(list[int], typer.Option(), ["1", 2.0]) is UNSURE


def test_path_checks_stay_typers(tmp_path: Path) -> None:
    unreadable = tmp_path / "secret"
    unreadable.write_text("x")
    unreadable.chmod(0)
    try:
        info = typer.Option(exists=True, dir_okay=False)
        for value in [str(tmp_path / "missing"), str(tmp_path), str(unreadable)]:
            if value == str(unreadable) and os.access(unreadable, os.R_OK):
                continue  # running as root: every file is readable
            assert plain_result(Path, info, value) == "refused"
            assert typer_result(Path, info, value) == "refused"
        plain = plain_result(Path, typer.Option(resolve_path=True), "rel")
        assert plain == typer_result(Path, typer.Option(resolve_path=True), "rel")
    finally:
        unreadable.chmod(0o600)


def test_what_is_not_plain_keeps_typers_coercion() -> None:
    assert plain_converter(float, typer.Option()) is None
    assert plain_converter(int, typer.Option(min=0, clamp=True)) is None
    assert plain_converter(str, typer.Option(parser=str.upper)) is None
