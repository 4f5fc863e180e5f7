"""Verdicts as packs carry them: one document per entry, and an example's verdict from its links.

Invariants:

* An entry's verdict is :func:`ledger.policy.evaluate` of its call facts for the pack's
  purpose, with the declared facts merged with the entry's own ``facts`` (as the ledger's
  judge does); its document is the verdict's JSON without the per-call part, and its digest
  the SHA-256 of that JSON with sorted keys. Builder and verifier both call this module.
* An example's verdict is the strictest verdict among the entries it links to (an entry that
  cannot be judged counts as ``conditional``, as in the audit); an unlinked example has none.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import msgspec

from ledger.crypto.canonical import sha256_hex
from ledger.entry_body import call_stamp_of, served_model_of
from ledger.errors import InputError
from ledger.policy import CallFacts, DeclaredFacts, PolicySet, Verdict, evaluate
from ledger.policy.verdict import VERDICTS

__all__ = ["CallFields", "Judgements", "example_verdict", "fast_key", "verdict_document"]

_RANK = {name: rank for rank, name in enumerate(VERDICTS)}
_UNJUDGED_RANK = _RANK["conditional"]


def verdict_document(
    body: Mapping[str, Any], purpose: str, facts: DeclaredFacts, policies: PolicySet
) -> tuple[str, dict[str, Any], Verdict] | None:
    """``(sha256, document, verdict)`` of one entry body, or None when it cannot be judged."""
    return Judgements(purpose, facts, policies).document(body)


class Judgements:
    """Verdict documents of many entries for one purpose, facts and policy set.

    The engine picks policy versions by the call's UTC day, so calls that agree on provider,
    model, host, output modality, day and merged facts get the same document (the ledger's
    judge relies on the same property): each such combination is evaluated once.
    """

    def __init__(self, purpose: str, facts: DeclaredFacts, policies: PolicySet) -> None:
        self.purpose = purpose
        self.facts = facts
        self.policies = policies
        self._cache: dict[Hashable, tuple[str, dict[str, Any], Verdict]] = {}

    def cached_key(self, key: Hashable | None) -> tuple[str, dict[str, Any], Verdict] | None:
        """The document :meth:`document` gave a body of this :meth:`CallFields.judging_key`
        before, else None (None for a body with its own ``facts``, which has no such key)."""
        return self._cache.get(key) if key is not None else None

    def document(self, body: Mapping[str, Any]) -> tuple[str, dict[str, Any], Verdict] | None:
        """``(sha256, document, verdict)`` of one entry body, or None when it cannot be judged."""
        own = body.get("facts")
        fast = _fast_key(body) if own is None else None
        found = self._cache.get(fast) if fast is not None else None
        if found is not None:
            return found
        try:
            merged = self.facts.merged(own if isinstance(own, Mapping) else None)
            call = CallFacts.from_entry_body(body)
        except InputError:
            return None
        day = call.at.date() if call.at is not None else None
        key = (call.provider, call.model, call.host, call.output_modality, day, merged)
        found = self._cache.get(key)
        if found is None:
            try:
                verdict = evaluate(call, self.purpose, merged, policies=self.policies)
            except InputError:
                return None
            document = {k: v for k, v in verdict.to_dict().items() if k != "call"}
            text = json.dumps(document, sort_keys=True, ensure_ascii=False)
            found = (sha256_hex(text.encode()), document, verdict)
            self._cache[key] = found
        if fast is not None:
            self._cache[fast] = found
        return found


def _fast_key(body: Mapping[str, Any]) -> Hashable | None:
    return fast_key(
        body.get("provider"),
        body.get("request_model"),
        body.get("response_model"),
        body.get("endpoint"),
        body.get("output_modality"),
        body.get("started_at"),
        body.get("recorded_at"),
    )


def fast_key(
    provider: object,
    request_model: object,
    response_model: object,
    endpoint: object,
    output_modality: object,
    started_at: object,
    recorded_at: object,
) -> Hashable | None:
    """The cache key of a body without ``facts`` from the fields it is read from, or None.

    Read straight off a body in the recorder's format (a UTC "...Z" stamp, whose first ten
    characters are the day): a million bodies skip the call-facts model. Anything else takes
    the full path. The call time and the answering model are picked by the entry body's own
    rules (:func:`~ledger.entry_body.call_stamp`, :func:`~ledger.entry_body.served_model`).
    """
    stamp = call_stamp_of(started_at, recorded_at)
    if not isinstance(stamp, str) or not stamp.endswith("Z") or len(stamp) < 11:
        return None
    host = endpoint.get("host") if isinstance(endpoint, Mapping) else None
    model = served_model_of(response_model, request_model)
    key = ("raw", provider, model, host, output_modality, stamp[:10])
    try:
        hash(key)
    except TypeError:
        return None
    return key


class CallFields(msgspec.Struct):
    """The body fields :func:`fast_key` reads, and ``facts``: what a pass over many entries
    decodes of each body to find its document in the cache (msgspec skips the rest, at a
    sixth of a whole parse)."""

    provider: Any = None
    request_model: Any = None
    response_model: Any = None
    endpoint: Any = None
    output_modality: Any = None
    started_at: Any = None
    recorded_at: Any = None
    facts: Any = None

    def judging_key(self) -> Hashable | None:
        """:meth:`Judgements.cached_key`'s key for this body (None: the body has ``facts``)."""
        if self.facts is not None:
            return None
        return fast_key(self.provider, self.request_model, self.response_model, self.endpoint,
                        self.output_modality, self.started_at, self.recorded_at)  # fmt: skip


def example_verdict(verdicts: Iterable[str | None]) -> str | None:
    """The strictest of the linked entries' verdicts (None: no linked entry)."""
    rank = -1
    for verdict in verdicts:
        rank = max(rank, _RANK[verdict] if verdict in _RANK else _UNJUDGED_RANK)
    return VERDICTS[rank] if rank >= 0 else None
