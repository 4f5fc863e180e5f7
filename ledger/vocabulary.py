"""The fixed vocabularies that entries, policies, the recorder and the CLI share.

Defined once, below every layer, so that a purpose the recorder accepts is exactly a purpose
the policy engine can judge.
"""

from __future__ import annotations

__all__ = ["CONDUCT_KINDS", "PURPOSES"]

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
