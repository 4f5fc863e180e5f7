"""Building an evidence pack: audit the dataset, prove every linked entry, sign the statement.

Invariants:

* The pack proves what the audit found and nothing more: every entry a record links to is in
  ``entries.jsonl.gz`` once, and ``proof.json`` is one multiproof of exactly those leaves
  against the checkpoint the statement carries (signed at build time by the log key).
* Verdicts are evaluated here with the same function, policy set and facts that the verifier
  uses again (:func:`ledger.policy.evaluate`, the whole shipped policy set, which the pack
  carries), so an honest pack re-evaluates to the same documents byte for byte.
* Every member but ``manifest.dsse.json`` is written first; the statement lists their SHA-256
  digests and is signed last, so the signature covers all of them.
* Memory stays flat in the dataset's size beyond the audit's own results: entries and records
  stream into their gzip members on disk, example digests are computed as records are
  written, and member digests are read back from the files.
* The build is registered (append-only) after the pack is complete; a later build of the same
  name carries a consistency proof from each earlier build's checkpoint that it extends.
* Unless told not to, the pack is then stored in the ledger as a zip (:mod:`.stored`): the
  ``--zip`` file as it is, a folder zipped the same way ``--zip`` writes one.
* Nothing here decides what is lawful: verdicts report what the dated terms say.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from ledger.audit import DEFAULT_NEAR_THRESHOLD, DEFAULT_WRAPPERS, MATCH_CLASSES, Example
from ledger.audit import read_dataset as _read_dataset
from ledger.crypto.canonical import canonical_json
from ledger.crypto.dsse import sign_envelope
from ledger.crypto.fingerprint import FINGERPRINT_VERSION, key_file_text
from ledger.crypto.merkle import leaf_hash
from ledger.crypto.tree import TreeFrontier
from ledger.errors import InputError
from ledger.manifest import pack as layout
from ledger.manifest.registry import BuildRecord, list_builds, record_build
from ledger.manifest.stored import StoredPack, store_pack, write_zip
from ledger.manifest.verdicts import CallFields, Judgements
from ledger.policy import DeclaredFacts, PolicySet
from ledger.policy.loader import default_policies
from ledger.policy.verdict import policy_digest

if TYPE_CHECKING:
    from ledger._ledger import Ledger
    from ledger.audit import DatasetAudit

__all__ = ["BuildResult", "build"]

MATCHER_VERSION = "ledger.audit/1"


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What :func:`build` wrote: the pack's path, its signed statement and the audit."""

    path: Path
    statement: dict[str, Any]
    audit: DatasetAudit
    record: BuildRecord
    stored: StoredPack | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "build": {
                "seq": self.record.seq,
                "name": self.record.name,
                "version": self.record.version,
            },
            "stored": self.stored.to_dict() if self.stored is not None else None,
            "tree_size": self.record.tree_size,
            "summary": self.statement["predicate"]["summary"],
            "files": self.statement["predicate"]["files"],
        }


class _Fields(CallFields):
    dataset: Any = None


class _Entry(msgspec.Struct):
    body: _Fields


_ENTRY = msgspec.json.Decoder(_Entry)


def _subjects(paths: Sequence[Path]) -> list[dict[str, Any]]:
    subjects = []
    seen: set[str] = set()
    for path in paths:
        if path.name in seen:
            raise InputError(f"two dataset files are named {path.name}: rename one")
        seen.add(path.name)
        if path.is_dir():
            # `audit dataset` reads a saved Hugging Face dataset folder, but a subject is one
            # file with its digest (and the pages hash dropped files): no folder form yet.
            raise InputError(
                f"{path} is a folder: an evidence pack's subjects are files; save the dataset as "
                "one JSON Lines, CSV or Parquet file (a Hugging Face dataset: Dataset.to_json) "
                "and build from that"
            )
        digest = hashlib.sha256()
        try:
            with path.open("rb") as source:
                while block := source.read(1 << 20):
                    digest.update(block)
        except OSError as exc:
            raise InputError(f"cannot read dataset file {path}: {exc.strerror}") from exc
        subjects.append({"name": path.name, "digest": {"sha256": digest.hexdigest()}})
    return subjects


