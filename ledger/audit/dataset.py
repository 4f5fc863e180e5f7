"""Auditing a dataset against a ledger: link every example, judge it, summarize.

Invariants:

- The ledger is only read (entries in bulk, in leaf order); the index is rebuilt in memory from
  the signed bodies on every audit (:mod:`ledger.audit.index`), so the audit trusts exactly the
  log ``ledger verify`` checks and nothing else.
- Two passes over the log at most: one builds the fingerprint index, groups entries by what
  decides their verdict and collects the conduct detectors' facts (:mod:`ledger.audit.conduct`,
  whose findings are kept when they involve a linked entry); a second runs only when some turn
  is left for the ``near`` stage, and reads the sketches. The dataset is read once, streaming;
  only each row's place and its turns' matches are kept, and results
  (:mod:`ledger.audit.results`) replace them in place.
- Verdicts come from the policy engine (through :class:`ledger._judge.Judge`) for the audit's
  declared purpose, with the organization profile and each entry's own facts. Entries that
  agree on provider, model, host, output modality, UTC day, recorded purpose, dataset and own
  facts get the same verdict, so each such group is judged once.
- An example's class is the weakest of its turns' classes (``none`` if any trained turn is
  unlinked); a turn's verdict is the strictest among the candidates of its deciding stage, and
  an example's the strictest of its turns'. An example with a turn that has several candidate
  entries for the same text is ambiguous, and counted apart (a row assembled from several
  calls is not: each of its pieces has its own entry). An example linked to an entry
  recorded for another purpose than the audit's is purpose drift.
- Nothing here decides what is lawful: verdicts report what the dated terms say.
"""

from __future__ import annotations

import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ledger._judge import Judge
from ledger.audit.conduct import ConductPass, entry_bodies
from ledger.audit.index import ID, FingerprintIndex, IndexBuilder, id_key
from ledger.audit.matching import (
    DEFAULT_NEAR_THRESHOLD,
    DEFAULT_WRAPPERS,
    MATCH_CLASSES,
    NEAR_MARGIN,
    Link,
    Matcher,
    NearIndex,
    TurnMatch,
    compile_wrappers,
)
from ledger.audit.readers import FORMATS, BadRow, Example, read_dataset
from ledger.audit.results import DatasetAudit, DutySummary, ExampleResult, IdFinding
from ledger.crypto.canonical import canonical_json
from ledger.entry_body import call_stamp, served_model
from ledger.errors import InputError, LedgerError
from ledger.log.store import LogStore
from ledger.policy import DeclaredFacts, Verdict
from ledger.policy.conduct import ConductThresholds, Finding
from ledger.policy.verdict import VERDICTS

__all__ = [
    "DatasetAudit",
    "DutySummary",
    "ExampleResult",
    "IdFinding",
    "KeySource",
    "Progress",
    "audit_dataset",
]

# The key of one dataset name, or an error when that key is not available.
KeySource = Mapping[str | None, bytes] | Callable[[str | None], bytes]
# Called with (phase, done, total or None): phases "index", "dataset", "near".
Progress = Callable[[str, int, int | None], None]

_STRENGTH = {name: rank for rank, name in enumerate(MATCH_CLASSES)}
_VERDICT_RANK: dict[str, int] = {name: rank for rank, name in enumerate(VERDICTS)}
_NO_GROUP = 0xFFFFFFFF


class _Pending(NamedTuple):
    """All an audit keeps of a row once its turns are matched: its place, not its text."""

    row: int
    file: str
    line: int
    turns: list[TurnMatch]


# -- grouping entries by what decides their verdict ------------------------------------------


@dataclass(slots=True)
class _Group:
    body: Mapping[str, Any]  # a representative body (same verdict inputs as every member)
    provider: str
    model: str
    month: str
    purpose: str | None
    verdict: Verdict | None = None
    judged: bool = False
    versions: tuple[str, ...] = ()


def _group_key(body: Mapping[str, Any]) -> tuple[Any, ...]:
    endpoint = body.get("endpoint")
    host = endpoint.get("host") if isinstance(endpoint, Mapping) else None
    stamp = call_stamp(body)
    day = stamp[:10] if isinstance(stamp, str) else None
    facts = body.get("facts")
    own = canonical_json(facts) if isinstance(facts, Mapping) and facts else None
    purpose = body.get("purpose")
    dataset = body.get("dataset")
    key = (body.get("provider"), served_model(body), host, body.get("output_modality"), day,
           purpose, dataset, own)  # fmt: skip
    try:
        hash(key)
    except TypeError:  # a malformed body (a list where a string belongs): a group of its own
        return ("malformed", id(body))
    return key


