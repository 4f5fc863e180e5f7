"""Real Hugging Face model ids map to the licence their repository states.

``tests/assets/model_ids.yaml`` lists ids exactly as a stored repository or model card spells
them (organisation prefix, underscores, ``-Instruct``/``-GGUF``/``-AWQ``/``-FP8`` suffixes),
grouped by where they were seen and where their licence statement comes from. Each id goes
through :meth:`PolicySet.licence_for`, the lookup :func:`ledger.policy.evaluate` uses, and must
land on the expected ``policy/version``; ``null`` means no statement was read, so no licence
may match and the engine has to say ``unknown``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ledger.policy import CallFacts, evaluate, load_policies

TABLE = Path(__file__).resolve().parents[1] / "assets" / "model_ids.yaml"
POLICIES = load_policies()


def _rows() -> list[tuple[str, str | None]]:
    groups = yaml.safe_load(TABLE.read_text(encoding="utf-8"))
    rows: list[tuple[str, str | None]] = []
    for group in groups:
        assert set(group) == {"seen", "licence", "ids"}, group
        assert group["seen"].strip()
        assert group["licence"].strip()
        rows.extend(group["ids"].items())
    return rows


ROWS = _rows()


def test_the_table_is_large_and_has_no_duplicates() -> None:
    ids = [model for model, _ in ROWS]
    assert len(ids) >= 100
    assert len(ids) == len(set(ids))
    # Organisation prefixes and suffix spellings must be exercised, not just bare names.
    assert all("/" in model for model in ids)
    for marker in ("_", "-Instruct", "-GGUF", "-AWQ", "-FP8", "-GPTQ-Int4"):
        assert any(marker in model for model in ids), marker


@pytest.mark.parametrize(("model", "expected"), ROWS, ids=[model for model, _ in ROWS])
def test_model_id_maps_to_its_stated_licence(model: str, expected: str | None) -> None:
    found = POLICIES.licence_for(model)
    got = f"{found[0].id}/{found[1].id}" if found else None
    assert got == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [row for row in ROWS if row[1] is not None][:5] + [row for row in ROWS if row[1] is None][:2],
)
def test_the_engine_uses_the_same_licence(model: str, expected: str | None) -> None:
    # The lookup above is the engine's: a self-hosted call's only layer is that licence.
    verdict = evaluate(CallFacts(provider="self-hosted", model=model), "evaluate")
    (layer,) = verdict.layers
    if expected is None:
        assert layer.verdict == "unknown"
        assert layer.version is None
    else:
        assert layer.version is not None
        assert f"{layer.version.policy}/{layer.version.version}" == expected
