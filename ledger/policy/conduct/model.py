"""The public vocabulary of the conduct detectors: thresholds, findings, host tables, seams.

Invariants:

- Value objects only: :class:`ConductThresholds` and :class:`Finding` are frozen, and
  ``from_dict(to_dict(x)) == x`` for both. Thresholds are validated when built (positive numbers,
  integers where the field is an integer, at least 2 for the minimum numbers of accounts,
  organizations and recorders);
  malformed input raises :class:`ledger.errors.InputError`.
- The host and finish-reason tables are read-only data; host patterns are lowercase ``fnmatch``
  patterns.
- No I/O and no detector logic: this module is what callers and detectors share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, Protocol, cast

from ledger.errors import InputError
from ledger.policy.verdict import RuleRef

Severity = Literal["low", "medium", "high"]
EvidenceValue = int | float | str | bool | None | tuple[str, ...]

SEVERITY_RANK: dict[str, int] = {"high": 0, "medium": 1, "low": 2}

DEFAULT_OFFICIAL_HOSTS: Mapping[str, frozenset[str]] = {
    "openai": frozenset({"api.openai.com", "us.api.openai.com", "eu.api.openai.com"}),
    "azure.ai.openai": frozenset(
        {"*.openai.azure.com", "*.cognitiveservices.azure.com", "*.services.ai.azure.com"}
    ),
    "anthropic": frozenset({"api.anthropic.com"}),
    "gcp.gemini": frozenset(
        {
            "generativelanguage.googleapis.com",
            "aiplatform.googleapis.com",
            "*-aiplatform.googleapis.com",
        }
    ),
    "gcp.vertex_ai": frozenset({"aiplatform.googleapis.com", "*-aiplatform.googleapis.com"}),
    "aws.bedrock": frozenset(
        {"bedrock-runtime.*.amazonaws.com", "bedrock-runtime-fips.*.amazonaws.com"}
    ),
    "deepseek": frozenset({"api.deepseek.com"}),
    "openrouter": frozenset({"openrouter.ai"}),
    "together": frozenset({"api.together.xyz", "api.together.ai"}),
    "groq": frozenset({"api.groq.com"}),
    "mistral_ai": frozenset({"api.mistral.ai", "codestral.mistral.ai"}),
    "x_ai": frozenset({"api.x.ai"}),
    "cohere": frozenset({"api.cohere.com", "api.cohere.ai"}),
}
"""Official API hosts per provider (``fnmatch`` patterns, matched against the lowercased host)."""

CONSUMER_WEB_HOSTS: frozenset[str] = frozenset(
    {
        "chatgpt.com",
        "*.chatgpt.com",
        "chat.openai.com",
        "claude.ai",
        "*.claude.ai",
        "gemini.google.com",
        "bard.google.com",
        "aistudio.google.com",
        "grok.com",
        "*.grok.com",
        "chat.mistral.ai",
        "chat.deepseek.com",
        "chat.qwen.ai",
        "copilot.microsoft.com",
        "meta.ai",
        "www.meta.ai",
    }
)
"""Consumer chat applications: automated use of them is not API use under any provider's terms."""

SAFETY_FINISH_REASONS: frozenset[str] = frozenset(
    {
        "content_filter",  # OpenAI, Azure OpenAI
        "refusal",  # Anthropic stop reason; OpenAI Responses refusals
        "safety",  # Gemini
        "prohibited_content",
        "blocklist",
        "spii",
        "image_safety",
        "image_prohibited_content",
    }
)
"""Finish reasons (compared lowercased) that mean the provider refused or stopped for safety."""


class EntryLike(Protocol):
    """What :func:`detect` needs of a stored entry (``ledger.StoredEntry`` satisfies it)."""

    @property
    def leaf_index(self) -> int: ...

    @property
    def body(self) -> Mapping[str, Any]: ...


RulesLookup = Callable[[str, str, datetime], Sequence[RuleRef]]
"""``(provider, kind, at) -> rule references``: the shape of ``ledger.policy.conduct_rules``."""


