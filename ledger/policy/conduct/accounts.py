"""Conduct detectors: patterns across recorded calls that a provider's terms forbid, whatever the
purpose the outputs serve.

Invariants:

- Pure: entries in, findings out. No SQL, no files, no network, no clock, no environment. The
  only outside knowledge is the clause lookup (``ledger.policy.conduct_rules`` by default), which
  reads the packaged policy files.
- Content-free: every detector works on entry metadata (times, accounts, hosts, headers, status,
  finish reasons, hashes). Stored prompts and outputs are never needed.
- Deterministic and bounded: entries are sorted by time once (O(n log n)); every detector then
  makes one pass with per-key state and sliding windows, so the whole run is O(n log n).
- A finding reports a pattern and what dated terms say about it, never an accusation: its summary
  says "may breach" and cites the clauses in force at the time of the finding's first entry (or
  says that no clause was found for that provider). ``self-hosted`` and ``unknown`` providers
  never produce an unofficial-endpoint finding; entries without a usable time are ignored.

Detectors and their thresholds (:class:`ConductThresholds`, defaults in brackets):

1. ``multi-account``: within one organization (the value of an organization header such as
   ``openai-organization`` when present, otherwise the whole ledger, whose recorders all act for
   the organization that runs it), the calls of each account to a provider form sessions (calls
   no more than ``multi_account_gap_seconds`` [900] apart). Sessions of at least
   ``multi_account_min_accounts`` [2] distinct accounts that overlap in time fire. Severity:
   ``low``; ``medium`` from ``multi_account_many_accounts`` [3] accounts; ``high`` when another
   account takes over within ``exhaustion_switch_seconds`` [60] after one account was exhausted
   (HTTP 429, or a ``*remaining*`` rate-limit header at 0). Accounts used one after the other
   (a key rotation) never overlap and do not fire.
2. ``rate-limit-evasion``: a 429 on account A, then a successful (2xx) call on another account
   (of any organization) to the same provider and model within ``evasion_window_seconds``
   [120]. Events chain into one finding while they follow each other within that window.
   ``medium``; ``high`` when at least ``evasion_high_switches`` [3] distinct 429s were followed
   that way. A retry on the same
   account never fires.
3. ``key-sharing``: one account fingerprint seen (in calls the provider did not reject with 401
   or 403) under at least ``key_sharing_min_orgs`` [2] organization header values (``high``), or
   used by at least ``key_sharing_min_recorders`` [2] recorders in overlapping sessions (gap
   ``key_sharing_gap_seconds`` [900]; ``low``, since teams of one organization may share a key).
   Project headers are reported but are not organizations: one organization's key may serve
   several of its projects. Two processes of one recorder are one recorder.
4. ``unofficial-endpoint``: a call whose host is not in the provider's official API hosts
   (:data:`DEFAULT_OFFICIAL_HOSTS`, overridable per provider). ``high`` for consumer web
   endpoints (:data:`CONSUMER_WEB_HOSTS`), ``medium`` for other public hosts (resellers,
   proxies, routers), ``low`` for loopback and private hosts (an in-house gateway whose upstream
   the ledger cannot see). Providers missing from the table are not judged.
5. ``identity-spoofing``: a client identity that contradicts the headers sent with it: a
   Stainless SDK user agent (``OpenAI/Python 1.2.3``, ``Anthropic/JS 0.30.0``) whose
   ``x-stainless-package-version`` or ``x-stainless-lang`` disagrees (``high``) or is missing
   (``medium``); an Anthropic SDK user agent on ``anthropic`` without ``anthropic-version``
   (``medium``); a browser user agent on an official API host without the markers the SDKs send
   from browsers (``medium``); ``x-goog-api-client`` and the user agent naming different
   ``google-genai-sdk`` versions, or only one of them naming it (``high``; ``medium`` when the
   header is missing). Entries whose recorder captured no SDK headers are not judged.
6. ``safety-bypass``: a refusal or safety stop (finish reason in :data:`SAFETY_FINISH_REASONS`)
   followed within ``safety_retry_seconds`` [120] by another call on the same provider, account
   and model. Such retries chain into one finding while each follows the previous one within
   ``safety_window_seconds`` [900]; at least ``safety_min_refusals`` [3] are needed, ``high``
   from ``safety_high_refusals`` [10]. Whether a retry changed the request is read from
   ``request_sha256`` only.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, cast

from ledger.errors import InputError
from ledger.policy.engine import conduct_rules
from ledger.policy.verdict import RuleRef

__all__ = [
    "CONSUMER_WEB_HOSTS",
    "DEFAULT_OFFICIAL_HOSTS",
    "SAFETY_FINISH_REASONS",
    "ConductThresholds",
    "EntryLike",
    "Finding",
    "RulesLookup",
    "detect",
    "load_conduct_config",
]

Severity = Literal["low", "medium", "high"]
EvidenceValue = int | float | str | bool | None | tuple[str, ...]

_SEVERITY_RANK: dict[str, int] = {"high": 0, "medium": 1, "low": 2}

DEFAULT_OFFICIAL_HOSTS: Mapping[str, frozenset[str]] = {
    "openai": frozenset({"api.openai.com", "us.api.openai.com", "eu.api.openai.com"}),
    "azure.ai.openai": frozenset(
        {"*.openai.azure.com", "*.cognitiveservices.azure.com", "*.services.ai.azure.com"}
    ),
    "anthropic": frozenset({"api.anthropic.com"}),
    "gcp.gemini": frozenset(
        {
            "generativelanguage.googleapis.com",
            "aiplatform.googleapis.com",
            "*-aiplatform.googleapis.com",
        }
    ),
    "gcp.vertex_ai": frozenset({"aiplatform.googleapis.com", "*-aiplatform.googleapis.com"}),
    "aws.bedrock": frozenset(
        {"bedrock-runtime.*.amazonaws.com", "bedrock-runtime-fips.*.amazonaws.com"}
    ),
    "deepseek": frozenset({"api.deepseek.com"}),
    "openrouter": frozenset({"openrouter.ai"}),
    "together": frozenset({"api.together.xyz", "api.together.ai"}),
    "groq": frozenset({"api.groq.com"}),
    "mistral_ai": frozenset({"api.mistral.ai", "codestral.mistral.ai"}),
    "x_ai": frozenset({"api.x.ai"}),
    "cohere": frozenset({"api.cohere.com", "api.cohere.ai"}),
}
"""Official API hosts per provider (``fnmatch`` patterns, matched against the lowercased host)."""

CONSUMER_WEB_HOSTS: frozenset[str] = frozenset(
    {
        "chatgpt.com",
        "*.chatgpt.com",
        "chat.openai.com",
        "claude.ai",
        "*.claude.ai",
        "gemini.google.com",
        "bard.google.com",
        "aistudio.google.com",
        "grok.com",
        "*.grok.com",
        "chat.mistral.ai",
        "chat.deepseek.com",
        "chat.qwen.ai",
        "copilot.microsoft.com",
        "meta.ai",
        "www.meta.ai",
    }
)
"""Consumer chat applications: automated use of them is not API use under any provider's terms."""

