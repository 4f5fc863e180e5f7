"""The conduct part of a dataset audit: the detectors over the entries the audit reads anyway.

Invariants:

- One pass over the log: the audit's own first pass (which builds the fingerprint index)
  hands every body it reads to :meth:`ConductPass.add`, which keeps only the facts the
  detectors read, as compact columns (:class:`ledger.policy.conduct.CallColumns`); the log is
  not read a second time for conduct, and no worker interpreter is needed.
- The detectors see every entry the audit considers (the ``datasets`` filter applies), with the
  findings of :func:`ledger.policy.conduct.detect` over those entries; the audit keeps those
  that involve a linked entry (:meth:`ConductPass.findings`).
- The columns are freed as soon as the findings are made (right after the pass, before the
  dataset is matched).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from ledger.log.store import LogStore
from ledger.policy.conduct import CallColumns, ConductThresholds, Finding, detect_columns

__all__ = ["ConductPass", "entry_bodies"]


def entry_bodies(
    store: LogStore, datasets: frozenset[str | None] | None
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """``(leaf, entry id, body)`` of every entry in leaf order, of ``datasets`` only if given."""
    for leaf, data, _, entry_id in store.raw_entries(batch=10_000):
        signed = orjson.loads(data)
        body = signed.get("body") if type(signed) is dict else None
        if type(body) is not dict:
            continue
        if datasets is not None:
            name = body.get("dataset")
            if (name if type(name) is str else None) not in datasets:
                continue
        yield leaf, entry_id, body


class ConductPass:
    """Collects the detectors' facts during the audit's pass; :meth:`findings` judges them."""

    def __init__(
        self,
        thresholds: ConductThresholds | None,
        hosts: Mapping[str, frozenset[str]] | None,
    ) -> None:
        self._thresholds = thresholds
        self._hosts = hosts
        self._columns = CallColumns()
        self._found: list[Finding] | None = None

    def add(self, leaf: int, body: Mapping[str, Any]) -> None:
        """One entry body the audit read (before it changes the body)."""
        self._columns.add(leaf, body)

    def detect(self) -> None:
        """Run the detectors over what was collected, and free the columns.

        Called right after the pass, before matching, so the columns never coexist with the
        matching's peak.
        """
        columns, self._columns = self._columns, CallColumns()
        self._found = detect_columns(
            columns, thresholds=self._thresholds, official_hosts=self._hosts
        )

    def findings(self, linked: bytearray) -> list[Finding]:
        """The findings that involve at least one entry marked in ``linked`` (by leaf).

        A 429 is never linked itself, but the evasion after it may be: a finding is kept when
        any of its entries is linked.
        """
        if self._found is None:
            self.detect()
        size = len(linked)
        found = self._found or []
        return [f for f in found if any(linked[leaf] for leaf in f.leaf_indexes if leaf < size)]
