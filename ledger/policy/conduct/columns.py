"""Compact columns of calls, and the pruning that hands each detector only what can fire.

A million-entry ledger made a million :class:`~ledger.policy.conduct.calls.Call` objects (about
700 bytes each, with their header mappings) although almost every call belongs to a group no
detector can fire on: one account per organization, no 429, no refusal, official hosts, a
genuine SDK. :class:`CallColumns` keeps each call as a few numbers (leaf, time, profile number,
status number, flags, request hash: about 60 bytes) and each distinct *profile* (provider,
account, organizations, recorder, model, host, client identity) once. :meth:`CallColumns.calls`
then builds ``Call`` objects only for the profiles in a group some detector may fire on.

Invariants:

- Same facts as the plain path: a profile is read by ``ledger.entry_body.read_call`` (the one
  body reader) the first time its raw fields are seen, and the per-call fields follow the same
  rules as :func:`ledger.policy.conduct.calls.normalize` (time from ``call_time``, an integer
  status, string finish reasons, the rate-limit exhaustion rule, a non-empty request hash).
  Entries without a usable time, and ``self-hosted`` calls, are dropped, as the plain path does.
- Pruning is exact: every detector partitions calls by keys made of profile fields only and
  judges each group alone; a group is kept whole (all its profiles' calls) when it can fire,
  and a group that cannot fire (fewer accounts, organizations or recorders than the thresholds
  ask, no 429, fewer refusals than ``safety_min_refusals``, official or unjudged hosts, a
  consistent identity) is also unable to fire on any part of it, so dropping or truncating it
  changes nothing. A test compares both paths on a log with every finding kind.
- Pure: no I/O; the columns are standard-library ``array`` / ``bytearray`` buffers.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Mapping
from typing import Any, NamedTuple

from ledger.entry_body import call_time, read_call
from ledger.policy.conduct.accounts import LEDGER_ORG
from ledger.policy.conduct.calls import Call, is_exhausted, mapping_or_empty
from ledger.policy.conduct.endpoints import HostClassifier, identity_problem
from ledger.policy.conduct.model import SAFETY_FINISH_REASONS, ConductThresholds

__all__ = ["CallColumns", "Profile"]

_EXHAUSTED, _REFUSAL, _HAS_SHA = 1, 2, 4
_NO_SHA = bytes(32)


class Profile(NamedTuple):
    """The fields of a call that many calls share, read once per distinct raw value."""

    provider: str
    account: str | None
    org: str | None
    sent_org: str | None
    project: str | None
    recorder: str | None
    model: str | None
    host: str | None
    user_agent: str | None
    sdk_headers: Mapping[str, Any] | None


class _ProfileStats:
    """What the pruning needs to know of one profile's calls."""

    __slots__ = ("authorized", "limited", "refusals")

    def __init__(self) -> None:
        self.authorized = False  # some call not rejected with 401 / 403 (key-sharing)
        self.limited = False  # some call answered 429 (rate-limit-evasion)
        self.refusals = 0  # calls that ended in a refusal or safety stop (safety-bypass)


def _raw_key(body: Mapping[str, Any], key_id: str | None) -> tuple[Any, ...]:
    """The raw values a :class:`Profile` is read from (hashable for JSON bodies of dicts)."""
    get = body.get
    endpoint, client = get("endpoint"), get("client")
    sent, returned = get("org_headers"), get("response_org_headers")
    headers = client.get("headers") if type(client) is dict else None
    return (
        get("provider"),
        get("account"),
        get("recorder"),
        key_id,
        get("request_model"),
        get("response_model"),
        endpoint.get("host") if type(endpoint) is dict else endpoint,
        tuple(sent.items()) if type(sent) is dict else sent,
        tuple(returned.items()) if type(returned) is dict else returned,
        client.get("user_agent") if type(client) is dict else client,
        tuple(headers.items()) if type(headers) is dict else headers,
        # The containers' types are part of the key: a string ``endpoint`` names no host,
        # while a mapping whose host is that string does.
        type(endpoint),
        type(client),
        type(sent),
        type(returned),
        type(headers),
    )