def _readme(name: str, version: str | None, vkey: str, subjects: Iterable[str]) -> str:
    files = " ".join(f"--dataset {s}" for s in subjects)
    label = f"{name} {version}" if version else name
    return f"""# Evidence pack: {label}

This folder shows which teacher calls produced each example of the dataset, with proofs that
anyone can check offline, and the verdicts the dated provider terms give for its purpose.
Verdicts report what those terms say; they are not legal advice.

- `manifest.dsse.json`: a DSSE envelope (Ed25519, by the log key) around an in-toto
  Statement v1: the dataset files' SHA-256, the signed log checkpoint, the keys, policies,
  declared facts, the summary, and the SHA-256 of every other file here.
- `records.jsonl.gz`: one line per example: its digest, its links (match class, leaf,
  similarity) and its verdict.
- `entries.jsonl.gz`: every signed log entry a record links to, once.
- `proof.json`: one multiproof that all those entries are in the checkpoint's Merkle tree.
- `verdicts.json`: the verdict documents (rules, clauses, duties) of those entries.
- `consistency.json`: consistency proofs from earlier builds' checkpoints.
- `policies/`: the policy set the verdicts were evaluated under.
- `keys/`: the fingerprint key of this dataset (it opens this dataset's fingerprints only).
- `report.html`, `verify.html` (when built with them): the dataset report, and a page that
  checks the signatures and proofs of this pack in a browser, offline.

Check it (no database, no network, no private key):

    ledger manifest verify PACK --key '{vkey}' {files}

Add `--checkpoint FILE` with a checkpoint you kept from earlier to check that the log did not
fork or roll back, and `--policies DIR` to re-evaluate the verdicts under your own policy set.
"""


