"""The policy loader's one-pass parse (libyaml when present) reads every shipped file exactly as
PyYAML's pure-Python SafeLoader does, lines included."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ledger._resources import policies_dir
from ledger.policy import loader

FILES = sorted(policies_dir().rglob("*.yaml"))


def test_there_are_policy_files() -> None:
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_one_pass_parse_equals_the_pure_python_loader(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    lines, data = loader._compose(text, path.name)
    assert data == yaml.load(text, Loader=yaml.SafeLoader)
    pure = yaml.compose(text, Loader=yaml.SafeLoader)
    assert pure is not None
    assert lines[()] == pure.start_mark.line + 1


def test_merge_key_overridden_is_not_a_duplicate() -> None:
    text = "x-base: &b\n  a: 1\n  b: 2\nitem:\n  <<: *b\n  b: 3\n"
    # Mapping lines after building the data would see the merged "b" beside the own one.
    lines, data = loader._compose(text, "t.yaml")
    assert data["item"] == {"a": 1, "b": 3}
    assert ("item", "a") in lines


def test_duplicate_key_is_named_with_its_line() -> None:
    with pytest.raises(loader._FileProblemsError) as info:
        loader._compose("a: 1\nb: 2\na: 3\n", "t.yaml")
    assert info.value.problems[0].line == 3
