"""Where the licence-layer rules come from: every document names the snapshot it was read from.

The licence half of the evidence table of issue 10 lives beside each source in the policy
files (``documents[].evidence``); these checks keep it complete and honest:

- every licence document says where it was read (or, at confidence S/U, why it was not);
- a primary read (P) names a repository commit, or is a canonical licence text;
- a verbatim copy (C) says which copy;
- no rule claims more confidence than the document it cites.
"""

from __future__ import annotations

import re

import pytest

from ledger.policy.loader import default_policies
from ledger.policy.schema import CONFIDENCE_LEVELS

LICENCES = sorted(p.id for p in default_policies().licences())
_COMMIT = re.compile(r"\b[0-9a-f]{7,40}\b")


@pytest.mark.parametrize("policy_id", LICENCES)
def test_every_licence_document_names_its_snapshot(policy_id: str) -> None:
    policy = default_policies().get(policy_id)
    assert policy is not None
    for version in policy.versions:
        for doc in version.documents:
            where = f"{policy_id}/{version.id}/{doc.id}"
            evidence = doc.evidence or ""
            assert evidence.strip(), f"{where} has no evidence"
            if doc.confidence == "P":
                assert _COMMIT.search(evidence) or "canonical" in evidence, where
            elif doc.confidence == "C":
                assert _COMMIT.search(evidence) or re.search(r"cop(y|ies)|file id", evidence), where


@pytest.mark.parametrize("policy_id", LICENCES)
def test_no_rule_is_surer_than_its_source(policy_id: str) -> None:
    policy = default_policies().get(policy_id)
    assert policy is not None
    for version in policy.versions:
        documents = {doc.id: doc for doc in version.documents}
        for rule in version.rules:
            source = documents[rule.source]
            rank = CONFIDENCE_LEVELS.index
            assert rank(rule.confidence) >= rank(source.confidence), (
                f"{policy_id}/{version.id}/{rule.id} is {rule.confidence} but cites a "
                f"{source.confidence} document"
            )
