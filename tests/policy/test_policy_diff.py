"""diff_policy: rules added, removed and reworded between the versions in force on two days."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ledger.policy.diff import diff_policy
from ledger.policy.loader import load_policy_file
from ledger.policy.schema import PolicyFile

_POLICY = """\
id: demo
title: Demo terms
layer: terms
assigner: Demo
assigner_url: https://demo.example
providers: [demo]
versions:
  - id: v1
    effective_from: 2024-01-01
    effective_until: 2024-12-31
    date_basis: effective
    date_confidence: P
    documents: [{id: tos, title: ToS, url: https://demo.example/tos, confidence: P}]
    rules:
      - {id: compete, type: prohibition, purposes: [train-model], source: tos, clause: "2(a)",
         paraphrase: No competing models., confidence: P,
         constraints: [{fact: competes_with_provider, value: "yes"}]}
      - {id: gone, type: prohibition, purposes: [evaluate], source: tos, clause: "3",
         paraphrase: No benchmarks., confidence: S}
      - {id: same, type: prohibition, conduct: key-sharing, source: tos, clause: "4",
         paraphrase: No key sales., confidence: P}
  - id: v2
    effective_from: 2025-01-01
    date_basis: effective
    date_confidence: P
    documents: [{id: tos, title: ToS, url: https://demo.example/tos, confidence: P}]
    rules:
      - {id: compete, type: prohibition, purposes: [train-model], source: tos, clause: "2(b)",
         paraphrase: No competing models., confidence: P}
      - {id: same, type: prohibition, conduct: key-sharing, source: tos, clause: "4",
         paraphrase: No key sales., confidence: P}
      - {id: red-team, type: prohibition, purposes: [red-team], source: tos, clause: "5",
         paraphrase: No unsolicited safety testing., confidence: P}
"""


def _policy(tmp_path: Path) -> PolicyFile:
    path = tmp_path / "demo.yaml"
    path.write_text(_POLICY, encoding="utf-8")
    return load_policy_file(path)


def test_added_removed_and_reworded(tmp_path: Path) -> None:
    found = diff_policy(_policy(tmp_path), dt.date(2024, 6, 1), dt.date(2025, 6, 1))
    assert (found.from_version, found.to_version) == ("v1", "v2")
    assert [c.rule_id for c in found.of_kind("added")] == ["red-team"]
    assert [c.rule_id for c in found.of_kind("removed")] == ["gone"]
    (reworded,) = found.of_kind("reworded")
    assert reworded.rule_id == "compete"
    assert reworded.fields == ("constraints", "clause")
    assert reworded.before is not None
    assert reworded.before["clause"] == "2(a)"
    assert found.changed
    data = found.to_dict()
    assert data["from"] == {"date": "2024-06-01", "version": "v1"}
    assert [c["rule_id"] for c in data["added"]] == ["red-team"]


def test_document_changes_are_listed_without_counting_as_rule_changes(tmp_path: Path) -> None:
    text = _POLICY.replace(
        "    documents: [{id: tos, title: ToS, url: https://demo.example/tos, confidence: P}]\n"
        "    rules:\n      - {id: compete, type: prohibition, purposes: [train-model], source: tos,"
        ' clause: "2(b)"',
        "    documents: [{id: tos, title: ToS 2025, url: https://demo.example/tos,"
        " confidence: P}]\n"
        "    rules:\n      - {id: compete, type: prohibition, purposes: [train-model], source: tos,"
        ' clause: "2(b)"',
    )
    assert text != _POLICY
    path = tmp_path / "demo.yaml"
    path.write_text(text, encoding="utf-8")
    found = diff_policy(load_policy_file(path), dt.date(2024, 6, 1), dt.date(2025, 6, 1))
    (doc,) = found.documents
    assert (doc.document_id, doc.change, doc.fields) == ("tos", "revised", ("title",))
    assert found.to_dict()["documents"][0]["after"]["title"] == "ToS 2025"


def test_same_version_has_no_changes(tmp_path: Path) -> None:
    found = diff_policy(_policy(tmp_path), dt.date(2024, 2, 1), dt.date(2024, 11, 1))
    assert found.from_version == found.to_version == "v1"
    assert found.changes == ()
    assert not found.changed
    assert found.documents == ()


def test_a_day_before_the_first_version_adds_everything(tmp_path: Path) -> None:
    found = diff_policy(_policy(tmp_path), dt.date(2023, 1, 1), dt.date(2024, 6, 1))
    assert found.from_version is None
    assert sorted(c.rule_id for c in found.of_kind("added")) == ["compete", "gone", "same"]
    assert found.changed
