"""The shape of a provider policy file, validated by pydantic (every model forbids extra keys).

Invariants:

- A policy file describes one *layer* of terms: ``terms`` (an API host's own terms, picked by the
  call's time and keyed by provider slug), ``marketplace`` (a cloud marketplace that passes the
  seller's terms through, also picked by time) or ``licence`` (open-weight licences, picked by
  the model id of the artifact, never by the call's time).
- A version holds the documents it was read from and the rules those documents imply. Every rule
  cites one of the version's documents by id, names its clause and carries a short paraphrase
  written by us: the provider's own words never enter a policy file.
- Rules are shaped like ODRL 2.2 rules: a ``permission``, ``prohibition`` or ``duty`` on a set of
  purposes (output-use rules) or on one conduct kind (conduct rules), narrowed by a conjunction of
  constraints over declared facts and call facts.
- Purposes, conduct kinds, fact names and their value domains are fixed vocabularies defined
  here; a file that uses any other value fails validation.
- Top-level keys starting with ``x-`` are ignored by the loader: they hold YAML anchors
  (for example a list of country codes) that rules reuse.
- Dates are calendar days in UTC; ``effective_from`` and ``effective_until`` are both inclusive.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ledger.vocabulary import CONDUCT_KINDS, PURPOSES

__all__ = [
    "CONDUCT_KINDS",
    "CONFIDENCE_LEVELS",
    "DUTY_ACTIONS",
    "FACT_DOMAINS",
    "FACT_NAMES",
    "PURPOSES",
    "Confidence",
    "Constraint",
    "DocumentSource",
    "Duty",
    "ModelMatch",
    "PassThrough",
    "PolicyFile",
    "PolicyVersion",
    "Rule",
]

CONFIDENCE_LEVELS: tuple[str, ...] = ("P", "C", "S", "U")
"""P primary text read, C verbatim third-party copy, S secondary report only, U unverified."""

Confidence = Literal["P", "C", "S", "U"]

# The facts a constraint may test, with the values each one can take. ``None`` as a domain means
# "free value of the given Python type". Declared facts come from the organization profile (and
# dataset or call overrides); call facts come from the recorded entry.
FACT_DOMAINS: dict[str, tuple[type, tuple[object, ...] | None]] = {
    # declared facts
    "competes_with_provider": (str, ("yes", "no", "unsure")),
    "student_kind": (str, ("llm", "classifier", "embedding", "image-generator", "other")),
    "distributed": (bool, None),
    "on_provider_platform": (bool, None),
    "written_permission": (bool, None),
    "monthly_active_users": (int, None),
    "region": (str, None),
    "commercial": (bool, None),
    "web_search_outputs": (bool, None),
    # call facts
    "output_modality": (str, ("text", "embedding", "image", "audio")),
    "model": (str, None),
    "host": (str, None),
}
FACT_NAMES: tuple[str, ...] = tuple(FACT_DOMAINS)

DUTY_ACTIONS: tuple[str, ...] = (
    "name-prefix",  # the student's name must start with the given text
    "display-label",  # show one of the given labels (e.g. "Built with Llama") where required
    "ship-licence-copy",  # hand recipients a copy of the licence agreement
    "notice-file",  # ship the mandated notice/attribution file
    "mark-modified",  # mark modified files as modified
    "flow-down-restrictions",  # make the use restrictions binding on recipients
    "comply-usage-policy",  # keep within the named acceptable-use policy
)

Operator = Literal["eq", "neq", "in", "not_in", "gt", "gteq", "lt", "lteq", "matches"]
_SLUG = r"^[a-z0-9][a-z0-9._-]*$"
Slug = Annotated[str, Field(pattern=_SLUG, max_length=80)]
# A paraphrase is a short gloss in our own words; a long one is a sign that text was pasted in.
_PARAPHRASE_MAX = 480


def _compiled_patterns(value: list[str]) -> list[str]:
    """Refuse model patterns that are not valid regular expressions."""
    for pattern in value:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"bad model pattern {pattern!r}: {exc}") from exc
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DocumentSource(_Strict):
    """One source document a version was read from (terms page, licence text, policy page)."""

    id: Slug
    title: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://")
    section: str | None = None
    date: dt.date | None = Field(default=None, description="date printed on or recorded for it")
    confidence: Confidence
    evidence: str | None = Field(
        default=None, description="where the text was read (archive commit, copy), if known"
    )


class Constraint(_Strict):
    """``fact op value``; a rule's constraints all have to hold for the rule to apply."""

    fact: str
    op: Operator = "eq"
    value: bool | int | str | list[str] | list[int]

    @field_validator("fact")
    @classmethod
    def _known_fact(cls, value: str) -> str:
        if value not in FACT_DOMAINS:
            raise ValueError(f"unknown fact {value!r} (known: {', '.join(FACT_NAMES)})")
        return value

    @model_validator(mode="after")
    def _value_fits(self) -> Self:
        kind, domain = FACT_DOMAINS[self.fact]
        values: list[object]
        if self.op in ("in", "not_in"):
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"operator {self.op!r} needs a non-empty list")
            values = list(self.value)
        else:
            if isinstance(self.value, list):
                raise ValueError(f"operator {self.op!r} needs a single value, not a list")
            values = [self.value]
        if self.op in ("gt", "gteq", "lt", "lteq") and kind is not int:
            raise ValueError(f"operator {self.op!r} does not apply to fact {self.fact!r}")
        if self.op == "matches":
            if kind is not str or not isinstance(self.value, str):
                raise ValueError("'matches' needs a regular expression for a text fact")
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"bad regular expression {self.value!r}: {exc}") from exc
            return self
        for item in values:
            # bool is an int subclass; keep the two apart so "distributed: 1" is refused.
            if type(item) is not kind:
                raise ValueError(f"fact {self.fact!r} takes {kind.__name__} values, got {item!r}")
            if domain is not None and item not in domain:
                allowed = ", ".join(str(d) for d in domain)
                raise ValueError(f"{item!r} is not a value of {self.fact!r} ({allowed})")
        return self


