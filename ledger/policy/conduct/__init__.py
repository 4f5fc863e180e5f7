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
   ``openai-organization`` the request sent, otherwise the whole ledger, whose recorders all act
   for the organization that runs it; not the organization a response names, which differs for
   every personal account), the calls of each account to a provider form sessions (calls
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

from ledger.policy.conduct.columns import CallColumns
from ledger.policy.conduct.detection import detect, detect_columns
from ledger.policy.conduct.model import (
    CONSUMER_WEB_HOSTS,
    DEFAULT_OFFICIAL_HOSTS,
    SAFETY_FINISH_REASONS,
    ConductThresholds,
    EntryLike,
    Finding,
    RulesLookup,
    load_conduct_config,
)

__all__ = [
    "CONSUMER_WEB_HOSTS",
    "DEFAULT_OFFICIAL_HOSTS",
    "SAFETY_FINISH_REASONS",
    "CallColumns",
    "ConductThresholds",
    "EntryLike",
    "Finding",
    "RulesLookup",
    "detect",
    "detect_columns",
    "load_conduct_config",
]
