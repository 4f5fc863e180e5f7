"""``ledger demo``: a short end-to-end run on the embedded ledger.

Records a few teacher-call entries, signs a checkpoint, proves every entry against it and the
checkpoint against the previous one, then verifies the whole ledger from scratch.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from ledger._ledger import Ledger
from ledger.crypto.merkle import verify_consistency, verify_inclusion
from ledger.crypto.note import verify_checkpoint
from ledger.errors import VerificationError
from ledger.settings import Settings

__all__ = ["run_demo"]

_CALLS = [
    ("openai", "chat", "gpt-4.1", "train-model", "api.openai.com", "/v1/chat/completions"),
    ("anthropic", "messages", "claude-sonnet-4-5", "evaluate", "api.anthropic.com", "/v1/messages"),
    (
        "gcp.gemini",
        "generate_content",
        "gemini-2.5-flash",
        "train-model",
        "generativelanguage.googleapis.com",
        "/v1beta/models/gemini-2.5-flash:generateContent",
    ),
    ("deepseek", "chat", "deepseek-chat", "train-model", "api.deepseek.com", "/chat/completions"),
]


def _body(
    provider: str, operation: str, model: str, purpose: str, host: str, path: str
) -> dict[str, object]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "started_at": now,
        "provider": provider,
        "operation": operation,
        "endpoint": {"scheme": "https", "host": host, "port": 443, "path": path},
        "request_model": model,
        "response_model": model,
        "status": 200,
        "outcome": "complete",
        "stream": False,
        "purpose": purpose,
        "dataset": "demo-distill-v1",
        "tags": ["demo"],
    }


def run_demo(settings: Settings, echo: Callable[[str], None]) -> None:
    """Run the demo against the ledger ``settings`` describe, printing as it goes."""
    with Ledger.from_settings(settings) as lg:
        echo(f"ledger: {lg.url}  (origin {lg.origin})")
        before = lg.checkpoint()
        receipts = lg.append_many(_body(*call) for call in _CALLS)
        for receipt, call in zip(receipts, _CALLS, strict=True):
            echo(f"recorded leaf {receipt.leaf_index:>6}  {call[0]:<11} {call[2]:<18} {call[3]}")
        checkpoint = lg.checkpoint()
        echo("")
        echo("signed checkpoint (C2SP signed note):")
        for line in checkpoint.note.splitlines():
            echo(f"  {line}")
        parsed = verify_checkpoint(checkpoint.note, lg.verifier_key)
        echo(f"checkpoint verifies under {lg.verifier_key}")
        for receipt in receipts:
            proof = lg.inclusion_proof(receipt.leaf_index, parsed.size)
            verify_inclusion(
                receipt.leaf_index, parsed.size, receipt.leaf_hash, proof, parsed.root_hash
            )
            echo(f"inclusion proof of leaf {receipt.leaf_index}: {len(proof)} hashes, ok")
        proof = lg.consistency_proof(before.tree_size, parsed.size)
        verify_consistency(before.tree_size, parsed.size, proof, before.root_hash, parsed.root_hash)
        echo(f"consistency proof {before.tree_size} -> {parsed.size}: {len(proof)} hashes, ok")
        report = lg.verify()
        if not report.ok:
            raise VerificationError(f"verification failed: {report.first_problem}")
        echo(
            f"verify: ok, {report.entries} entries and {report.checkpoints} checkpoints "
            f"recomputed in {report.seconds:.2f} s"
        )