# -- the audit ---------------------------------------------------------------------------------


class _Run:
    """State of one audit run (see :func:`audit_dataset`)."""

    def __init__(
        self,
        store: LogStore,
        keys: KeySource,
        *,
        purpose: str,
        judge: Judge,
        datasets: frozenset[str | None] | None,
        wrappers: Sequence[str],
        near_threshold: float,
        progress: Progress | None,
        conduct: ConductPass | None,
    ) -> None:
        self.store = store
        self.keys = keys
        self.purpose = purpose
        self.judge = judge
        self.datasets = datasets
        self.wrappers = wrappers
        self.near = NearIndex(near_threshold)
        self.progress = progress
        self.conduct = conduct
        self.groups: list[_Group] = []
        self.group_of_key: dict[tuple[Any, ...], int] = {}
        self.leaf_group = array("I")
        self.notes: list[str] = []

    def _tick(self, phase: str, done: int, total: int | None) -> None:
        if self.progress is not None:
            self.progress(phase, done, total)

    def build_index(self) -> FingerprintIndex:
        """The first pass: the fingerprint index and the verdict groups."""
        builder = IndexBuilder()
        total = self.store.size()
        groups, leaf_group, conduct = self.group_of_key, self.leaf_group, self.conduct
        for leaf, entry_id, body in entry_bodies(self.store, self.datasets):
            while len(leaf_group) < leaf:
                leaf_group.append(_NO_GROUP)
            builder.add_entry(leaf, entry_id, body)
            if conduct is not None:
                conduct.add(leaf, body)
            key = _group_key(body)
            number = groups.get(key)
            if number is None:
                number = groups[key] = len(self.groups)
                stamp = call_stamp(body)
                purpose = body.get("purpose")
                body.pop("outputs", None)  # the representative is judged, never matched
                self.groups.append(
                    _Group(
                        body,
                        str(body.get("provider") or "unknown"),
                        served_model(body) or "unknown",
                        stamp[:7] if isinstance(stamp, str) else "unknown",
                        purpose if isinstance(purpose, str) else None,
                    )
                )
            leaf_group.append(number)
            if leaf % 20_000 == 0:
                self._tick("index", leaf, total)
        while len(leaf_group) < total:
            leaf_group.append(_NO_GROUP)
        self._tick("index", total, total)
        return builder.build()

    def resolve_keys(self, index: FingerprintIndex) -> dict[int, bytes]:
        resolved: dict[int, bytes] = {}
        for slot, name in index.datasets.items():
            try:
                if callable(self.keys):
                    key = self.keys(name)
                else:
                    found = self.keys.get(name)
                    if found is None:
                        raise KeyError(name)
                    key = found
            except (KeyError, LedgerError, OSError):
                label = "entries without a dataset name" if name is None else f"dataset {name!r}"
                self.notes.append(
                    f"no fingerprint key for {label}: its version 2 entries cannot be linked"
                )
                continue
            resolved[slot] = key
        return resolved

    def verdict_of(self, leaf: int) -> Verdict | None:
        number = self.leaf_group[leaf] if leaf < len(self.leaf_group) else _NO_GROUP
        if number == _NO_GROUP:
            return None
        return self.judge_group(self.groups[number], leaf)

    def judge_group(self, group: _Group, leaf: int) -> Verdict | None:
        if not group.judged:
            group.judged = True
            try:
                group.verdict = self.judge.evaluate(group.body, self.purpose)
            except InputError as exc:
                self.notes.append(f"entry {leaf}: cannot be judged: {exc}")
            if group.verdict is not None:
                group.versions = tuple(
                    f"{v.policy}@{v.version}" for v in group.verdict.policy_versions
                )
        return group.verdict

    def group_of(self, leaf: int) -> _Group | None:
        number = self.leaf_group[leaf] if leaf < len(self.leaf_group) else _NO_GROUP
        return None if number == _NO_GROUP else self.groups[number]

    def second_pass(self, near_hits: dict[int, list[tuple[int, int, float]]]) -> None:
        """Probe every entry output's sketch against the turns left for the near stage."""
        total = self.store.size()
        for leaf, _, body in entry_bodies(self.store, self.datasets):
            outputs = body.get("outputs")
            dataset = body.get("dataset")
            slot = self._slots.get(dataset if isinstance(dataset, str) else None)
            if isinstance(outputs, list) and slot is not None:
                for position, record in enumerate(outputs):
                    encoded = record.get("sketch") if isinstance(record, dict) else None
                    if not isinstance(encoded, str):
                        continue
                    number = record.get("index", position)
                    out = number if isinstance(number, int) else position
                    for turn, score in self.near.probe(slot, encoded):
                        near_hits.setdefault(turn, []).append((leaf, out, score))
            if leaf % 20_000 == 0:
                self._tick("near", leaf, total)

    _slots: dict[str | None, int]


