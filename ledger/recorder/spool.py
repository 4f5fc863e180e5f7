"""The on-disk spool: signed entries the ledger could not take yet, kept until they are replayed.

Invariants:

- The spool is a folder of JSON-lines files, one record per line. A record is a sealed entry
  (``{"body", "key_id", "sig"}``, made by ``Ledger.seal``): signed by the recorder key when the
  call was recorded, its body naming the ledger it is for. Bodies never hold a credential (the
  recorder keeps only a fingerprint), so the spool holds none either.
- ``write`` returns only after the record is on disk: the file is opened with ``O_APPEND``,
  locked with ``flock`` for the write, and ``fsync``'d before the lock is released. A record that
  ``write`` acknowledged survives a crash of the process or the machine.
- Every record starts on a fresh line. Under the lock, a writer that finds the file not ending
  in a newline (a write torn by a crash) first ends that line; a write that fails part-way
  (disk full) is cut back to where it started. So a torn line never swallows the next record.
- Writers append to ``spool.jsonl`` only. ``replay`` first renames it to a ``*.replay`` file while
  holding its lock; a writer that opened the old file notices (the inode under the name changed)
  and reopens, so no line is ever appended to a file that a replay already read.
- Replay is idempotent: the entry ``id`` is the ledger's idempotency key, so a record that was
  already committed (or is replayed twice after a crash mid-replay) is stored once. A ``*.replay``
  file is deleted only after every line in it was committed, set aside or moved on.
- Replay stores a sealed entry exactly as signed (``Ledger.append_sealed`` checks the signature
  against the ledger's recorder keys and the ledger it names) and refuses anything else. A line
  that is not JSON, not a record, or refused by the ledger is set aside in ``rejected.jsonl``
  with its file and byte range, never retried. A plain body (a spool written before records were
  signed) is neither replayed nor set aside: it is kept, in a ``*.unsigned.replay`` file, until a
  replay with ``accept_unsigned=True`` appends it (signed at replay time, with a warning).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from ledger.errors import InputError, LedgerError, StoreError, VerificationError
from ledger.log.ids import uuid7

__all__ = ["ReplayResult", "ReplayTarget", "SetAside", "Spool", "SpoolStatus"]

_log = logging.getLogger("ledger.recorder")

_ACTIVE = "spool.jsonl"
_REPLAY_SUFFIX = ".replay"
_UNSIGNED_SUFFIX = ".unsigned.replay"
_REJECTED = "rejected.jsonl"
_REPLAY_LOCK = ".replay.lock"
_BATCH = 500
_SEALED_KEYS = frozenset({"body", "key_id", "sig"})


class ReplayTarget(Protocol):
    """What replay needs of a ledger (``ledger.Ledger`` is one)."""

    def append_sealed(self, entries: Sequence[Mapping[str, Any]]) -> object:
        """Check and store sealed entries as signed, in one transaction."""
        ...

    def append_many(self, bodies: Sequence[Mapping[str, Any]]) -> object:
        """Sign and store plain bodies (only for ``accept_unsigned``)."""
        ...


@dataclass(frozen=True, slots=True)
class SpoolStatus:
    """What the spool holds right now."""

    directory: str
    files: int
    entries: int
    bytes: int
    rejected: int
    unsigned: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "directory": self.directory,
            "files": self.files,
            "entries": self.entries,
            "bytes": self.bytes,
            "rejected": self.rejected,
            "unsigned": self.unsigned,
        }


@dataclass(frozen=True, slots=True)
class SetAside:
    """One spool line that replay moved to ``rejected.jsonl``: where it was and why."""

    file: str
    line: int
    start: int
    end: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "file": self.file,
            "line": self.line,
            "start": self.start,
            "end": self.end,
            "reason": self.reason,
        }

    def describe(self) -> str:
        """``FILE line N bytes START-END: REASON`` (lines from 1, end byte exclusive)."""
        return f"{self.file} line {self.line} bytes {self.start}-{self.end}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What one replay did.

    ``replayed``: records handed to the ledger (already-stored ids included); ``rejected``: lines
    set aside (``set_aside`` says where); ``unsigned``: plain bodies kept for
    ``accept_unsigned`` (in ``kept``), or appended with it; ``files``: files read.
    """

    replayed: int
    rejected: int
    files: int
    unsigned: int = 0
    set_aside: tuple[SetAside, ...] = ()
    kept: tuple[str, ...] = ()
    rejected_path: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "replayed": self.replayed,
            "rejected": self.rejected,
            "files": self.files,
            "unsigned": self.unsigned,
            "set_aside": [item.to_dict() for item in self.set_aside],
            "kept": list(self.kept),
            "rejected_path": self.rejected_path,
        }


def _dumps(record: Mapping[str, Any]) -> bytes:
    return (
        json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    ).encode("utf-8")


@dataclass(frozen=True, slots=True)
class _Line:
    number: int  # from 1, counting every newline-separated line of the file
    start: int
    end: int
    data: bytes