class Duty(_Strict):
    """Something the user must do for a permission to hold (name prefix, label, licence copy)."""

    action: Literal[
        "name-prefix",
        "display-label",
        "ship-licence-copy",
        "notice-file",
        "mark-modified",
        "flow-down-restrictions",
        "comply-usage-policy",
    ]
    value: str | list[str] | None = Field(
        default=None, description="the prefix, the label(s) to choose from, or a document ref"
    )


class Rule(_Strict):
    """One ODRL-shaped rule citing one clause of one source document."""

    id: Slug
    type: Literal["permission", "prohibition", "duty"]
    purposes: list[str] | None = Field(
        default=None, description="output-use rule: the purposes it speaks to ('*': all)"
    )
    conduct: str | None = Field(default=None, description="conduct rule: the conduct kind")
    constraints: list[Constraint] = Field(default_factory=list)
    duties: list[Duty] = Field(default_factory=list, description="duties of a duty rule")
    exception_to: list[Slug] = Field(
        default_factory=list,
        description="permission only: prohibitions of this version that it carves out",
    )
    source: Slug = Field(description="id of the version's document this rule cites")
    clause: str = Field(min_length=1)
    paraphrase: str = Field(min_length=1, max_length=_PARAPHRASE_MAX)
    confidence: Confidence

    @field_validator("purposes")
    @classmethod
    def _known_purposes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("purposes must not be empty (use '*' for every purpose)")
        for item in value:
            if item != "*" and item not in PURPOSES:
                raise ValueError(f"unknown purpose {item!r} (known: {', '.join(PURPOSES)})")
        return value

    @field_validator("conduct")
    @classmethod
    def _known_conduct(cls, value: str | None) -> str | None:
        if value is not None and value not in CONDUCT_KINDS:
            known = ", ".join(CONDUCT_KINDS)
            raise ValueError(f"unknown conduct kind {value!r} (known: {known})")
        return value

    @model_validator(mode="after")
    def _one_subject(self) -> Self:
        if (self.purposes is None) == (self.conduct is None):
            raise ValueError("a rule names either 'purposes' or 'conduct', and not both")
        if self.conduct is not None and self.type != "prohibition":
            raise ValueError("a conduct rule is a prohibition")
        if self.type == "duty" and not self.duties:
            raise ValueError("a duty rule lists at least one duty")
        if self.type != "duty" and self.duties:
            raise ValueError("only a duty rule carries 'duties'")
        if self.exception_to and self.type != "permission":
            raise ValueError("only a permission can be an exception to a prohibition")
        return self

    def covers(self, purpose: str) -> bool:
        """Whether this output-use rule speaks to ``purpose``."""
        return self.purposes is not None and ("*" in self.purposes or purpose in self.purposes)