def audit_dataset(
    store: LogStore,
    paths: Iterable[str | Path],
    keys: KeySource,
    *,
    purpose: str = "train-model",
    profile: DeclaredFacts | None = None,
    format: str = "auto",
    text_field: str | None = None,
    id_field: str = "ledger_entry_id",
    datasets: Iterable[str | None] | None = None,
    wrappers: Sequence[str] = DEFAULT_WRAPPERS,
    near_threshold: float = DEFAULT_NEAR_THRESHOLD,
    conduct: bool = True,
    conduct_thresholds: ConductThresholds | None = None,
    official_hosts: Mapping[str, frozenset[str]] | None = None,
    strict: bool = False,
    progress: Progress | None = None,
) -> DatasetAudit:
    """Link every example of the dataset files to the ledger's entries and judge it.

    Args:
        store: the ledger's store (read only).
        paths: dataset files (or saved Hugging Face dataset folders).
        keys: the fingerprint key of each dataset name (a mapping, or a function such as
            ``Ledger.fingerprint_key``); datasets without a key link only through version 1
            hashes and ids.
        purpose: the dataset's declared purpose (a ``ledger.vocabulary.PURPOSES`` value).
        profile: the organization profile (declared facts).
        format, text_field, id_field: how rows are read (:mod:`ledger.audit.readers`).
        datasets: only entries recorded under these dataset names (None: every entry).
        wrappers: template wrapper patterns (:data:`ledger.audit.matching.DEFAULT_WRAPPERS`).
        near_threshold: the similarity from which a sketch match links (``near``).
        conduct: run the conduct detectors over the linked entries.
        strict: a bad row raises ``InputError`` instead of being reported.
        progress: ``progress(phase, done, total)`` as the audit advances.

    Raises:
        InputError: unreadable files, bad options, or (``strict``) a bad row.
    """
    from ledger.vocabulary import PURPOSES

    if purpose not in PURPOSES:
        raise InputError(f"unknown purpose {purpose!r} (known: {', '.join(PURPOSES)})")
    started = time.perf_counter()
    files = tuple(str(p) for p in paths)
    if not files:
        raise InputError("no dataset file given")
    run = _Run(
        store,
        keys,
        purpose=purpose,
        judge=Judge(store, profile=profile),
        datasets=None if datasets is None else frozenset(datasets),
        wrappers=wrappers,
        near_threshold=near_threshold,
        progress=progress,
        conduct=ConductPass(conduct_thresholds, official_hosts) if conduct else None,
    )
    # Settle what can be wrong with the input before the (long) first pass over the log.
    if format not in FORMATS:
        raise InputError(f"unknown --format {format!r} (known: {', '.join(FORMATS)})")
    if format == "text" and text_field is None:
        raise InputError("--format text needs --text-field")
    for name in files:
        if not Path(name).exists():
            raise InputError(f"no dataset file {name}")
    compile_wrappers(wrappers)
    rows = read_dataset(files, format=format, text_field=text_field, id_field=id_field)
    index = run.build_index()
    if run.conduct is not None:
        run.conduct.detect()
    slot_keys = run.resolve_keys(index)
    run._slots = {index.datasets[slot]: slot for slot in slot_keys}
    matcher = Matcher(index, slot_keys, wrappers=wrappers)

    # Only the row's place is kept, never its text: a million rows would not fit otherwise.
    examples: list[Any] = []  # _Pending, replaced in place by ExampleResult when tallied
    bad: list[BadRow] = []
    id_findings: list[IdFinding] = []
    linked = bytearray(len(run.leaf_group))
    for item in rows:
        if isinstance(item, BadRow):
            if strict:
                raise InputError(f"bad row {item}")
            bad.append(item)
            continue
        turns = _match_example(item, len(examples), index, matcher, run.near, id_findings)
        for turn in turns:
            for link in turn.links:
                linked[link.leaf_index] = 1
        examples.append(_Pending(item.index, item.file, item.line, turns))
        if len(examples) % 10_000 == 0:
            run._tick("dataset", len(examples), None)

    near_hits: dict[int, list[tuple[int, int, float]]] = {}
    if len(run.near):
        run.second_pass(near_hits)
    by_turn: dict[tuple[int, int], dict[tuple[int, int], Link]] = {}
    for number, hits in near_hits.items():
        ref = run.near.turns[number]
        assert isinstance(ref, tuple)  # noqa: S101 - set by _match_example
        found = by_turn.setdefault(ref, {})
        for leaf, out, score in hits:
            best = found.get((leaf, out))
            if best is None or (best.similarity or 0.0) < score:
                found[(leaf, out)] = Link(leaf, "near", out, "sketch", score)
    for (position, turn_number), links in by_turn.items():
        ordered = sorted(links.values(), key=lambda x: (-(x.similarity or 0.0), x.leaf_index))
        # Candidates clearly less similar than the best are not alternatives to it.
        top = ordered[0].similarity or 0.0
        ordered = [x for x in ordered if (x.similarity or 0.0) >= top - NEAR_MARGIN]
        several = len({link.leaf_index for link in ordered}) > 1
        examples[position].turns[turn_number] = TurnMatch("near", tuple(ordered), ambiguous=several)
        for link in ordered:
            linked[link.leaf_index] = 1
    # Conduct findings that involve at least one linked entry.
    findings = run.conduct.findings(linked) if run.conduct is not None else []
    return _assemble(run, examples, bad, id_findings, findings, index, files, started)