def build(
    lg: Ledger,
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    name: str | None = None,
    version: str | None = None,
    purpose: str = "train-model",
    profile: DeclaredFacts | None = None,
    zip_pack: bool = False,
    format: str = "auto",
    text_field: str | None = None,
    id_field: str = "ledger_entry_id",
    wrappers: Sequence[str] = DEFAULT_WRAPPERS,
    near_threshold: float = DEFAULT_NEAR_THRESHOLD,
    report: bool = True,
    store: bool = True,
) -> BuildResult:
    """Audit ``paths`` against ``lg`` and write the signed evidence pack to ``out``.

    ``lg`` must be open for writing (the log key signs a fresh checkpoint and the statement).
    With ``zip_pack`` the pack is one zip file (``out``, with ``.zip`` added if missing).
    ``report`` adds ``report.html`` and ``verify.html`` (:mod:`ledger.report`), the pages an
    auditor opens in a browser. ``store`` (default) keeps the pack's zip in the ledger after
    the build is registered, where the audit service serves it; ``store=False`` skips that.

    Raises:
        InputError: unreadable dataset files, bad options, or an ``out`` that is not empty.

    Example:
        >>> result = build(lg, ["train.jsonl"], "pack", name="tutor")  # doctest: +SKIP
        >>> result.statement["predicate"]["summary"]["linked"]          # doctest: +SKIP
        1000
    """
    files = [Path(p) for p in paths]
    if not files:
        raise InputError("no dataset file given")
    target = Path(out)
    if zip_pack and target.suffix != ".zip":
        target = target.with_name(target.name + ".zip")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"{target} already exists and is not an empty folder")
    facts = profile if profile is not None else DeclaredFacts()
    subjects = _subjects(files)
    audit = lg.audit_dataset(
        files, purpose=purpose, profile=facts, format=format, text_field=text_field,
        id_field=id_field, wrappers=wrappers, near_threshold=near_threshold,
    )  # fmt: skip
    policies = default_policies()
    checkpoint = lg.checkpoint()
    size = checkpoint.tree_size
    leaves = sorted({link.leaf_index for r in audit.results for link in r.links})
    writer = _PackWriter(target.with_name(target.name + ".partial"))

    # Entries stream from the log into the gzip member; only their verdicts are kept.
    documents: dict[str, Any] = {}
    by_leaf: dict[str, str] = {}
    versions: dict[tuple[str, str, str], None] = {}
    names: set[str | None] = set()
    judgements = Judgements(purpose, facts, policies)
    with writer.gzip_member(layout.ENTRIES) as sink:
        if leaves:
            wanted = set(leaves)
            for leaf, data, _, _ in lg.store.raw_entries(leaves[0], leaves[-1] + 1):
                if leaf not in wanted:
                    continue
                sink.write(b'{"leaf_index":%d,"entry":%b}\n' % (leaf, data))
                # Only the fields judging and the key files need, unless this combination
                # of call facts is new (or the body has its own facts): then the whole body.
                try:
                    fields: _Fields | None = _ENTRY.decode(data).body
                except (msgspec.DecodeError, msgspec.ValidationError):
                    fields = None
                judged = judgements.cached_key(fields.judging_key()) if fields is not None else None
                body: Any = orjson.loads(data)["body"] if judged is None else None
                dataset = fields.dataset if fields is not None else body.get("dataset")
                names.add(dataset if isinstance(dataset, str) else None)
                if judged is None:
                    judged = judgements.document(body)
                if judged is None:
                    continue
                sha, document, verdict = judged
                documents[sha] = document
                by_leaf[str(leaf)] = sha
                for ref in verdict.policy_versions:
                    versions[(ref.policy, ref.version, ref.sha256)] = None
    writer.put(layout.PROOF, json.dumps(lg.multiproof(leaves, size).to_dict()).encode() + b"\n")
    writer.put(
        layout.VERDICTS,
        json.dumps(
            {"purpose": purpose, "documents": documents, "leaves": by_leaf}, sort_keys=True
        ).encode()
        + b"\n",
    )
    del documents, by_leaf

    # The dataset is read again alongside the results (same order, bad rows skipped), so an
    # example's digest is computed when its record is written and never kept.
    examples = (
        item
        for item in _read_dataset(
            [str(p) for p in files], format=format, text_field=text_field, id_field=id_field
        )
        if isinstance(item, Example)
    )
    frontier = TreeFrontier()
    file_names = {str(f): f.name for f in files}
    with writer.gzip_member(layout.RECORDS) as sink:
        for result in audit.results:
            example = next(examples, None)
            if example is None or example.index != result.row:
                raise InputError(f"{result.file} changed while the pack was being built")
            file_name = file_names.get(result.file) or Path(result.file).name
            line = orjson.dumps({
                "index": result.row, "file": file_name, "line": result.line,
                "example_sha256": layout.example_digest(example), "match": result.match,
                "links": [link.to_dict() for link in result.links], "verdict": result.verdict,
                "turns": result.turns,
            })  # fmt: skip
            sink.write(line + b"\n")
            frontier.append(leaf_hash(line))
    records_root = frontier.root()

    datasets = sorted(names, key=lambda d: (d is None, d or ""))
    key_files = []
    for number, dataset in enumerate(datasets):
        member = f"{layout.KEYS_DIR}/{number}.key"
        writer.put(member, key_file_text(dataset, lg.fingerprint_key(dataset)).encode())
        key_files.append({"file": member, "dataset": dataset})
    for source in policies.sources:
        writer.put(f"{layout.POLICIES_DIR}/{Path(source).name}", Path(source).read_bytes())

    build_name = name or (datasets[0] if len(datasets) == 1 and datasets[0] else files[0].stem)
    previous = []
    for earlier in list_builds(lg.store, build_name):
        if 0 < earlier.tree_size <= size:
            proof = lg.consistency_proof(earlier.tree_size, size)
            previous.append({
                "seq": earlier.seq, "version": earlier.version,
                "tree_size": earlier.tree_size, "root": earlier.root_hash.hex(),
                "checkpoint": earlier.checkpoint, "proof": [p.hex() for p in proof],
            })  # fmt: skip
    writer.put(
        layout.CONSISTENCY,
        json.dumps({"tree_size": size, "from": previous}, indent=1).encode() + b"\n",
    )
    if report:
        from ledger.report import EMBEDDED_MEMBERS, pack_pages

        # Before the statement: both pages are listed in its digests like every other member.
        wanted_members = (*EMBEDDED_MEMBERS, layout.VERDICTS)
        # Paths, not bytes: the report streams the entries and inlines only what fits.
        members = {n: writer.folder / n for n in wanted_members if writer.has(n)}
        for page, data in pack_pages(audit, members, policies=policies, title=build_name).items():
            writer.put(page, data)
        del members
    writer.put(
        layout.README,
        _readme(build_name, version, lg.verifier_key, [s["name"] for s in subjects]).encode(),
    )

    recorder_keys = {
        k.key_id: base64.b64encode(k.public_key).decode() for k in lg.keys() if k.kind == "recorder"
    }
    # The builder's own paths stay out of the signed summary: subjects are named by file name.
    summary = {k: v for k, v in audit.summary().items() if k != "seconds"}
    summary["files"] = [Path(f).name for f in summary.get("files", [])]
    summary["first_unlinked"] = [
        {**item, "file": Path(item["file"]).name} for item in summary.get("first_unlinked", [])
    ]
    statement = {
        "_type": layout.STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": layout.PREDICATE_TYPE,
        "predicate": {
            "build": {
                "name": build_name,
                "version": version,
                "built_at": datetime.now(UTC).isoformat(),
            },
            "ledger": {
                "origin": lg.origin,
                "checkpoint": checkpoint.note,
                "log_key": lg.verifier_key,
                "recorder_keys": recorder_keys,
            },
            "purpose": purpose,
            "facts": facts.model_dump(mode="json", exclude_none=True),
            "policies": {
                "set_digest": _set_digest(policies),
                "used_digest": policy_digest_of(versions),
                "versions": [
                    {"policy": p, "version": v, "sha256": s} for p, v, s in sorted(versions)
                ],
            },
            "matcher": {
                "version": MATCHER_VERSION,
                "fingerprint_version": FINGERPRINT_VERSION,
                "stages": list(MATCH_CLASSES),
                "near_threshold": audit.near_threshold,
                "wrappers": list(wrappers),
                "format": format,
                "text_field": text_field,
                "id_field": id_field,
            },
            "fingerprint_keys": key_files,
            "summary": summary,
            "records_root": records_root.hex(),
            "files": writer.digests(),
        },
    }
    envelope = sign_envelope(canonical_json(statement), lg.log_key)
    manifest = envelope.to_json()
    writer.put(layout.MANIFEST, manifest)
    writer.finish(target, zip_pack)
    record = record_build(
        lg.store, name=build_name, version=version, tree_size=size,
        root_hash=checkpoint.root_hash, checkpoint=checkpoint.note,
        manifest_sha256=layout.sha256_hex(manifest), examples=audit.examples,
    )  # fmt: skip
    stored = store_pack(lg.store.engine, record.seq, target) if store else None
    return BuildResult(target, statement, audit, record, stored)