SAFETY_FINISH_REASONS: frozenset[str] = frozenset(
    {
        "content_filter",  # OpenAI, Azure OpenAI
        "refusal",  # Anthropic stop reason; OpenAI Responses refusals
        "safety",  # Gemini
        "prohibited_content",
        "blocklist",
        "spii",
        "image_safety",
        "image_prohibited_content",
    }
)
"""Finish reasons (compared lowercased) that mean the provider refused or stopped for safety."""

# Organization headers, most specific first. Project headers are deliberately absent: one
# organization's key may serve several projects of that organization.
_ORG_HEADERS = ("openai-organization", "anthropic-organization-id", "x-goog-user-project")
_PROJECT_HEADERS = ("openai-project", "anthropic-workspace")
_LEDGER_ORG = "(ledger)"

_STAINLESS_UA = re.compile(r"^(OpenAI|Anthropic)/([A-Za-z]+) ([0-9][0-9A-Za-z.+-]*)")
# Only languages whose x-stainless-lang spelling is known are compared.
_STAINLESS_LANGS = {"python": "python", "js": "js"}
_GENAI_TOKEN = re.compile(r"google-genai-sdk/(\S+)")


class EntryLike(Protocol):
    """What :func:`detect` needs of a stored entry (``ledger.StoredEntry`` satisfies it)."""

    @property
    def leaf_index(self) -> int: ...

    @property
    def body(self) -> Mapping[str, Any]: ...