@dataclass(frozen=True, slots=True)
class ConductThresholds:
    """Tunable limits of the detectors; every default is documented in the module docstring."""

    multi_account_gap_seconds: float = 900.0
    multi_account_min_accounts: int = 2
    multi_account_many_accounts: int = 3
    exhaustion_switch_seconds: float = 60.0
    evasion_window_seconds: float = 120.0
    evasion_high_switches: int = 3
    key_sharing_min_orgs: int = 2
    key_sharing_min_recorders: int = 2
    key_sharing_gap_seconds: float = 900.0
    safety_retry_seconds: float = 120.0
    safety_window_seconds: float = 900.0
    safety_min_refusals: int = 3
    safety_high_refusals: int = 10

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InputError(f"conduct threshold {f.name} must be a positive number")
            if f.type == "int" and not isinstance(value, int):
                raise InputError(f"conduct threshold {f.name} must be an integer")
        if self.multi_account_min_accounts < 2 or self.key_sharing_min_orgs < 2:
            raise InputError("account and organization thresholds need at least 2")
        if self.key_sharing_min_recorders < 2:
            raise InputError("conduct threshold key_sharing_min_recorders needs at least 2")

    def to_dict(self) -> dict[str, float | int]:
        """The thresholds as a plain mapping (field name to value)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ConductThresholds:
        """Build thresholds from a mapping; unknown names raise :class:`InputError`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown conduct threshold(s): {', '.join(unknown)}")
        return cls(**cast(dict[str, Any], dict(data)))


def load_conduct_config(
    data: Mapping[str, object],
) -> tuple[ConductThresholds, dict[str, frozenset[str]] | None]:
    """Read a conduct configuration mapping (as parsed from YAML).

    The mapping holds threshold fields at the top level and, optionally, ``official_hosts``:
    ``{provider: [host pattern, ...]}``, which replaces the default hosts of the providers it names.

    Raises:
        InputError: an unknown key or a malformed value.
    """
    rest = dict(data)
    hosts_raw = rest.pop("official_hosts", None)
    hosts: dict[str, frozenset[str]] | None = None
    if hosts_raw is not None:
        if not isinstance(hosts_raw, Mapping):
            raise InputError("official_hosts must map a provider to a list of hosts")
        hosts = {}
        for provider, values in hosts_raw.items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise InputError(f"official_hosts.{provider} must be a list of host names")
            hosts[str(provider)] = frozenset(v.lower() for v in values)
    return ConductThresholds.from_dict(rest), hosts


@dataclass(frozen=True, slots=True)
class Finding:
    """One conduct pattern over one or more entries, with the clauses it may breach.

    Attributes:
        kind: one of ``ledger.policy.CONDUCT_KINDS``.
        severity: ``low``, ``medium`` or ``high`` (rules in the module docstring).
        summary: one plain sentence: the pattern, then "may breach" and the clauses cited.
        leaf_indexes: the entries that make up the pattern, ascending.
        provider: the provider whose terms are cited.
        clauses: the conduct rules in force at ``first_at`` (possibly empty).
        clauses_note: why ``clauses`` is empty, else ``None``.
        evidence: the numbers (and account, host or header values) that made it fire.
        first_at, last_at: start times of the first and last entry of the pattern.
    """

    kind: str
    severity: Severity
    summary: str
    leaf_indexes: tuple[int, ...]
    provider: str
    clauses: tuple[RuleRef, ...] = ()
    clauses_note: str | None = None
    evidence: Mapping[str, EvidenceValue] = field(default_factory=dict)
    first_at: str | None = None
    last_at: str | None = None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready mapping (inverse of :meth:`from_dict`)."""
        return {
            "kind": self.kind,
            "severity": self.severity,
            "summary": self.summary,
            "leaf_indexes": list(self.leaf_indexes),
            "provider": self.provider,
            "clauses": [r.to_dict() for r in self.clauses],
            "clauses_note": self.clauses_note,
            "evidence": {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.evidence.items()
            },
            "first_at": self.first_at,
            "last_at": self.last_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Rebuild a finding from :meth:`to_dict` output.

        Raises:
            InputError: a missing or malformed field.
        """
        try:
            severity = data["severity"]
            if severity not in SEVERITY_RANK:
                raise ValueError(f"unknown severity {severity!r}")
            evidence = {
                str(k): tuple(v) if isinstance(v, list) else v
                for k, v in dict(data.get("evidence") or {}).items()
            }
            return cls(
                kind=str(data["kind"]),
                severity=severity,
                summary=str(data["summary"]),
                leaf_indexes=tuple(int(i) for i in data["leaf_indexes"]),
                provider=str(data["provider"]),
                clauses=tuple(RuleRef.from_dict(r) for r in data.get("clauses") or ()),
                clauses_note=data.get("clauses_note"),
                evidence=evidence,
                first_at=data.get("first_at"),
                last_at=data.get("last_at"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"malformed conduct finding: {exc}") from exc
