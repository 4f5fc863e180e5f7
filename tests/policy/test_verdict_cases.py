"""Dated verdict cases kept as data: every ``tests/assets/verdict_cases/*.yaml`` file, each case
run through the real engine against the shipped policies.

Invariants of the case format (one YAML list per file):

- Each case is a mapping with the keys ``id`` (unique over all files), ``provider`` (a provider
  slug or ``self-hosted``), ``model`` (the id as the call or artifact spells it), ``at``
  (``YYYY-MM-DD``, judged at 12:00 UTC), ``purpose``, ``facts`` (declared facts, possibly
  ``{}``), ``expect`` (``allowed``, ``conditional``, ``prohibited`` or ``unknown``) and
  ``source`` (at most one sentence of the text the expectation rests on, with the snapshot it
  was read from).
- Optional keys narrow the check so that a right verdict for a wrong reason still fails:
  ``duties`` (the exact set of duty actions reported; ``[]`` means none), ``rules`` (qualified
  rule ids ``policy/version/rule`` that must be cited), ``versions`` (``policy/version`` pairs
  that must be used), ``not_rules`` (rule ids that must not be cited), ``missing`` (facts the
  verdict must report as missing) and ``modality`` (the call's output modality, default
  ``text``).
- Unknown keys are refused, so a misspelt ``dutes:`` cannot silently turn a check off.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ledger.policy import CallFacts, evaluate, load_policies
from ledger.policy.verdict import VERDICTS, Verdict
from ledger.vocabulary import PURPOSES

CASES_DIR = Path(__file__).resolve().parents[1] / "assets" / "verdict_cases"
_REQUIRED = ("id", "provider", "model", "at", "purpose", "facts", "expect", "source")
_OPTIONAL = ("duties", "rules", "versions", "not_rules", "missing", "modality")
# One sentence of quotation plus a snapshot reference fits comfortably in this.
_SOURCE_MAX = 420


@dataclass(frozen=True)
class VerdictCase:
    """One dated case read from a case file."""

    file: str
    id: str
    provider: str
    model: str
    at: dt.date
    purpose: str
    facts: dict[str, Any]
    expect: str
    source: str
    duties: tuple[str, ...] | None
    rules: tuple[str, ...]
    versions: tuple[str, ...]
    not_rules: tuple[str, ...]
    missing: tuple[str, ...]
    modality: str

    @property
    def call(self) -> CallFacts:
        moment = dt.datetime.combine(self.at, dt.time(12), tzinfo=dt.UTC)
        return CallFacts(
            provider=self.provider,
            model=self.model,
            at=moment,
            output_modality=self.modality,  # type: ignore[arg-type]  # checked in _parse
        )


def _strings(raw: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: {key!r} must be a list of strings")
    return tuple(value)


def _parse(raw: object, file: str, index: int) -> VerdictCase:
    where = f"{file}[{index}]"
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: a case is a mapping")
    unknown = set(raw) - set(_REQUIRED) - set(_OPTIONAL)
    absent = [key for key in _REQUIRED if key not in raw]
    if unknown or absent:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}, missing keys {absent}")
    where = f"{file}:{raw['id']}"
    day = raw["at"]
    if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        raise ValueError(f"{where}: 'at' must be a YYYY-MM-DD date")
    if raw["purpose"] not in PURPOSES:
        raise ValueError(f"{where}: unknown purpose {raw['purpose']!r}")
    if raw["expect"] not in VERDICTS:
        raise ValueError(f"{where}: 'expect' must be one of {VERDICTS}")
    if not isinstance(raw["facts"], dict):
        raise ValueError(f"{where}: 'facts' must be a mapping")
    source = raw["source"]
    if not isinstance(source, str) or not source.strip() or len(source) > _SOURCE_MAX:
        raise ValueError(f"{where}: 'source' must be one short quoted sentence with its snapshot")
    modality = raw.get("modality", "text")
    if modality not in ("text", "embedding", "image", "audio"):
        raise ValueError(f"{where}: unknown modality {modality!r}")
    duties = _strings(raw, "duties", where) if "duties" in raw else None
    return VerdictCase(
        file=file,
        id=str(raw["id"]),
        provider=str(raw["provider"]),
        model=str(raw["model"]),
        at=day,
        purpose=raw["purpose"],
        facts=dict(raw["facts"]),
        expect=raw["expect"],
        source=source,
        duties=duties,
        rules=_strings(raw, "rules", where),
        versions=_strings(raw, "versions", where),
        not_rules=_strings(raw, "not_rules", where),
        missing=_strings(raw, "missing", where),
        modality=modality,
    )


def load_cases(directory: Path = CASES_DIR) -> list[VerdictCase]:
    """Every case of every ``*.yaml`` file in ``directory``, in file order."""
    cases: list[VerdictCase] = []
    for path in sorted(directory.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        if not isinstance(data, list):
            raise ValueError(f"{path.name}: a case file is a YAML list of cases")
        cases.extend(_parse(raw, path.name, index) for index, raw in enumerate(data))
    ids = [case.id for case in cases]
    twice = sorted({case_id for case_id in ids if ids.count(case_id) > 1})
    if twice:
        raise ValueError(f"case ids used more than once: {twice}")
    return cases


CASES = load_cases()


def check_case(verdict: Verdict, case: VerdictCase) -> None:
    """Assert that ``verdict`` is what ``case`` expects, for the reasons it expects."""
    layers = [layer.to_dict() for layer in verdict.layers]
    assert verdict.verdict == case.expect, (case.source, layers)
    cited = {rule.rule_id for rule in verdict.rules}
    for rule_id in case.rules:
        assert rule_id in cited, (rule_id, sorted(cited))
    for rule_id in case.not_rules:
        assert rule_id not in cited, (rule_id, sorted(cited))
    used = {f"{v.policy}/{v.version}" for v in verdict.policy_versions}
    for version in case.versions:
        assert version in used, (version, sorted(used))
    for fact in case.missing:
        assert fact in verdict.missing_facts, (fact, verdict.missing_facts)
    if case.duties is not None:
        actions = sorted({duty.action for duty in verdict.duties})
        assert actions == sorted(set(case.duties)), actions


def test_the_case_files_hold_cases() -> None:
    assert CASES, f"no cases under {CASES_DIR}"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_verdict_case(case: VerdictCase) -> None:
    check_case(evaluate(case.call, case.purpose, case.facts), case)


def test_every_licence_version_has_a_case() -> None:
    # A licence version no case reaches could carry any rule at all without a test noticing.
    used = set()
    for case in CASES:
        verdict = evaluate(case.call, case.purpose, case.facts)
        used |= {f"{v.policy}/{v.version}" for v in verdict.policy_versions}
    licences = {
        f"{policy.id}/{version.id}"
        for policy in load_policies().licences()
        for version in policy.versions
    }
    assert sorted(licences - used) == []


def test_a_wrong_expectation_fails() -> None:
    # The checker itself must be able to fail: a wrong verdict, duty set or cited rule.
    raw = {
        "id": "self-check",
        "provider": "self-hosted",
        "model": "Qwen/Qwen2.5-72B-Instruct",
        "at": dt.date(2025, 1, 1),
        "purpose": "train-model",
        "facts": {"distributed": True, "commercial": False},
        "expect": "conditional",
        "duties": ["display-label"],
        "source": "a sentence",
    }
    case = _parse(raw, "inline", 0)
    verdict = evaluate(case.call, case.purpose, case.facts)
    check_case(verdict, case)
    for change in (
        {"expect": "allowed"},
        {"duties": ["display-label", "ship-licence-copy"]},
        {"rules": ["qwen/no-such-version/no-such-rule"]},
        {"versions": ["llama/llama-3.1"]},
    ):
        with pytest.raises(AssertionError):
            check_case(verdict, _parse({**raw, **change}, "inline", 0))


def test_the_format_refuses_unknown_keys(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "- {id: x, provider: openai, model: gpt-4o, at: 2025-01-01, purpose: evaluate,\n"
        "   facts: {}, expect: allowed, source: 'a sentence', dutes: []}\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="unknown keys"):
        load_cases(tmp_path)