def _match_example(
    example: Example,
    position: int,
    index: FingerprintIndex,
    matcher: Matcher,
    near: NearIndex,
    id_findings: list[IdFinding],
) -> list[TurnMatch]:
    named: dict[str, frozenset[int]] = {}
    for entry_id in {*example.entry_ids, *(i for ids in example.turn_ids for i in ids)}:
        leaves = frozenset(h.leaf_index for h in index.lookup(id_key(entry_id)) if h.kind == ID)
        named[entry_id] = leaves
        if not leaves:
            id_findings.append(
                IdFinding(example.index, example.file, example.line, entry_id,
                          "no entry with this id in the ledger")
            )  # fmt: skip
    row_leaves = frozenset().union(*(named[i] for i in example.entry_ids)) if named else frozenset()
    turns: list[TurnMatch] = []
    for number, text in enumerate(example.turns):
        own = example.turn_ids[number] if number < len(example.turn_ids) else ()
        leaves = row_leaves.union(*(named[i] for i in own)) if own else row_leaves
        result = matcher.match(text, leaves)
        if result.match == "none":
            near_text = matcher.near_text(text)
            if near_text is not None:
                for slot, fingerprinter in matcher.slots:
                    value = fingerprinter.sketch(near_text)
                    if value is not None:
                        near.add((position, number), slot, value)
        turns.append(result)
    # The id check is per example: a named entry that holds none of its turns is a finding.
    if named and any(named.values()) and not any(t.match == "id" for t in turns):
        for entry_id, leaves in named.items():
            if leaves:
                id_findings.append(
                    IdFinding(example.index, example.file, example.line, entry_id,
                              "the named entry holds none of the row's assistant turns")
                )  # fmt: skip
    return turns


