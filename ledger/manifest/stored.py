"""Evidence packs stored in the ledger database, so any worker on a shared database serves them.

Invariants:

* A stored pack is one zip: the file ``manifest build --zip`` wrote, byte for byte, or for a
  folder pack the zip :func:`write_zip` makes of the folder (sorted members, fixed 1980-01-01
  times, deflate), which is the same zip ``--zip`` would have written for those members. The
  pack is never rebuilt to be stored.
* The zip lives in ``manifest_pack_chunks`` as parts 0..k-1 of ``chunk_size`` bytes (1 MiB; the
  last part may be shorter), and ``manifest_packs`` holds its SHA-256, size and part count.
  Every part is inserted before the ``manifest_packs`` row, in one transaction: a pack that
  has a row is complete, and a store that fails leaves nothing behind. Both tables are
  append-only (migration 0005): a stored pack never changes.
* Storing and serving hold one part in memory at a time: parts are read from the file and
  inserted one by one, and read back one query per part. Reading one member (the report, the
  envelope) reads the zip's directory and that member's parts only (:func:`open_zip`).
* A read checks what the row promises: every part present and of the right size, and, when a
  whole zip is read (:func:`iter_chunks`), its SHA-256; a mismatch is a :class:`StoreError`.

Locking: on SQLite a store runs in :func:`~ledger.log.schema.write_transaction` (``BEGIN
IMMEDIATE``), as every write there must, so it waits for the one writer and then holds the
database for the inserts (a few milliseconds per MiB). On PostgreSQL it runs in a plain
transaction, without the append lock: its rows are keyed by a build ``seq`` that is already
committed, so there is no order to protect, and holding the log's advisory lock while hundreds
of MiB are written would stall every recorder for that long.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import SQLAlchemyError

from ledger.errors import InputError, NotFoundError, StoreError
from ledger.log.core_tables import MANIFEST_PACK_CHUNKS as _CHUNKS
from ledger.log.core_tables import MANIFEST_PACKS as _PACKS
from ledger.log.schema import write_transaction
from ledger.log.store import LogStore
from ledger.manifest import pack as layout
from ledger.manifest.registry import BuildRecord, list_builds

__all__ = [
    "PACK_CHUNK",
    "StoredPack",
    "iter_chunks",
    "open_zip",
    "pick_stored",
    "read_member",
    "store_pack",
    "stored_packs",
    "write_stored",
    "write_zip",
]

#: Size of one stored part of a pack's zip.
PACK_CHUNK = 1 << 20

# One fixed time for every member: the zip's bytes depend on the members only.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class StoredPack:
    """The stored zip of one build: its digest, size and how it is cut into parts."""

    seq: int
    sha256: str
    size: int
    chunk_size: int
    chunks: int
    stored_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "sha256": self.sha256,
            "size": self.size,
            "stored_at": self.stored_at.isoformat(),
        }


def write_zip(folder: Path, names: Iterable[str], target: Path) -> None:
    """Zip the members ``names`` of ``folder`` into ``target``, reproducibly.

    Members go in sorted order with a fixed time, copied in 1 MiB blocks, so the same members
    always give the same bytes. Members that are gzip already (``*.gz``, nearly all of a large
    pack) are stored as they are: deflating them again took a tenth of a 1M-example build and
    saved nothing; the others are deflated.
    """
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(set(names)):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            gzipped = name.endswith(".gz")
            info.compress_type = zipfile.ZIP_STORED if gzipped else zipfile.ZIP_DEFLATED
            with (folder / name).open("rb") as source, archive.open(info, "w") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)


def _store_transaction(engine: Engine) -> AbstractContextManager[Connection]:
    # See the module docstring: SQLite needs BEGIN IMMEDIATE, PostgreSQL needs no append lock.
    if engine.dialect.name == "sqlite":
        return write_transaction(engine)
    return engine.begin()


def store_pack(engine: Engine, seq: int, path: Path) -> StoredPack:
    """Store the pack at ``path`` (a zip, or a folder zipped on the way) as build ``seq``'s.

    Raises:
        InputError: ``path`` is neither a zip file nor a folder, or cannot be read.
        StoreError: the database refused the rows (e.g. build ``seq`` already has a pack).
    """
    if path.is_dir():
        with tempfile.TemporaryDirectory(prefix="ledger-pack-") as scratch:
            zipped = Path(scratch) / "pack.zip"
            try:
                write_zip(path, layout.Pack(path).names(), zipped)
            except OSError as exc:
                raise InputError(f"cannot zip the pack {path}: {exc.strerror}") from exc
            return _store_zip(engine, seq, zipped)
    if not (path.is_file() and zipfile.is_zipfile(path)):
        raise InputError(f"{path} is not a pack folder or zip")
    return _store_zip(engine, seq, path)


def _store_zip(engine: Engine, seq: int, path: Path) -> StoredPack:
    digest = hashlib.sha256()
    size = 0
    part = 0
    try:
        with path.open("rb") as source, _store_transaction(engine) as conn:
            while block := source.read(PACK_CHUNK):
                digest.update(block)
                size += len(block)
                conn.execute(insert(_CHUNKS), {"seq": seq, "part": part, "data": block})
                part += 1
            stored = StoredPack(seq, digest.hexdigest(), size, PACK_CHUNK, part, datetime.now(UTC))
            conn.execute(
                insert(_PACKS),
                {
                    "seq": seq,
                    "sha256": stored.sha256,
                    "size": size,
                    "chunk_size": PACK_CHUNK,
                    "chunks": part,
                    "stored_at": stored.stored_at,
                },
            )
    except OSError as exc:
        raise InputError(f"cannot read the pack {path}: {exc.strerror}") from exc
    except SQLAlchemyError as exc:
        first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["error"])[0]
        raise StoreError(f"storing the pack of build {seq} failed: {first}") from exc
    return stored


def stored_packs(engine: Engine, seqs: Sequence[int] | None = None) -> dict[int, StoredPack]:
    """The stored packs of builds ``seqs`` (or of every build), by build ``seq``."""
    query = select(_PACKS)
    if seqs is not None:
        if not seqs:
            return {}
        query = query.where(_PACKS.c.seq.in_(list(seqs)))
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"reading the stored packs failed: {exc}") from exc
    found = {}
    for r in rows:
        moment = r.stored_at if r.stored_at.tzinfo else r.stored_at.replace(tzinfo=UTC)
        found[int(r.seq)] = StoredPack(
            int(r.seq), r.sha256, int(r.size), int(r.chunk_size), int(r.chunks), moment
        )
    return found


def _part(engine: Engine, pack: StoredPack, part: int) -> bytes:
    """Part ``part`` of the stored zip, checked against the size the row promises."""
    query = select(_CHUNKS.c.data).where(_CHUNKS.c.seq == pack.seq, _CHUNKS.c.part == part)
    try:
        with engine.connect() as conn:
            data = conn.execute(query).scalar()
    except SQLAlchemyError as exc:
        raise StoreError(f"reading the pack of build {pack.seq} failed: {exc}") from exc
    expected = min(pack.chunk_size, pack.size - part * pack.chunk_size)
    if data is None or len(data) != expected:
        raise StoreError(f"the stored pack of build {pack.seq} is damaged: part {part} is wrong")
    return bytes(data)


def iter_chunks(engine: Engine, pack: StoredPack) -> Iterator[bytes]:
    """The stored zip, part by part, from one query on one connection.

    The parts stream from the database (a server-side cursor on PostgreSQL), so a few parts
    at most are in memory; a query per part cost a pool checkout and a round trip each.

    Raises (while iterating):
        StoreError: a part is missing or the bytes do not hash to the stored SHA-256.
    """
    query = (
        select(_CHUNKS.c.part, _CHUNKS.c.data)
        .where(_CHUNKS.c.seq == pack.seq)
        .order_by(_CHUNKS.c.part)
    )
    digest = hashlib.sha256()
    expected = 0
    try:
        with engine.connect() as conn:
            options: dict[str, Any] = {"stream_results": True, "max_row_buffer": 2}
            if engine.dialect.name == "postgresql":
                # A server-side cursor lives in a transaction (the service's reader runs in
                # autocommit otherwise); one snapshot for all the parts, too.
                options["isolation_level"] = "REPEATABLE READ"
            rows = conn.execution_options(**options).execute(query)
            try:
                for part, data in rows:
                    size = min(pack.chunk_size, pack.size - part * pack.chunk_size)
                    if part != expected or data is None or len(data) != size:
                        raise _damaged(pack, expected)
                    expected += 1
                    digest.update(data)
                    if expected == pack.chunks and digest.hexdigest() != pack.sha256:
                        # Checked before the last part leaves: never a whole wrong zip.
                        raise StoreError(
                            f"the stored pack of build {pack.seq} does not match its SHA-256"
                        )
                    yield bytes(data)
            finally:
                rows.close()  # also when a check fails or the reader stops early
    except SQLAlchemyError as exc:
        raise StoreError(f"reading the pack of build {pack.seq} failed: {exc}") from exc
    if expected != pack.chunks:
        raise _damaged(pack, expected)


def _damaged(pack: StoredPack, part: int) -> StoreError:
    return StoreError(f"the stored pack of build {pack.seq} is damaged: part {part} is wrong")


class _PartReader(io.RawIOBase):
    """A seekable read-only file over the stored parts (one part cached)."""

    def __init__(self, engine: Engine, pack: StoredPack) -> None:
        super().__init__()
        self._engine = engine
        self._pack = pack
        self._pos = 0
        self._number = -1
        self._data = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._pack.size}[whence]
        if base + offset < 0:
            raise OSError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._pack.size:
            return 0
        number, start = divmod(self._pos, self._pack.chunk_size)
        if number != self._number:
            self._data = _part(self._engine, self._pack, number)
            self._number = number
        view = memoryview(buffer).cast("B")
        count = min(len(view), len(self._data) - start)
        view[:count] = self._data[start : start + count]
        self._pos += count
        return count


def open_zip(engine: Engine, pack: StoredPack) -> zipfile.ZipFile:
    """The stored zip opened for reading members, without reading all of it.

    Raises:
        StoreError: the stored bytes are not a readable zip.
    """
    stream = io.BufferedReader(_PartReader(engine, pack), buffer_size=pack.chunk_size)
    try:
        return zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise StoreError(f"the stored pack of build {pack.seq} is not a readable zip") from exc


def read_member(engine: Engine, pack: StoredPack, name: str) -> bytes:
    """One member of the stored zip (e.g. ``report.html``).

    Raises:
        NotFoundError: the pack has no member ``name``.
        StoreError: the stored zip is damaged.
    """
    with open_zip(engine, pack) as archive:
        try:
            info = archive.getinfo(name)
        except KeyError:
            raise NotFoundError(f"the pack of build {pack.seq} has no {name}") from None
        try:
            return archive.read(info)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise StoreError(f"the stored pack of build {pack.seq} is damaged: {exc}") from exc


def pick_stored(
    store: LogStore, name: str, seq: int | None = None
) -> tuple[BuildRecord, StoredPack]:
    """Build ``seq`` of dataset ``name`` and its stored pack (default: the latest one stored).

    Raises:
        NotFoundError: no build of that name, ``seq`` is not one of its builds, or the build
            has no stored pack (it was built with ``--no-store``).
    """
    builds = list_builds(store, name)
    if not builds:
        raise NotFoundError(f"no build of dataset {name!r} is registered")
    packs = stored_packs(store.engine, [b.seq for b in builds])
    if seq is None:
        stored = [b for b in builds if b.seq in packs]
        if not stored:
            raise NotFoundError(f"no build of dataset {name!r} has a stored pack")
        return stored[-1], packs[stored[-1].seq]
    chosen = next((b for b in builds if b.seq == seq), None)
    if chosen is None:
        raise NotFoundError(f"build {seq} is not a build of dataset {name!r}")
    if seq not in packs:
        raise NotFoundError(f"build {seq} of {name!r} has no stored pack (built with --no-store)")
    return chosen, packs[seq]


def write_stored(engine: Engine, pack: StoredPack, out: Path) -> None:
    """Write the stored zip to ``out`` (through ``out.partial``; checked against its SHA-256).

    Raises:
        InputError: ``out`` cannot be written.
        StoreError: the stored pack is damaged (nothing is left at ``out``).
    """
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("wb") as sink:
            for data in iter_chunks(engine, pack):
                sink.write(data)
        partial.replace(out)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror}") from exc
    finally:
        partial.unlink(missing_ok=True)
