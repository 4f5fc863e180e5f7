"""The safety-bypass detector: refusals and safety stops followed by quick retries.

Invariants:

- One pass over calls in time order, keyed by (provider, account, model); a retry follows a
  refusal on the same key within ``safety_retry_seconds`` and retries chain into one episode
  while each follows the previous within ``safety_window_seconds``.
- Whether a retry changed the request is read from ``request_sha256`` only, never from content.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ledger.policy.conduct.calls import Call, Draft, short
from ledger.policy.conduct.model import ConductThresholds, Severity

# --------------------------------------------------------------------------------------------
# 6. safety-bypass


@dataclass(slots=True)
class _SafetyEpisode:
    provider: str
    account: str | None
    model: str | None
    last_t: float
    calls: list[Call] = field(default_factory=list)
    retried: int = 0
    changed: int = 0
    identical: int = 0


def safety_bypass(calls: Sequence[Call], th: ConductThresholds) -> list[Draft]:
    previous: dict[tuple[str, str | None, str | None], Call] = {}
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
    drafts: list[Draft] = []
    for ep in episodes:
        if ep.retried < th.safety_min_refusals:
            continue
        severity: Severity = "high" if ep.retried >= th.safety_high_refusals else "medium"
        model = ep.model or "(unnamed model)"
        drafts.append(
            Draft(
                "safety-bypass",
                severity,
                ep.provider,
                f"{ep.retried} refusals or safety stops on {ep.provider} {model} from account "
                f"{short(ep.account)} were each followed by a retry within "
                f"{th.safety_retry_seconds:g} seconds ({ep.changed} with a changed request)",
                ep.calls,
                {
                    "refusals_retried": ep.retried,
                    "retries_changed_request": ep.changed,
                    "retries_identical_request": ep.identical,
                    "model": ep.model,
                    "account_id": short(ep.account),
                },
            )
        )
    return drafts
