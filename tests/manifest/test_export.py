"""Exports of a pack: Croissant validated by mlcroissant, the EU template sections, the card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger import manifest
from ledger.cli import app
from ledger.errors import InputError
from ledger.manifest.export import PLACEHOLDER, export
from ledger.testing.fake_provider import FakeProviderServer
from tests.audit.conftest import fake_provider  # noqa: F401 - the shared stand-in teacher
from tests.audit.helpers import FACTS
from tests.manifest.conftest import Template, scenario_copy

runner = CliRunner()


@pytest.fixture(scope="module")
def pack(
    scenario_template: Template,
    fake_provider: FakeProviderServer,  # noqa: F811 - the imported fixture
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """One pack for the module: every test here only reads it."""
    folder = tmp_path_factory.mktemp("export")
    with scenario_copy(scenario_template, fake_provider, folder) as scene:
        return manifest.build(scene.lg, [scene.dataset], folder / "pack", name="tutor",
                              version="1.0.0", profile=FACTS).path  # fmt: skip


# mlcroissant's JSON-LD parsing goes through an rdflib class that rdflib deprecates.
@pytest.mark.filterwarnings("ignore:ConjunctiveGraph is deprecated:DeprecationWarning")
def test_croissant_validates_with_mlcroissant(pack: Path, tmp_path: Path) -> None:
    mlc = pytest.importorskip("mlcroissant")
    document = json.loads(export(pack, "croissant"))
    activities = document["prov:wasGeneratedBy"]
    assert [a["prov:wasAssociatedWith"]["provider"] for a in activities] == ["openai"]
    assert activities[0]["prov:used"] == [
        {"@type": "CreativeWork", "name": "openai@osa-2026-01-01"}
    ]
    assert document["rai:hasSyntheticData"] is True
    path = tmp_path / "croissant.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    dataset = mlc.Dataset(jsonld=path)
    assert dataset.metadata.name == "tutor"
    assert not dataset.metadata.ctx.issues.errors


def test_eu_template_and_card(pack: Path) -> None:
    data = json.loads(export(pack, "eu-template"))
    synth = data["2.5_synthetic_data"]
    assert synth["synthetic_data_created_by_or_on_behalf_of_provider"] is True
    assert synth["share_of_dataset"] == round(5 / 6, 4)
    assert synth["generating_models"][0]["available_on_the_market"] == PLACEHOLDER
    assert data["1.2_model_dependencies"]["models_whose_outputs_were_used"][0]["provider"] == (
        "openai"
    )
    text = export(pack, "eu-template", markdown=True)
    assert "## 2.5 Synthetic data" in text
    assert "83.3%" in text
    card = export(pack, "card")
    assert card.startswith("---\nlanguage_creators:\n- machine-generated")
    assert "5 of 6 examples are linked" in card
    with pytest.raises(InputError, match="unknown export format"):
        export(pack, "spdx")


def test_export_cli(pack: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["manifest", "export", str(pack), "--format", "card"])
    assert (result.exit_code, result.stderr) == (0, "")
    assert "## Provenance (distill-ledger)" in result.stdout
    out = tmp_path / "eu.md"
    result = runner.invoke(app, ["manifest", "export", str(pack), "--format", "eu-template",
                                 "--markdown", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0
    assert "## 1.2 Model dependencies" in out.read_text()
    # --out never replaces a file (a mistyped path could be the dataset itself).
    kept = out.read_text()
    result = runner.invoke(app, ["manifest", "export", str(pack), "--format", "card",
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == 2
    assert "already exists" in result.stderr
    assert out.read_text() == kept
    result = runner.invoke(app, ["manifest", "export", str(pack), "--format", "xml"])
    assert result.exit_code == 2
    assert "unknown export format" in result.stderr
