"""Judging entries under the provider policies and storing the verdicts in the log.

Invariants:

* A verdict is stored per (leaf, purpose, policy digest, declared-facts digest). Evaluating
  again under the same policies and facts adds nothing; under changed policies or facts it
  adds a row and keeps the earlier ones, so an auditor sees how a verdict came to change.
* The facts used are the organization profile merged with an entry's own ``facts`` object (if
  its body declares one); the merged facts are part of the stored verdict document.
* Verdict documents (layers, reasons, cited clauses) are stored once per distinct content and
  referenced by SHA-256; the per-call part (``call``: provider, model, host, time) is not in
  the document, because the entry itself is the call: it is rebuilt from the entry on reading.
* The engine picks policy versions by the call's UTC day, so calls that agree on provider,
  model, host, output modality, day, purpose and facts get the same verdict: the judge
  evaluates each such combination once and reuses it (the hot path of every append).
* An entry without a declared purpose gets no stored verdict; asking for one with an explicit
  purpose still works. Judging never blocks or fails an append: a body the engine cannot read
  is logged and left without a verdict.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Hashable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ledger.crypto.canonical import canonical_json, sha256_hex
from ledger.entry_body import call_stamp, served_model
from ledger.errors import InputError
from ledger.log.records import PreparedEntry, Receipt
from ledger.log.store import LogStore, VerdictRow
from ledger.policy import CallFacts, DeclaredFacts, PolicySet, Verdict, evaluate

__all__ = ["Judge", "VerdictCheck", "facts_digest", "recheck_verdicts"]

log = logging.getLogger(__name__)

_CACHE_LIMIT = 4_096


def facts_digest(facts: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the RFC 8785 form of the declared facts."""
    return sha256_hex(canonical_json(dict(facts)))


@dataclasses.dataclass(frozen=True, slots=True)
class _Judged:
    """One evaluated combination: the verdict and its stored form."""

    verdict: Verdict
    policy_digest: str
    facts_digest: str
    document_sha256: str
    document: str


def _fast_key(body: Mapping[str, Any], purpose: object) -> Hashable | None:
    """A cache key read straight off the body, for bodies in the recorder's own format.

    Only timestamps in UTC ``...Z`` form qualify: their first ten characters are the UTC day
    the engine picks versions by. Anything else takes the full path through ``CallFacts``.
    """
    # The same rules as the full path (ledger.entry_body): which stamp is the call time, which
    # model answered. Only the reading of the UTC day is shortcut here.
    stamp = call_stamp(body)
    if not isinstance(stamp, str) or not stamp.endswith("Z") or len(stamp) < 11:
        return None
    endpoint = body.get("endpoint")
    host = endpoint.get("host") if isinstance(endpoint, Mapping) else None
    key = ("raw", body.get("provider"), served_model(body), host, body.get("output_modality"),
           stamp[:10], purpose)  # fmt: skip
    try:
        hash(key)
    except TypeError:  # a malformed body (a list where a string belongs): the full path says so
        return None
    return key


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
        self._cache: dict[Hashable, _Judged] = {}

    def _judge(
        self,
        body: Mapping[str, Any],
        purpose: str | None,
        facts: DeclaredFacts | Mapping[str, Any] | None,
    ) -> _Judged | None:
        chosen = purpose if purpose is not None else body.get("purpose")
        if chosen is None:
            return None
        own = body.get("facts")
        fast = _fast_key(body, chosen) if own is None and facts is None else None
        judged = self._cache.get(fast) if fast is not None else None
        if judged is not None:
            return judged
        merged = self.profile.merged(own if isinstance(own, Mapping) else None, facts)
        call = CallFacts.from_entry_body(body)
        day = call.at.date() if call.at is not None else None
        key = (call.provider, call.model, call.host, call.output_modality, day, chosen, merged)
        judged = self._cache.get(key)
        if judged is None:
            verdict = evaluate(call, str(chosen), merged, policies=self._policies)
            document = {k: v for k, v in verdict.to_dict().items() if k != "call"}
            text = json.dumps(document, sort_keys=True, ensure_ascii=False)
            judged = _Judged(
                verdict,
                document["policy_digest"],
                facts_digest(verdict.facts),
                sha256_hex(text.encode()),
                text,
            )
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = judged
        if fast is not None:
            self._cache[fast] = judged
        return judged

    def evaluate(
        self,
        body: Mapping[str, Any],
        purpose: str | None = None,
        facts: DeclaredFacts | Mapping[str, Any] | None = None,
    ) -> Verdict | None:
        """Judge one entry body; None when no purpose is declared or given."""
        judged = self._judge(body, purpose, facts)
        if judged is None:
            return None
        call = CallFacts.from_entry_body(body).model_dump(mode="json")
        return dataclasses.replace(judged.verdict, call=call)

    @staticmethod
    def _rows(judged: Iterable[tuple[int, _Judged]]) -> list[VerdictRow]:
        now = datetime.now(UTC)
        return [
            VerdictRow(
                leaf_index, j.verdict.purpose, j.policy_digest, j.facts_digest,
                j.verdict.verdict, j.document_sha256, now, j.document,
            )
            for leaf_index, j in judged
        ]  # fmt: skip

    def annex(self, committed: Sequence[tuple[PreparedEntry, Receipt]]) -> list[VerdictRow]:
        """Verdict rows for entries being appended (stored in the same transaction).

        A body the engine cannot read is logged and gets no verdict; the append goes on.
        """
        judged = []
        for item, receipt in committed:
            try:
                result = self._judge(item.body, None, None)
            except InputError as exc:
                log.warning("ledger: no verdict for leaf %d: %s", receipt.leaf_index, exc)
                continue
            except Exception:  # a fault in judging must never cost the entry its commit
                log.exception("ledger: judging leaf %d failed", receipt.leaf_index)
                continue
            if result is not None:
                judged.append((receipt.leaf_index, result))
        return self._rows(judged)

    def reevaluate(
        self,
        entries: Iterable[tuple[int, Mapping[str, Any]]],
        *,
        purpose: str | None = None,
        facts: DeclaredFacts | Mapping[str, Any] | None = None,
    ) -> list[tuple[int, Verdict]]:
        """Judge entries again (new policies, facts or purpose) and store what is new."""
        judged: list[tuple[int, _Judged]] = []
        results: list[tuple[int, Verdict]] = []
        for leaf_index, body in entries:
            result = self._judge(body, purpose, facts)
            if result is None:
                continue
            judged.append((leaf_index, result))
            call = CallFacts.from_entry_body(body).model_dump(mode="json")
            results.append((leaf_index, dataclasses.replace(result.verdict, call=call)))
        self._store.add_verdicts(self._rows(judged))
        return results

    def history(self, leaf_index: int, body: Mapping[str, Any]) -> list[Verdict]:
        """Every verdict stored for one entry, oldest first."""
        call = CallFacts.from_entry_body(body).model_dump(mode="json")
        return [
            Verdict.from_dict({**json.loads(row.document), "call": call})
            for row in self._store.verdicts(leaf_index, leaf_index + 1)
        ]


