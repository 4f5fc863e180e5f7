"""The compact, pruned path of the conduct detectors gives the plain path's findings.

The plain path reads every body with ``normalize`` (``ledger.entry_body.read_call``) and hands
every call to every detector; ``detect`` keeps calls as columns and builds ``Call`` objects only
for groups a detector may fire on. A generated log holds every finding kind, many groups that
cannot fire, and malformed fields (wrong types, equal values of different types, odd request
hashes, missing or zone-less times).
"""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.policy import CONDUCT_KINDS
from ledger.policy.conduct import ConductThresholds, Finding, detect
from ledger.policy.conduct.calls import normalize
from ledger.policy.conduct.columns import CallColumns
from ledger.policy.conduct.detection import detect_columns, official_hosts_table, run_detectors
from ledger.policy.conduct.endpoints import HostClassifier

T0 = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
OPENAI = ("OpenAI/Python 1.54.0", {"x-stainless-lang": "python",
                                    "x-stainless-package-version": "1.54.0"})  # fmt: skip
HOSTS = ["api.openai.com", "api.openai.com", "api.openai.com", "chatgpt.com",
         "proxy.example.net", "10.0.0.7"]  # fmt: skip
AGENTS: list[tuple[Any, Any]] = [
    OPENAI,
    OPENAI,
    ("OpenAI/Python 1.54.0", {"x-stainless-lang": "python", "x-stainless-package-version": "0.1"}),
    ("OpenAI/Python 1.54.0", {}),
    ("OpenAI/Python 1.54.0", None),
    ("Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0", {}),
    # Equal header values of different types read differently (str(1) != str(True)).
    ("OpenAI/Python 1", {"x-stainless-lang": "python", "x-stainless-package-version": 1}),
    ("OpenAI/Python 1", {"x-stainless-lang": "python", "x-stainless-package-version": True}),
    ("OpenAI/Python 1", {"x-stainless-lang": "python", "x-stainless-package-version": 1.0}),
    ("google-genai-sdk/1.2.0 gl-python/3.11", {"x-goog-api-client": "google-genai-sdk/1.3.0"}),
]


def _account(n: int) -> str:
    return hashlib.sha256(f"credential-{n}".encode()).hexdigest()


