"""The matching stages and the dataset verdict, on version-2 bodies built with the recorder's
own fingerprint function and appended to real ledgers (SQLite, and PostgreSQL when set)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ledger.audit import audit_dataset
from ledger.crypto.canonical import normalize_output
from ledger.crypto.fingerprint import dataset_key
from ledger.log.records import uuid7
from tests.audit.helpers import FACTS, by_line, chat_row, v2_body, write_jsonl
from tests.conftest import LedgerFactory

PHOTO = (
    "Photosynthesis turns light into chemical energy inside the chloroplasts.\n\n"
    "1. Light is absorbed by chlorophyll in the leaves of the plant.\n"
    "2. Water molecules are split and oxygen is released into the air.\n"
    "3. Carbon dioxide is fixed into sugars by the Calvin cycle."
)
TIDES = (
    "Tides are caused mainly by the gravitational pull of the Moon on the oceans, with the Sun "
    "adding a smaller effect; when both line up we get spring tides, and neap tides otherwise."
)
STEAM = (
    "A steam engine boils water in a closed boiler, and the expanding steam pushes a piston "
    "back and forth inside a cylinder, which a crank then turns into rotary motion."
)
REASONING = "The user asks about tides. I should mention the Moon, the Sun and spring tides."
HUMAN = [
    "Honestly I just like baking bread on Sundays, it calms me down after a long week.",
    "The bus to the airport leaves every twenty minutes from the north side of the station.",
    "Photosynthesis is how plants eat, according to my nephew, who is six years old.",
    "Yes.",
    "Light is absorbed.",
]


def _ledger_with_outputs(make_ledger: LedgerFactory) -> tuple[object, list[int]]:
    lg = make_ledger()
    receipts = lg.append_many(
        [
            v2_body(lg, [(PHOTO, None)]),
            v2_body(lg, [(TIDES, REASONING)]),
            v2_body(lg, [(STEAM, None)], purpose="evaluate"),
            # The same answer recorded twice: an example of it has two candidates.
            v2_body(lg, [("Water boils at 100 degrees Celsius at sea level pressure.", None)]),
            v2_body(lg, [("Water boils at 100 degrees Celsius at sea level pressure.", None)]),
        ]
    )
    return lg, [r.leaf_index for r in receipts]


def test_every_stage_and_human_rows(make_ledger: LedgerFactory, tmp_path: Path) -> None:
    lg, leaves = _ledger_with_outputs(make_ledger)
    rows = [
        chat_row("  " + PHOTO.replace("\n", "\r\n") + "\n"),  # 1 exact (normalized)
        chat_row(f"<think>\n{REASONING}\n</think>\n\n{TIDES}"),  # 2 template: think tags
        chat_row(f"{REASONING}\n\n{TIDES}"),  # 3 template: recorded join
        chat_row(
            "<|begin_of_thought|>\n\n" + REASONING + "\n\n<|end_of_thought|>\n\n"
            "<|begin_of_solution|>\n\n" + TIDES + "\n\n<|end_of_solution|>"
        ),  # 4 template: OpenThoughts markers
        chat_row("Answer: " + TIDES),  # 5 template: prefix
        chat_row("Water molecules are split and oxygen is released into the air."),  # 6 part
        chat_row(TIDES + "\n\n" + STEAM),  # 7 part: assembled from two outputs
        chat_row(TIDES.upper()),  # 8 near: truecased
        chat_row(STEAM.replace("piston", "plunger")),  # 9 near: one word edited
        chat_row("Water boils at 100 degrees Celsius at sea level pressure."),  # 10 ambiguous
        *[chat_row(text) for text in HUMAN],  # 11..15 none
    ]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    audit = lg.audit_dataset([path], profile=FACTS)
    results = by_line(audit)
    expected = ["exact", "template", "template", "template", "template", "part", "part",
                "near", "near", "exact", *["none"] * len(HUMAN)]  # fmt: skip
    assert [results[n].match for n in range(1, len(rows) + 1)] == expected
    assert audit.by_match == {"id": 0, "exact": 2, "template": 4, "part": 2, "near": 2,
                              "none": 5}  # fmt: skip
    assert audit.linked == 10
    assert audit.unlinked == 5
    # Zero false links: no human row has a candidate at all.
    assert all(not results[n].links for n in range(11, 16))
    assert {link.leaf_index for link in results[1].links} == {leaves[0]}
    assert {link.leaf_index for link in results[7].links} == {leaves[1], leaves[2]}
    near = results[8].links[0]
    assert near.leaf_index == leaves[1]
    assert near.similarity == 1.0
    assert 0.6 <= (results[9].links[0].similarity or 0) < 1.0
    assert results[10].ambiguous
    assert {link.leaf_index for link in results[10].links} == {leaves[3], leaves[4]}
    assert audit.ambiguous == 1
    # Purpose drift: rows 7 and 9 come (partly) from a call recorded for evaluate.
    assert [n for n, r in results.items() if r.purpose_drift] == [7, 9]
    assert audit.drift_purposes == {"evaluate": 2}
    assert audit.by_verdict == {"allowed": 10, "conditional": 0, "unknown": 0, "prohibited": 0}
    assert not audit.passed()
    assert audit.passed(max_unlinked_percent=34)
    assert not audit.passed(max_unlinked_percent=33)
    summary = audit.summary()
    assert summary["by_provider"] == {"openai": 10}
    assert summary["by_month"] == {"2026-06": 10}
    assert [row["line"] for row in summary["first_unlinked"]] == [11, 12, 13, 14, 15]


def test_strictest_verdict_among_equal_links(make_ledger: LedgerFactory, tmp_path: Path) -> None:
    lg = make_ledger()
    text = "The French Revolution began in 1789 with the storming of the Bastille in Paris."
    lg.append_many(
        [
            v2_body(lg, [(text, None)], provider="openai"),
            # The same text from a provider no policy governs: judged unknown, the stricter.
            v2_body(lg, [(text, None)], provider="perplexity", model="sonar"),
        ]
    )
    path = write_jsonl(tmp_path / "d.jsonl", [chat_row(text)])
    audit = lg.audit_dataset([path], profile=FACTS)
    (result,) = audit.results
    assert result.match == "exact"
    assert result.ambiguous
    assert result.verdict == "unknown"
    assert audit.by_verdict["unknown"] == 1
    assert audit.by_provider == {"perplexity": 1}  # the candidate whose verdict decided


def test_one_completion_split_into_rows(make_ledger: LedgerFactory, tmp_path: Path) -> None:
    lg = make_ledger()
    items = [
        "Write a haiku about the first snow of winter.",
        "Explain why the sky looks blue on a clear day.",
        "List three uses of baking soda around the house.",
        "Summarize the plot of Romeo and Juliet in two lines.",
    ]
    completion = "\n".join(f"{n}. Instruction: {item}" for n, item in enumerate(items, 1))
    lg.append(v2_body(lg, [(completion, None)]))
    rows = [{"instruction": "Make tasks", "input": "", "output": item} for item in items]
    rows.append({"instruction": "x", "input": "", "output": items[0] + "\n" + items[2]})
    rows.append({"instruction": "x", "input": "", "output": items[1] + " And I added this."})
    path = write_jsonl(tmp_path / "alpaca.jsonl", rows)
    audit = lg.audit_dataset([path], profile=FACTS)
    assert [r.match for r in audit.results] == ["part"] * 5 + ["none"]


def test_multi_turn_example_uses_its_weakest_turn(
    make_ledger: LedgerFactory, tmp_path: Path
) -> None:
    lg = make_ledger()
    lg.append_many([v2_body(lg, [(TIDES, None)]), v2_body(lg, [(STEAM, None)])])
    rows = [
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": TIDES},
                           {"from": "human", "value": "q"}, {"from": "gpt", "value": STEAM}]},
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": TIDES},
                           {"from": "human", "value": "q"}, {"from": "gpt", "value": HUMAN[0]}]},
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": TIDES},
                           {"from": "gpt", "value": STEAM.upper()}]},
    ]  # fmt: skip
    audit = lg.audit_dataset([write_jsonl(tmp_path / "s.jsonl", rows)], profile=FACTS)
    first, second, third = audit.results
    assert (first.match, len(first.links), first.unlinked_turns) == ("exact", 2, 0)
    assert (second.match, second.unlinked_turns, second.verdict) == ("none", 1, None)
    assert third.match == "near"


def test_version_1_entries_link_by_unkeyed_hash(make_ledger: LedgerFactory, tmp_path: Path) -> None:
    lg = make_ledger()
    digest = hashlib.sha256(normalize_output(TIDES).encode()).hexdigest()
    lg.append({"v": 1, "provider": "openai", "request_model": "gpt-4o",
               "started_at": "2025-07-01T10:00:00.000000Z", "purpose": "train-model",
               "output_sha256": [digest]})  # fmt: skip
    path = write_jsonl(tmp_path / "d.jsonl", [chat_row(TIDES + "\n"), chat_row(STEAM)])
    audit = lg.audit_dataset([path], profile=FACTS)
    assert [r.match for r in audit.results] == ["exact", "none"]
    assert audit.results[0].links[0].kind == "v1"
    assert audit.by_month == {"2025-07": 1}


def test_id_stage_and_id_findings(make_ledger: LedgerFactory, tmp_path: Path) -> None:
    lg = make_ledger()
    first, second = (v2_body(lg, [(TIDES, None)]), v2_body(lg, [(STEAM, None)]))
    lg.append_many([first, second])
    rows = [
        chat_row(TIDES, ledger_entry_id=first["id"]),  # id
        chat_row(TIDES, metadata={"ledger_entry_id": first["id"]}),  # id under metadata
        chat_row(TIDES, ledger_entry_id=second["id"]),  # names the wrong entry: exact + finding
        chat_row(STEAM, ledger_entry_id=uuid7()),  # unknown id: exact + finding
        {"messages": [{"role": "assistant", "content": STEAM, "ledger_entry_id": second["id"]}]},
    ]
    audit = lg.audit_dataset([write_jsonl(tmp_path / "d.jsonl", rows)], profile=FACTS)
    assert [r.match for r in audit.results] == ["id", "id", "exact", "exact", "id"]
    assert [(f.line, f.problem) for f in audit.id_findings] == [
        (3, "the named entry holds none of the row's assistant turns"),
        (4, "no entry with this id in the ledger"),
    ]
    custom = lg.audit_dataset(
        [write_jsonl(tmp_path / "c.jsonl", [chat_row(TIDES, source_call=first["id"])])],
        id_field="source_call",
        profile=FACTS,
    )
    assert custom.results[0].match == "id"


def test_keys_decide_what_links(make_ledger: LedgerFactory, tmp_path: Path) -> None:
    lg = make_ledger()
    lg.append_many(
        [v2_body(lg, [(TIDES, None)], dataset="a"), v2_body(lg, [(STEAM, None)], dataset=None)]
    )
    path = write_jsonl(tmp_path / "d.jsonl", [chat_row(TIDES), chat_row(STEAM)])
    assert [r.match for r in lg.audit_dataset([path]).results] == ["exact", "exact"]
    # An auditor given only dataset a's key links only dataset a's outputs.
    only_a = lg.audit_dataset([path], keys={"a": lg.fingerprint_key("a")})
    assert [r.match for r in only_a.results] == ["exact", "none"]
    assert any("without a dataset name" in note for note in only_a.notes)
    # Whoever holds the log but not the key confirms nothing, not even by guessing the text.
    guessed = lg.audit_dataset(
        [path], keys={"a": dataset_key(b"guess" * 8, "a"), None: dataset_key(b"g" * 32, None)}
    )
    assert guessed.by_match["none"] == 2
    # Restricting the audit to one dataset name leaves the other's entries out.
    restricted = lg.audit_dataset([path], datasets=["a"])
    assert [r.match for r in restricted.results] == ["exact", "none"]
    assert restricted.entries_indexed == 1


def test_options_are_checked(make_ledger: LedgerFactory, tmp_path: Path) -> None:
    from ledger.errors import InputError

    lg = make_ledger()
    lg.append(v2_body(lg, [(TIDES, None)]))
    path = write_jsonl(tmp_path / "d.jsonl", [chat_row(TIDES)])
    with pytest.raises(InputError, match="purpose"):
        lg.audit_dataset([path], purpose="world-domination")
    with pytest.raises(InputError, match="threshold"):
        lg.audit_dataset([path], near_threshold=0)
    with pytest.raises(InputError, match="answer"):
        lg.audit_dataset([path], wrappers=[r"<x>(?P<reasoning>.*)</x>"])
    with pytest.raises(InputError, match="no dataset file"):
        audit_dataset(lg.store, [], lg.fingerprint_key)
    custom = lg.audit_dataset(
        [write_jsonl(tmp_path / "w.jsonl", [chat_row(f"[[{TIDES}]]")])],
        wrappers=[r"\[\[(?P<answer>.*)\]\]"],
    )
    assert custom.results[0].match == "template"


def test_conduct_findings_over_the_linked_entries(
    make_ledger: LedgerFactory, tmp_path: Path
) -> None:
    lg = make_ledger()
    first, second = v2_body(lg, [(TIDES, None)]), v2_body(lg, [(STEAM, None)])
    first["endpoint"]["host"] = "chatgpt.com"  # a consumer web endpoint, not the API
    second["endpoint"]["host"] = "chatgpt.com"
    receipts = lg.append_many([first, second])
    path = write_jsonl(tmp_path / "d.jsonl", [chat_row(TIDES)])
    audit = lg.audit_dataset([path], profile=FACTS)
    # A finding is kept whole when it involves a linked entry...
    (finding,) = audit.conduct
    assert finding.kind == "unofficial-endpoint"
    assert finding.leaf_indexes == (receipts[0].leaf_index, receipts[1].leaf_index)
    # ...and left out when it involves none.
    human = write_jsonl(tmp_path / "h.jsonl", [chat_row(HUMAN[0])])
    assert lg.audit_dataset([human], profile=FACTS).conduct == ()
    assert lg.audit_dataset([path], profile=FACTS, conduct=False).conduct == ()


def test_conduct_runs_in_process_for_an_in_memory_ledger(tmp_path: Path) -> None:
    # A worker opening "sqlite://" would get a new, empty database: the pass stays here.
    import ledger

    with ledger.open("sqlite://", home=tmp_path / "home") as lg:
        body = v2_body(lg, [(TIDES, None)])
        body["endpoint"]["host"] = "chatgpt.com"
        lg.append(body)
        path = write_jsonl(tmp_path / "d.jsonl", [chat_row(TIDES)])
        audit = lg.audit_dataset([path], profile=FACTS)
        assert audit.by_match["exact"] == 1
        assert [f.kind for f in audit.conduct] == ["unofficial-endpoint"]
