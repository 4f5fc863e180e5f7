"""Policy lint: the shipped files pass, and each kind of bad file fails naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.errors import PolicyParseError
from ledger.policy import lint_paths, load_policies
from ledger.policy.loader import Problem, load_policy_file

GOOD = """\
id: acme
title: Acme API terms
layer: terms
assigner: Acme
assigner_url: https://acme.example
providers: [acme]
versions:
  - id: v1
    effective_from: 2024-01-01
    effective_until: 2024-12-31
    date_basis: effective
    date_confidence: P
    documents:
      - id: terms
        title: Acme terms 2024
        url: https://acme.example/terms
        confidence: P
    rules:
      - id: compete
        type: prohibition
        purposes: [train-model]
        constraints:
          - {fact: competes_with_provider, op: eq, value: "yes"}
        source: terms
        clause: "§3"
        paraphrase: No competing models from outputs.
        confidence: P
  - id: v2
    effective_from: 2025-01-01
    date_basis: effective
    date_confidence: P
    documents:
      - id: terms
        title: Acme terms 2025
        url: https://acme.example/terms
        confidence: P
    rules:
      - id: keys
        type: prohibition
        conduct: key-sharing
        source: terms
        clause: "§4"
        paraphrase: Keys may not be shared.
        confidence: P
"""


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the n-th line containing ``needle``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return hits[occurrence - 1]


def lint_one(tmp_path: Path, text: str, name: str = "acme.yaml") -> list[Problem]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    files, problems = lint_paths([path])
    assert files == [path]
    return problems


def test_shipped_policies_lint_clean() -> None:
    files, problems = lint_paths()
    assert len(files) >= 15
    assert problems == []


def test_good_file_passes(tmp_path: Path) -> None:
    assert lint_one(tmp_path, GOOD) == []


BAD_CASES = [
    # (name, old text, new text, needle on the expected line, occurrence, message fragment)
    (
        "unknown purpose",
        "purposes: [train-model]",
        "purposes: [train-model, sell-outputs]",
        "purposes: [train-model, sell-outputs]",
        1,
        "unknown purpose 'sell-outputs'",
    ),
    (
        "unknown fact",
        "{fact: competes_with_provider,",
        "{fact: competes_with_vendor,",
        "competes_with_vendor",
        1,
        "unknown fact 'competes_with_vendor'",
    ),
    (
        "fact value outside its domain",
        'value: "yes"}',
        "value: maybe}",
        "value: maybe",
        1,
        "'maybe' is not a value of 'competes_with_provider'",
    ),
    (
        "unknown conduct kind",
        "conduct: key-sharing",
        "conduct: key-lending",
        "conduct: key-lending",
        1,
        "unknown conduct kind 'key-lending'",
    ),
    (
        "rule citing no source",
        '        source: terms\n        clause: "§3"',
        '        source: blog-post\n        clause: "§3"',
        "source: blog-post",
        1,
        "cites no source",
    ),
    (
        "extra field",
        "    date_confidence: P\n    documents:",
        "    date_confidence: P\n    reviewed: yes\n    documents:",
        "reviewed: yes",
        1,
        "Extra inputs are not permitted",
    ),
    (
        "overlapping versions",
        "effective_from: 2025-01-01",
        "effective_from: 2024-12-01",
        "effective_from: 2024-12-01",
        1,
        "overlap",
    ),
    (
        "gap between versions",
        "effective_from: 2025-01-01",
        "effective_from: 2025-03-01",
        "effective_from: 2025-03-01",
        1,
        "gap between versions 'v1'",
    ),
    (
        "open-ended version followed by another",
        "    effective_until: 2024-12-31\n",
        "",
        "- id: v1",
        1,
        "has no effective_until",
    ),
    (
        "end before start",
        "effective_until: 2024-12-31",
        "effective_until: 2023-12-31",
        "- id: v1",
        1,
        "is before effective_from",
    ),
    (
        "duplicate key",
        "    date_basis: effective\n    date_confidence: P\n    documents:",
        "    date_basis: effective\n    date_basis: observed\n    date_confidence: P\n"
        "    documents:",
        "date_basis: observed",
        1,
        "duplicate key 'date_basis'",
    ),
    (
        "not YAML",
        "    rules:\n      - id: keys",
        "    rules:\n      - id: keys\n     bad: [unclosed",
        "bad: [unclosed",
        1,
        "not valid YAML",
    ),
    (
        "paraphrase too long to be a paraphrase",
        "paraphrase: Keys may not be shared.",
        "paraphrase: " + "word " * 120,
        "paraphrase: word",
        1,
        "at most 480 characters",
    ),
    (
        "exception pointing at nothing",
        "        confidence: P\n  - id: v2",
        "        confidence: P\n      - id: carve-out\n        type: permission\n"
        "        purposes: [train-model]\n        exception_to: [nothing]\n"
        "        source: terms\n        clause: x\n        paraphrase: y\n"
        "        confidence: P\n  - id: v2",
        "exception_to: [nothing]",
        1,
        "which is not a prohibition of this version",
    ),
    (
        "licence naming providers",
        "layer: terms",
        "layer: licence",
        "providers: [acme]",
        1,
        "names no providers",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "needle", "occurrence", "fragment"),
    [case[1:] for case in BAD_CASES],
    ids=[case[0] for case in BAD_CASES],
)
def test_bad_file_is_reported_with_file_and_line(
    tmp_path: Path, old: str, new: str, needle: str, occurrence: int, fragment: str
) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    problems = lint_one(tmp_path, text)
    matching = [p for p in problems if fragment in p.message]
    assert matching, [str(p) for p in problems]
    expected_line = line_of(text, needle, occurrence)
    assert any(p.line == expected_line for p in matching), [str(p) for p in problems]
    assert all(p.file.endswith("acme.yaml") for p in problems)
    # The raising loader names the same file and a line.
    with pytest.raises(PolicyParseError, match=r"acme\.yaml:\d+: "):
        load_policy_file(tmp_path / "acme.yaml")


def test_file_name_must_match_id(tmp_path: Path) -> None:
    problems = lint_one(tmp_path, GOOD, name="other.yaml")
    assert [p.line for p in problems] == [1]
    assert "differs from file name" in problems[0].message


def test_provider_claimed_by_two_files(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "acme-copy.yaml").write_text(
        GOOD.replace("id: acme\n", "id: acme-copy\n"), encoding="utf-8"
    )
    _, problems = lint_paths([tmp_path])
    assert any("provider 'acme' already has terms policy" in p.message for p in problems)
    with pytest.raises(PolicyParseError, match="already has terms policy"):
        load_policies(tmp_path)


def test_unreadable_path_is_a_problem(tmp_path: Path) -> None:
    _, problems = lint_paths([tmp_path / "missing.yaml"])
    assert len(problems) == 1
    assert "cannot read" in problems[0].message


def test_anchors_and_x_keys_are_allowed(tmp_path: Path) -> None:
    text = GOOD.replace(
        "versions:\n",
        "x-shared: &shared [train-model]\nversions:\n",
        1,
    ).replace("purposes: [train-model]", "purposes: *shared")
    assert lint_one(tmp_path, text) == []


def test_pass_through_route_to_unknown_policy(tmp_path: Path) -> None:
    text = GOOD.replace("layer: terms", "layer: marketplace").replace(
        "providers: [acme]\n",
        "providers: [acme]\npass_through:\n  routes:\n    - {pattern: '^ghost/', policy: ghost}\n",
    )
    problems = lint_one(tmp_path, text)
    assert [p.message for p in problems] == ["pass-through route names unknown 'ghost'"]
