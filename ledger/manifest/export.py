"""Exports of an evidence pack: Croissant 1.1 JSON-LD, the EU public-summary sections, a card.

Invariants:

* Exports read the pack and nothing else (no database); they format what the signed statement,
  the entries and the verdict documents say and add no claim of their own. Run
  :func:`ledger.manifest.verify` first: an export does not check signatures.
* Teacher activities are grouped by provider and answering model: the period is the first and
  last call time of the linked entries, and the terms versions are those their verdicts used.
* Fields the ledger cannot know (the provider's name, whether a model is on the EU market,
  licences of the dataset itself) are left as marked placeholders (``PLACEHOLDER``), never
  guessed. Verdicts report what dated terms say, not what is lawful.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.entry_body import call_stamp, served_model
from ledger.manifest import pack as layout

__all__ = ["FORMATS", "PLACEHOLDER", "Teacher", "export", "read_teachers"]

FORMATS = ("croissant", "eu-template", "card")
PLACEHOLDER = "[to be completed by the provider]"

_CROISSANT_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "prov": "http://www.w3.org/ns/prov#",
    "dct": "http://purl.org/dc/terms/",
    "conformsTo": "dct:conformsTo",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileObject": "cr:fileObject",
    "fileProperty": "cr:fileProperty",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}


@dataclass(slots=True)
class Teacher:
    """One generating model: who served it, when the linked calls ran, under which terms."""

    provider: str
    model: str
    first: str | None = None
    last: str | None = None
    calls: int = 0
    terms: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "first_call": self.first,
            "last_call": self.last,
            "linked_calls": self.calls,
            "terms_versions": sorted(self.terms),
        }


def read_teachers(pack: layout.Pack) -> list[Teacher]:
    """The teacher models of the pack's linked entries, sorted by provider and model."""
    verdicts = pack.json(layout.VERDICTS)
    documents: Mapping[str, Any] = verdicts.get("documents", {})
    by_leaf: Mapping[str, str] = verdicts.get("leaves", {})
    teachers: dict[tuple[str, str], Teacher] = {}
    for _, line in pack.lines(layout.ENTRIES):
        item = json.loads(line)
        body = item["entry"]["body"]
        provider = str(body.get("provider") or "unknown")
        model = served_model(body) or "unknown"
        teacher = teachers.setdefault((provider, model), Teacher(provider, model))
        teacher.calls += 1
        stamp = call_stamp(body)
        if isinstance(stamp, str):
            teacher.first = stamp if teacher.first is None else min(teacher.first, stamp)
            teacher.last = stamp if teacher.last is None else max(teacher.last, stamp)
        document = documents.get(by_leaf.get(str(item["leaf_index"]), ""), {})
        for ref in document.get("policy_versions", []):
            teacher.terms.add(f"{ref['policy']}@{ref['version']}")
    return [teachers[key] for key in sorted(teachers)]


def _statement(pack: layout.Pack) -> dict[str, Any]:
    envelope = pack.json(layout.MANIFEST)
    return dict(json.loads(base64.b64decode(envelope["payload"])))


def _duties(summary: Mapping[str, Any]) -> list[str]:
    return [
        f"{d['description']} (rule {d['rule_id']}, {d['examples']} examples)"
        for d in summary.get("duties", [])
    ]


def croissant(pack: layout.Pack) -> dict[str, Any]:
    """Croissant 1.1 JSON-LD with the RAI fields and one PROV activity per teacher model."""
    statement = _statement(pack)
    predicate = statement["predicate"]
    summary = predicate["summary"]
    build = predicate["build"]
    teachers = read_teachers(pack)
    share = summary["linked"] / summary["examples"] if summary["examples"] else 0.0
    first = min((t.first for t in teachers if t.first), default=None)
    last = max((t.last for t in teachers if t.last), default=None)
    activities = [
        {
            "@type": "prov:Activity",
            "@id": f"teacher/{t.provider}/{t.model}",
            "name": f"{t.calls} recorded calls to {t.model} served by {t.provider}",
            "prov:startedAtTime": t.first,
            "prov:endedAtTime": t.last,
            "prov:wasAssociatedWith": {
                "@type": "prov:SoftwareAgent",
                "name": t.model,
                "provider": t.provider,
            },
            "prov:used": [{"@type": "CreativeWork", "name": term} for term in sorted(t.terms)],
        }
        for t in teachers
    ]
    return {
        "@context": _CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": "http://mlcommons.org/croissant/1.1",
        "name": build["name"],
        "description": (
            f"Distilled dataset of {summary['examples']} examples; {summary['linked']} are "
            f"linked to signed teacher calls recorded by distill-ledger ({share:.1%})."
        ),
        "version": build.get("version") or "0.0.0",
        "url": PLACEHOLDER,
        "license": PLACEHOLDER,
        "citeAs": PLACEHOLDER,
        "datePublished": build.get("built_at", "")[:10] or None,
        "distribution": [
            {
                "@type": "cr:FileObject",
                "@id": subject["name"],
                "name": subject["name"],
                "contentUrl": subject["name"],
                "encodingFormat": "application/jsonlines",
                "sha256": subject["digest"]["sha256"],
            }
            for subject in statement["subject"]
        ],
        "rai:dataCollection": (
            "Teacher model outputs recorded as signed entries of an append-only Merkle log at "
            "the time of each API call; each example is linked to its entries (match classes: "
            + ", ".join(f"{k} {v}" for k, v in summary["by_match"].items())
            + ")."
        ),
        "rai:dataCollectionType": ["Web API"],
        "rai:dataCollectionTimeframe": [x for x in (first, last) if x],
        "rai:dataUseCases": f"Declared purpose: {predicate['purpose']}.",
        "rai:hasSyntheticData": True,
        "prov:wasGeneratedBy": activities,
        "usageInfo": _duties(summary) or ["No duties in the terms versions the verdicts used."],
    }


