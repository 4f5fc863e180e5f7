"""Provider policies: dated, clause-cited terms and licences, and the engine that applies them.

Invariants:

- Policies are data (``policies/*.yaml``, validated by :mod:`ledger.policy.schema`); code never
  hard-codes what a provider allows.
- A verdict reports what dated terms say, with their sources. It is not legal advice and makes
  no claim about what is lawful or enforceable.
- Nothing unknown is ever reported as ``allowed`` (see :mod:`ledger.policy.engine`).

Example:
    >>> from datetime import UTC, datetime
    >>> from ledger.policy import CallFacts, evaluate
    >>> call = CallFacts(provider="openai", model="gpt-4o", at=datetime(2025, 7, 1, tzinfo=UTC))
    >>> evaluate(call, "evaluate").verdict
    'allowed'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledger._lazy import lazy_exports

if TYPE_CHECKING:
    from ledger.policy.diff import PolicyDiff, RuleChange, diff_policy
    from ledger.policy.engine import conduct_rules, evaluate
    from ledger.policy.facts import CallFacts, DeclaredFacts, load_facts_file
    from ledger.policy.loader import PolicySet, lint_paths, load_policies
    from ledger.policy.schema import CONDUCT_KINDS, PURPOSES
    from ledger.policy.verdict import (
        DutyRef,
        LayerResult,
        Reason,
        RuleRef,
        Verdict,
        policy_digest,
    )

# Each public name's module, imported on first use (PEP 562): the conduct detectors and the
# verdict records are needed by commands that never parse a policy file, and the schema's
# pydantic models are a tenth of a second of start-up (issue 8 point 18).
_HOMES = {
    **dict.fromkeys(("PolicyDiff", "RuleChange", "diff_policy"), "diff"),
    **dict.fromkeys(("conduct_rules", "evaluate"), "engine"),
    **dict.fromkeys(("CallFacts", "DeclaredFacts", "load_facts_file"), "facts"),
    **dict.fromkeys(("PolicySet", "lint_paths", "load_policies"), "loader"),
    **dict.fromkeys(("CONDUCT_KINDS", "PURPOSES"), "schema"),
    **dict.fromkeys(
        ("DutyRef", "LayerResult", "Reason", "RuleRef", "Verdict", "policy_digest"), "verdict"
    ),
}


__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

__all__ = [
    "CONDUCT_KINDS",
    "PURPOSES",
    "CallFacts",
    "DeclaredFacts",
    "DutyRef",
    "LayerResult",
    "PolicyDiff",
    "PolicySet",
    "Reason",
    "RuleChange",
    "RuleRef",
    "Verdict",
    "conduct_rules",
    "diff_policy",
    "evaluate",
    "lint_paths",
    "load_facts_file",
    "load_policies",
    "policy_digest",
]
