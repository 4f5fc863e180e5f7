"""Dataset readers: the assistant turns of every row of a training file, with file and line.

Invariants:

- A reader yields, in file order, either an :class:`Example` or a :class:`BadRow`, each with
  its 0-based ``index`` among all rows of all files (bad rows count) and its 1-based
  ``line``: the line of a JSON Lines or CSV row, the element number of a JSON array, the row
  number of a Parquet file or a Hugging Face dataset. A bad row says what is wrong; reading
  never stops at one (the caller decides whether that is fatal).
- Only text a student is trained on counts as a turn: assistant messages (OpenAI chat
  ``messages``, skipping ``weight: 0``), ShareGPT ``gpt`` / ``assistant`` / ``model`` turns,
  Alpaca ``output``, ``completion``, or the value at ``--text-field``. An assistant message's
  ``reasoning_content`` / ``reasoning`` / ``thinking`` string is joined before its content
  (``reasoning + "\\n\\n" + content``), the form the matcher's ``template`` stage recognizes.
- Entry ids: a row's ``id_field`` (default ``ledger_entry_id``) at the top level or under
  ``metadata`` (a string or a list of strings), and the same field on an assistant message.
- Row shapes (``--format``): ``openai``, ``alpaca``, ``sharegpt``, ``prompt-completion``,
  ``text``, or ``auto`` (per row, in that order of checks). Containers by file name: ``.jsonl``
  / ``.ndjson`` / ``.json`` (JSON Lines, or one JSON array), ``.csv`` / ``.tsv``,
  ``.parquet`` (extra ``parquet``: pyarrow), a folder written by ``datasets``'
  ``save_to_disk`` (extra ``hf``). ``--format csv|jsonl|json|parquet|hf`` forces a container.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ledger.errors import InputError

__all__ = [
    "CONTAINERS",
    "FORMATS",
    "ROW_SHAPES",
    "BadRow",
    "Example",
    "read_dataset",
    "turns_of_row",
]

ROW_SHAPES = ("openai", "alpaca", "sharegpt", "prompt-completion", "text")
CONTAINERS = ("jsonl", "json", "csv", "parquet", "hf")
FORMATS = ("auto", *ROW_SHAPES, *CONTAINERS)

_ASSISTANT_ROLES = frozenset({"assistant", "gpt", "model", "chatgpt", "bot", "bard", "bing"})
_REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking")


@dataclass(frozen=True, slots=True)
class Example:
    """One row's trained text: its assistant turns and any entry ids it names."""

    index: int
    file: str
    line: int
    turns: tuple[str, ...]
    entry_ids: tuple[str, ...] = ()  # named by the row for all of its turns
    turn_ids: tuple[tuple[str, ...], ...] = ()  # named by each assistant message (may be empty)


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that could not be read; the audit goes on without it."""

    index: int
    file: str
    line: int
    error: str

    def to_dict(self) -> dict[str, object]:
        return {"index": self.index, "file": self.file, "line": self.line, "error": self.error}

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.error}"


class _RowError(Exception):
    """A row-level problem (becomes a BadRow)."""


def _get_path(row: Mapping[str, Any], path: str) -> Any:
    value: Any = row
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit():
            try:
                value = value[int(part)]
            except IndexError:
                raise _RowError(f"--text-field {path!r}: no element {part}") from None
        else:
            raise _RowError(f"no field {path!r}")
    return value


def _ids(value: object, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v for v in value if v)
    raise _RowError(f"{name} must be a string or a list of strings")


def _content_text(content: object, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # OpenAI content parts: only the text parts are trained text.
        parts = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    if content is None:
        return ""
    raise _RowError(f"{where} is neither text nor a list of content parts")


def _message_turn(message: Mapping[str, Any], where: str) -> str:
    text = _content_text(message.get("content"), f"{where} content")
    for name in _REASONING_FIELDS:
        reasoning = message.get(name)
        if isinstance(reasoning, str) and reasoning.strip():
            return f"{reasoning}\n\n{text}" if text.strip() else reasoning
    return text


def _chat_turns(
    messages: object, id_field: str, *, role_key: str, text_key: str | None, name: str
) -> tuple[list[str], list[tuple[str, ...]]]:
    if not isinstance(messages, list):
        raise _RowError(f"{name} must be a list")
    turns: list[str] = []
    turn_ids: list[tuple[str, ...]] = []
    for number, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise _RowError(f"{name}[{number}] is not an object")
        role = message.get(role_key)
        if not isinstance(role, str):
            raise _RowError(f"{name}[{number}] has no {role_key!r}")
        if role.lower() not in _ASSISTANT_ROLES:
            continue
        if message.get("weight") == 0:
            continue  # OpenAI fine-tuning: this turn is not trained on
        where = f"{name}[{number}]"
        if text_key is None:
            text = _message_turn(message, where)
        else:
            value = message.get(text_key)
            if not isinstance(value, str):
                raise _RowError(f"{where} has no text {text_key!r}")
            text = value
        turns.append(text)
        turn_ids.append(_ids(message.get(id_field), f"{where}.{id_field}"))
    return turns, turn_ids


def turns_of_row(
    row: object, shape: str = "auto", *, text_field: str | None = None, id_field: str
) -> tuple[list[str], list[tuple[str, ...]], tuple[str, ...]]:
    """``(turns, per-turn ids, row ids)`` of one parsed row; ``_RowError`` if it has none."""
    if not isinstance(row, Mapping):
        raise _RowError(f"a row must be a JSON object, not {type(row).__name__}")
    metadata = row.get("metadata")
    row_ids = _ids(row.get(id_field), id_field)
    if isinstance(metadata, Mapping):
        row_ids += _ids(metadata.get(id_field), f"metadata.{id_field}")
    if shape == "auto":
        if text_field is not None:
            shape = "text"
        elif "messages" in row:
            shape = "openai"
        elif "conversations" in row:
            shape = "sharegpt"
        elif "output" in row and "instruction" in row:
            shape = "alpaca"
        elif "completion" in row:
            shape = "prompt-completion"
        else:
            raise _RowError(
                "no assistant text found (format auto looks for messages, conversations, "
                "instruction/output or completion; name one with --text-field)"
            )
    turns: list[str]
    turn_ids: list[tuple[str, ...]]
    if shape == "openai":
        turns, turn_ids = _chat_turns(
            row.get("messages"), id_field, role_key="role", text_key=None, name="messages"
        )
    elif shape == "sharegpt":
        turns, turn_ids = _chat_turns(
            row.get("conversations"), id_field, role_key="from", text_key="value",
            name="conversations",
        )  # fmt: skip
    elif shape == "alpaca":
        output = row.get("output")
        if not isinstance(output, str):
            raise _RowError("alpaca row has no text 'output'")
        turns, turn_ids = [output], [()]
    elif shape == "prompt-completion":
        completion = row.get("completion")
        if isinstance(completion, list):  # conversational prompt/completion (TRL)
            turns, turn_ids = _chat_turns(
                completion, id_field, role_key="role", text_key=None, name="completion"
            )
        elif isinstance(completion, str):
            turns, turn_ids = [completion], [()]
        else:
            raise _RowError("prompt/completion row has no text 'completion'")
    elif shape == "text":
        if text_field is None:
            raise InputError("--format text needs --text-field")
        value = _get_path(row, text_field)
        if isinstance(value, str):
            turns = [value]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            turns = list(value)
        else:
            raise _RowError(f"field {text_field!r} is not text")
        turn_ids = [()] * len(turns)
    else:
        raise InputError(f"unknown row format {shape!r} (known: {', '.join(FORMATS)})")
    if not turns:
        raise _RowError("the row has no assistant turn")
    return turns, turn_ids, row_ids


# -- containers ----------------------------------------------------------------------------


def _container(path: Path, forced: str | None) -> str:
    if forced is not None:
        return forced
    if path.is_dir():
        markers = ("dataset_info.json", "state.json", "dataset_dict.json")
        if any((path / name).exists() for name in markers):
            return "hf"
        raise InputError(f"{path} is a folder but not a saved Hugging Face dataset")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix == ".parquet":
        return "parquet"
    return "jsonl"  # JSON Lines, or a JSON array (told apart by the first character)


def _json_rows(path: Path) -> Iterator[tuple[int, object]]:
    with path.open("rb") as handle:
        head = handle.read(64).lstrip()
        handle.seek(0)
        if head.startswith(b"["):
            try:
                rows = orjson.loads(handle.read())
            except orjson.JSONDecodeError as exc:
                raise _FileError(f"{path}: not valid JSON: {exc}") from exc
            for number, row in enumerate(rows, 1):
                yield number, row
            return
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                yield number, orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield number, _RowError(f"not valid JSON: {exc}")


def _csv_rows(path: Path) -> Iterator[tuple[int, object]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader, None)
            if header is None:
                return
            while True:
                start = reader.line_num + 1  # a quoted cell may span lines: report the first
                cells = next(reader, None)
                if cells is None:
                    return
                if not any(cells):
                    continue
                if len(cells) > len(header):
                    yield start, _RowError("the row has more cells than the header")
                    continue
                yield start, _decode_cells(dict(zip(header, cells, strict=False)))
        except csv.Error as exc:
            yield reader.line_num, _RowError(f"not valid CSV: {exc}")


def _decode_cells(row: dict[str, Any]) -> dict[str, Any]:
    # Chat columns exported to CSV hold JSON (messages, conversations).
    for name in ("messages", "conversations", "completion", "metadata"):
        value = row.get(name)
        if isinstance(value, str) and value[:1] in ("[", "{"):
            try:
                row[name] = json.loads(value)
            except ValueError:
                pass  # a plain text cell that starts with a bracket
    return row


def _parquet_rows(path: Path) -> Iterator[tuple[int, object]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            "reading Parquet needs pyarrow: pip install 'distill-ledger[parquet]'"
        ) from None
    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for unreadable files
        raise _FileError(f"{path}: not a Parquet file: {exc}") from exc
    number = 0
    for batch in table.iter_batches(batch_size=4_096):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _hf_rows(path: Path) -> Iterator[tuple[int, object]]:
    try:
        import datasets
    except ImportError:
        raise InputError(
            "reading a saved Hugging Face dataset needs datasets: pip install 'distill-ledger[hf]'"
        ) from None
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises FileNotFoundError / its own errors
        raise _FileError(f"{path}: not a saved Hugging Face dataset: {exc}") from exc
    if isinstance(loaded, datasets.DatasetDict):
        splits: Iterable[Any] = loaded.values()
    else:
        splits = [loaded]
    number = 0
    for split in splits:
        for row in split:
            number += 1
            yield number, row


class _FileError(InputError):
    """A whole file cannot be read."""


def read_dataset(
    paths: Iterable[str | Path],
    *,
    format: str = "auto",
    text_field: str | None = None,
    id_field: str = "ledger_entry_id",
) -> Iterator[Example | BadRow]:
    """Examples and bad rows of every file, in order.

    Raises:
        InputError: a file is missing or unreadable as a whole, an extra is not installed, or
            ``format`` is unknown.
    """
    if format not in FORMATS:
        raise InputError(f"unknown --format {format!r} (known: {', '.join(FORMATS)})")
    if format == "text" and text_field is None:
        raise InputError("--format text needs --text-field")
    shape = format if format in ROW_SHAPES else "auto"
    forced = format if format in CONTAINERS else None
    index = 0
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise InputError(f"no dataset file {path}")
        container = _container(path, forced)
        rows: Iterator[tuple[int, object]]
        if container in ("jsonl", "json"):
            rows = _json_rows(path)
        elif container == "csv":
            rows = _csv_rows(path)
        elif container == "parquet":
            rows = _parquet_rows(path)
        else:
            rows = _hf_rows(path)
        name = str(path)
        try:
            for line, row in rows:
                if isinstance(row, _RowError):
                    yield BadRow(index, name, line, str(row))
                    index += 1
                    continue
                try:
                    turns, turn_ids, row_ids = turns_of_row(
                        row, shape, text_field=text_field, id_field=id_field
                    )
                except _RowError as exc:
                    yield BadRow(index, name, line, str(exc))
                    index += 1
                    continue
                yield Example(index, name, line, tuple(turns), row_ids, tuple(turn_ids))
                index += 1
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text: {exc.reason}") from exc
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
