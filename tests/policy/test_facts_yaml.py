"""Facts files written the way people write YAML: unquoted yes/no and true/false."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.errors import InputError
from ledger.policy.facts import DeclaredFacts, load_facts_file


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("competes_with_provider: no\n", "no"),
        ("competes_with_provider: yes\n", "yes"),
        ("competes_with_provider: false\n", "no"),
        ("competes_with_provider: true\n", "yes"),
        ("competes_with_provider: 'no'\n", "no"),
        ("competes_with_provider: unsure\n", "unsure"),
    ],
)
def test_yaml_booleans_load_as_yes_no(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "facts.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_facts_file(path).competes_with_provider == expected


def test_boolean_facts_take_yaml_booleans(tmp_path: Path) -> None:
    path = tmp_path / "facts.yaml"
    path.write_text(
        "distributed: yes\ncommercial: no\nweb_search_outputs: true\ncompetes_with_provider: off\n",
        encoding="utf-8",
    )
    facts = load_facts_file(path)
    assert facts.distributed is True
    assert facts.commercial is False
    assert facts.web_search_outputs is True
    assert facts.competes_with_provider == "no"


def test_cli_pairs_take_true_false_for_yes_no_facts() -> None:
    facts = DeclaredFacts.parse_pairs(["competes_with_provider=false", "web-search-outputs=yes"])
    assert facts.competes_with_provider == "no"
    assert facts.web_search_outputs is True


@pytest.mark.parametrize("text", ["competes_with_provider: maybe\n", "competes_with_provider: 3\n"])
def test_other_values_still_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "facts.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match="competes_with_provider"):
        load_facts_file(path)