def eu_template(pack: layout.Pack) -> dict[str, Any]:
    """The EU AI Office public-summary sections a distilled model needs (1.2, 2.5)."""
    predicate = _statement(pack)["predicate"]
    summary = predicate["summary"]
    teachers = read_teachers(pack)
    share = summary["linked"] / summary["examples"] if summary["examples"] else 0.0
    return {
        "template": "EU AI Office, Public Summary of Training Content (C(2025) 8311)",
        "1.2_model_dependencies": {
            "is_modification_of_another_gpai_model": PLACEHOLDER,
            "models_whose_outputs_were_used": [
                {"provider": t.provider, "model": t.model, "summary_reference": PLACEHOLDER}
                for t in teachers
            ],
        },
        "2.5_synthetic_data": {
            "synthetic_data_created_by_or_on_behalf_of_provider": summary["linked"] > 0,
            "modality": sorted({"text"} if teachers else set()),
            "generating_models": [
                {**t.to_dict(), "available_on_the_market": PLACEHOLDER} for t in teachers
            ],
            "share_of_dataset": round(share, 4),
            "examples": summary["examples"],
            "linked_examples": summary["linked"],
            "other_ai_models_used": PLACEHOLDER,
        },
        "source": {
            "dataset": predicate["build"]["name"],
            "version": predicate["build"].get("version"),
            "ledger_checkpoint": predicate["ledger"]["checkpoint"],
        },
    }


def eu_markdown(data: Mapping[str, Any]) -> str:
    deps = data["1.2_model_dependencies"]
    synth = data["2.5_synthetic_data"]
    lines = [f"# {data['template']}: sections for a distilled model", "",
             "## 1.2 Model dependencies", "",
             f"- Modification of another general-purpose AI model: "
             f"{deps['is_modification_of_another_gpai_model']}"]  # fmt: skip
    for m in deps["models_whose_outputs_were_used"]:
        lines.append(f"- Outputs of {m['model']} ({m['provider']}) were used; its summary: "
                     f"{m['summary_reference']}")  # fmt: skip
    lines += ["", "## 2.5 Synthetic data", "",
              f"- Synthetic data created by or on behalf of the provider: "
              f"{'yes' if synth['synthetic_data_created_by_or_on_behalf_of_provider'] else 'no'}",
              f"- Modality: {', '.join(synth['modality']) or 'none'}",
              f"- Share of the dataset: {synth['share_of_dataset']:.1%} "
              f"({synth['linked_examples']} of {synth['examples']} examples)",
              "- Generating models:"]  # fmt: skip
    for t in synth["generating_models"]:
        lines.append(f"  - {t['model']} ({t['provider']}), calls {t['first_call']} to "
                     f"{t['last_call']}, terms {', '.join(t['terms_versions']) or 'unknown'}; "
                     f"on the market: {t['available_on_the_market']}")  # fmt: skip
    lines += [f"- Other AI models used: {synth['other_ai_models_used']}", ""]
    return "\n".join(lines)


def card(pack: layout.Pack) -> str:
    """A Hugging Face dataset card section (Markdown) with the provenance summary."""
    predicate = _statement(pack)["predicate"]
    summary = predicate["summary"]
    teachers = read_teachers(pack)
    rows = "\n".join(
        f"| {t.provider} | {t.model} | {t.calls} | {t.first} to {t.last} | "
        f"{', '.join(sorted(t.terms)) or 'unknown'} |"
        for t in teachers
    )
    verdicts = ", ".join(f"{k} {v}" for k, v in summary["by_verdict"].items())
    duties = "\n".join(f"- {d}" for d in _duties(summary)) or "- none"
    return f"""---
language_creators:
- machine-generated
tags:
- synthetic
- distilled
---

## Provenance (distill-ledger)

{summary["linked"]} of {summary["examples"]} examples are linked to signed teacher calls
({", ".join(f"{k} {v}" for k, v in summary["by_match"].items())}). Verdicts for the declared
purpose `{predicate["purpose"]}`: {verdicts}. They report what the dated terms say, not what is
lawful.

| provider | model | linked calls | period | terms versions |
| --- | --- | --- | --- | --- |
{rows}

Duties carried by the verdicts:
{duties}

Evidence: the signed pack of build `{predicate["build"]["name"]}`; check it with
`ledger manifest verify PACK --key VKEY --dataset FILE`.
"""


def export(path: str | Path, format: str, *, markdown: bool = False) -> str:
    """The export of the pack at ``path`` in ``format``: JSON (``croissant``, ``eu-template``)
    or Markdown (``card``, and ``eu-template`` with ``markdown``).

    Raises:
        InputError: not a pack, or an unknown format.
    """
    from ledger.errors import InputError

    if format not in FORMATS:
        raise InputError(f"unknown export format {format!r} (known: {', '.join(FORMATS)})")
    pack = layout.Pack(Path(path))
    try:
        if format == "croissant":
            return json.dumps(croissant(pack), indent=2) + "\n"
        if format == "eu-template":
            data = eu_template(pack)
            return eu_markdown(data) if markdown else json.dumps(data, indent=2) + "\n"
        return card(pack)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"{path}: the pack's statement lacks what the export needs: {exc}"
        ) from exc
