"""Detectors over who called: multi-account, rate-limit-evasion and key-sharing.

Invariants:

- Each detector takes calls in time order and makes one pass with per-key state (sessions,
  sliding windows); sorting sessions and clusters keeps it within O(n log n).
- A session is a run of one member's calls no more than a gap apart; sessions overlap only when
  one starts strictly before the other ends, so a key rotation (one account after the other)
  never counts as overlap.
- Calls without an account are never judged here; the thresholds and severities are the ones
  documented in :mod:`ledger.policy.conduct`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ledger.policy.conduct.calls import Call, Draft, listed, short, short_accounts
from ledger.policy.conduct.model import ConductThresholds, Severity

LEDGER_ORG = "(ledger)"


# --------------------------------------------------------------------------------------------
# Sessions: runs of one member's calls, and the clusters in which sessions overlap


@dataclass(slots=True)
class _Session:
    member: str
    start: float
    end: float
    calls: list[Call]


def _overlapping_sessions(
    calls: Iterable[Call], member: Callable[[Call], str | None], gap: float
) -> list[tuple[set[str], list[Call]]]:
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
    result: list[tuple[set[str], list[Call]]] = []
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


def _switches_after_exhaustion(cluster: Sequence[Call], window: float) -> tuple[int, int]:
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


def multi_account(calls: Sequence[Call], th: ConductThresholds) -> list[Draft]:
    groups: dict[tuple[str, str], list[Call]] = {}
    for call in calls:
        if call.account is not None:
            # Sessions are grouped by the organization the caller chose (sent), not the one the
            # provider reports: every personal account is its own provider organization, so
            # grouping by that would hide exactly the many-accounts pattern.
            groups.setdefault((call.provider, call.sent_org or LEDGER_ORG), []).append(call)
    drafts: list[Draft] = []
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
            who = "" if org == LEDGER_ORG else f" under organization {org}"
            pattern = (
                f"{len(members)} accounts were used against {provider}{who} in overlapping "
                f"sessions ({len(cluster)} calls)"
            )
            if switches:
                pattern += f", {switches} time(s) taking over right after one hit its rate limit"
            drafts.append(
                Draft(
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
                        "account_ids": short_accounts(cluster),
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
    calls: list[Call] = field(default_factory=list)
    events: int = 0
    followed_429s: int = 0
    from_accounts: set[str] = field(default_factory=set)
    to_accounts: set[str] = field(default_factory=set)
    max_delay: float = 0.0


@dataclass(slots=True)
class _EvasionState:
    recent: deque[Call] = field(default_factory=deque)  # 429s inside the window
    counts: dict[str, int] = field(default_factory=dict)  # account -> 429s inside the window
    unfollowed: deque[Call] = field(default_factory=deque)  # 429s no switch followed yet
    episode: _EvasionEpisode | None = None


def rate_limit_evasion(calls: Sequence[Call], th: ConductThresholds) -> list[Draft]:
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
        keep: deque[Call] = deque()
        for limited in st.unfollowed:
            if limited.account == account:
                keep.append(limited)
            else:
                episode.followed_429s += 1
                episode.calls.append(limited)
                episode.from_accounts.add(short(limited.account))
                episode.max_delay = max(episode.max_delay, call.t - limited.t)
        st.unfollowed = keep
        episode.to_accounts.add(short(account))
        episode.calls.append(call)
        episode.events += 1
        episode.last_t = call.t
    drafts: list[Draft] = []
    for ep in episodes:
        severity: Severity = "high" if ep.followed_429s >= th.evasion_high_switches else "medium"
        model = ep.model or "(unnamed model)"
        drafts.append(
            Draft(
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
                    "from_accounts": listed(ep.from_accounts),
                    "to_accounts": listed(ep.to_accounts),
                },
            )
        )
    return drafts


# --------------------------------------------------------------------------------------------
# 3. key-sharing


def key_sharing(calls: Sequence[Call], th: ConductThresholds) -> list[Draft]:
    groups: dict[tuple[str, str], list[Call]] = {}
    for call in calls:
        # A call the provider rejected as unauthorized does not show the key working there.
        if call.account is not None and call.status not in (401, 403):
            groups.setdefault((call.provider, call.account), []).append(call)
    drafts: list[Draft] = []
    for (provider, account), group in groups.items():
        with_org = [c for c in group if c.org is not None]
        orgs = {c.org for c in with_org if c.org is not None}
        if len(orgs) >= th.key_sharing_min_orgs:
            drafts.append(
                Draft(
                    "key-sharing",
                    "high",
                    provider,
                    f"account {short(account)} was used on {provider} under {len(orgs)} "
                    f"organizations ({', '.join(sorted(orgs))})",
                    with_org,
                    {
                        "organizations": tuple(sorted(orgs)),
                        "projects": tuple(sorted({c.project for c in group if c.project})),
                        "calls": len(with_org),
                        "account_id": short(account),
                    },
                )
            )
        for members, cluster in _overlapping_sessions(
            group, lambda c: c.recorder, th.key_sharing_gap_seconds
        ):
            if len(members) < th.key_sharing_min_recorders:
                continue
            drafts.append(
                Draft(
                    "key-sharing",
                    "low",
                    provider,
                    f"account {short(account)} was used on {provider} by {len(members)} "
                    f"recorders in overlapping sessions ({len(cluster)} calls)",
                    list(cluster),
                    {
                        "recorders": listed(members),
                        "calls": len(cluster),
                        "account_id": short(account),
                    },
                )
            )
    return drafts