Kind = Literal["sealed", "plain", "bad"]


class Spool:
    """An append-only, fsync'd spool folder (usually ``<ledger home>/spool``).

    Example:
        >>> spool = Spool(tmp_path / "spool")  # doctest: +SKIP
        >>> spool.write(lg.seal({"v": 1, "id": "...", ...}))  # doctest: +SKIP
        >>> spool.replay(lg)  # doctest: +SKIP
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    @classmethod
    def for_home(cls, home: Path | str) -> Spool:
        """The spool of the ledger whose home folder is ``home`` (``<home>/spool``)."""
        return cls(Path(home) / "spool")

    @property
    def path(self) -> Path:
        """The file new records are appended to."""
        return self.directory / _ACTIVE

    @property
    def rejected_path(self) -> Path:
        """Where replay sets aside the lines it cannot use."""
        return self.directory / _REJECTED

    # --- writing -----------------------------------------------------------------------------

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record (a sealed entry) and return once it is on disk."""
        self.write_many((record,))

    def write_many(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append records with one ``fsync``; return once all of them are on disk.

        Raises:
            StoreError: the spool folder cannot be written (nothing of this call is kept).
        """
        data = b"".join(_dumps(record) for record in records)
        if not data:
            return
        try:
            with self._locked_active() as fd:
                start = os.fstat(fd).st_size
                if start and os.pread(fd, 1, start - 1) != b"\n":
                    # A torn last line (a crash mid-write): end it so this record stands alone.
                    data = b"\n" + data
                try:
                    view = memoryview(data)
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
                    os.fsync(fd)
                except OSError:
                    # Disk full part-way: take back the partial record rather than leave a
                    # torn line (best effort; the newline check above covers a failure here).
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, start)
                    raise
        except OSError as exc:
            raise StoreError(f"cannot write the spool under {self.directory}: {exc}") from exc

    @contextlib.contextmanager
    def _locked_active(self) -> Iterator[int]:
        """The active file, open for appending and exclusively locked.

        The loop handles the race with ``replay``'s rename: after taking the lock we check that
        the name still points at the inode we locked; if not, the file we hold was renamed for
        replay and we must append to the new active file instead.
        """
        created_dir = not self.directory.exists()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if created_dir:
            _fsync_dir(self.directory.parent)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    if os.fstat(fd).st_size == 0:
                        # A new file: its directory entry must be durable too.
                        _fsync_dir(self.directory)
                    yield fd
                    return
            finally:
                os.close(fd)  # closing also releases the flock

    # --- reading -----------------------------------------------------------------------------

    def _pending_files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        files = sorted(self.directory.glob(f"*{_REPLAY_SUFFIX}"))
        if self.path.exists():
            files.append(self.path)
        return files

    def records(self) -> Iterator[dict[str, Any]]:
        """Every usable record waiting (sealed entries, and plain bodies), oldest file first."""
        for file in self._pending_files():
            for line in _read_lines(file):
                _, value = _classify(line.data)
                if value is not None:
                    yield value

    def bodies(self) -> Iterator[dict[str, Any]]:
        """The entry body of every usable record waiting, oldest file first."""
        for record in self.records():
            body = record.get("body") if set(record) == _SEALED_KEYS else record
            if isinstance(body, dict):
                yield body

    def status(self) -> SpoolStatus:
        """Count what is waiting (and what was set aside as rejected)."""
        files = self._pending_files()
        entries = unsigned = size = 0
        for file in files:
            size += file.stat().st_size
            for line in _read_lines(file):
                kind, _ = _classify(line.data)
                entries += kind != "bad"
                unsigned += kind == "plain"
        rejected = len(_read_lines(self.rejected_path))
        return SpoolStatus(
            directory=str(self.directory),
            files=len(files),
            entries=entries,
            bytes=size,
            rejected=rejected,
            unsigned=unsigned,
        )

    # --- replay ------------------------------------------------------------------------------

    def replay(self, ledger: ReplayTarget, *, accept_unsigned: bool = False) -> ReplayResult:
        """Append everything waiting to ``ledger`` and delete what was committed.

        Safe to run while recorders keep spooling, and safe to run again after a crash: the
        entry id makes every append idempotent.

        Args:
            ledger: The ledger the spool belongs to.
            accept_unsigned: Also append plain bodies from a spool written before records were
                sealed; they are signed now, so their signature is not from record time.

        Raises:
            StoreError: the ledger failed; the files stay in place for the next replay.
        """
        if not self.directory.is_dir():
            return ReplayResult(replayed=0, rejected=0, files=0)
        lock_fd = os.open(self.directory / _REPLAY_LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            # One replay at a time; a second one waits and then finds little or nothing to do.
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            self._rotate_active()
            replayed = unsigned = files = 0
            set_aside: list[SetAside] = []
            kept: list[str] = []
            for file in sorted(self.directory.glob(f"*{_REPLAY_SUFFIX}")):
                done, plain, bad, keep = self._replay_file(file, ledger, accept_unsigned)
                replayed += done
                unsigned += plain
                set_aside += bad
                kept += [keep] if keep else []
                files += 1
            return ReplayResult(
                replayed=replayed,
                rejected=len(set_aside),
                files=files,
                unsigned=unsigned,
                set_aside=tuple(set_aside),
                kept=tuple(kept),
                rejected_path=str(self.rejected_path),
            )
        finally:
            os.close(lock_fd)

    def _rotate_active(self) -> None:
        if not self.path.exists():
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size == 0:
                return
            # The name sorts after older replay files, so replay keeps the spool's order.
            os.rename(self.path, self.directory / f"{uuid7()}{_REPLAY_SUFFIX}")
            _fsync_dir(self.directory)
        finally:
            os.close(fd)

    def _replay_file(
        self, file: Path, ledger: ReplayTarget, accept_unsigned: bool
    ) -> tuple[int, int, list[SetAside], str | None]:
        sealed: list[tuple[_Line, dict[str, Any]]] = []
        plain: list[tuple[_Line, dict[str, Any]]] = []
        bad: list[tuple[_Line, str]] = []
        for line in _read_lines(file):
            kind, value = _classify(line.data)
            if kind == "sealed" and value is not None:
                sealed.append((line, value))
            elif kind == "plain" and value is not None:
                plain.append((line, value))
            else:
                bad.append((line, "not a spool record (a torn or damaged line)"))
        replayed = self._append(file, sealed, ledger.append_sealed, bad)
        keep: str | None = None
        if plain and accept_unsigned:
            _log.warning(
                "appending %d unsigned spool record(s) from %s: signed now, not at record time",
                len(plain),
                file.name,
            )
            replayed += self._append(file, plain, ledger.append_many, bad)
        elif plain:
            keep = self._keep_unsigned(file, [line for line, _ in plain])
        if bad:
            self._set_aside(file, bad)
        if keep != file.name:
            file.unlink()
            _fsync_dir(self.directory)
        aside = [
            SetAside(file.name, line.number, line.start, line.end, why)
            for line, why in sorted(bad, key=lambda item: item[0].start)
        ]
        return replayed, len(plain), aside, keep

    @staticmethod
    def _append(
        file: Path,
        records: list[tuple[_Line, dict[str, Any]]],
        append: Any,
        bad: list[tuple[_Line, str]],
    ) -> int:
        replayed = 0
        for start in range(0, len(records), _BATCH):
            batch = records[start : start + _BATCH]
            try:
                append([value for _, value in batch])
                replayed += len(batch)
            except (InputError, VerificationError):
                # One refused record must not block the rest: retry one by one and set aside
                # only the records the ledger refuses as input or as forged.
                for line, value in batch:
                    try:
                        append([value])
                        replayed += 1
                    except (InputError, VerificationError) as exc:
                        bad.append((line, f"refused by the ledger: {exc}"))
            except LedgerError as exc:
                raise StoreError(f"spool replay stopped at {file.name}: {exc}") from exc
        return replayed

    def _keep_unsigned(self, file: Path, lines: list[_Line]) -> str:
        """Move the unsigned lines of ``file`` into their own file, durably; return its name."""
        if file.name.endswith(_UNSIGNED_SUFFIX) and len(lines) == len(_read_lines(file)):
            return file.name  # nothing else in it: keep it as it is
        name = f"{uuid7()}{_UNSIGNED_SUFFIX}"
        temporary = self.directory / f".{name}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"".join(line.data + b"\n" for line in lines))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, self.directory / name)
        _fsync_dir(self.directory)
        return name

    def _set_aside(self, file: Path, lines: list[tuple[_Line, str]]) -> None:
        records = [
            {
                "file": file.name,
                "line": line.number,
                "start": line.start,
                "end": line.end,
                "reason": reason,
                "data_b64": base64.b64encode(line.data).decode("ascii"),
            }
            for line, reason in lines
        ]
        fd = os.open(self.rejected_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, b"".join(_dumps(record) for record in records))
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_lines(file: Path) -> list[_Line]:
    """The non-blank lines of ``file`` with their byte ranges (end exclusive, no newline)."""
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return []
    lines: list[_Line] = []
    start = number = 0
    while start < len(data):
        number += 1
        end = data.find(b"\n", start)
        if end < 0:
            end = len(data)
        if data[start:end].strip():
            lines.append(_Line(number, start, end, data[start:end]))
        start = end + 1
    return lines


def _classify(line: bytes) -> tuple[Kind, dict[str, Any] | None]:
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return "bad", None
    if not isinstance(value, dict):
        return "bad", None
    if set(value) == _SEALED_KEYS:
        body = value["body"]
        if isinstance(body, dict) and isinstance(body.get("id"), str):
            return "sealed", value
        return "bad", None
    if isinstance(value.get("id"), str):
        return "plain", value
    return "bad", None


def _fsync_dir(directory: Path) -> None:
    """Make a create/rename in ``directory`` durable (POSIX needs the folder itself fsync'd)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
