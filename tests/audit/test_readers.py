"""Dataset readers: every row shape and container, and every bad-row error with file and line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ledger.audit.readers import BadRow, Example, read_dataset
from ledger.errors import InputError
from tests.audit.helpers import write_jsonl


def _read(path: Path, **options: Any) -> list[Example | BadRow]:
    return list(read_dataset([path], **options))


def _turns(items: list[Example | BadRow]) -> list[tuple[str, ...] | str]:
    return [item.turns if isinstance(item, Example) else f"bad:{item.line}" for item in items]


def test_openai_chat_rows(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                      {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q"},
                      {"role": "assistant", "content": "not trained", "weight": 0},
                      {"role": "assistant", "content": [{"type": "text", "text": "a"},
                                                        {"type": "text", "text": "2"}]}]},
        {"messages": [{"role": "assistant", "content": "answer",
                       "reasoning_content": "thinking first"}]},
    ]  # fmt: skip
    items = _read(write_jsonl(tmp_path / "chat.jsonl", rows))
    assert _turns(items) == [("a1", "a2"), ("thinking first\n\nanswer",)]
    assert [(i.index, i.line) for i in items] == [(0, 1), (1, 2)]


def test_every_row_shape(tmp_path: Path) -> None:
    rows: list[Any] = [
        {"instruction": "i", "input": "", "output": "alpaca out"},
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "sg1"},
                           {"from": "human", "value": "q"}, {"from": "gpt", "value": "sg2"}]},
        {"prompt": "p", "completion": "plain completion"},
        {"prompt": [{"role": "user", "content": "p"}],
         "completion": [{"role": "assistant", "content": "chat completion"}]},
    ]  # fmt: skip
    items = _read(write_jsonl(tmp_path / "mixed.jsonl", rows))
    assert _turns(items) == [
        ("alpaca out",),
        ("sg1", "sg2"),
        ("plain completion",),
        ("chat completion",),
    ]
    nested = write_jsonl(tmp_path / "nested.jsonl", [{"data": {"turns": ["x", "y"]}},
                                                     {"data": {"turns": "z"}}])  # fmt: skip
    assert _turns(_read(nested, text_field="data.turns")) == [("x", "y"), ("z",)]
    indexed = write_jsonl(tmp_path / "idx.jsonl", [{"data": [{"t": "first"}, {"t": "second"}]}])
    assert _turns(_read(indexed, text_field="data.1.t")) == [("second",)]
    forced = write_jsonl(tmp_path / "forced.jsonl", [{"output": "o", "instruction": "i"}])
    assert _turns(_read(forced, format="alpaca")) == [("o",)]


def test_entry_ids_are_read(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "assistant", "content": "a", "ledger_entry_id": "m1"}],
         "ledger_entry_id": "r1", "metadata": {"ledger_entry_id": ["r2", "r3"]}},
        {"output": "o", "instruction": "i", "source": "s1"},
    ]  # fmt: skip
    first, _ = _read(write_jsonl(tmp_path / "ids.jsonl", rows))
    assert isinstance(first, Example)
    assert first.entry_ids == ("r1", "r2", "r3")
    assert first.turn_ids == (("m1",),)
    (custom,) = _read(write_jsonl(tmp_path / "c.jsonl", [rows[1]]), id_field="source")
    assert isinstance(custom, Example)
    assert custom.entry_ids == ("s1",)


def test_json_array_csv_and_tsv(tmp_path: Path) -> None:
    array = tmp_path / "rows.json"
    array.write_text(json.dumps([{"instruction": "i", "output": "x"},
                                 {"instruction": "i", "output": "y"}]))  # fmt: skip
    assert _turns(_read(array)) == [("x",), ("y",)]
    table = tmp_path / "rows.csv"
    messages = json.dumps([{"role": "assistant", "content": "from csv"}])
    table.write_text(
        'instruction,input,output\ni,,"line one\nline two"\ni,,plain\n',
        encoding="utf-8",
    )
    items = _read(table)
    assert _turns(items) == [("line one\nline two",), ("plain",)]
    assert [i.line for i in items] == [2, 4]  # the quoted cell spans lines 2 and 3
    chat = tmp_path / "chat.csv"
    chat.write_text("messages\n" + json.dumps(messages) + "\n", encoding="utf-8")
    chat.write_text('messages\n"' + messages.replace('"', '""') + '"\n', encoding="utf-8")
    assert _turns(_read(chat)) == [("from csv",)]
    tsv = tmp_path / "rows.tsv"
    tsv.write_text("answer\tother\nfrom tsv\tx\n", encoding="utf-8")
    assert _turns(_read(tsv, text_field="answer")) == [("from tsv",)]


def test_parquet_and_saved_hf_dataset(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    datasets = pytest.importorskip("datasets")
    rows = [{"instruction": "i", "input": "", "output": f"row {n}"} for n in range(3)]
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, tmp_path / "d.parquet")
    items = _read(tmp_path / "d.parquet")
    assert _turns(items) == [("row 0",), ("row 1",), ("row 2",)]
    assert [i.line for i in items] == [1, 2, 3]
    chats = [
        {
            "messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": f"hf {n}"},
            ]
        }
        for n in range(2)
    ]
    datasets.Dataset.from_list(chats).save_to_disk(str(tmp_path / "hf"))
    assert _turns(_read(tmp_path / "hf")) == [("hf 0",), ("hf 1",)]
    both = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(chats[:1]), "test": datasets.Dataset.from_list(rows)}
    )
    both.save_to_disk(str(tmp_path / "hfdict"))
    assert _turns(_read(tmp_path / "hfdict")) == [("hf 0",), ("row 0",), ("row 1",), ("row 2",)]


def test_every_bad_row_is_reported_with_file_and_line(tmp_path: Path) -> None:
    lines: list[Any] = [
        "{not json",
        [1, 2],
        {"something": "else"},
        {"messages": "not a list"},
        {"messages": ["not an object"]},
        {"messages": [{"content": "no role"}]},
        {"messages": [{"role": "assistant", "content": 42}]},
        {"messages": [{"role": "user", "content": "no assistant turn"}]},
        {"conversations": [{"from": "gpt", "value": None}]},
        {"completion": 7},
        {"messages": [{"role": "assistant", "content": "a"}], "ledger_entry_id": 5},
        {"instruction": "i", "output": "fine"},
    ]
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    items = _read(path)
    bad = [item for item in items if isinstance(item, BadRow)]
    assert [(b.line, b.error.split(":")[0]) for b in bad] == [
        (1, "not valid JSON"),
        (2, "a row must be a JSON object, not list"),
        (3, "no assistant text found (format auto looks for messages, conversations, "
            "instruction/output or completion; name one with --text-field)"),
        (4, "messages must be a list"),
        (5, "messages[0] is not an object"),
        (6, "messages[0] has no 'role'"),
        (7, "messages[0] content is neither text nor a list of content parts"),
        (8, "the row has no assistant turn"),
        (9, "conversations[0] has no text 'value'"),
        (10, "prompt/completion row has no text 'completion'"),
        (11, "ledger_entry_id must be a string or a list of strings"),
    ]  # fmt: skip
    assert all(b.file == str(path) for b in bad)
    assert str(bad[0]).startswith(f"{path}:1: not valid JSON")
    assert [i.index for i in items] == list(range(12))  # bad rows keep their place
    assert _turns(items)[-1] == ("fine",)
    alpaca = write_jsonl(tmp_path / "a.jsonl", [{"instruction": "i", "output": None}])
    assert [b.error for b in _read(alpaca, format="alpaca")] == [  # type: ignore[union-attr]
        "alpaca row has no text 'output'"
    ]
    field = write_jsonl(tmp_path / "f.jsonl", [{"a": {"b": 1}}, {"a": {}}, {"a": [1]}])
    assert [b.error for b in _read(field, text_field="a.b")] == [  # type: ignore[union-attr]
        "field 'a.b' is not text",
        "no field 'a.b'",
        "no field 'a.b'",
    ]
    wide = tmp_path / "wide.csv"
    wide.write_text("output,instruction\nx,i,extra\n", encoding="utf-8")
    assert [b.error for b in _read(wide)] == [  # type: ignore[union-attr]
        "the row has more cells than the header"
    ]


def test_whole_file_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match="no dataset file"):
        _read(tmp_path / "missing.jsonl")
    with pytest.raises(InputError, match="unknown --format"):
        _read(tmp_path, format="xml")
    with pytest.raises(InputError, match="needs --text-field"):
        _read(tmp_path, format="text")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("output,instruction\ncaf\xe9,i\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        _read(latin)
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputError, match="not a saved Hugging Face dataset"):
        _read(tmp_path / "folder")
    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON"):
        _read(broken)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="not a Parquet file"):
        _read(garbage)
    # Without the extra installed, the reader says which one to install.
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(InputError, match=r"distill-ledger\[parquet\]"):
        _read(garbage)
    monkeypatch.setitem(sys.modules, "datasets", None)
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "state.json").write_text("{}")
    with pytest.raises(InputError, match=r"distill-ledger\[hf\]"):
        _read(tmp_path / "hf")