class CallColumns:
    """Calls as compact columns; :meth:`calls` gives the ``Call`` objects worth detecting on.

    Example:
        >>> columns = CallColumns()
        >>> columns.add(0, {"provider": "openai", "started_at": "2026-01-01T00:00:00Z",
        ...                 "endpoint": {"host": "chatgpt.com"}})
        >>> [c.host for c in columns.calls(ConductThresholds(), HostClassifier({"openai":
        ...     frozenset({"api.openai.com"})}))]
        ['chatgpt.com']
    """

    def __init__(self) -> None:
        self._leaf = array("q")
        self._t = array("d")
        self._profile = array("I")
        self._status = array("I")
        self._flags = bytearray()
        self._sha = bytearray()  # 32 bytes per call: the request hash when it is lowercase hex
        self._odd_sha: dict[int, str] = {}  # row -> a request hash in any other spelling
        self._profiles: list[Profile] = []
        self._stats: list[_ProfileStats] = []
        self._by_raw: dict[tuple[Any, ...], int] = {}
        self._by_profile: dict[Any, int] = {}
        self._statuses: list[int | None] = []
        self._status_code: dict[int | None, int] = {}

    def __len__(self) -> int:
        return len(self._leaf)

    @property
    def profiles(self) -> int:
        """How many distinct profiles the calls have."""
        return len(self._profiles)

    def nbytes(self) -> int:
        """Bytes held by the per-call columns (the profiles, few, are not counted)."""
        buffers = (self._leaf, self._t, self._profile, self._status, self._flags, self._sha)
        return sum(sys.getsizeof(b) for b in buffers) + sys.getsizeof(self._odd_sha)

    # -- filling ------------------------------------------------------------------------------

    def add(self, leaf: int, body: Mapping[str, Any], key_id: str | None = None) -> None:
        """Add one entry body (``key_id``: the signing key, standing in for a missing
        ``recorder``); a body without a usable time, or a ``self-hosted`` call, adds nothing."""
        at, _ = call_time(body)
        if at is None:
            return
        raw = _raw_key(body, key_id)
        try:
            number = self._by_raw.get(raw)
        except TypeError:  # an unhashable raw value: read this body's profile on its own
            number = self._intern(body, key_id, None)
        if number is None:
            number = self._intern(body, key_id, raw)
        profile = self._profiles[number]
        if profile.provider == "self-hosted":
            # Open weights on one's own server answer to no provider's terms of service.
            return
        get = body.get
        status = get("status")
        if type(status) is not int:
            status = None
        reasons = get("finish_reasons")
        refusal = type(reasons) is list and any(
            isinstance(r, str) and r.lower() in SAFETY_FINISH_REASONS for r in reasons
        )
        flags = _REFUSAL if refusal else 0
        if is_exhausted(status, mapping_or_empty(get("rate_limit"))):
            flags |= _EXHAUSTED
        stats = self._stats[number]
        if status not in (401, 403):
            stats.authorized = True
        if status == 429:
            stats.limited = True
        if refusal:
            stats.refusals += 1
        row = len(self._leaf)
        sha = get("request_sha256")
        if isinstance(sha, str) and sha:
            flags |= _HAS_SHA
            digest = _lower_hex_digest(sha)
            if digest is not None:
                self._sha += digest
            else:
                self._sha += _NO_SHA
                self._odd_sha[row] = sha
        else:
            self._sha += _NO_SHA
        code = self._status_code.get(status)
        if code is None:
            code = self._status_code[status] = len(self._statuses)
            self._statuses.append(status)
        self._leaf.append(leaf)
        self._t.append(at.timestamp())
        self._profile.append(number)
        self._status.append(code)
        self._flags.append(flags)

    def _intern(
        self, body: Mapping[str, Any], key_id: str | None, raw: tuple[Any, ...] | None
    ) -> int:
        view = read_call(body)
        headers = view.sdk_headers
        profile = Profile(
            view.provider,
            view.account,
            view.organization,
            view.sent_organization,
            view.project,
            view.recorder or key_id,
            view.requested_model,
            view.host,
            view.user_agent,
            headers,
        )
        try:
            # Profiles that read alike share one number (and one header mapping).
            frozen = tuple(sorted(headers.items())) if headers is not None else None
            same: Any = (profile[:9], frozen)
            if frozen is not None and not _plain(frozen):
                same = None  # 1, 1.0 and True are equal keys but read differently
            number = self._by_profile.get(same) if same is not None else None
        except TypeError:  # header values that cannot be hashed: a profile of its own
            same, number = None, None
        if number is None:
            number = len(self._profiles)
            self._profiles.append(profile)
            self._stats.append(_ProfileStats())
            if same is not None:
                self._by_profile[same] = number
        if raw is not None and _plain(raw):
            self._by_raw[raw] = number
        return number

    # -- pruning and building -----------------------------------------------------------------

    def kept_profiles(self, th: ConductThresholds, classify: HostClassifier) -> set[int]:
        """Numbers of the profiles in a group some detector may fire on (module docstring)."""
        profiles, stats = self._profiles, self._stats
        multi: dict[tuple[str, str], set[str]] = {}
        evasion: dict[tuple[str, str | None], tuple[set[str], list[bool]]] = {}
        sharing: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
        safety: dict[tuple[str, str | None, str | None], int] = {}
        kept: set[int] = set()
        for number, p in enumerate(profiles):
            st = stats[number]
            key = (p.provider, p.account, p.model)
            safety[key] = safety.get(key, 0) + st.refusals
            if p.host is not None and classify(p.provider, p.host) in (
                "consumer",
                "public",
                "private",
            ):
                kept.add(number)
            elif identity_problem(_probe(p), classify) is not None:
                kept.add(number)
            if p.account is None:
                continue
            multi.setdefault((p.provider, p.sent_org or LEDGER_ORG), set()).add(p.account)
            accounts, limited = evasion.setdefault((p.provider, p.model), (set(), [False]))
            accounts.add(p.account)
            limited[0] = limited[0] or st.limited
            if st.authorized:
                orgs, recorders = sharing.setdefault((p.provider, p.account), (set(), set()))
                if p.org is not None:
                    orgs.add(p.org)
                if p.recorder is not None:
                    recorders.add(p.recorder)
        for number, p in enumerate(profiles):
            if number in kept:
                continue
            if safety[(p.provider, p.account, p.model)] >= th.safety_min_refusals:
                kept.add(number)
                continue
            if p.account is None:
                continue
            if len(multi[(p.provider, p.sent_org or LEDGER_ORG)]) >= th.multi_account_min_accounts:
                kept.add(number)
                continue
            accounts, limited = evasion[(p.provider, p.model)]
            if limited[0] and len(accounts) >= 2:
                kept.add(number)
                continue
            shared = sharing.get((p.provider, p.account))
            if shared is not None and (
                len(shared[0]) >= th.key_sharing_min_orgs
                or len(shared[1]) >= th.key_sharing_min_recorders
            ):
                kept.add(number)
        return kept

    def calls(
        self,
        th: ConductThresholds,
        classify: HostClassifier,
        *,
        prune: bool = True,
    ) -> list[Call]:
        """``Call`` objects, sorted by (time, leaf): those of the kept profiles, or every one."""
        kept = self.kept_profiles(th, classify) if prune else None
        profiles, statuses, flags_of = self._profiles, self._statuses, self._flags
        sha, odd = self._sha, self._odd_sha
        calls: list[Call] = []
        for row, number in enumerate(self._profile):
            if kept is not None and number not in kept:
                continue
            p = profiles[number]
            flags = flags_of[row]
            request: str | None = None
            if flags & _HAS_SHA:
                request = odd.get(row) or sha[row * 32 : row * 32 + 32].hex()
            calls.append(
                Call(
                    leaf=self._leaf[row],
                    t=self._t[row],
                    provider=p.provider,
                    account=p.account,
                    org=p.org,
                    sent_org=p.sent_org,
                    project=p.project,
                    recorder=p.recorder,
                    model=p.model,
                    host=p.host,
                    status=statuses[self._status[row]],
                    exhausted=bool(flags & _EXHAUSTED),
                    refusal=bool(flags & _REFUSAL),
                    request_sha256=request,
                    user_agent=p.user_agent,
                    sdk_headers=p.sdk_headers,
                )
            )
        calls.sort(key=lambda c: (c.t, c.leaf))
        return calls


def _lower_hex_digest(text: str) -> bytes | None:
    """The 32 bytes a lowercase hex SHA-256 spells, or ``None`` for any other string."""
    if len(text) != 64:
        return None
    try:
        digest = bytes.fromhex(text)
    except ValueError:
        return None
    return digest if digest.hex() == text else None


def _plain(value: object) -> bool:
    """Whether ``value`` is made only of strings, ``None``, types and tuples of them.

    Only such keys are shared between bodies: values of other types can be equal (``1``,
    ``1.0``, ``True``) and still read differently, so bodies holding them are read one by one.
    """
    if value is None or type(value) is str or type(value) is type:
        return True
    return type(value) is tuple and all(_plain(v) for v in value)


def _probe(p: Profile) -> Call:
    """A call of profile ``p`` (the identity check reads profile fields only)."""
    return Call(0, 0.0, p.provider, p.account, p.org, p.sent_org, p.project, p.recorder,
                p.model, p.host, None, False, False, None, p.user_agent, p.sdk_headers)  # fmt: skip