def policy_digest_of(versions: Iterable[tuple[str, str, str]]) -> str:
    """The digest of the policy versions the verdicts used (as ``Verdict.policy_digest``)."""
    from ledger.policy.verdict import PolicyVersionRef

    return policy_digest(PolicyVersionRef(p, v, s, "") for p, v, s in versions)


def _set_digest(policies: PolicySet) -> str:
    triples = sorted(
        (policy.id, version.id, policies.digest(policy, version))
        for policy in policies.policies
        for version in policy.versions
    )
    return layout.sha256_hex(canonical_json([list(t) for t in triples]))


class _PackWriter:
    """Writes members into a ``.partial`` folder as they are made; the pack appears at the end.

    Nothing large is held in memory: gzip members are compressed as they are written, digests
    are computed from the files. A crash leaves only the ``.partial`` folder (replaced by the
    next build), never a half-written pack under the real name.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
        except OSError as exc:
            raise InputError(f"cannot write the pack to {folder}: {exc.strerror}") from exc
        self._names: list[str] = []

    def _path(self, name: str) -> Path:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self._names.append(name)
        return path

    def put(self, name: str, data: bytes) -> None:
        self._path(name).write_bytes(data)

    @contextmanager
    def gzip_member(self, name: str) -> Iterator[layout.GzipSink]:
        """A gzip stream into member ``name`` (no file name or time in the header), compressed
        on a thread beside the caller."""
        with self._path(name).open("wb") as raw:
            sink = layout.GzipSink(raw)
            try:
                yield sink
            except BaseException:
                sink.abandon()
                raise
            sink.close()

    def has(self, name: str) -> bool:
        return name in self._names

    def read(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def digests(self) -> dict[str, str]:
        found = {}
        for name in sorted(set(self._names)):
            digest = hashlib.sha256()
            with (self.folder / name).open("rb") as source:
                for block in iter(lambda: source.read(1 << 20), b""):
                    digest.update(block)
            found[name] = digest.hexdigest()
        return found

    def finish(self, target: Path, zip_pack: bool) -> None:
        try:
            if zip_pack:
                partial = target.with_name(target.name + ".zip-partial")
                write_zip(self.folder, self._names, partial)
                partial.replace(target)
                shutil.rmtree(self.folder)
                return
            if target.exists():
                target.rmdir()  # checked empty before the build started
            self.folder.rename(target)
        except OSError as exc:
            raise InputError(f"cannot write the pack to {target}: {exc.strerror}") from exc
