"""The on-disk spool: entry bodies the ledger could not take yet, kept until they can be replayed.

Invariants:

- The spool is a folder of JSON-lines files, one entry body per line. Bodies never hold a
  credential (the recorder keeps only a fingerprint), so the spool holds none either.
- ``write`` returns only after the line is on disk: the file is opened with ``O_APPEND``, locked
  with ``flock`` for the write, and ``fsync``'d before the lock is released. A body that ``write``
  acknowledged survives a crash of the process or the machine.
- Writers append to ``spool.jsonl`` only. ``replay`` first renames it to a ``*.replay`` file while
  holding its lock; a writer that opened the old file notices (the inode under the name changed)
  and reopens, so no line is ever appended to a file that a replay already read.
- Replay is idempotent: the entry ``id`` is the ledger's idempotency key, so a body that was
  already committed (or is replayed twice after a crash mid-replay) is stored once. A ``*.replay``
  file is deleted only after every line in it was committed.
- A line that is not a JSON object (a torn write from a crash, never acknowledged) or that the
  ledger rejects as malformed is moved to ``rejected.jsonl`` rather than retried forever.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.errors import InputError, LedgerError, StoreError
from ledger.log.ids import uuid7

if TYPE_CHECKING:
    from ledger.recorder.sinks import LedgerLike

__all__ = ["ReplayResult", "Spool", "SpoolStatus"]

_ACTIVE = "spool.jsonl"
_REPLAY_SUFFIX = ".replay"
_REJECTED = "rejected.jsonl"
_REPLAY_LOCK = ".replay.lock"
_BATCH = 500


@dataclass(frozen=True, slots=True)
class SpoolStatus:
    """What the spool holds right now."""

    directory: str
    files: int
    entries: int
    bytes: int
    rejected: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "directory": self.directory,
            "files": self.files,
            "entries": self.entries,
            "bytes": self.bytes,
            "rejected": self.rejected,
        }


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What one replay did: bodies handed to the ledger, lines set aside, files removed."""

    replayed: int
    rejected: int
    files: int

    def to_dict(self) -> dict[str, int]:
        """A JSON-ready dict."""
        return {"replayed": self.replayed, "rejected": self.rejected, "files": self.files}


def _dumps(body: Mapping[str, Any]) -> bytes:
    return (
        json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    ).encode("utf-8")


class Spool:
    """An append-only, fsync'd spool folder (usually ``<ledger home>/spool``).

    Example:
        >>> spool = Spool(tmp_path / "spool")  # doctest: +SKIP
        >>> spool.write({"v": 1, "id": "...", ...})  # doctest: +SKIP
        >>> spool.replay(ledger.open())  # doctest: +SKIP
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    @property
    def path(self) -> Path:
        """The file new bodies are appended to."""
        return self.directory / _ACTIVE

    # --- writing -----------------------------------------------------------------------------

    def write(self, body: Mapping[str, Any]) -> None:
        """Append one body and return once it is on disk."""
        self.write_many((body,))

    def write_many(self, bodies: Iterable[Mapping[str, Any]]) -> None:
        """Append bodies with one ``fsync``; return once all of them are on disk.

        Raises:
            StoreError: the spool folder cannot be written.
        """
        data = b"".join(_dumps(body) for body in bodies)
        if not data:
            return
        try:
            with self._locked_active() as fd:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
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
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
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

    def bodies(self) -> Iterator[dict[str, Any]]:
        """Every readable body waiting in the spool, oldest file first (torn lines skipped)."""
        for file in self._pending_files():
            for line in _read_lines(file):
                body = _parse(line)
                if body is not None:
                    yield body

    def status(self) -> SpoolStatus:
        """Count what is waiting (and what was set aside as rejected)."""
        files = self._pending_files()
        entries = 0
        size = 0
        for file in files:
            size += file.stat().st_size
            entries += sum(1 for line in _read_lines(file) if _parse(line) is not None)
        rejected_path = self.directory / _REJECTED
        rejected = len(_read_lines(rejected_path)) if rejected_path.exists() else 0
        return SpoolStatus(
            directory=str(self.directory),
            files=len(files),
            entries=entries,
            bytes=size,
            rejected=rejected,
        )

    # --- replay ------------------------------------------------------------------------------

    def replay(self, ledger: LedgerLike) -> ReplayResult:
        """Append everything waiting to ``ledger`` and delete what was committed.

        Safe to run while recorders keep spooling, and safe to run again after a crash: the
        entry id makes every append idempotent.

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
            replayed = rejected = files = 0
            for file in sorted(self.directory.glob(f"*{_REPLAY_SUFFIX}")):
                done, bad = self._replay_file(file, ledger)
                replayed += done
                rejected += bad
                files += 1
            return ReplayResult(replayed=replayed, rejected=rejected, files=files)
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

    def _replay_file(self, file: Path, ledger: LedgerLike) -> tuple[int, int]:
        good: list[dict[str, Any]] = []
        bad: list[bytes] = []
        for line in _read_lines(file):
            body = _parse(line)
            if body is None:
                bad.append(line)
            else:
                good.append(body)
        replayed = 0
        for start in range(0, len(good), _BATCH):
            batch = good[start : start + _BATCH]
            try:
                ledger.append_many(batch)
                replayed += len(batch)
            except InputError:
                # One malformed body must not block the rest: retry one by one and set aside
                # only the bodies the ledger refuses as input.
                for body in batch:
                    try:
                        ledger.append(body)
                        replayed += 1
                    except InputError:
                        bad.append(_dumps(body).rstrip(b"\n"))
            except LedgerError as exc:
                raise StoreError(f"spool replay stopped at {file.name}: {exc}") from exc
        if bad:
            self._set_aside(bad)
        file.unlink()
        _fsync_dir(self.directory)
        return replayed, len(bad)

    def _set_aside(self, lines: list[bytes]) -> None:
        fd = os.open(self.directory / _REJECTED, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, b"".join(line + b"\n" for line in lines))
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_lines(file: Path) -> list[bytes]:
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return []
    return [line for line in data.split(b"\n") if line.strip()]


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        return None
    return value


def _fsync_dir(directory: Path) -> None:
    """Make a create/rename in ``directory`` durable (POSIX needs the folder itself fsync'd)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
