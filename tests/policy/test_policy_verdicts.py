"""Verdicts of the shipped policies, table-driven: every provider, both sides of every dated
change, duties, unknowns for missing facts and dates, and the strictest-layer rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import PolicyParseError
from ledger.policy import CallFacts, evaluate, load_policies
from ledger.policy.verdict import Verdict

NO_FACTS: dict[str, Any] = {}
SMALL = {"monthly_active_users": 1_000}


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    name: str
    provider: str
    model: str
    day: str
    purpose: str
    facts: dict[str, Any]
    verdict: str
    # Qualified rule ids ("policy/version/rule") that must be cited, and versions that must be used.
    rules: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    modality: str = "text"
    missing: tuple[str, ...] = ()
    duties: tuple[str, ...] = field(default=())


CASES = [
    # --- OpenAI ------------------------------------------------------------------------------
    Case(
        "openai before first version",
        "openai",
        "gpt-4",
        "2023-03-13",
        "evaluate",
        NO_FACTS,
        "unknown",
    ),
    Case(
        "openai 2023 ToU competing",
        "openai",
        "gpt-4",
        "2023-03-14",
        "train-model",
        {"competes_with_provider": "yes"},
        "prohibited",
        rules=("openai/tou-2023-03-14/compete",),
    ),
    Case(
        "openai 2023 ToU has no classifier carve-out",
        "openai",
        "gpt-4",
        "2023-11-13",
        "train-model",
        {"competes_with_provider": "yes", "student_kind": "classifier", "distributed": False},
        "prohibited",
        rules=("openai/tou-2023-03-14/compete",),
    ),
    Case(
        "openai business terms add the classifier carve-out",
        "openai",
        "gpt-4",
        "2024-01-31",
        "train-model",
        {"competes_with_provider": "yes", "student_kind": "classifier", "distributed": False},
        "allowed",
        rules=("openai/business-terms-2023-11-14/classifier-carve-out",),
    ),
    Case(
        "openai business terms: no platform exception yet",
        "openai",
        "gpt-4o",
        "2025-05-30",
        "train-model",
        {"competes_with_provider": "yes", "student_kind": "llm", "on_provider_platform": True},
        "prohibited",
        rules=("openai/business-terms-2023-11-14-up-2025-01-29/compete",),
    ),
    Case(
        "openai OSA platform fine-tuning exception",
        "openai",
        "gpt-4o",
        "2025-05-31",
        "train-model",
        {"competes_with_provider": "yes", "student_kind": "llm", "on_provider_platform": True},
        "allowed",
        rules=("openai/osa-2025-05-31/permitted-exception-platform",),
    ),
    Case(
        "openai OSA classifier exception",
        "openai",
        "gpt-4o",
        "2025-07-01",
        "train-model",
        {"competes_with_provider": "yes", "student_kind": "embedding", "distributed": False},
        "allowed",
        rules=("openai/osa-2025-05-31/permitted-exception-classifier",),
    ),
    Case(
        "openai OSA distributed classifier is not excepted",
        "openai",
        "gpt-4o",
        "2026-01-01",
        "train-model",
        {
            "competes_with_provider": "yes",
            "student_kind": "classifier",
            "distributed": True,
            "on_provider_platform": False,
        },
        "prohibited",
        rules=("openai/osa-2026-01-01/compete",),
    ),
    Case(
        "openai non-competing student",
        "openai",
        "gpt-4o",
        "2025-07-01",
        "train-model",
        {"competes_with_provider": "no"},
        "allowed",
        versions=("openai/osa-2025-05-31",),
    ),
    Case(
        "openai competing undeclared",
        "openai",
        "gpt-4o",
        "2025-07-01",
        "train-model",
        NO_FACTS,
        "unknown",
        missing=("competes_with_provider",),
    ),
    Case(
        "openai 'unsure' counts as undeclared",
        "openai",
        "gpt-4o",
        "2025-07-01",
        "train-model",
        {"competes_with_provider": "unsure"},
        "unknown",
        missing=("competes_with_provider",),
    ),
    Case(
        "openai red-team under OSA 3.3(h) before usage policy 2025-10-29",
        "openai",
        "gpt-4o",
        "2025-10-28",
        "red-team",
        {"written_permission": False},
        "prohibited",
        rules=("openai/osa-2025-05-31/bypass-safety-mitigations",),
    ),
    Case(
        "openai red-team before the 2024-01-10 usage policies: no clause",
        "openai",
        "gpt-4",
        "2024-01-09",
        "red-team",
        {"written_permission": False},
        "allowed",
    ),
    Case(
        "openai red-team under the 2024-01-10 usage policies",
        "openai",
        "gpt-4",
        "2024-01-10",
        "red-team",
        {"written_permission": False},
        "prohibited",
        rules=("openai/tou-2023-03-14-up-2024-01-10/circumvent-safeguards-testing",),
    ),
    Case(
        "openai unsolicited safety testing from 2025-10-29",
        "openai",
        "gpt-4o",
        "2025-10-29",
        "red-team",
        {"written_permission": False},
        "prohibited",
        rules=("openai/osa-2025-05-31-up-2025-10-29/unsolicited-safety-testing",),
    ),
    # --- Anthropic ---------------------------------------------------------------------------
    Case(
        "anthropic before commercial terms",
        "anthropic",
        "claude-2",
        "2023-12-31",
        "evaluate",
        NO_FACTS,
        "unknown",
    ),
    Case(
        "anthropic early 2024 text unread",
        "anthropic",
        "claude-3-opus",
        "2024-06-05",
        "train-model",
        {"competes_with_provider": "no", "written_permission": False},
        "unknown",
        versions=("anthropic/ct-2024-01-01",),
    ),
    Case(
        "anthropic AUP 2024 model scraping",
        "anthropic",
        "claude-3-opus",
        "2024-06-06",
        "train-model",
        {"competes_with_provider": "no", "written_permission": False},
        "prohibited",
        rules=("anthropic/ct-2024-01-01-aup-2024-06-06/model-scraping",),
    ),
    Case(
        "anthropic written permission lifts the ban",
        "anthropic",
        "claude-sonnet-4",
        "2025-06-17",
        "train-model",
        {"competes_with_provider": "yes", "written_permission": True},
        "allowed",
    ),
    Case(
        "anthropic AUP 2024 on the eve of the 2025 policy",
        "anthropic",
        "claude-sonnet-4",
        "2025-09-14",
        "train-model",
        {"competes_with_provider": "no", "written_permission": False},
        "prohibited",
        rules=("anthropic/ct-2025-06-17-aup-2024-06-06/model-scraping",),
    ),
    Case(
        "anthropic AUP 2025 model distillation",
        "anthropic",
        "claude-sonnet-4",
        "2025-09-15",
        "train-model",
        {"competes_with_provider": "no", "written_permission": False},
        "prohibited",
        rules=("anthropic/ct-2025-06-17-aup-2025-09-15/model-distillation",),
    ),
    Case(
        "anthropic permission undeclared",
        "anthropic",
        "claude-sonnet-4",
        "2025-09-15",
        "train-model",
        {"competes_with_provider": "no"},
        "unknown",
        missing=("written_permission",),
    ),
    Case(
        "anthropic evaluation is silent",
        "anthropic",
        "claude-sonnet-4",
        "2026-01-10",
        "evaluate",
        NO_FACTS,
        "allowed",
    ),
    # --- Google ------------------------------------------------------------------------------
    Case(
        "gemini api before first version",
        "gcp.gemini",
        "gemini-1.0-pro",
        "2024-02-14",
        "evaluate",
        NO_FACTS,
        "unknown",
    ),
    Case(
        "gemini api competing",
        "gcp.gemini",
        "gemini-1.0-pro",
        "2024-02-15",
        "train-model",
        {"competes_with_provider": "yes"},
        "prohibited",
        rules=("gemini-api/terms-2024-02-15/compete",),
    ),
    Case(
        "gemini api non-competing",
        "gcp.gemini",
        "gemini-2.5-pro",
        "2025-06-01",
        "train-model",
        {"competes_with_provider": "no"},
        "allowed",
        versions=("gemini-api/terms-2025-05-20",),
    ),
    Case(
        "gemini api unopened 2024-05 versions",
        "gcp.gemini",
        "gemini-1.5-pro",
        "2024-06-01",
        "evaluate",
        NO_FACTS,
        "unknown",
    ),
    Case(
        "google generative ai additional terms",
        "google",
        "gemini",
        "2024-05-21",
        "train-model",
        {"competes_with_provider": "no"},
        "prohibited",
        rules=("google/genai-additional-2023-08-09/develop-models",),
    ),
    Case(
        "google ToS of 2024-05-22",
        "google",
        "gemini",
        "2024-05-22",
        "train-model",
        {"competes_with_provider": "no"},
        "prohibited",
        rules=("google/tos-2024-05-22/develop-models",),
    ),
    Case(
        "gemma derivative distributed",
        "self-hosted",
        "google/gemma-2-9b-it",
        "2025-01-01",
        "train-model",
        {"distributed": True},
        "conditional",
        duties=("flow-down-restrictions", "ship-licence-copy", "mark-modified", "notice-file"),
    ),
    Case(
        "gemma derivative kept in-house",
        "self-hosted",
        "google/gemma-3-27b-it",
        "2025-06-01",
        "train-model",
        {"distributed": False},
        "allowed",
        rules=("gemma/gemma-terms-2024-02-21/derivatives-allowed",),
    ),
    Case(
        "gemma 4 under apache",
        "self-hosted",
        "google/gemma-4-31B-it",
        "2026-06-01",
        "train-model",
        {"distributed": True},
        "allowed",
        versions=("apache-2.0/apache-2.0-gemma-4",),
    ),
    # --- Meta Llama --------------------------------------------------------------------------
    Case(
        "llama 2 improving another llm",
        "self-hosted",
        "meta-llama/Llama-2-7b-chat-hf",
        "2025-01-01",
        "train-model",
        {"student_kind": "llm", **SMALL},
        "prohibited",
        rules=("llama/llama-2/improve-other-llm",),
    ),
    Case(
        "llama 2 training a classifier",
        "self-hosted",
        "meta-llama/Llama-2-7b-chat-hf",
        "2025-01-01",
        "train-model",
        {"student_kind": "classifier", **SMALL},
        "allowed",
    ),
    Case(
        "llama 3 improving another llm",
        "self-hosted",
        "meta-llama/Meta-Llama-3-8B-Instruct",
        "2025-01-01",
        "train-model",
        {"student_kind": "llm", **SMALL},
        "prohibited",
        rules=("llama/llama-3/improve-other-llm",),
    ),
    Case(
        "llama 3.1 distributed student",
        "self-hosted",
        "meta-llama/Llama-3.1-8B-Instruct",
        "2025-01-01",
        "train-model",
        {"student_kind": "llm", "distributed": True, **SMALL},
        "conditional",
        duties=("name-prefix",),
    ),
    Case(
        "llama 3.1 in-house student",
        "self-hosted",
        "llama3.1:8b",
        "2025-01-01",
        "train-model",
        {"student_kind": "llm", "distributed": False, **SMALL},
        "allowed",
        rules=("llama/llama-3.1/outputs-for-training",),
    ),
    Case(
        "llama 3.3 distributed student",
        "self-hosted",
        "llama-3.3-70b",
        "2025-01-01",
        "train-model",
        {"student_kind": "llm", "distributed": True, **SMALL},
        "conditional",
        versions=("llama/llama-3.3",),
        duties=("name-prefix",),
    ),
    Case(
        "llama 700M MAU gate",
        "self-hosted",
        "meta-llama/Llama-3.1-8B-Instruct",
        "2025-01-01",
        "evaluate",
        {"monthly_active_users": 800_000_000, "written_permission": False},
        "prohibited",
        rules=("llama/llama-3.1/mau-gate",),
    ),
    Case(
        "llama MAU undeclared",
        "self-hosted",
        "meta-llama/Llama-3.1-8B-Instruct",
        "2025-01-01",
        "evaluate",
        NO_FACTS,
        "unknown",
        missing=("monthly_active_users",),
    ),
    Case(
        "llama 3.2 vision in the EU",
        "self-hosted",
        "meta-llama/Llama-3.2-11B-Vision-Instruct",
        "2025-01-01",
        "evaluate",
        {"region": "de", **SMALL},
        "prohibited",
        rules=("llama/llama-3.2/eu-multimodal",),
    ),
    Case(
        "llama 3.2 text model in the EU",
        "self-hosted",
        "meta-llama/Llama-3.2-1B-Instruct",
        "2025-01-01",
        "evaluate",
        {"region": "DE", **SMALL},
        "allowed",
    ),
    Case(
        "llama 4 in the EU",
        "self-hosted",
        "meta-llama/Llama-4-Scout-17B-16E-Instruct",
        "2025-06-01",
        "evaluate",
        {"region": "FR", **SMALL},
        "prohibited",
        rules=("llama/llama-4/eu-multimodal",),
    ),
    Case(
        "llama 4 outside the EU",
        "self-hosted",
        "meta-llama/Llama-4-Scout-17B-16E-Instruct",
        "2025-06-01",
        "train-model",
        {"region": "US", "distributed": True, **SMALL},
        "conditional",
        duties=("name-prefix",),
    ),
    Case(
        "r1 distill llama keeps the llama 3.1 licence",
        "self-hosted",
        "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
        "2025-03-01",
        "train-model",
        {"distributed": True, **SMALL},
        "conditional",
        versions=("llama/llama-3.1",),
    ),
    # --- Mistral -----------------------------------------------------------------------------
    Case(
        "mistral before first version",
        "mistral_ai",
        "mistral-large-latest",
        "2024-02-07",
        "evaluate",
        NO_FACTS,
        "unknown",
    ),
    Case(
        "mistral text outputs are unrestricted",
        "mistral_ai",
        "mistral-large-latest",
        "2025-05-27",
        "train-model",
        {"competes_with_provider": "yes", "student_kind": "llm", "web_search_outputs": False},
        "allowed",
    ),
    Case(
        "mistral web-search outputs may not train (2025-05-27 to 2026-03-11)",
        "mistral_ai",
        "mistral-large-latest",
        "2025-12-11",
        "train-model",
        {"competes_with_provider": "no", "web_search_outputs": True},
        "prohibited",
        rules=("mistral/ct-2025-12-11/web-search-outputs",),
    ),
    Case(
        "mistral web-search limit dropped on 2026-03-12",
        "mistral_ai",
        "mistral-large-latest",
        "2026-03-12",
        "train-model",
        {"competes_with_provider": "no", "web_search_outputs": True},
        "allowed",
    ),
    Case(
        "mistral February 2024 competing-service ban",
        "mistral_ai",
        "mistral-large-latest",
        "2024-02-20",
        "train-model",
        {"competes_with_provider": "yes", "student_kind": "llm"},
        "prohibited",
        rules=("mistral/tou-2024-02-08/compete",),
    ),
    Case(
        "mistral 2024-02-27 to 2025-05-26: no Output clause",
        "mistral_ai",
        "mistral-large-latest",
        "2024-06-20",
        "train-model",
        {"competes_with_provider": "yes", "student_kind": "llm"},
        "allowed",
    ),
    Case(
        "mistral image outputs for a competing generator",
        "mistral_ai",
        "mistral-medium",
        "2026-01-10",
        "train-model",
        {"competes_with_provider": "yes", "student_kind": "image-generator"},
        "prohibited",
        modality="image",
        rules=("mistral/ct-2025-12-11/image-outputs",),
    ),
    Case(
        "mistral research licence, commercial",
        "self-hosted",
        "mistralai/Mistral-Large-Instruct-2411",
        "2025-06-01",
        "train-model",
        {"commercial": True},
        "prohibited",
        rules=("mistral-licences/mrl-0.1/research-only",),
    ),
    Case(
        "mistral research licence, research purpose",
        "self-hosted",
        "mistralai/Mistral-Large-Instruct-2411",
        "2025-06-01",
        "research",
        NO_FACTS,
        "allowed",
    ),
    Case(
        "mistral api serving its own research-licence model",
        "mistral_ai",
        "mistral-large-2411",
        "2025-06-01",
        "train-model",
        {"commercial": True, "web_search_outputs": False},
        "allowed",
        versions=("mistral/tos-2025-05-27",),
    ),
    Case(
        "mistral apache model",
        "self-hosted",
        "mistralai/Mistral-7B-Instruct-v0.3",
        "2025-06-01",
        "train-model",
        {"commercial": True},
        "allowed",
    ),
    # --- xAI ---------------------------------------------------------------------------------
    Case(
        "xai before first version", "x_ai", "grok-2", "2025-01-01", "evaluate", NO_FACTS, "unknown"
    ),
    Case(
        "xai non-competing classifier before 2025-06-27: Enterprise Terms read only in part",
        "x_ai",
        "grok-4",
        "2025-03-01",
        "train-model",
        {"competes_with_provider": "no", "student_kind": "classifier"},
        "unknown",
    ),
    Case(
        "xai non-competing LLM is 'similar to' the Service",
        "x_ai",
        "grok-3",
        "2025-03-01",
        "train-model",
        {"competes_with_provider": "no", "student_kind": "llm"},
        "prohibited",
        rules=("xai/aup-2025-01-02/similar-or-competitive",),
    ),
    Case(
        "xai competing before 2026-06-26",
        "x_ai",
        "grok-4",
        "2026-06-25",
        "train-model",
        {"competes_with_provider": "yes"},
        "prohibited",
        rules=("xai/enterprise-2026-05-12/compete",),
    ),
    Case(
        "xai distillation ban from 2026-06-26",
        "x_ai",
        "grok-4",
        "2026-06-26",
        "train-model",
        {"competes_with_provider": "no"},
        "prohibited",
        rules=("xai/aup-2026-06-26/distillation",),
    ),
    Case(
        "xai SpaceXAI terms",
        "x_ai",
        "grok-5",
        "2026-08-14",
        "train-model",
        {"competes_with_provider": "no"},
        "prohibited",
        rules=("xai/aup-2026-08-14/distillation",),
    ),
    # --- DeepSeek ----------------------------------------------------------------------------
    Case(
        "deepseek before the 2025-01-20 terms",
        "deepseek",
        "deepseek-chat",
        "2025-01-19",
        "train-model",
        NO_FACTS,
        "unknown",
    ),
    Case(
        "deepseek api allows distillation",
        "deepseek",
        "deepseek-reasoner",
        "2026-05-01",
        "train-model",
        {"competes_with_provider": "yes"},
        "allowed",
        rules=("deepseek/platform-2026-04-29/outputs-for-training",),
    ),
    Case(
        "deepseek r1 weights allow distillation",
        "self-hosted",
        "deepseek-ai/DeepSeek-R1",
        "2025-02-01",
        "train-model",
        NO_FACTS,
        "allowed",
        rules=("deepseek-licences/r1-mit/distillation-allowed",),
    ),
    # --- Qwen --------------------------------------------------------------------------------
    Case(
        "tongyi licence forbids improving other llms",
        "self-hosted",
        "Qwen/Qwen1.5-7B-Chat",
        "2025-01-01",
        "train-model",
        {"student_kind": "llm", "commercial": False},
        "prohibited",
        rules=("qwen/tongyi-qianwen/improve-other-llm",),
    ),
    Case(
        "qwen licence requires Built with Qwen",
        "self-hosted",
        "Qwen/Qwen2.5-72B-Instruct",
        "2025-01-01",
        "train-model",
        {"distributed": True, "commercial": False},
        "conditional",
        duties=("display-label",),
    ),
    Case(
        "qwen research licence, commercial",
        "self-hosted",
        "Qwen/Qwen2.5-3B-Instruct",
        "2025-01-01",
        "train-model",
        {"commercial": True},
        "prohibited",
        rules=("qwen/qwen-research/non-commercial",),
    ),
    Case(
        "qwen apache model",
        "self-hosted",
        "Qwen/Qwen3-8B",
        "2025-06-01",
        "train-model",
        {"commercial": True},
        "allowed",
        versions=("apache-2.0/apache-2.0-qwen",),
    ),
    # --- Microsoft consumer --------------------------------------------------------------------
    Case(
        "microsoft MSA 2023 (reported)",
        "microsoft",
        "copilot",
        "2024-01-01",
        "train-model",
        {"competes_with_provider": "no"},
        "prohibited",
        rules=("microsoft/msa-2023-09-30/train-other-ai",),
    ),
    Case(
        "microsoft MSA 2025",
        "microsoft",
        "copilot",
        "2025-09-30",
        "train-model",
        {"competes_with_provider": "no"},
        "prohibited",
        rules=("microsoft/msa-2025-09-30/train-other-ai",),
    ),
    # --- marketplaces and hosts -----------------------------------------------------------------
    Case(
        "bedrock passes anthropic's terms through",
        "aws.bedrock",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "2025-10-01",
        "train-model",
        {"competes_with_provider": "no", "written_permission": False},
        "prohibited",
        versions=("bedrock/service-terms-50", "anthropic/ct-2025-06-17-aup-2025-09-15"),
        rules=("anthropic/ct-2025-06-17-aup-2025-09-15/model-distillation",),
    ),
    Case(
        "bedrock amazon model needs no licence, but the unread Service Terms prove nothing",
        "aws.bedrock",
        "amazon.nova-pro-v1:0",
        "2025-06-01",
        "evaluate",
        NO_FACTS,
        "unknown",
        versions=("bedrock/service-terms-50",),
    ),
    Case(
        "bedrock llama gets its licence layer",
        "aws.bedrock",
        "meta.llama3-1-70b-instruct-v1:0",
        "2025-06-01",
        "train-model",
        {"competes_with_provider": "no", "distributed": True, **SMALL},
        "unknown",  # the licence layer is conditional; Bedrock's own section 50 is unread
        versions=("bedrock/service-terms-50", "llama/llama-3.1"),
    ),
    Case(
        "bedrock unknown third-party model",
        "aws.bedrock",
        "ai21.jamba-1-5-large-v1:0",
        "2025-06-01",
        "evaluate",
        NO_FACTS,
        "unknown",
    ),
    Case(
        "azure terms unread",
        "azure.ai.openai",
        "gpt-4o",
        "2025-06-01",
        "evaluate",
        NO_FACTS,
        "unknown",
    ),
    Case(
        "cohere unverified",
        "cohere",
        "command-r-plus",
        "2025-01-01",
        "evaluate",
        NO_FACTS,
        "unknown",
    ),
    Case(
        "groq host terms unread, llama layer allowed",
        "groq",
        "llama-3.3-70b-versatile",
        "2026-01-01",
        "train-model",
        {"student_kind": "llm", "distributed": False, **SMALL},
        "unknown",
        versions=("groq/services-agreement-2025-10-15", "llama/llama-3.3"),
    ),
    Case(
        "openrouter passes openai through",
        "openrouter",
        "openai/gpt-4o",
        "2026-11-29",
        "train-model",
        {"competes_with_provider": "yes", "student_kind": "llm", "on_provider_platform": False},
        "prohibited",
        rules=("openai/osa-2026-01-01/compete",),
    ),
    Case(
        "together unknown model",
        "together",
        "some-org/unlisted-model",
        "2026-05-01",
        "product-feature",
        NO_FACTS,
        "unknown",
    ),
    Case(
        "together bans benchmarking",
        "together",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "2025-09-01",
        "evaluate",
        NO_FACTS,
        "prohibited",
        rules=("together/terms-2025-05-06/benchmarking",),
    ),
    Case(
        "meta llama api preview: no output clause",
        "meta",
        "Llama-4-Maverick-17B-128E-Instruct-FP8",
        "2026-01-15",
        "train-model",
        {"competes_with_provider": "yes"},
        "allowed",
    ),
    Case(
        "meta model api: competing distillation banned from 2026-07-08",
        "meta",
        "Llama-4-Maverick-17B-128E-Instruct-FP8",
        "2026-07-08",
        "train-model",
        {"competes_with_provider": "yes", "written_permission": False},
        "prohibited",
        rules=("meta/model-api-2026-07-08/compete-distill",),
    ),
    Case(
        "meta model api: evaluation carve-out",
        "meta",
        "Llama-4-Maverick-17B-128E-Instruct-FP8",
        "2026-08-01",
        "evaluate",
        NO_FACTS,
        "allowed",
        rules=("meta/model-api-2026-07-08/evaluation-carve-out",),
    ),
    # --- unknowns ------------------------------------------------------------------------------
    Case("unknown provider", "acme-llm", "acme-1", "2025-06-01", "evaluate", NO_FACTS, "unknown"),
    Case(
        "self-hosted unknown model",
        "self-hosted",
        "my-org/secret-model",
        "2025-06-01",
        "evaluate",
        NO_FACTS,
        "unknown",
    ),
]


def _check(verdict: Verdict, case: Case) -> None:
    assert verdict.verdict == case.verdict, [layer.to_dict() for layer in verdict.layers]
    cited = {rule.rule_id for rule in verdict.rules}
    for rule_id in case.rules:
        assert rule_id in cited, cited
    used = {f"{v.policy}/{v.version}" for v in verdict.policy_versions}
    for version in case.versions:
        assert version in used, used
    assert set(case.missing) <= set(verdict.missing_facts)
    actions = {duty.action for duty in verdict.duties}
    assert set(case.duties) <= actions, actions
    if case.verdict != "conditional":
        assert case.duties == ()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_verdict_table(case: Case) -> None:
    call = CallFacts(
        provider=case.provider,
        model=case.model,
        at=at(case.day),
        output_modality=case.modality,  # type: ignore[arg-type]  # the table holds valid values
    )
    _check(evaluate(call, case.purpose, case.facts), case)


_LICENCES_CASED_ELSEWHERE = frozenset(
    {
        *("falcon", "glm", "gpt-oss", "granite", "internlm", "kimi", "minimax"),
        *("nvidia-open-model", "olmo", "phi", "yi"),
    }
)


def test_every_shipped_provider_has_a_case() -> None:
    covered = {case.provider for case in CASES}
    policies = load_policies()
    for policy in policies.policies:
        if policy.layer != "licence":
            assert set(policy.providers) & covered, policy.id
        elif policy.id in _LICENCES_CASED_ELSEWHERE:
            # Every version of these has dated cases in tests/assets/verdict_cases/licences.yaml,
            # and test_verdict_cases.py checks that no licence version is left without one.
            continue
        else:
            used = {v for case in CASES for v in case.versions} | {
                r.rsplit("/", 1)[0] for case in CASES for r in case.rules
            }
            assert any(u.startswith(f"{policy.id}/") for u in used), policy.id


def test_llama_duties_carry_the_mandated_names() -> None:
    call = CallFacts(provider="self-hosted", model="llama3.1:70b", at=at("2025-01-01"))
    verdict = evaluate(call, "train-model", {"distributed": True, **SMALL})
    values = {duty.action: duty.value for duty in verdict.duties}
    # A student trained on outputs owes only the name prefix (§1.b.i, last sentence).
    assert values == {"name-prefix": ("Llama",)}
    assert all(d.rule_id == "llama/llama-3.1/name-prefix" for d in verdict.duties)


def test_qwen_label_offers_both_wordings() -> None:
    call = CallFacts(provider="self-hosted", model="Qwen/Qwen2.5-72B-Instruct", at=at("2025-01-01"))
    verdict = evaluate(call, "train-model", {"distributed": True, "commercial": False})
    (label,) = [d for d in verdict.duties if d.action == "display-label"]
    assert label.value == ("Built with Qwen", "Improved using Qwen")


def test_silent_is_distinct_from_explicit_permission() -> None:
    evaluation = evaluate(
        CallFacts(provider="openai", model="gpt-4o", at=at("2025-07-01")), "evaluate"
    )
    deepseek = evaluate(
        CallFacts(provider="deepseek", model="deepseek-chat", at=at("2026-05-01")), "train-model"
    )
    assert evaluation.verdict == deepseek.verdict == "allowed"
    assert [r.effect for r in evaluation.layers[0].reasons] == ["silent"]
    assert evaluation.rules == ()
    assert [r.effect for r in deepseek.layers[0].reasons] == ["permits"]
    assert deepseek.rules[0].paraphrase


def test_unverified_clauses_are_marked() -> None:
    call = CallFacts(provider="anthropic", model="claude-opus-5", at=at("2026-11-20"))
    verdict = evaluate(
        call, "train-model", {"competes_with_provider": "no", "written_permission": False}
    )
    assert verdict.verdict == "prohibited"
    (rule,) = [r for r in verdict.rules if r.rule_id.endswith("/model-distillation")]
    assert rule.confidence == "S"
    assert not rule.verified


def test_missing_call_time_is_unknown() -> None:
    verdict = evaluate(CallFacts(provider="openai", model="gpt-4o"), "evaluate")
    assert verdict.verdict == "unknown"
    assert verdict.layers[0].reasons[0].effect == "no-version"


STRICT_POLICIES = {
    "host.yaml": """
