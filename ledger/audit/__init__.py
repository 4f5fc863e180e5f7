"""Dataset audits: link each example of a distilled dataset to the teacher calls that produced it,
robust to real post-processing, and judge the dataset for its declared purpose.

Invariants:

- Read only: the ledger is read in bulk and never written; the fingerprint index lives in
  memory, rebuilt from the signed bodies for every audit (:mod:`ledger.audit.index`).
- Stages, strongest first: ``id``, ``exact``, ``template``, ``part``, ``near``, ``none``
  (:mod:`ledger.audit.matching`); readers for the common dataset formats
  (:mod:`ledger.audit.readers`); the run and the verdicts (:mod:`ledger.audit.dataset`); what
  it found (:mod:`ledger.audit.results`); the conduct pass (:mod:`ledger.audit.conduct`).

Example:
    >>> import ledger
    >>> lg = ledger.open(home="/tmp/demo-ledger")
    >>> audit = lg.audit_dataset(["train.jsonl"])          # doctest: +SKIP
    >>> audit.summary()["by_match"]                        # doctest: +SKIP
    {'id': 0, 'exact': 980, 'template': 0, 'part': 12, 'near': 3, 'none': 5}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledger._lazy import lazy_exports

if TYPE_CHECKING:
    from ledger.audit.dataset import KeySource, Progress, audit_dataset
    from ledger.audit.matching import (
        DEFAULT_NEAR_THRESHOLD,
        DEFAULT_WRAPPERS,
        MATCH_CLASSES,
        Link,
    )
    from ledger.audit.readers import FORMATS, BadRow, Example, read_dataset
    from ledger.audit.results import DatasetAudit, DutySummary, ExampleResult, IdFinding

# Each public name's module, imported on first use (PEP 562): ``ledger audit conduct`` and the
# CLI's option defaults need the matcher's constants, not the judge and policy engine that
# :mod:`ledger.audit.dataset` brings, and start-up is a target (issue 8 point 18).
_HOMES = {
    "KeySource": "dataset",
    "Progress": "dataset",
    "audit_dataset": "dataset",
    "DEFAULT_NEAR_THRESHOLD": "matching",
    "DEFAULT_WRAPPERS": "matching",
    "MATCH_CLASSES": "matching",
    "Link": "matching",
    "FORMATS": "readers",
    "BadRow": "readers",
    "Example": "readers",
    "read_dataset": "readers",
    "DatasetAudit": "results",
    "DutySummary": "results",
    "ExampleResult": "results",
    "IdFinding": "results",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

__all__ = [
    "DEFAULT_NEAR_THRESHOLD",
    "DEFAULT_WRAPPERS",
    "FORMATS",
    "MATCH_CLASSES",
    "BadRow",
    "DatasetAudit",
    "DutySummary",
    "Example",
    "ExampleResult",
    "IdFinding",
    "KeySource",
    "Link",
    "Progress",
    "audit_dataset",
    "read_dataset",
]
