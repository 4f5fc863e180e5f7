"""Provider adapters: pure functions from one HTTP exchange to the facts an entry records.

Invariants:

- Adapters are data in, facts out: no I/O, no clock, no environment, and ``parse_exchange``
  never raises on any body (malformed, partial, wrong format); it returns what is known.
- The provider is chosen by host first (the built-in table below), then by the user's ``hosts``
  map, then by ``provider_hint`` (what ``ledger.wrap`` knows from the SDK class), else
  ``unknown``. The wire format is chosen by the URL path alone, so an unknown host with a
  recognizable path is still parsed, and an unrecognized path yields operation ``unknown``.
- Adapters never report the query string (it can hold API keys).
- Usage is read, never summed across stream chunks (the last cumulative value wins).

Example:
    >>> from ledger.recorder.providers import identify
    >>> identify("api.anthropic.com", "/v1/messages").provider
    'anthropic'
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from ledger.recorder.providers._base import OPERATIONS, Adapter, CallFacts, Exchange
from ledger.recorder.providers.anthropic import AnthropicAdapter
from ledger.recorder.providers.gemini import GeminiAdapter
from ledger.recorder.providers.generic import UnknownAdapter, empty_facts
from ledger.recorder.providers.openai import OpenAIAdapter

__all__ = [
    "KNOWN_HOSTS",
    "OPERATIONS",
    "Adapter",
    "AnthropicAdapter",
    "CallFacts",
    "Exchange",
    "GeminiAdapter",
    "OpenAIAdapter",
    "UnknownAdapter",
    "identify",
    "parse_exchange",
    "provider_for_host",
]

#: Hosts whose provider is known without configuration (exact, lowercase, no port).
KNOWN_HOSTS: Mapping[str, str] = {
    "api.openai.com": "openai",
    "eu.api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "gcp.gemini",
    "api.deepseek.com": "deepseek",
    "openrouter.ai": "openrouter",
    "api.together.xyz": "together",
    "api.groq.com": "groq",
    "api.mistral.ai": "mistral_ai",
    "api.x.ai": "x_ai",
    "api.llama.com": "meta",  # Meta's Llama API (its OpenAI-compatible routes too)
}

# Azure OpenAI resources live on per-customer subdomains of these domains.
_AZURE_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com")

_OPENAI_SUFFIXES = (
    ("/chat/completions", "chat"),
    ("/responses", "responses"),
    ("/completions", "text_completion"),
    ("/embeddings", "embeddings"),
)
_GEMINI_METHODS = frozenset({"generateContent", "streamGenerateContent"})


def provider_for_host(
    host: str,
    *,
    provider_hint: str | None = None,
    hosts: Mapping[str, str] | None = None,
) -> str:
    """The provider name for ``host``.

    Args:
        host: Host name, with or without ``:port``; case does not matter.
        provider_hint: Provider the caller knows from the SDK class, used last.
        hosts: User configuration mapping a host (or ``*.domain`` for its subdomains) to a
            provider, e.g. ``{"vllm.internal": "self-hosted"}``.

    Returns:
        The provider, or ``unknown``.
    """
    name = _bare_host(host)
    known = KNOWN_HOSTS.get(name)
    if known is not None:
        return known
    if name.endswith(_AZURE_SUFFIXES):
        return "azure.ai.openai"
    if hosts:
        configured = _configured(name, hosts)
        if configured is not None:
            return configured
    if provider_hint:
        return provider_hint
    return "unknown"


def identify(
    host: str,
    path: str,
    *,
    provider_hint: str | None = None,
    hosts: Mapping[str, str] | None = None,
) -> Adapter:
    """Choose the adapter for a request to ``host`` and ``path``.

    Args:
        host: Request host (a ``:port`` suffix is ignored).
        path: Request path; anything from ``?`` on is ignored.
        provider_hint: Provider known from the SDK class, used when the host says nothing.
        hosts: User host-to-provider configuration (see ``provider_for_host``).

    Returns:
        An adapter whose ``parse`` turns an ``Exchange`` into ``CallFacts``.

    Example:
        >>> identify("myco.openai.azure.com", "/openai/deployments/gpt4o/chat/completions")
        OpenAIAdapter(provider='azure.ai.openai', operation='chat', path_model='gpt4o')
    """
    provider = provider_for_host(host, provider_hint=provider_hint, hosts=hosts)
    path = path.split("?", 1)[0].rstrip("/")

    gemini = _gemini_route(path)
    if gemini is not None:
        model, method = gemini
        return GeminiAdapter(
            provider=provider, path_model=model, streaming=method == "streamGenerateContent"
        )
    if path == "/messages" or path.endswith("/v1/messages"):
        return AnthropicAdapter(provider=provider)
    for suffix, operation in _OPENAI_SUFFIXES:
        if path.endswith(suffix):
            return OpenAIAdapter(
                provider=provider, operation=operation, path_model=_azure_deployment(path)
            )
    return UnknownAdapter(provider=provider)


def parse_exchange(
    exchange: Exchange,
    *,
    provider_hint: str | None = None,
    hosts: Mapping[str, str] | None = None,
) -> CallFacts:
    """Identify the adapter from ``exchange.url`` and parse the exchange; never raises.

    Args:
        exchange: What the transport saw of one attempt.
        provider_hint: Provider known from the SDK class.
        hosts: User host-to-provider configuration.

    Returns:
        The call facts; on an unexpected adapter failure, facts naming only the provider and
        operation.
    """
    try:
        parts = urlsplit(exchange.url)
        host, path = parts.hostname or "", parts.path
    except ValueError:
        host, path = "", ""
    adapter = identify(host, path, provider_hint=provider_hint, hosts=hosts)
    try:
        return adapter.parse(exchange)
    except Exception:
        # The adapters are written not to raise; this is the last line that keeps a parser bug
        # from losing the entry. The hashes the core records still commit to the exact bytes.
        return empty_facts(adapter.provider, _operation_of(adapter))


def _operation_of(adapter: Adapter) -> str:
    operation = getattr(adapter, "operation", "unknown")
    return operation if operation in OPERATIONS else "unknown"


def _bare_host(host: str) -> str:
    name = host.strip().lower().rstrip(".")
    if name.startswith("["):  # IPv6 literal, possibly with a port after "]": drop both
        end = name.find("]")
        return name[1:end] if end > 0 else name[1:]
    if name.count(":") == 1:
        name = name.split(":", 1)[0]
    return name


def _configured(name: str, hosts: Mapping[str, str]) -> str | None:
    for pattern, provider in hosts.items():
        key = _bare_host(pattern)
        if key == name:
            return provider
        if key.startswith("*.") and name.endswith(key[1:]):
            return provider
    return None


def _gemini_route(path: str) -> tuple[str, str] | None:
    """``(model, method)`` for ``.../models/{model}:{method}`` paths, else ``None``."""
    start = path.rfind("/models/")
    if start < 0:
        return None
    rest = path[start + len("/models/") :]
    if "%" in rest:
        rest = unquote(rest)  # some clients percent-encode the ":" before the method
    model, sep, method = rest.rpartition(":")
    if not sep or not model or method not in _GEMINI_METHODS:
        return None
    return model, method


def _azure_deployment(path: str) -> str | None:
    """The deployment name in ``/openai/deployments/{name}/...`` Azure paths."""
    marker = "/deployments/"
    start = path.find(marker)
    if start < 0:
        return None
    name = path[start + len(marker) :].split("/", 1)[0]
    return unquote(name) or None