id: host
title: A host that allows everything it speaks of
layer: terms
assigner: Host
assigner_url: https://host.example
providers: [host]
serves_third_party_models: true
versions:
  - id: v1
    effective_from: 2025-01-01
    date_basis: effective
    date_confidence: P
    documents:
      - {id: terms, title: Host terms, url: https://host.example/terms, confidence: P}
    rules:
      - id: ok
        type: permission
        purposes: [train-model]
        source: terms
        clause: "§1"
        paraphrase: Training on outputs is fine.
        confidence: P
""",
    "weights.yaml": """
id: weights
title: A strict licence
layer: licence
assigner: Lab
assigner_url: https://lab.example
versions:
  - id: strict-1
    effective_from: 2024-01-01
    date_basis: release
    date_confidence: P
    models: ['strict-model']
    documents:
      - {id: licence, title: Strict licence, url: https://lab.example/licence, confidence: C}
    rules:
      - id: no-training
        type: prohibition
        purposes: [train-model]
        source: licence
        clause: "§2"
        paraphrase: Outputs may not train any model.
        confidence: C
""",
}


def test_strictest_layer_wins_and_every_layer_reports(tmp_path: Path) -> None:
    for name, text in STRICT_POLICIES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    policies = load_policies(tmp_path)
    call = CallFacts(provider="host", model="lab/strict-model-7b", at=at("2025-06-01"))
    verdict = evaluate(call, "train-model", policies=policies)
    assert verdict.verdict == "prohibited"
    assert [(layer.policy, layer.verdict) for layer in verdict.layers] == [
        ("host", "allowed"),
        ("weights", "prohibited"),
    ]
    assert {r.rule_id for r in verdict.rules} == {"host/v1/ok", "weights/strict-1/no-training"}
    # The same host with a model the licence does not know: the layer is unknown, not allowed.
    other = evaluate(
        CallFacts(provider="host", model="lab/other", at=at("2025-06-01")),
        "train-model",
        policies=policies,
    )
    assert other.verdict == "unknown"
    assert other.layers[-1].reasons[0].effect == "unknown-model"


def test_equally_good_licence_matches_are_an_error(tmp_path: Path) -> None:
    text = STRICT_POLICIES["weights.yaml"]
    (tmp_path / "weights.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "twin.yaml").write_text(
        text.replace("id: weights", "id: twin").replace("id: strict-1", "id: twin-1"),
        encoding="utf-8",
    )
    policies = load_policies(tmp_path)
    with pytest.raises(PolicyParseError, match="several licences"):
        policies.licence_for("strict-model")
