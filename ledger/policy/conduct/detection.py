"""The entry point: run every conduct detector and cite the clauses each finding may breach.

Invariants:

- Pure: entries in, findings out; the only outside knowledge is the clause lookup
  (``ledger.policy.conduct_rules`` unless another is given).
- Calls are sorted by (time, leaf index) once, before any detector runs; ``self-hosted`` calls
  are dropped (open weights on one's own server answer to no provider's terms).
- Entries are kept as compact columns (:mod:`ledger.policy.conduct.columns`) and only the calls
  of groups a detector may fire on become ``Call`` objects; the findings are those of every
  detector over every call (``detect_columns(..., prune=False)``), which a test checks.
- Clauses are those in force at the finding's first entry; findings come out most severe first,
  then by time, kind and entries, so equal input gives equal output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ledger.errors import InputError
from ledger.policy.conduct.accounts import key_sharing, multi_account, rate_limit_evasion
from ledger.policy.conduct.calls import Call, Draft, iso
from ledger.policy.conduct.columns import CallColumns
from ledger.policy.conduct.endpoints import HostClassifier, identity_spoofing, unofficial_endpoint
from ledger.policy.conduct.model import (
    DEFAULT_OFFICIAL_HOSTS,
    SEVERITY_RANK,
    ConductThresholds,
    EntryLike,
    Finding,
    RulesLookup,
)
from ledger.policy.conduct.safety import safety_bypass

# --------------------------------------------------------------------------------------------
# Entry point


def detect(
    entries: Iterable[EntryLike | tuple[int, Mapping[str, Any]]],
    *,
    thresholds: ConductThresholds | None = None,
    official_hosts: Mapping[str, set[str] | frozenset[str]] | None = None,
    rules: RulesLookup | None = None,
) -> list[Finding]:
    """Run every conduct detector over ``entries`` and cite the clauses each finding may breach.

    Args:
        entries: stored entries (anything with ``leaf_index`` and ``body``) or
            ``(leaf_index, body)`` pairs, in any order.
        thresholds: detector limits; the documented defaults when omitted.
        official_hosts: ``{provider: host patterns}`` replacing the default official hosts of
            the providers it names (others keep :data:`DEFAULT_OFFICIAL_HOSTS`).
        rules: the clause lookup; :func:`ledger.policy.conduct_rules` (the shipped policies)
            when omitted.

    Returns:
        Findings, most severe first, then by time.

    Raises:
        InputError: an entry whose body is not a JSON object.

    Example:
        >>> detect([(0, {"provider": "openai", "started_at": "2026-01-01T00:00:00Z",
        ...              "endpoint": {"host": "chatgpt.com"}})])[0].kind
        'unofficial-endpoint'
    """
    columns = CallColumns()
    for item in entries:
        if isinstance(item, tuple):
            leaf, body = item
            if not isinstance(body, Mapping):
                raise InputError(f"entry {leaf}: the body is not a JSON object")
            columns.add(leaf, body)
        else:
            signed = getattr(item, "entry", None)
            key_id = signed.get("key_id") if isinstance(signed, Mapping) else None
            columns.add(
                item.leaf_index, item.body, key_id if isinstance(key_id, str) and key_id else None
            )
    return detect_columns(
        columns, thresholds=thresholds, official_hosts=official_hosts, rules=rules
    )


def detect_columns(
    columns: CallColumns,
    *,
    thresholds: ConductThresholds | None = None,
    official_hosts: Mapping[str, set[str] | frozenset[str]] | None = None,
    rules: RulesLookup | None = None,
    prune: bool = True,
) -> list[Finding]:
    """:func:`detect` over calls already collected in ``columns`` (e.g. during another pass
    over the log). ``prune=False`` hands every call to every detector (the plain path, which
    gives the same findings, slower)."""
    th = thresholds or ConductThresholds()
    classify = HostClassifier(official_hosts_table(official_hosts))
    calls = columns.calls(th, classify, prune=prune)
    return run_detectors(calls, th, classify, rules)


def official_hosts_table(
    overrides: Mapping[str, set[str] | frozenset[str]] | None,
) -> dict[str, frozenset[str]]:
    """The default official hosts with ``overrides`` replacing the providers they name."""
    hosts = dict(DEFAULT_OFFICIAL_HOSTS)
    for provider, patterns in (overrides or {}).items():
        hosts[provider] = frozenset(p.lower() for p in patterns)
    return hosts


def run_detectors(
    calls: list[Call],
    th: ConductThresholds,
    classify: HostClassifier,
    rules: RulesLookup | None = None,
) -> list[Finding]:
    """Every detector over ``calls`` (sorted by time, then leaf), findings cited and sorted."""
    drafts = [
        *multi_account(calls, th),
        *rate_limit_evasion(calls, th),
        *key_sharing(calls, th),
        *unofficial_endpoint(calls, classify),
        *identity_spoofing(calls, classify),
        *safety_bypass(calls, th),
    ]
    if not drafts:
        return []
    lookup = rules
    if lookup is None:
        # The shipped policies are parsed only when there is something to cite: start-up of
        # `ledger audit conduct` on a clean ledger is a target (issue 8 point 18).
        from ledger.policy.engine import conduct_rules

        lookup = conduct_rules
    findings = [_finish(draft, lookup) for draft in drafts]
    findings.sort(
        key=lambda f: (SEVERITY_RANK[f.severity], f.first_at or "", f.kind, f.leaf_indexes)
    )
    return findings


def _finish(draft: Draft, rules: RulesLookup) -> Finding:
    draft.calls.sort(key=lambda c: (c.t, c.leaf))
    first, last = draft.calls[0], draft.calls[-1]
    at = datetime.fromtimestamp(first.t, UTC)
    refs = tuple(rules(draft.provider, draft.kind, at))
    if refs:
        cited = "; ".join(f"{r.clause} [{r.rule_id}]" for r in refs)
        summary = f"{_capitalize(draft.pattern)}, which may breach {cited}."
        note = None
    else:
        note = f"no {draft.kind} clause found for {draft.provider} in force on {at.date()}"
        summary = (
            f"{_capitalize(draft.pattern)}, which may breach the terms of {draft.provider} "
            f"only if they forbid it: {note}."
        )
    return Finding(
        kind=draft.kind,
        severity=draft.severity,
        summary=summary,
        leaf_indexes=tuple(sorted({c.leaf for c in draft.calls})),
        provider=draft.provider,
        clauses=refs,
        clauses_note=note,
        evidence=draft.evidence,
        first_at=iso(first.t),
        last_at=iso(last.t),
    )


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]