def _stamp(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _body(rng: random.Random, n: int, seconds: float) -> dict[str, Any]:
    agent, headers = rng.choice(AGENTS)
    status = rng.choice([200] * 12 + [429, 429, 401, 403, 500, None])
    reasons: Any = [rng.choice(["stop"] * 5 + ["content_filter", "Refusal", "safety"])]
    request: Any = hashlib.sha256(rng.choice([b"a", b"b", b"c", b"%d" % n])).hexdigest()
    body: dict[str, Any] = {
        "v": 1,
        "id": f"id-{n}",
        "started_at": _stamp(seconds),
        "recorder": rng.choice(["rec1", "rec1", "rec1", "rec2"]),
        "provider": rng.choice(["openai"] * 8 + ["self-hosted", "unknown"]),
        "endpoint": {"scheme": "https", "host": rng.choice(HOSTS), "path": "/v1/chat"},
        "request_model": rng.choice(["gpt-4o", "gpt-4o", "gpt-4.1", None]),
        "response_model": rng.choice(["gpt-4o-2024-08-06", None]),
        "account": rng.choice([_account(0)] * 6 + [_account(1), _account(2), _account(3), None]),
        "org_headers": rng.choice([{}, {}, {"openai-organization": "org-a"},
                                   {"openai-organization": "org-b", "openai-project": "p1"}]),
        "client": {"user_agent": agent, "headers": headers},
        "status": status,
        "finish_reasons": reasons if status == 200 else [],
        "rate_limit": rng.choice([{}, {}, {"x-ratelimit-remaining-requests": "0",
                                           "x-ratelimit-limit-requests": "500"},
                                  {"x-ratelimit-remaining-requests": "0",
                                   "x-ratelimit-limit-requests": "0"}]),
        "request_sha256": request,
    }  # fmt: skip
    if headers is None:
        body["client"] = {"user_agent": agent}
    odd = rng.random()
    if odd < 0.02:
        body["status"] = str(status)  # not an integer: reads as no status
    elif odd < 0.04:
        body["request_sha256"] = request.upper()  # kept as spelled, not re-spelled
    elif odd < 0.05:
        body["request_sha256"] = "not hex " * 8
    elif odd < 0.06:
        body["endpoint"] = "api.openai.com"  # not a mapping: no host
    elif odd < 0.07:
        body["client"] = "OpenAI/Python 1.54.0"
    elif odd < 0.08:
        del body["started_at"]  # no time at all: ignored
    elif odd < 0.09:
        body["started_at"] = body["started_at"].rstrip("Z")  # no zone: ignored
    elif odd < 0.10:
        body["finish_reasons"] = "content_filter"  # not a list
    elif odd < 0.11:
        body["org_headers"] = {"openai-organization": ["org-a"]}  # unhashable value
    elif odd < 0.12:
        body["response_org_headers"] = {"openai-organization": f"org-personal-{n % 3}"}
    return body


def _log(seed: int, size: int) -> list[tuple[int, dict[str, Any]]]:
    rng = random.Random(seed)  # noqa: S311 - a reproducible test log, not a secret
    seconds = 0.0
    log = []
    for n in range(size):
        seconds += rng.choice([1.0, 5.0, 20.0, 45.0, 90.0, 400.0, 2000.0])
        log.append((n, _body(rng, n, seconds)))
    # A quiet account on its own organization: groups no detector can fire on.
    for n in range(size, size + 300):
        seconds += 30.0
        quiet = _body(random.Random(n), n, seconds)  # noqa: S311 - as above
        quiet.update(provider="openai", account=_account(9), recorder="rec9", status=200,
                     request_model="gpt-quiet", response_model=None,
                     finish_reasons=["stop"], org_headers={"openai-organization": "org-q"},
                     endpoint={"host": "api.openai.com"}, client={"user_agent": OPENAI[0],
                     "headers": dict(OPENAI[1])}, rate_limit={})  # fmt: skip
        quiet.pop("response_org_headers", None)
        log.append((n, quiet))
    return log


def _plain(items: list[tuple[int, dict[str, Any]]], th: ConductThresholds) -> list[Finding]:
    calls = [c for c in map(normalize, items) if c is not None and c.provider != "self-hosted"]
    calls.sort(key=lambda c: (c.t, c.leaf))
    return run_detectors(calls, th, HostClassifier(official_hosts_table(None)))


THRESHOLDS = [
    ConductThresholds(),
    ConductThresholds(
        safety_min_refusals=1,
        multi_account_gap_seconds=60.0,
        key_sharing_min_recorders=3,
        evasion_window_seconds=30.0,
    ),
    ConductThresholds(multi_account_min_accounts=4, key_sharing_min_orgs=3, safety_min_refusals=20),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("th", THRESHOLDS)
def test_pruned_columns_find_what_the_plain_detectors_find(
    seed: int, th: ConductThresholds
) -> None:
    items = _log(seed, 1500)
    plain = _plain(items, th)
    assert detect(items, thresholds=th) == plain
    columns = CallColumns()
    for leaf, body in items:
        columns.add(leaf, body)
    assert detect_columns(columns, thresholds=th, prune=False) == plain
    # The pruning is real: the quiet account's calls do not reach the detectors.
    hosts = HostClassifier(official_hosts_table(None))
    kept = columns.calls(th, hosts)
    assert len(kept) < len(columns.calls(th, hosts, prune=False))
    assert all(c.account != _account(9) for c in kept)


def test_the_generated_log_holds_every_finding_kind() -> None:
    kinds = {f.kind for f in detect(_log(1, 1500), thresholds=THRESHOLDS[1])}
    assert kinds == set(CONDUCT_KINDS)


def test_columns_keep_request_hashes_as_spelled() -> None:
    columns = CallColumns()
    upper = hashlib.sha256(b"x").hexdigest().upper()
    spelled = [hashlib.sha256(b"x").hexdigest(), upper, "0" * 64, "zz", None, ""]
    for leaf, sha in enumerate(spelled):
        columns.add(leaf, {"provider": "openai", "started_at": _stamp(leaf),
                           "request_sha256": sha})  # fmt: skip
    calls = columns.calls(ConductThresholds(), HostClassifier({}), prune=False)
    assert [c.request_sha256 for c in calls] == [*spelled[:4], None, None]


def _call(seconds: float, account: int, **fields: Any) -> dict[str, Any]:
    body = {"provider": "openai", "started_at": _stamp(seconds), "account": _account(account),
            "recorder": "rec1", "request_model": "gpt-4o", "status": 200,
            "finish_reasons": ["stop"], "endpoint": {"host": "api.openai.com"},
            "org_headers": {"openai-organization": f"org-{account}"},
            "client": {"user_agent": OPENAI[0], "headers": dict(OPENAI[1])}}  # fmt: skip
    body.update(fields)
    return body


# Each log is the smallest one its detector fires on, at the thresholds' edge, and fires no
# other detector: pruning that keeps too little loses the finding.
EDGE_LOGS: dict[str, list[dict[str, Any]]] = {
    "multi-account": [
        _call(i * 30.0, 1 + i % 2, org_headers={"openai-organization": "org-m"}) for i in range(6)
    ],
    "rate-limit-evasion": [_call(0, 1, status=429, finish_reasons=[]), _call(10, 2)],
    "key-sharing": [_call(0, 1), _call(10, 1, org_headers={"openai-organization": "org-x"})],
    "key-sharing-recorders": [_call(i * 30.0, 1, recorder=f"r{i % 2}") for i in range(6)],
    "safety-bypass": [
        _call(i * 30.0, 1, finish_reasons=["content_filter"] if i % 2 == 0 else ["stop"])
        for i in range(6)
    ],
    "unofficial-endpoint": [_call(0, 1, endpoint={"host": "proxy.example.net"})],
    "identity-spoofing": [_call(0, 1, client={"user_agent": OPENAI[0], "headers": {}})],
}


@pytest.mark.parametrize("name", sorted(EDGE_LOGS))
def test_pruning_keeps_the_groups_that_fire_at_the_thresholds_edge(name: str) -> None:
    items = list(enumerate(EDGE_LOGS[name]))
    th = ConductThresholds()
    found = detect(items, thresholds=th)
    assert [f.kind for f in found] == [name.removesuffix("-recorders")]
    assert found == _plain(items, th)
