"""Normalized calls and draft findings: what every detector reads and what it hands back.

Invariants:

- An entry is parsed once, by ``ledger.entry_body.read_call`` (the one body reader), into a
  :class:`Call` that holds only metadata (time, provider, account, organization, recorder,
  model, host, status, rate-limit exhaustion, refusal, request hash, client identity). Prompts
  and outputs are never read.
- An entry without a usable time (``started_at``, else ``recorded_at``, with a zone) yields no
  call.
- Tolerant of malformed fields: a field of the wrong type reads as absent.
- A :class:`Draft` is a finding before its clauses are looked up; evidence that lists account
  ids stays capped in size while its counts stay complete.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from ledger.entry_body import read_call
from ledger.policy.conduct.model import (
    SAFETY_FINISH_REASONS,
    EntryLike,
    EvidenceValue,
    Severity,
)


@dataclass(slots=True)
class Call:
    """The facts of one entry the detectors read, parsed once."""

    leaf: int
    t: float
    provider: str
    account: str | None
    org: str | None
    sent_org: str | None
    project: str | None
    recorder: str | None
    model: str | None
    host: str | None
    status: int | None
    exhausted: bool
    refusal: bool
    request_sha256: str | None
    user_agent: str | None
    sdk_headers: Mapping[str, Any] | None


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def mapping_or_empty(value: object) -> Mapping[str, Any]:
    # Bodies parsed from JSON hold plain dicts; the ABC check is the slow path for the rest.
    if type(value) is dict or isinstance(value, Mapping):
        return cast(Mapping[str, Any], value)
    return _EMPTY


_EMPTY: Mapping[str, Any] = {}


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def is_exhausted(status: int | None, rate_limit: Mapping[str, Any]) -> bool:
    if status == 429:
        return True
    for name, value in rate_limit.items():
        if "remaining" not in name or _as_int(value) != 0:
            continue
        # Azure OpenAI reports remaining 0 with a limit of 0 or -1 on some APIs (recorders.md
        # section 4): a limit that is not positive means "not reported", not exhaustion.
        limit = _as_int(rate_limit.get(name.replace("remaining", "limit")))
        if limit is None or limit > 0:
            return True
    return False


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def normalize(item: EntryLike | tuple[int, Mapping[str, Any]]) -> Call | None:
    if isinstance(item, tuple):
        leaf, body = item
        key_id = None
    else:
        leaf, body = item.leaf_index, item.body
        key_id = _opt_str(mapping_or_empty(getattr(item, "entry", None)).get("key_id"))
    # One reader for every layer (ledger.entry_body): the time is started_at else recorded_at,
    # aware UTC; the model is the one the caller asked for, so that a 429 (no response model)
    # and the retry after it group together; ``org`` is the organization the provider
    # reported, else the one the request sent; ``sent_org`` only the one the request sent.
    view = read_call(body)
    if view.at is None:
        return None
    refusal = any(r.lower() in SAFETY_FINISH_REASONS for r in view.finish_reasons)
    return Call(
        leaf=leaf,
        t=view.at.timestamp(),
        provider=view.provider,
        account=view.account,
        org=view.organization,
        sent_org=view.sent_organization,
        project=view.project,
        recorder=view.recorder or key_id,
        model=view.requested_model,
        host=view.host,
        status=view.status,
        exhausted=is_exhausted(view.status, view.rate_limit),
        refusal=refusal,
        request_sha256=view.request_sha256,
        user_agent=view.user_agent,
        sdk_headers=view.sdk_headers,
    )


# --------------------------------------------------------------------------------------------
# Findings before their clauses are looked up


@dataclass(slots=True)
class Draft:
    kind: str
    severity: Severity
    provider: str
    pattern: str  # what happened, one clause of a sentence, without the citation
    calls: list[Call]
    evidence: dict[str, EvidenceValue]


def short(account: str | None) -> str:
    return account[:12] if account else "(none)"


_LISTED_ACCOUNTS = 20  # evidence stays small: counts are complete, listed ids are capped


def listed(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values))[:_LISTED_ACCOUNTS])


def short_accounts(calls: Iterable[Call]) -> tuple[str, ...]:
    return listed(short(c.account) for c in calls)
