"""``ledger demo``: the main job end to end, offline, on the embedded ledger.

1. A local stand-in teacher API starts on 127.0.0.1 (``ledger.testing.FakeProviderServer``).
2. The official ``openai``, ``anthropic`` and ``google-genai`` SDKs, wrapped with
   ``ledger.wrap``, call it (one streamed call among them); every HTTP attempt becomes a
   signed entry, judged under the provider's dated terms for its declared purpose.
3. The same entries are judged again for a student that would compete with the teacher.
4. A checkpoint is signed; every entry is proved against it, the checkpoint against the one
   before, and the whole ledger is verified from scratch.
5. The conduct detectors look across the calls.

Without the SDKs installed (``pip install distill-ledger[sdks]``) the demo appends bodies
shaped like recorded calls instead of making them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ledger._ledger import Ledger
from ledger.crypto.merkle import verify_consistency, verify_inclusion
from ledger.crypto.note import verify_checkpoint
from ledger.errors import VerificationError
from ledger.log.records import Receipt, format_timestamp
from ledger.policy import DeclaredFacts
from ledger.policy.conduct import detect
from ledger.settings import Settings

__all__ = ["run_demo"]

Echo = Callable[[str], None]

# The organization profile of the demo team: its students are classifiers kept in-house.
PROFILE = DeclaredFacts(
    competes_with_provider="no",
    student_kind="classifier",
    distributed=False,
    on_provider_platform=False,
    commercial=True,
    written_permission=False,
)
COMPETING = {"competes_with_provider": "yes", "student_kind": "llm", "distributed": True}
API_KEY = "sk-demo-not-a-real-key"
MESSAGES: list[Any] = [{"role": "user", "content": "Explain gradient descent in one line."}]


def _sdks_installed() -> bool:
    return all(importlib.util.find_spec(m) for m in ("openai", "anthropic", "google.genai"))


def _record_sdk_calls(lg: Ledger, echo: Echo) -> None:
    import anthropic
    import openai
    from google import genai
    from google.genai import types

    from ledger.recorder import flush, recording, wrap
    from ledger.testing import FakeProviderServer

    with FakeProviderServer() as teacher:
        echo(f"stand-in teacher API on {teacher.base_url} (OpenAI, Anthropic, Gemini formats)")
        # The SDK class says which provider an openai client talks to only on api.openai.com;
        # the stand-in's address is mapped explicitly.
        hosts = {f"127.0.0.1:{teacher.port}": "openai"}
        oa = wrap(
            openai.OpenAI(api_key=API_KEY, base_url=teacher.openai_base_url, max_retries=0),
            ledger=lg, purpose="train-model", dataset="demo-distill-v1", hosts=hosts,
        )  # fmt: skip
        an = wrap(
            anthropic.Anthropic(api_key=API_KEY, base_url=teacher.anthropic_base_url),
            ledger=lg, purpose="train-model", dataset="demo-distill-v1",
        )  # fmt: skip
        gm = wrap(
            genai.Client(
                api_key=API_KEY, http_options=types.HttpOptions(base_url=teacher.gemini_base_url)
            ),
            ledger=lg, purpose="train-model", dataset="demo-distill-v1",
        )  # fmt: skip
        oa.chat.completions.create(model="gpt-4.1", messages=MESSAGES)
        stream = oa.chat.completions.create(
            model="gpt-4.1", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        for _ in stream:
            pass
        an.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=MESSAGES)
        gm.models.generate_content(model="gemini-2.5-flash", contents="Explain gradient descent.")
        with recording(purpose="evaluate", tags=["eval"]):
            oa.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
        flush()
        oa.close()
        an.close()
        gm.close()
    lg.flush()


def _append_shaped_bodies(lg: Ledger) -> None:
    now = format_timestamp(datetime.now(UTC))
    calls = [
        ("openai", "chat", "gpt-4.1", "api.openai.com", "/v1/chat/completions"),
        ("anthropic", "messages", "claude-sonnet-4-6", "api.anthropic.com", "/v1/messages"),
        ("deepseek", "chat", "deepseek-chat", "api.deepseek.com", "/chat/completions"),
    ]
    lg.append_many(
        {
            "started_at": now,
            "provider": provider,
            "operation": operation,
            "endpoint": {"scheme": "https", "host": host, "port": 443, "path": path},
            "request_model": model,
            "response_model": model,
            "status": 200,
            "outcome": "complete",
            "stream": False,
            "output_modality": "text",
            "purpose": "train-model",
            "dataset": "demo-distill-v1",
            "tags": ["demo"],
        }
        for provider, operation, model, host, path in calls
    )


def _show_entries(lg: Ledger, start: int, echo: Echo) -> list[Receipt]:
    echo("")
    echo(f"{'leaf':>6}  {'provider':<10} {'model':<19} {'purpose':<12} {'verdict':<11} competing")
    receipts = []
    for stored in lg.entries(start):
        body = stored.body
        verdict = lg.verdict(stored.leaf_index)
        other = lg.verdict(stored.leaf_index, facts=COMPETING)
        model = body.get("response_model") or body.get("request_model") or "-"
        echo(
            f"{stored.leaf_index:>6}  {body.get('provider', '-'):<10} {model[:19]:<19} "
            f"{body.get('purpose') or '-':<12} {verdict.verdict:<11} {other.verdict}"
        )
        receipts.append(Receipt(stored.leaf_index, stored.entry_id, stored.leaf_hash))
    return receipts


def run_demo(settings: Settings, echo: Echo) -> None:
    """Run the demo against the ledger ``settings`` describe, printing as it goes."""
    # The demo team's profile, unless the user configured their own.
    profile = None if settings.facts_file else PROFILE
    with Ledger.from_settings(settings, profile=profile) as lg:
        echo(f"ledger: {lg.url}  (origin {lg.origin})")
        before = lg.checkpoint()
        if _sdks_installed():
            _record_sdk_calls(lg, echo)
        else:
            echo(
                "SDKs not installed (pip install 'distill-ledger[sdks]'): appending shaped entries"
            )
            _append_shaped_bodies(lg)
        receipts = _show_entries(lg, before.tree_size, echo)
        echo(
            "verdicts: this team's students are in-house classifiers (the profile above); the "
            "last column judges the same calls for a distributed, competing LLM. They report "
            "what the dated terms say, with sources (`ledger policy check`), not legal advice."
        )
        checkpoint = lg.checkpoint()
        echo("")
        echo("signed checkpoint (C2SP signed note):")
        for line in checkpoint.note.splitlines():
            echo(f"  {line}")
        parsed = verify_checkpoint(checkpoint.note, lg.verifier_key)
        echo(f"verifier key: {lg.verifier_key}")
        for receipt in receipts:
            proof = lg.inclusion_proof(receipt.leaf_index, parsed.size)
            verify_inclusion(
                receipt.leaf_index, parsed.size, receipt.leaf_hash, proof, parsed.root_hash
            )
        echo(f"inclusion proofs of {len(receipts)} new entries against the checkpoint: ok")
        proof = lg.consistency_proof(before.tree_size, parsed.size)
        verify_consistency(before.tree_size, parsed.size, proof, before.root_hash, parsed.root_hash)
        echo(f"consistency proof {before.tree_size} -> {parsed.size}: {len(proof)} hashes, ok")
        report = lg.verify()
        if not report.ok:
            raise VerificationError(f"verification failed: {report.first_problem}")
        echo(
            f"verify: ok, {report.entries} entries and {report.checkpoints} checkpoints "
            f"recomputed from the stored entries in {report.seconds:.2f} s"
        )
        findings = detect(list(lg.entries()))
        echo(f"conduct findings: {len(findings)}")
        for finding in findings[:3]:
            echo(f"  [{finding.severity}] {finding.kind}: {finding.summary}")
        if findings:
            echo("  (the stand-in teacher runs on 127.0.0.1, not on the providers' official hosts)")
