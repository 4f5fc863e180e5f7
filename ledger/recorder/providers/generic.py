"""Fallback adapter for paths whose wire format is not recognized.

Invariants:

- The operation is always ``unknown`` and nothing is read from the response body: for an
  unrecognized path only the hashes, status and host (recorded by the core) are trustworthy.
- The request body is still parsed so ``content="full"`` can keep it; nothing else is reported
  (not even a ``model`` field: without a known format its meaning is a guess).
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.recorder.providers._base import CallFacts, Exchange, load_json

__all__ = ["UnknownAdapter", "empty_facts"]


def empty_facts(provider: str, operation: str, request_json: object | None = None) -> CallFacts:
    """Facts that say nothing beyond provider and operation."""
    return CallFacts(
        provider=provider,
        operation=operation,
        request_model=None,
        response_model=None,
        response_id=None,
        stream=False,
        finish_reasons=(),
        input_tokens=None,
        output_tokens=None,
        outputs=(),
        output_modality=None,
        request_json=request_json,
    )


@dataclass(frozen=True, slots=True)
class UnknownAdapter:
    """Adapter for an unrecognized path: operation ``unknown``, no response facts."""

    provider: str

    def parse(self, exchange: Exchange) -> CallFacts:
        """Report the provider and the parsed request (for ``content="full"``), nothing else."""
        return empty_facts(self.provider, "unknown", load_json(exchange.request_body))