@dataclasses.dataclass(frozen=True, slots=True)
class VerdictCheck:
    """What re-judging the stored verdicts found (``ledger verify --verdicts``)."""

    checked: int
    not_rechecked: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when every re-judged verdict came out as stored."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"ok": self.ok}


def recheck_verdicts(store: LogStore, policies: PolicySet | None = None) -> VerdictCheck:
    """Judge every stored verdict again, from its entry, purpose and recorded facts.

    A verdict is re-judged when the policy versions the engine now picks for it (from
    ``policies``, default the installed set) are the ones it names (same policy digest); the
    new verdict document must then be the stored one, byte for byte. Verdicts that name other
    policy versions are counted as not re-checked (pass the policy files they were made under).
    Each distinct (document, call) pair is evaluated once.
    """
    documents = store.verdict_documents()
    problems: list[str] = []
    checked = skipped = 0
    cache: dict[Hashable, tuple[str, str, str]] = {}
    bodies: dict[int, Mapping[str, Any]] = {}
    for leaf, purpose, policy, _facts, _verdict, sha in store.verdict_rows():
        leaf = int(leaf)
        text = documents.get(sha)
        if text is None:
            continue  # verify names a missing document
        if leaf not in bodies:
            if len(bodies) > _CACHE_LIMIT:
                bodies.clear()
            bodies[leaf] = store.entry(leaf).body
        body = bodies[leaf]
        call = CallFacts.from_entry_body(body)
        day = call.at.date() if call.at is not None else None
        key = (sha, call.provider, call.model, call.host, call.output_modality, day)
        if key not in cache:
            stored = json.loads(text)
            facts = DeclaredFacts.coerce(stored.get("facts"))
            verdict = evaluate(call, str(purpose), facts, policies=policies)
            document = {k: v for k, v in verdict.to_dict().items() if k != "call"}
            fresh = json.dumps(document, sort_keys=True, ensure_ascii=False)
            cache[key] = (document["policy_digest"], sha256_hex(fresh.encode()), verdict.verdict)
        digest, fresh_sha, fresh_verdict = cache[key]
        if digest != policy:
            skipped += 1
            continue
        checked += 1
        if fresh_sha != sha:
            problems.append(
                f"leaf {leaf}: stored verdict ({purpose}) differs from the verdict the same "
                f"policies give now ({fresh_verdict}; document {fresh_sha[:16]}, stored "
                f"{sha[:16]})"
            )
    return VerdictCheck(checked, skipped, tuple(problems))