class PolicyVersion(_Strict):
    """One dated version of a policy: its documents and the rules they imply."""

    id: Slug
    title: str | None = None
    effective_from: dt.date
    effective_until: dt.date | None = Field(default=None, description="inclusive; None: current")
    date_basis: Literal["effective", "published", "observed", "release", "inferred"] = Field(
        description="how effective_from is known: printed effective date, publication date, "
        "first observation in an archive, model release date, or our inference"
    )
    date_confidence: Confidence
    silence: Literal["allowed", "unknown"] = Field(
        default="allowed",
        description="what a purpose no rule speaks to yields: 'allowed' when the documents "
        "were read and say nothing, 'unknown' when they were not read in full",
    )
    documents: list[DocumentSource] = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list)
    models: list[str] = Field(
        default_factory=list,
        description="licence layer: regular expressions over the lower-cased model id",
    )
    notes: str | None = None

    @field_validator("models")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        return _compiled_patterns(value)

    @model_validator(mode="after")
    def _dates(self) -> Self:
        if self.effective_until is not None and self.effective_until < self.effective_from:
            raise ValueError(
                f"effective_until {self.effective_until} is before effective_from "
                f"{self.effective_from}"
            )
        return self

    def in_force(self, day: dt.date) -> bool:
        """Whether ``day`` falls inside this version's effective range."""
        if day < self.effective_from:
            return False
        return self.effective_until is None or day <= self.effective_until


class ModelMatch(_Strict):
    """A model-id pattern some layer uses to route a call (pass-through sellers)."""

    pattern: str
    policy: Slug = Field(description="id of the terms policy of the seller")

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad model pattern {value!r}: {exc}") from exc
        return value


class PassThrough(_Strict):
    """Marketplace routing: which seller's own terms also apply to a model sold there."""

    routes: list[ModelMatch] = Field(default_factory=list)


class PolicyFile(_Strict):
    """One YAML file: one provider's terms, one marketplace, or one licence family."""

    id: Slug
    title: str = Field(min_length=1)
    layer: Literal["terms", "marketplace", "licence"]
    assigner: str = Field(description="who sets these terms (company or licensor)")
    assigner_url: str = Field(pattern=r"^https?://")
    providers: list[Slug] = Field(
        default_factory=list, description="terms/marketplace: provider slugs it governs"
    )
    serves_third_party_models: bool = Field(
        default=False,
        description="host serves other vendors' models: a model matching no licence or "
        "pass-through route is unknown",
    )
    own_models: list[str] = Field(
        default_factory=list,
        description="host serving third-party models: patterns of the models it sells itself, "
        "which need no licence or seller",
    )
    first_party_providers: list[Slug] = Field(
        default_factory=list,
        description="licence: providers whose own API serves these models under their API "
        "terms, so the weights licence is not a layer of those calls",
    )
    pass_through: PassThrough | None = None
    versions: list[PolicyVersion] = Field(min_length=1)

    @field_validator("own_models")
    @classmethod
    def _own_regexes(cls, value: list[str]) -> list[str]:
        return _compiled_patterns(value)

    @model_validator(mode="after")
    def _layer_fields(self) -> Self:
        # Messages start with "[path]" so that the loader can point at the offending line.
        if self.layer == "licence":
            if self.providers:
                raise ValueError(
                    "[providers] a licence policy is chosen by model id and names no providers"
                )
            for index, version in enumerate(self.versions):
                if not version.models:
                    raise ValueError(
                        f"[versions.{index}] licence version {version.id!r} lists no model patterns"
                    )
            if self.pass_through is not None:
                raise ValueError("[pass_through] a licence policy has no pass-through routes")
            if self.own_models:
                raise ValueError("[own_models] a licence policy sells no models of its own")
        else:
            if not self.providers:
                raise ValueError(
                    f"[layer] a {self.layer} policy names the provider slugs it governs"
                )
            for index, version in enumerate(self.versions):
                if version.models:
                    raise ValueError(
                        f"[versions.{index}.models] only licence versions list model patterns"
                    )
            if self.first_party_providers:
                raise ValueError(
                    "[first_party_providers] only a licence policy names first-party providers"
                )
        return self

    def version(self, version_id: str) -> PolicyVersion:
        """The version with id ``version_id`` (``KeyError`` when absent)."""
        for version in self.versions:
            if version.id == version_id:
                return version
        raise KeyError(version_id)

    def summary(self) -> dict[str, object]:
        """Id, title, layer, providers and dated versions, JSON-ready (listings show this)."""
        return {
            "id": self.id,
            "title": self.title,
            "layer": self.layer,
            "providers": list(self.providers),
            "versions": [
                {
                    "id": v.id,
                    "effective_from": v.effective_from.isoformat(),
                    "effective_until": v.effective_until.isoformat() if v.effective_until else None,
                }
                for v in self.versions
            ],
        }
