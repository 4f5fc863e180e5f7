"""Detectors over where and as whom calls went: unofficial-endpoint and identity-spoofing.

Invariants:

- A (provider, host) pair is classified once per run (official, consumer, private, public or
  unjudged); ``self-hosted``, ``unknown`` and providers missing from the official-host table
  are unjudged and never produce an unofficial-endpoint finding.
- Identity is judged only from headers the recorder captured: an entry with no SDK headers is
  not judged, and only SDK languages whose header spelling is known are compared.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ledger.policy.conduct.calls import Call, Draft, short, short_accounts
from ledger.policy.conduct.model import CONSUMER_WEB_HOSTS, Severity

_STAINLESS_UA = re.compile(r"^(OpenAI|Anthropic)/([A-Za-z]+) ([0-9][0-9A-Za-z.+-]*)")
# Only languages whose x-stainless-lang spelling is known are compared.
_STAINLESS_LANGS = {"python": "python", "js": "js"}
_GENAI_TOKEN = re.compile(r"google-genai-sdk/(\S+)")


# --------------------------------------------------------------------------------------------
# 4. unofficial-endpoint

HostClass = Literal["official", "consumer", "private", "public", "unjudged"]


class HostClassifier:
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


def unofficial_endpoint(calls: Sequence[Call], classify: HostClassifier) -> list[Draft]:
    groups: dict[tuple[str, str], list[Call]] = {}
    for call in calls:
        if call.host is None:
            continue
        if classify(call.provider, call.host) in ("consumer", "public", "private"):
            groups.setdefault((call.provider, call.host), []).append(call)
    drafts: list[Draft] = []
    for (provider, host), group in groups.items():
        host_class = classify(provider, host)
        severity, what = _ENDPOINT_TEXT[host_class]
        drafts.append(
            Draft(
                "unofficial-endpoint",
                severity,
                provider,
                f"{len(group)} call(s) attributed to {provider} went to {host}, {what}",
                group,
                {
                    "host": host,
                    "host_class": host_class,
                    "calls": len(group),
                    "accounts": short_accounts(group),
                },
            )
        )
    return drafts


# --------------------------------------------------------------------------------------------
# 5. identity-spoofing


def identity_problem(call: Call, classify: HostClassifier) -> tuple[Severity, str] | None:
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


def identity_spoofing(calls: Sequence[Call], classify: HostClassifier) -> list[Draft]:
    groups: dict[tuple[str, str | None, str, str], list[Call]] = {}
    severities: dict[tuple[str, str | None, str, str], Severity] = {}
    for call in calls:
        problem = identity_problem(call, classify)
        if problem is None:
            continue
        severity, reason = problem
        key = (call.provider, call.account, reason, call.user_agent or "")
        groups.setdefault(key, []).append(call)
        severities[key] = severity
    drafts: list[Draft] = []
    for key, group in groups.items():
        provider, account, reason, agent = key
        drafts.append(
            Draft(
                "identity-spoofing",
                severities[key],
                provider,
                f"in {len(group)} call(s) to {provider} from account {short(account)}, {reason}",
                group,
                {"calls": len(group), "user_agent": agent, "account_id": short(account)},
            )
        )
    return drafts
