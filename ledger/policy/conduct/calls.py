"""Normalized calls and draft findings: what every detector reads and what it hands back.

Invariants:

- An entry is parsed once, into a :class:`Call` that holds only metadata (time, provider,
  account, organization, recorder, model, host, status, rate-limit exhaustion, refusal, request
  hash, client identity). Prompts and outputs are never read.
- An entry without a usable time (``started_at``, else ``recorded_at``) yields no call.
- Tolerant of malformed fields: a field of the wrong type reads as absent.
- A :class:`Draft` is a finding before its clauses are looked up; evidence that lists account
  ids stays capped in size while its counts stay complete.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from ledger.policy.conduct.model import (
    SAFETY_FINISH_REASONS,
    EntryLike,
    EvidenceValue,
    Severity,
)

# Organization headers, most specific first. Project headers are deliberately absent: one
# organization's key may serve several projects of that organization.
_ORG_HEADERS = ("openai-organization", "anthropic-organization-id", "x-goog-user-project")
_PROJECT_HEADERS = ("openai-project", "anthropic-workspace")


@dataclass(slots=True)
class Call:
    """The facts of one entry the detectors read, parsed once."""

    leaf: int
    t: float
    provider: str
    account: str | None
    org: str | None
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


def _parse_time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _mapping(value: object) -> Mapping[str, Any]:
    # Bodies parsed from JSON hold plain dicts; the ABC check is the slow path for the rest.
    if type(value) is dict or isinstance(value, Mapping):
        return cast(Mapping[str, Any], value)
    return _EMPTY


_EMPTY: Mapping[str, Any] = {}


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_header(headers: Mapping[str, Any], names: Sequence[str]) -> str | None:
    for name in names:
        value = headers.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _is_exhausted(status: int | None, rate_limit: Mapping[str, Any]) -> bool:
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
        key_id = _opt_str(_mapping(getattr(item, "entry", None)).get("key_id"))
    t = _parse_time(body.get("started_at"))
    if t is None:
        t = _parse_time(body.get("recorded_at"))
    if t is None:
        return None
    org_headers = _mapping(body.get("org_headers"))
    client = _mapping(body.get("client"))
    headers = client.get("headers")
    status = body.get("status")
    status_int = status if isinstance(status, int) and not isinstance(status, bool) else None
    reasons = body.get("finish_reasons")
    refusal = isinstance(reasons, list) and any(
        isinstance(r, str) and r.lower() in SAFETY_FINISH_REASONS for r in reasons
    )
    host = _opt_str(_mapping(body.get("endpoint")).get("host"))
    return Call(
        leaf=leaf,
        t=t,
        provider=_opt_str(body.get("provider")) or "unknown",
        account=_opt_str(body.get("account")),
        org=_first_header(org_headers, _ORG_HEADERS),
        project=_first_header(org_headers, _PROJECT_HEADERS),
        recorder=_opt_str(body.get("recorder")) or key_id,
        model=_opt_str(body.get("request_model")) or _opt_str(body.get("response_model")),
        host=host.lower().rstrip(".") if host else None,
        status=status_int,
        exhausted=_is_exhausted(status_int, _mapping(body.get("rate_limit"))),
        refusal=refusal,
        request_sha256=_opt_str(body.get("request_sha256")),
        user_agent=_opt_str(client.get("user_agent")),
        sdk_headers=(
            {str(k).lower(): v for k, v in headers.items()}
            if isinstance(headers, Mapping)
            else None
        ),
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
