"""The fixed vocabularies that entries, policies, the recorder and the CLI share.

Invariants:

- Defined once, below every layer, so that a purpose the recorder accepts is exactly a purpose
  the policy engine can judge, and a provider name the CLI accepts is exactly a slug the
  recorder writes and the policy files govern.
- :data:`PROVIDERS` is the canonical provider set: every ``providers:`` slug of the shipped
  policy files (a test keeps the two equal), the OpenTelemetry ``gen_ai.provider.name`` values
  the recorder may write, and the two pseudo-providers ``self-hosted`` and ``unknown``.
- :func:`resolve_provider` is the only place an alias becomes a canonical slug. It ignores case,
  spaces, dots, dashes and underscores when matching, so ``xai``, ``x.ai`` and ``X_AI`` are one
  name; a name it cannot place raises :class:`~ledger.errors.InputError` with a suggestion.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from ledger.errors import InputError

__all__ = ["CONDUCT_KINDS", "PROVIDERS", "PROVIDER_ALIASES", "PURPOSES", "resolve_provider"]

PURPOSES: tuple[str, ...] = (
    "train-model",
    "evaluate",
    "research",
    "product-feature",
    "publish-dataset",
    "red-team",
)
"""What the caller declares it does with the outputs."""

CONDUCT_KINDS: tuple[str, ...] = (
    "multi-account",
    "rate-limit-evasion",
    "key-sharing",
    "unofficial-endpoint",
    "identity-spoofing",
    "safety-bypass",
)
"""Conduct the detectors look for and the policy files cite prohibitions of."""

PROVIDERS: tuple[str, ...] = (
    # slugs of the shipped policy files (terms and marketplace layers)
    "openai",
    "anthropic",
    "gcp.gemini",
    "google",
    "x_ai",
    "mistral_ai",
    "deepseek",
    "together",
    "openrouter",
    "groq",
    "cohere",
    "microsoft",
    "meta",
    "azure.ai.openai",
    "azure.ai.inference",
    "aws.bedrock",
    # OpenTelemetry gen_ai.provider.name values with no policy file yet (judged unknown)
    "gcp.vertex_ai",
    "gcp.gen_ai",
    "ibm.watsonx.ai",
    "perplexity",
    # pseudo-providers the recorder writes
    "self-hosted",
    "unknown",
)
"""Every provider slug an entry, a policy file or a command may name."""

PROVIDER_ALIASES: Mapping[str, str] = {
    "claude": "anthropic",
    "anthropic-api": "anthropic",
    "gemini": "gcp.gemini",
    "gemini-api": "gcp.gemini",
    "google-gemini": "gcp.gemini",
    "google-ai-studio": "gcp.gemini",
    "aistudio": "gcp.gemini",
    "generativelanguage": "gcp.gemini",
    "google-consumer": "google",
    "vertex": "gcp.vertex_ai",
    "vertex-ai": "gcp.vertex_ai",
    "google-vertex": "gcp.vertex_ai",
    "grok": "x_ai",
    "spacexai": "x_ai",
    "mistral": "mistral_ai",
    "lechat": "mistral_ai",
    "deepseek-api": "deepseek",
    "together-ai": "together",
    "togetherai": "together",
    "groqcloud": "groq",
    "bedrock": "aws.bedrock",
    "amazon-bedrock": "aws.bedrock",
    "aws": "aws.bedrock",
    "azure": "azure.ai.openai",
    "azure-openai": "azure.ai.openai",
    "azure-ai-foundry": "azure.ai.inference",
    "azure-inference": "azure.ai.inference",
    "copilot": "microsoft",
    "llama-api": "meta",
    "meta-llama-api": "meta",
    "watsonx": "ibm.watsonx.ai",
    "selfhosted": "self-hosted",
    "local": "self-hosted",
}
"""Common names for providers, each mapped to its canonical slug."""

_SEPARATORS = re.compile(r"[\s._-]+")


def _key(name: str) -> str:
    return _SEPARATORS.sub("", name.strip().lower())


_LOOKUP: dict[str, str] = {
    **{_key(alias): slug for alias, slug in PROVIDER_ALIASES.items()},
    **{_key(slug): slug for slug in PROVIDERS},
}


def resolve_provider(name: str) -> str:
    """The canonical provider slug for ``name`` (a slug or a common alias).

    Raises:
        InputError: ``name`` is empty or names no known provider; the message suggests the
            closest known names.

    Example:
        >>> resolve_provider("xai"), resolve_provider("Mistral"), resolve_provider("bedrock")
        ('x_ai', 'mistral_ai', 'aws.bedrock')
    """
    key = _key(name)
    if not key:
        raise InputError("empty provider name")
    found = _LOOKUP.get(key)
    if found is not None:
        return found
    names = sorted({*PROVIDERS, *PROVIDER_ALIASES})
    close = difflib.get_close_matches(name.strip().lower(), names, n=3, cutoff=0.6)
    if not close:
        # Compare without separators too, so "x ai ii" still finds "x_ai".
        keys = difflib.get_close_matches(key, list(_LOOKUP), n=3, cutoff=0.6)
        close = list(dict.fromkeys(_LOOKUP[k] for k in keys))
    if close:
        raise InputError(
            f"unknown provider {name!r}; did you mean {' or '.join(map(repr, close))}?"
        )
    raise InputError(f"unknown provider {name!r} (known: {', '.join(PROVIDERS)})")
