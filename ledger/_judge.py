"""Judging entries under the provider policies and storing the verdicts in the log.

Invariants:

* A verdict is stored per (leaf, purpose, policy digest, declared-facts digest). Evaluating
  again under the same policies and facts adds nothing; under changed policies or facts it
  adds a row and keeps the earlier ones, so an auditor sees how a verdict came to change.
* The facts used are the organization profile merged with an entry's own ``facts`` object (if
  its body declares one); the merged facts are stored inside the verdict document.
* An entry without a declared purpose gets no stored verdict (there is nothing to judge it
  for); asking for one with an explicit purpose still works.
* Judging never blocks or fails an append: a body the engine cannot read is logged and left
  without a verdict.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from ledger.crypto.canonical import canonical_json, sha256_hex
from ledger.errors import InputError, NotFoundError
from ledger.log.store import LogStore, VerdictRow
from ledger.policy import DeclaredFacts, PolicySet, Verdict, evaluate

__all__ = ["Judge", "facts_digest"]

log = logging.getLogger(__name__)


def facts_digest(facts: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the RFC 8785 form of the declared facts."""
    return sha256_hex(canonical_json(dict(facts)))


class Judge:
    """Evaluates entries with the policy engine and stores the verdicts."""

    def __init__(
        self,
        store: LogStore,
        *,
        profile: DeclaredFacts | None = None,
        policies: PolicySet | None = None,
    ) -> None:
        self._store = store
        self.profile = profile or DeclaredFacts()
        self._policies = policies

    def evaluate(
        self,
        body: Mapping[str, Any],
        purpose: str | None = None,
        facts: DeclaredFacts | Mapping[str, Any] | None = None,
    ) -> Verdict | None:
        """Judge one entry body; None when no purpose is declared or given."""
        chosen = purpose if purpose is not None else body.get("purpose")
        if chosen is None:
            return None
        own = body.get("facts")
        merged = self.profile.merged(own if isinstance(own, Mapping) else None, facts)
        return evaluate(body, str(chosen), merged, policies=self._policies)

    def record(self, committed: Iterable[tuple[int, Mapping[str, Any]]]) -> int:
        """Judge freshly committed entries and store their verdicts; return how many."""
        rows = []
        now = datetime.now(UTC)
        for leaf_index, body in committed:
            try:
                verdict = self.evaluate(body)
            except InputError as exc:
                log.warning("ledger: no verdict for leaf %d: %s", leaf_index, exc)
                continue
            if verdict is not None:
                rows.append(_row(leaf_index, verdict, now))
        self._store.add_verdicts(rows)
        return len(rows)

    def reevaluate(
        self,
        entries: Iterable[tuple[int, Mapping[str, Any]]],
        *,
        purpose: str | None = None,
        facts: DeclaredFacts | Mapping[str, Any] | None = None,
    ) -> list[tuple[int, Verdict]]:
        """Judge entries again (new policies, facts or purpose) and store what is new."""
        now = datetime.now(UTC)
        results = []
        for leaf_index, body in entries:
            verdict = self.evaluate(body, purpose, facts)
            if verdict is not None:
                results.append((leaf_index, verdict))
        self._store.add_verdicts([_row(i, v, now) for i, v in results])
        return results

    def history(self, leaf_index: int) -> list[Verdict]:
        """Every verdict stored for one entry, oldest first."""
        return [
            Verdict.from_dict(json.loads(row.document))
            for row in self._store.verdicts(leaf_index, leaf_index + 1)
        ]

    def current(self, leaf_index: int, body: Mapping[str, Any]) -> Verdict:
        """The entry's verdict under today's policies and profile (stored if it is new)."""
        verdict = self.evaluate(body)
        if verdict is None:
            raise NotFoundError(f"entry {leaf_index} declares no purpose: pass one to judge it for")
        self._store.add_verdicts([_row(leaf_index, verdict, datetime.now(UTC))])
        return verdict


def _row(leaf_index: int, verdict: Verdict, now: datetime) -> VerdictRow:
    document = verdict.to_dict()
    return VerdictRow(
        leaf_index=leaf_index,
        purpose=verdict.purpose,
        policy_digest=document["policy_digest"],
        facts_digest=facts_digest(verdict.facts),
        verdict=verdict.verdict,
        document=json.dumps(document, sort_keys=True, ensure_ascii=False),
        evaluated_at=now,
    )