def _assemble(
    run: _Run,
    examples: list[Any],
    bad: list[BadRow],
    id_findings: list[IdFinding],
    findings: list[Finding],
    index: FingerprintIndex,
    files: tuple[str, ...],
    started: float,
) -> DatasetAudit:
    by_match: Counter[str] = Counter(dict.fromkeys(MATCH_CLASSES, 0))
    by_verdict: Counter[str] = Counter(dict.fromkeys(VERDICTS, 0))
    # Linked examples counted per verdict group of their deciding entries (one example, one
    # count per group); expanded into provider, model, month, policy version and duties below.
    per_group: Counter[int] = Counter()
    multi: dict[str, Counter[str]] = {name: Counter() for name in ("p", "m", "t", "v")}
    multi_duties: Counter[tuple[str, tuple[str, ...], str]] = Counter()
    drift: Counter[str] = Counter()
    leaf_group, groups, purpose = run.leaf_group, run.groups, run.purpose
    # Each pending example is replaced by its result in place, so that the two never coexist
    # in full (a million of each would double the peak memory).
    results = examples
    for position, example in enumerate(examples):
        turns = example.turns
        match = (
            turns[0].match
            if len(turns) == 1
            else max((t.match for t in turns), key=_STRENGTH.__getitem__)
        )
        if match == "none":
            links = tuple(link for turn in turns for link in turn.links)
            unlinked = sum(1 for t in turns if t.match == "none")
            results[position] = ExampleResult(example.row, example.file, example.line, "none",
                                              links, None, len(turns), unlinked)  # fmt: skip
            by_match["none"] += 1
            continue
        verdict_rank = -1
        chosen: set[int] = set()
        ambiguous = False
        drifted: dict[str, None] = {}
        for turn in turns:
            ambiguous = ambiguous or turn.ambiguous
            # Strictest verdict among the candidates of the deciding stage; ties: lowest leaf.
            best_rank, best_group = -1, _NO_GROUP
            for leaf in sorted(turn.leaves):
                number = leaf_group[leaf]
                if number == _NO_GROUP:
                    continue
                group = groups[number]
                verdict = run.judge_group(group, leaf)
                rank = _VERDICT_RANK[verdict.verdict] if verdict is not None else 1
                if rank > best_rank:
                    best_rank, best_group = rank, number
                if group.purpose is not None and group.purpose != purpose:
                    drifted[group.purpose] = None
            if best_group != _NO_GROUP:
                chosen.add(best_group)
            verdict_rank = max(verdict_rank, best_rank if best_rank >= 0 else 1)
        verdict_name = VERDICTS[verdict_rank]
        links = (
            turns[0].links
            if len(turns) == 1
            else tuple(link for turn in turns for link in turn.links)
        )
        results[position] = ExampleResult(
            example.row, example.file, example.line, match, links, verdict_name,
            len(turns), 0, ambiguous, tuple(drifted),
        )  # fmt: skip
        by_match[match] += 1
        by_verdict[verdict_name] += 1
        for name in drifted:
            drift[name] += 1
        if len(chosen) == 1:
            per_group[next(iter(chosen))] += 1
            continue
        seen: dict[str, set[str]] = {name: set() for name in multi}
        duty_keys: set[tuple[str, tuple[str, ...], str]] = set()
        for number in chosen:
            group = groups[number]
            seen["p"].add(group.provider)
            seen["m"].add(f"{group.provider}/{group.model}")
            seen["t"].add(group.month)
            seen["v"].update(group.versions)
            if group.verdict is not None:
                duty_keys.update((d.action, d.value, d.rule_id) for d in group.verdict.duties)
        for name, values in seen.items():
            multi[name].update(values)
        multi_duties.update(duty_keys)
    by_provider, by_model, by_month, by_version = (multi[n] for n in ("p", "m", "t", "v"))
    duty_counts = multi_duties
    duty_refs: dict[tuple[str, tuple[str, ...], str], Any] = {}
    for number, count in per_group.items():
        group = groups[number]
        by_provider[group.provider] += count
        by_model[f"{group.provider}/{group.model}"] += count
        by_month[group.month] += count
        for version in group.versions:
            by_version[version] += count
        if group.verdict is not None:
            for duty in group.verdict.duties:
                duty_counts[(duty.action, duty.value, duty.rule_id)] += count
    for group in groups:
        if group.verdict is not None:
            for duty in group.verdict.duties:
                duty_refs.setdefault((duty.action, duty.value, duty.rule_id), duty)
    duty_list = tuple(
        DutySummary(key[0], key[1], key[2], duty_refs[key].describe(), count)
        for key, count in sorted(duty_counts.items(), key=lambda kc: (-kc[1], kc[0][2]))
        if count
    )
    return DatasetAudit(
        purpose=run.purpose,
        files=files,
        results=tuple(results),
        bad_rows=tuple(bad),
        by_match=dict(by_match),
        by_verdict=dict(by_verdict),
        by_provider=dict(sorted(by_provider.items())),
        by_model=dict(sorted(by_model.items())),
        by_policy_version=dict(sorted(by_version.items())),
        by_month=dict(sorted(by_month.items())),
        drift_purposes=dict(sorted(drift.items())),
        duties=duty_list,
        conduct=tuple(findings),
        id_findings=tuple(id_findings),
        entries_indexed=index.entries,
        near_threshold=run.near.threshold,
        seconds=time.perf_counter() - started,
        notes=tuple(run.notes),
    )
