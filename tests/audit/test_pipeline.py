"""End to end: teacher calls made with the real openai, anthropic and google-genai SDKs (wrapped by
``ledger.wrap``) against the stand-in teacher, post-processed the way real distillation
pipelines post-process outputs (research A6), then audited.

Post-processing covered: stripped outputs; a numbered-list completion split into rows (recorded
through the recorder's own begin/respond/feed path, since the stand-in's texts have no lines);
reasoning and answer wrapped in think tags and OpenThoughts markers; truecased and lightly edited
rows; a ShareGPT dialogue assembled from several calls; an entry id stored in the row; then the
rows deduplicated, shuffled and mixed with human-written rows.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import anthropic
import openai
from google import genai
from google.genai import types

import ledger
from ledger.recorder import Recorder, wrap
from ledger.testing.fake_provider import THOUGHT, FakeProviderServer
from tests.audit.helpers import FACTS, write_jsonl
from tests.recorder.helpers import API_KEY, open_ledger

THOUGHTS = {"x-fake-thoughts": "1"}
CHAT: list[Any] = [{"role": "user", "content": "Teach me something."}]
HUMAN = [
    "I wrote this answer myself after reading three chemistry textbooks over the summer.",
    "Our team prefers short meetings, a written agenda and a clear owner for each action.",
    "c0w0 is a label I made up for this test; it is not a teacher output at all, promise.",
    "OK.",
]
ITEMS = [
    "Describe the water cycle to a ten year old in five sentences.",
    "Give three reasons why bees matter for farming and food supply.",
    "Explain what a prime number is, with two small examples.",
]


def _chunks(n: int) -> dict[str, str]:
    # The stand-in's text depends only on the choice index and the chunk count, so every call
    # here asks for a different count: equal texts would link to several entries.
    return {"x-fake-chunks": str(n)}


def _record_list_completion(lg: ledger.Ledger) -> str:
    """One OpenAI-format chat call whose answer is a numbered list (the Alpaca pattern)."""
    answer = "\n".join(f"{n}. Instruction: {item}" for n, item in enumerate(ITEMS, 1))
    response = {"id": "chatcmpl-list", "model": "gpt-4o",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": answer}}]}  # fmt: skip
    recorder = Recorder(lg, purpose="train-model", dataset="tutor", durability="sync")
    call = recorder.begin(
        "POST",
        "https://api.openai.com/v1/chat/completions",
        [("content-type", "application/json"), ("authorization", f"Bearer {API_KEY}")],
        b'{"model": "gpt-4o", "messages": []}',
    )
    call.respond(200, {"content-type": "application/json"})
    call.feed(json.dumps(response).encode())
    call.ended = True
    call.finish()
    return answer


def test_sdk_outputs_survive_real_post_processing(
    fake_provider: FakeProviderServer, tmp_path: Path
) -> None:
    lg = open_ledger(tmp_path / "home")
    bare = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key=API_KEY, max_retries=0)
    oai = wrap(bare, ledger=lg, purpose="train-model", dataset="tutor", durability="sync",
               hosts={"127.0.0.1": "openai"})  # fmt: skip
    evaluator = wrap(bare, ledger=lg, purpose="evaluate", dataset="tutor", durability="sync",
                     hosts={"127.0.0.1": "openai"})  # fmt: skip
    two = oai.chat.completions.create(model="gpt-4o", messages=CHAT, n=2, extra_headers=_chunks(12))
    oai.chat.completions.create(model="gpt-4o", messages=CHAT, extra_headers=_chunks(12))
    # Choice i's words are "c{i}w{k}": the near rows take the only choices 2 and 3, so that no
    # other output shares their words (a prefix of the same family would be a fair candidate).
    truecase = oai.chat.completions.create(
        model="gpt-4o", messages=CHAT, n=3, extra_headers=_chunks(14)
    )
    edited = oai.chat.completions.create(
        model="gpt-4o", messages=CHAT, n=4, extra_headers=_chunks(24)
    )
    turn_a = oai.chat.completions.create(model="gpt-4o", messages=CHAT, extra_headers=_chunks(26))
    turn_b = oai.chat.completions.create(model="gpt-4o", messages=CHAT, extra_headers=_chunks(28))
    with_id = oai.chat.completions.create(model="gpt-4o", messages=CHAT, extra_headers=_chunks(32))
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in oai.chat.completions.create(
            model="gpt-4o", messages=CHAT, stream=True, extra_headers=_chunks(30)
        )
        if chunk.choices
    )
    drifted = evaluator.chat.completions.create(
        model="gpt-4o", messages=CHAT, extra_headers=_chunks(20)
    )
    ant = wrap(
        anthropic.Anthropic(
            base_url=fake_provider.anthropic_base_url, api_key=API_KEY, max_retries=0
        ),
        ledger=lg, purpose="train-model", dataset="tutor", durability="sync",
    )  # fmt: skip
    message = ant.messages.create(
        model="claude-sonnet-4-5", max_tokens=256, messages=CHAT,
        extra_headers={**THOUGHTS, **_chunks(16)},
    )  # fmt: skip
    thinking = next(b.thinking for b in message.content if b.type == "thinking")
    claude_text = next(b.text for b in message.content if b.type == "text")
    options = types.HttpOptions(
        base_url=fake_provider.gemini_base_url, headers={**THOUGHTS, **_chunks(18)}
    )
    gem = wrap(genai.Client(api_key=API_KEY, http_options=options), ledger=lg,
               purpose="train-model", dataset="tutor", durability="sync")  # fmt: skip
    reply = gem.models.generate_content(model="gemini-2.5-pro", contents="Teach me something.")
    assert reply.text
    listed = _record_list_completion(lg)
    assert "\n" in listed

    text = [choice.message.content or "" for choice in two.choices]
    rows: list[dict[str, Any]] = [
        # stripped (the stand-in's text ends in a space), and the same text again (deduped)
        {"messages": [*CHAT, {"role": "assistant", "content": text[1].strip()}]},
        {"messages": [*CHAT, {"role": "assistant", "content": text[1].strip()}]},
        # the same text as another call's (`again`): two candidate entries
        {"messages": [*CHAT, {"role": "assistant", "content": text[0]}]},
        {"prompt": "Teach me.", "completion": streamed.strip()},
        # reasoning and answer in think tags / OpenThoughts markers
        {"messages": [*CHAT, {"role": "assistant",
                              "content": f"<think>\n{thinking}\n</think>\n\n{claude_text}"}]},
        {"system": "sky", "conversations": [
            {"from": "human", "value": "Teach me something."},
            {"from": "gpt", "value": f"<|begin_of_thought|>\n\n{THOUGHT.strip()}\n\n"
                                     f"<|end_of_thought|>\n\n<|begin_of_solution|>\n\n"
                                     f"{reply.text.strip()}\n\n<|end_of_solution|>"}]},
        # truecased; lightly edited
        {"messages": [*CHAT, {"role": "assistant",
                              "content": (truecase.choices[2].message.content or "").upper()}]},
        {"messages": [*CHAT, {"role": "assistant", "content": (
            edited.choices[3].message.content or "").replace("c3w7 ", "seven ")}]},
        # a dialogue assembled from two calls
        {"conversations": [
            {"from": "human", "value": "q1"},
            {"from": "gpt", "value": turn_a.choices[0].message.content},
            {"from": "human", "value": "q2"},
            {"from": "gpt", "value": turn_b.choices[0].message.content}]},
        # the entry id stored in the row, as the README recipe does
        {"messages": [*CHAT, {"role": "assistant", "content": with_id.choices[0].message.content}],
         "metadata": {"ledger_entry_id": ledger.entry_id(with_id)}},
        # recorded for evaluation, now in a training set
        {"messages": [*CHAT, {"role": "assistant", "content": drifted.choices[0].message.content}]},
        # the numbered list split into rows (Alpaca)
        *[{"instruction": item, "input": "", "output": item} for item in ITEMS],
        *[{"messages": [*CHAT, {"role": "assistant", "content": h}]} for h in HUMAN],
    ]  # fmt: skip
    assert ledger.entry_id(with_id) is not None
    unique = list({json.dumps(row, sort_keys=True): row for row in rows}.values())
    random.Random(7).shuffle(unique)  # noqa: S311 - a fixed order, not a secret
    path = write_jsonl(tmp_path / "train.jsonl", unique)
    audit = lg.audit_dataset([path], profile=FACTS)

    assert audit.examples == len(rows) - 1
    assert audit.by_match == {"id": 1, "exact": 5, "template": 2, "part": 3, "near": 2,
                              "none": len(HUMAN)}  # fmt: skip
    by_text = {json.dumps(unique[r.line - 1], sort_keys=True): r for r in audit.results}

    def result(row: dict[str, Any]) -> Any:
        return by_text[json.dumps(row, sort_keys=True)]

    # Zero false links on the human rows.
    for row in rows[-len(HUMAN) :]:
        assert result(row).match == "none"
        assert result(row).links == ()
    assert result(rows[2]).ambiguous
    assert audit.ambiguous == 1
    assert result(rows[10]).purpose_drift == ("evaluate",)
    assert audit.drift_purposes == {"evaluate": 1}
    assert result(rows[9]).match == "id"
    assert result(rows[6]).links[0].similarity == 1.0
    # The audit's verdicts agree with the ledger's own, entry by entry.
    for res in audit.results:
        if res.links:
            expected = {lg.verdict(link.leaf_index, purpose="train-model", facts=FACTS).verdict
                        for link in res.links}  # fmt: skip
            assert res.verdict in expected
    assert sum(audit.by_verdict.values()) == audit.linked
    assert set(audit.by_provider) == {"openai", "anthropic", "gcp.gemini"}
    # The stand-in listens on loopback: the conduct detectors say so for the linked entries.
    assert "unofficial-endpoint" in {finding.kind for finding in audit.conduct}
    for client in (oai, evaluator, ant, gem):
        client.close()
    lg.close()