RulesLookup = Callable[[str, str, datetime], Sequence[RuleRef]]
"""``(provider, kind, at) -> rule references``: the shape of ``ledger.policy.conduct_rules``."""


@dataclass(frozen=True, slots=True)
class ConductThresholds:
    """Tunable limits of the detectors; every default is documented in the module docstring."""

    multi_account_gap_seconds: float = 900.0
    multi_account_min_accounts: int = 2
    multi_account_many_accounts: int = 3
    exhaustion_switch_seconds: float = 60.0
    evasion_window_seconds: float = 120.0
    evasion_high_switches: int = 3
    key_sharing_min_orgs: int = 2
    key_sharing_min_recorders: int = 2
    key_sharing_gap_seconds: float = 900.0
    safety_retry_seconds: float = 120.0
    safety_window_seconds: float = 900.0
    safety_min_refusals: int = 3
    safety_high_refusals: int = 10

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InputError(f"conduct threshold {f.name} must be a positive number")
            if f.type == "int" and not isinstance(value, int):
                raise InputError(f"conduct threshold {f.name} must be an integer")
        if self.multi_account_min_accounts < 2 or self.key_sharing_min_orgs < 2:
            raise InputError("account and organization thresholds need at least 2")
        if self.key_sharing_min_recorders < 2:
            raise InputError("conduct threshold key_sharing_min_recorders needs at least 2")

    def to_dict(self) -> dict[str, float | int]:
        """The thresholds as a plain mapping (field name to value)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ConductThresholds:
        """Build thresholds from a mapping; unknown names raise :class:`InputError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown conduct threshold(s): {', '.join(unknown)}")
        return cls(**cast(dict[str, Any], dict(data)))


def load_conduct_config(
    data: Mapping[str, object],
) -> tuple[ConductThresholds, dict[str, frozenset[str]] | None]:
    """Read a conduct configuration mapping (as parsed from YAML).

    The mapping holds threshold fields at the top level and, optionally, ``official_hosts``:
    ``{provider: [host pattern, ...]}``, which replaces the default hosts of the providers it names.

    Raises:
        InputError: an unknown key or a malformed value.
    """
    rest = dict(data)
    hosts_raw = rest.pop("official_hosts", None)
    hosts: dict[str, frozenset[str]] | None = None
    if hosts_raw is not None:
        if not isinstance(hosts_raw, Mapping):
            raise InputError("official_hosts must map a provider to a list of hosts")
        hosts = {}
        for provider, values in hosts_raw.items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise InputError(f"official_hosts.{provider} must be a list of host names")
            hosts[str(provider)] = frozenset(v.lower() for v in values)
    return ConductThresholds.from_dict(rest), hosts


@dataclass(frozen=True, slots=True)
class Finding:
    """One conduct pattern over one or more entries, with the clauses it may breach.

    Attributes:
        kind: one of ``ledger.policy.CONDUCT_KINDS``.
        severity: ``low``, ``medium`` or ``high`` (rules in the module docstring).
        summary: one plain sentence: the pattern, then "may breach" and the clauses cited.
        leaf_indexes: the entries that make up the pattern, ascending.
        provider: the provider whose terms are cited.
        clauses: the conduct rules in force at ``first_at`` (possibly empty).
        clauses_note: why ``clauses`` is empty, else ``None``.
        evidence: the numbers (and account, host or header values) that made it fire.
        first_at, last_at: start times of the first and last entry of the pattern.
    """

    kind: str
    severity: Severity
    summary: str
    leaf_indexes: tuple[int, ...]
    provider: str
    clauses: tuple[RuleRef, ...] = ()
    clauses_note: str | None = None
    evidence: Mapping[str, EvidenceValue] = field(default_factory=dict)
    first_at: str | None = None
    last_at: str | None = None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready mapping (inverse of :meth:`from_dict`)."""
        return {
            "kind": self.kind,
            "severity": self.severity,
            "summary": self.summary,
            "leaf_indexes": list(self.leaf_indexes),
            "provider": self.provider,
            "clauses": [r.to_dict() for r in self.clauses],
            "clauses_note": self.clauses_note,
            "evidence": {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.evidence.items()
            },
            "first_at": self.first_at,
            "last_at": self.last_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Rebuild a finding from :meth:`to_dict` output.

        Raises:
            InputError: a missing or malformed field.
        """
        try:
            severity = data["severity"]
            if severity not in _SEVERITY_RANK:
                raise ValueError(f"unknown severity {severity!r}")
            evidence = {
                str(k): tuple(v) if isinstance(v, list) else v
                for k, v in dict(data.get("evidence") or {}).items()
            }
            return cls(
                kind=str(data["kind"]),
                severity=severity,
                summary=str(data["summary"]),
                leaf_indexes=tuple(int(i) for i in data["leaf_indexes"]),
                provider=str(data["provider"]),
                clauses=tuple(RuleRef.from_dict(r) for r in data.get("clauses") or ()),
                clauses_note=data.get("clauses_note"),
                evidence=evidence,
                first_at=data.get("first_at"),
                last_at=data.get("last_at"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed conduct finding: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Normalized calls


@dataclass(slots=True)
class _Call:
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


def _iso(t: float) -> str:
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


def _normalize(item: EntryLike | tuple[int, Mapping[str, Any]]) -> _Call | None:
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
    return _Call(
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
class _Draft:
    kind: str
    severity: Severity
    provider: str
    pattern: str  # what happened, one clause of a sentence, without the citation
    calls: list[_Call]
    evidence: dict[str, EvidenceValue]


def _short(account: str | None) -> str:
    return account[:12] if account else "(none)"


_LISTED_ACCOUNTS = 20  # evidence stays small: counts are complete, listed ids are capped


def _listed(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values))[:_LISTED_ACCOUNTS])


def _accounts(calls: Iterable[_Call]) -> tuple[str, ...]:
    return _listed(_short(c.account) for c in calls)


# --------------------------------------------------------------------------------------------
# Sessions: runs of one member's calls, and the clusters in which sessions overlap


@dataclass(slots=True)
class _Session:
    member: str
    start: float
    end: float
    calls: list[_Call]


def _overlapping_sessions(
    calls: Iterable[_Call], member: Callable[[_Call], str | None], gap: float
) -> list[tuple[set[str], list[_Call]]]:
    """Clusters of time-overlapping sessions as (distinct members, calls in time order).

    ``calls`` must be in time order. A session is a run of one member's calls no more than
    ``gap`` seconds apart; two sessions overlap when one starts strictly before the other ends,
    so a member that takes over after another stopped (a key rotation) does not overlap it.
    """
    open_sessions: dict[str, _Session] = {}
    sessions: list[_Session] = []
    for call in calls:
        key = member(call)
        if key is None:
            continue
        current = open_sessions.get(key)
        if current is None or call.t - current.end > gap:
            current = _Session(key, call.t, call.t, [call])
            open_sessions[key] = current
            sessions.append(current)
        else:
            current.end = call.t
            current.calls.append(call)
    sessions.sort(key=lambda s: s.start)
    clusters: list[tuple[set[str], list[_Session]]] = []
    cluster_end = float("-inf")
    for session in sessions:
        if clusters and session.start < cluster_end:
            clusters[-1][0].add(session.member)
            clusters[-1][1].append(session)
            cluster_end = max(cluster_end, session.end)
        else:
            clusters.append(({session.member}, [session]))
            cluster_end = session.end
    result: list[tuple[set[str], list[_Call]]] = []
    for members, group in clusters:
        if len(members) < 2:
            continue
        merged = [c for s in group for c in s.calls]
        merged.sort(key=lambda c: (c.t, c.leaf))
        result.append((members, merged))
    return result


# --------------------------------------------------------------------------------------------
# 1. multi-account


@dataclass(slots=True)
class _Exhaustion:
    account: str | None = None
    t: float = float("-inf")
    followed: bool = False


def _switches_after_exhaustion(cluster: Sequence[_Call], window: float) -> tuple[int, int]:
    """(exhaustions another account took over from within ``window``, exhausted calls).

    Times only grow along ``cluster``, so the newest exhaustion of the two most recently
    exhausted accounts is all the state needed: one of them is not the current call's account.
    """
    latest, previous = _Exhaustion(), _Exhaustion()
    switches = exhausted = 0
    for call in cluster:
        other = latest if latest.account != call.account else previous
        if other.account is not None and not other.followed and call.t - other.t <= window:
            other.followed = True
            switches += 1
        if call.exhausted:
            exhausted += 1
            if latest.account == call.account:
                latest = _Exhaustion(call.account, call.t)
            else:
                previous, latest = latest, _Exhaustion(call.account, call.t)
    return switches, exhausted


def _multi_account(calls: Sequence[_Call], th: ConductThresholds) -> list[_Draft]:
    groups: dict[tuple[str, str], list[_Call]] = {}
    for call in calls:
        if call.account is not None:
            groups.setdefault((call.provider, call.org or _LEDGER_ORG), []).append(call)
    drafts: list[_Draft] = []
    for (provider, org), group in groups.items():
        for members, cluster in _overlapping_sessions(
            group, lambda c: c.account, th.multi_account_gap_seconds
        ):
            if len(members) < th.multi_account_min_accounts:
                continue
            switches, exhausted = _switches_after_exhaustion(cluster, th.exhaustion_switch_seconds)
            severity: Severity = "low"
            if switches:
                severity = "high"
            elif len(members) >= th.multi_account_many_accounts:
                severity = "medium"
            who = "" if org == _LEDGER_ORG else f" under organization {org}"
            pattern = (
                f"{len(members)} accounts were used against {provider}{who} in overlapping "
                f"sessions ({len(cluster)} calls)"
            )
            if switches:
                pattern += f", {switches} time(s) taking over right after one hit its rate limit"
            drafts.append(
                _Draft(
                    "multi-account",
                    severity,
                    provider,
                    pattern,
                    list(cluster),
                    {
                        "accounts": len(members),
                        "calls": len(cluster),
                        "switches_after_exhaustion": switches,
                        "exhausted_calls": exhausted,
                        "organization": org,
                        "account_ids": _accounts(cluster),
                    },
                )
            )
    return drafts


# --------------------------------------------------------------------------------------------
# 2. rate-limit-evasion


@dataclass(slots=True)
class _EvasionEpisode:
    provider: str
    model: str | None
    last_t: float
    calls: list[_Call] = field(default_factory=list)
    events: int = 0
    followed_429s: int = 0
    from_accounts: set[str] = field(default_factory=set)
    to_accounts: set[str] = field(default_factory=set)
    max_delay: float = 0.0


@dataclass(slots=True)
class _EvasionState:
    recent: deque[_Call] = field(default_factory=deque)  # 429s inside the window
    counts: dict[str, int] = field(default_factory=dict)  # account -> 429s inside the window
    unfollowed: deque[_Call] = field(default_factory=deque)  # 429s no switch followed yet
    episode: _EvasionEpisode | None = None


def _rate_limit_evasion(calls: Sequence[_Call], th: ConductThresholds) -> list[_Draft]:
    window = th.evasion_window_seconds
    states: dict[tuple[str, str | None], _EvasionState] = {}
    episodes: list[_EvasionEpisode] = []
    for call in calls:
        account = call.account
        if account is None:
            continue
        st = states.setdefault((call.provider, call.model), _EvasionState())
        while st.recent and call.t - st.recent[0].t > window:
            old = st.recent.popleft().account or ""
            st.counts[old] -= 1
            if not st.counts[old]:
                del st.counts[old]
        while st.unfollowed and call.t - st.unfollowed[0].t > window:
            st.unfollowed.popleft()
        if call.status == 429:
            st.recent.append(call)
            st.counts[account] = st.counts.get(account, 0) + 1
            st.unfollowed.append(call)
            continue
        if call.status is None or not 200 <= call.status < 300:
            continue
        if not st.counts or (len(st.counts) == 1 and account in st.counts):
            continue
        episode = st.episode
        if episode is None or call.t - episode.last_t > window:
            episode = _EvasionEpisode(call.provider, call.model, call.t)
            st.episode = episode
            episodes.append(episode)
        # The 429s of other accounts that this call follows are evidence; each is counted once.
        keep: deque[_Call] = deque()
        for limited in st.unfollowed:
            if limited.account == account:
                keep.append(limited)
            else:
                episode.followed_429s += 1
                episode.calls.append(limited)
                episode.from_accounts.add(_short(limited.account))
                episode.max_delay = max(episode.max_delay, call.t - limited.t)
        st.unfollowed = keep
        episode.to_accounts.add(_short(account))
        episode.calls.append(call)
        episode.events += 1
        episode.last_t = call.t
    drafts: list[_Draft] = []
    for ep in episodes:
        severity: Severity = "high" if ep.followed_429s >= th.evasion_high_switches else "medium"
        model = ep.model or "(unnamed model)"
        drafts.append(
            _Draft(
                "rate-limit-evasion",
                severity,
                ep.provider,
                f"after {ep.followed_429s} rate-limit refusal(s) (HTTP 429) on {ep.provider} "
                f"{model}, {ep.events} call(s) succeeded on other accounts within "
                f"{window:g} seconds",
                ep.calls,
                {
                    "rate_limited_calls_followed": ep.followed_429s,
                    "calls_on_other_accounts": ep.events,
                    "max_delay_seconds": round(ep.max_delay, 3),
                    "model": ep.model,
                    "from_accounts": _listed(ep.from_accounts),
                    "to_accounts": _listed(ep.to_accounts),
                },
            )
        )
    return drafts


# --------------------------------------------------------------------------------------------
# 3. key-sharing


def _key_sharing(calls: Sequence[_Call], th: ConductThresholds) -> list[_Draft]:
    groups: dict[tuple[str, str], list[_Call]] = {}
    for call in calls:
        # A call the provider rejected as unauthorized does not show the key working there.
        if call.account is not None and call.status not in (401, 403):
            groups.setdefault((call.provider, call.account), []).append(call)
    drafts: list[_Draft] = []
    for (provider, account), group in groups.items():
        with_org = [c for c in group if c.org is not None]
        orgs = {c.org for c in with_org if c.org is not None}
        if len(orgs) >= th.key_sharing_min_orgs:
            drafts.append(
                _Draft(
                    "key-sharing",
                    "high",
                    provider,
                    f"account {_short(account)} was used on {provider} under {len(orgs)} "
                    f"organizations ({', '.join(sorted(orgs))})",
                    with_org,
                    {
                        "organizations": tuple(sorted(orgs)),
                        "projects": tuple(sorted({c.project for c in group if c.project})),
                        "calls": len(with_org),
                        "account_id": _short(account),
                    },
                )
            )
        for members, cluster in _overlapping_sessions(
            group, lambda c: c.recorder, th.key_sharing_gap_seconds
        ):
            if len(members) < th.key_sharing_min_recorders:
                continue
            drafts.append(
                _Draft(
                    "key-sharing",
                    "low",
                    provider,
                    f"account {_short(account)} was used on {provider} by {len(members)} "
                    f"recorders in overlapping sessions ({len(cluster)} calls)",
                    list(cluster),
                    {
                        "recorders": _listed(members),
                        "calls": len(cluster),
                        "account_id": _short(account),
                    },
                )
            )
    return drafts


# --------------------------------------------------------------------------------------------
# 4. unofficial-endpoint

HostClass = Literal["official", "consumer", "private", "public", "unjudged"]


class _HostClassifier:
    """Classifies (provider, host) pairs, caching each pair: real logs hold few distinct hosts."""

    def __init__(self, official: Mapping[str, frozenset[str]]) -> None:
        self._official = official
        self._cache: dict[tuple[str, str], HostClass] = {}

    def __call__(self, provider: str, host: str) -> HostClass:
        key = (provider, host)
        known = self._cache.get(key)
        if known is None:
            known = self._classify(provider, host)
            self._cache[key] = known
        return known

    def _classify(self, provider: str, host: str) -> HostClass:
        patterns = self._official.get(provider)
        if patterns is None or provider in ("self-hosted", "unknown"):
            return "unjudged"
        if any(fnmatch.fnmatchcase(host, p) for p in patterns):
            return "official"
        if any(fnmatch.fnmatchcase(host, p) for p in CONSUMER_WEB_HOSTS):
            return "consumer"
        return "private" if _is_private_host(host) else "public"


def _is_private_host(host: str) -> bool:
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal", ".lan")):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


_ENDPOINT_TEXT: dict[str, tuple[Severity, str]] = {
    "consumer": ("high", "a consumer web application, not its API"),
    "public": ("medium", "a host that is not its official API (a reseller, router or proxy)"),
    "private": ("low", "a private or local host whose upstream the ledger cannot see"),
}


def _unofficial_endpoint(calls: Sequence[_Call], classify: _HostClassifier) -> list[_Draft]:
    groups: dict[tuple[str, str], list[_Call]] = {}
    for call in calls:
        if call.host is None:
            continue
        if classify(call.provider, call.host) in ("consumer", "public", "private"):
            groups.setdefault((call.provider, call.host), []).append(call)
    drafts: list[_Draft] = []
    for (provider, host), group in groups.items():
        host_class = classify(provider, host)
        severity, what = _ENDPOINT_TEXT[host_class]
        drafts.append(
            _Draft(
                "unofficial-endpoint",
                severity,
                provider,
                f"{len(group)} call(s) attributed to {provider} went to {host}, {what}",
                group,
                {
                    "host": host,
                    "host_class": host_class,
                    "calls": len(group),
                    "accounts": _accounts(group),
                },
            )
        )
    return drafts


# --------------------------------------------------------------------------------------------
# 5. identity-spoofing


def _identity_problem(call: _Call, classify: _HostClassifier) -> tuple[Severity, str] | None:
    """What in the call's client identity contradicts itself, with a severity, or ``None``."""
    headers = call.sdk_headers
    if headers is None:  # the recorder captured no SDK headers: nothing to compare
        return None
    agent = call.user_agent or ""
    stainless = _STAINLESS_UA.match(agent)
    if stainless is not None:
        family, lang, version = stainless.groups()
        claimed = f"the {family} {lang} SDK {version}"
        package = headers.get("x-stainless-package-version")
        sent_lang = headers.get("x-stainless-lang")
        if package is None or sent_lang is None:
            return "medium", f"the user agent claims {claimed} without its x-stainless headers"
        if str(package) != version:
            return "high", f"the user agent claims {claimed} but x-stainless says {package}"
        expected = _STAINLESS_LANGS.get(lang.lower())
        if expected is not None and str(sent_lang).lower() != expected:
            return "high", f"the user agent claims {claimed} but x-stainless-lang is {sent_lang}"
        if family == "Anthropic" and call.provider == "anthropic":
            if "anthropic-version" not in headers:
                return "medium", f"the user agent claims {claimed} without anthropic-version"
    if agent.startswith("Mozilla/") and call.host is not None:
        if classify(call.provider, call.host) == "official" and not _browser_sdk(headers):
            return "medium", "a browser user agent reached an official API host without SDK marks"
    goog = headers.get("x-goog-api-client")
    agent_genai = _GENAI_TOKEN.search(agent)
    header_genai = _GENAI_TOKEN.search(str(goog)) if goog is not None else None
    if agent_genai is not None and goog is None:
        return "medium", "the user agent claims google-genai-sdk without x-goog-api-client"
    if agent_genai is not None and header_genai is not None:
        if agent_genai.group(1) != header_genai.group(1):
            return "high", (
                f"the user agent claims google-genai-sdk/{agent_genai.group(1)} but "
                f"x-goog-api-client says {header_genai.group(1)}"
            )
    if header_genai is not None and agent_genai is None and agent:
        return "high", "x-goog-api-client names google-genai-sdk but the user agent does not"
    return None


def _browser_sdk(headers: Mapping[str, Any]) -> bool:
    """Whether the headers carry a mark the official SDKs add when they run in a browser."""
    runtime = str(headers.get("x-stainless-runtime", ""))
    direct = str(headers.get("anthropic-dangerous-direct-browser-access", "")).lower()
    return (
        runtime.startswith("browser:")
        or direct == "true"
        or "gl-node/web" in str(headers.get("x-goog-api-client", ""))
    )


def _identity_spoofing(calls: Sequence[_Call], classify: _HostClassifier) -> list[_Draft]:
    groups: dict[tuple[str, str | None, str, str], list[_Call]] = {}
    severities: dict[tuple[str, str | None, str, str], Severity] = {}
    for call in calls:
        problem = _identity_problem(call, classify)
        if problem is None:
            continue
        severity, reason = problem
        key = (call.provider, call.account, reason, call.user_agent or "")
        groups.setdefault(key, []).append(call)
        severities[key] = severity
    drafts: list[_Draft] = []
    for key, group in groups.items():
        provider, account, reason, agent = key
        drafts.append(
            _Draft(
                "identity-spoofing",
                severities[key],
                provider,
                f"in {len(group)} call(s) to {provider} from account {_short(account)}, {reason}",
                group,
                {"calls": len(group), "user_agent": agent, "account_id": _short(account)},
            )
        )
    return drafts


# --------------------------------------------------------------------------------------------
# 6. safety-bypass


@dataclass(slots=True)
class _SafetyEpisode:
    provider: str
    account: str | None
    model: str | None
    last_t: float
    calls: list[_Call] = field(default_factory=list)
    retried: int = 0
    changed: int = 0
    identical: int = 0


def _safety_bypass(calls: Sequence[_Call], th: ConductThresholds) -> list[_Draft]:
    previous: dict[tuple[str, str | None, str | None], _Call] = {}
    open_episodes: dict[tuple[str, str | None, str | None], _SafetyEpisode] = {}
    episodes: list[_SafetyEpisode] = []
    for call in calls:
        key = (call.provider, call.account, call.model)
        prior = previous.get(key)
        previous[key] = call
        if prior is None or not prior.refusal or call.t - prior.t > th.safety_retry_seconds:
            continue
        episode = open_episodes.get(key)
        if episode is None or call.t - episode.last_t > th.safety_window_seconds:
            episode = _SafetyEpisode(call.provider, call.account, call.model, call.t)
            open_episodes[key] = episode
            episodes.append(episode)
        if not episode.calls or episode.calls[-1] is not prior:
            episode.calls.append(prior)
        episode.calls.append(call)
        episode.retried += 1
        episode.last_t = call.t
        if prior.request_sha256 and call.request_sha256:
            if prior.request_sha256 == call.request_sha256:
                episode.identical += 1
            else:
                episode.changed += 1
    drafts: list[_Draft] = []
    for ep in episodes:
        if ep.retried < th.safety_min_refusals:
            continue
        severity: Severity = "high" if ep.retried >= th.safety_high_refusals else "medium"
        model = ep.model or "(unnamed model)"
        drafts.append(
            _Draft(
                "safety-bypass",
                severity,
                ep.provider,
                f"{ep.retried} refusals or safety stops on {ep.provider} {model} from account "
                f"{_short(ep.account)} were each followed by a retry within "
                f"{th.safety_retry_seconds:g} seconds ({ep.changed} with a changed request)",
                ep.calls,
                {
                    "refusals_retried": ep.retried,
                    "retries_changed_request": ep.changed,
                    "retries_identical_request": ep.identical,
                    "model": ep.model,
                    "account_id": _short(ep.account),
                },
            )
        )
    return drafts


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
    th = thresholds or ConductThresholds()
    hosts = dict(DEFAULT_OFFICIAL_HOSTS)
    for provider, patterns in (official_hosts or {}).items():
        hosts[provider] = frozenset(p.lower() for p in patterns)
    classify = _HostClassifier(hosts)
    calls: list[_Call] = []
    for item in entries:
        if isinstance(item, tuple) and not isinstance(item[1], Mapping):
            raise InputError(f"entry {item[0]}: the body is not a JSON object")
        call = _normalize(item)
        # Open weights on one's own server answer to no provider's terms of service.
        if call is not None and call.provider != "self-hosted":
            calls.append(call)
    calls.sort(key=lambda c: (c.t, c.leaf))
    drafts = [
        *_multi_account(calls, th),
        *_rate_limit_evasion(calls, th),
        *_key_sharing(calls, th),
        *_unofficial_endpoint(calls, classify),
        *_identity_spoofing(calls, classify),
        *_safety_bypass(calls, th),
    ]
    lookup = rules if rules is not None else conduct_rules
    findings = [_finish(draft, lookup) for draft in drafts]
    findings.sort(
        key=lambda f: (_SEVERITY_RANK[f.severity], f.first_at or "", f.kind, f.leaf_indexes)
    )
    return findings


def _finish(draft: _Draft, rules: RulesLookup) -> Finding:
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
        first_at=_iso(first.t),
        last_at=_iso(last.t),
    )


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]
