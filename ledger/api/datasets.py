"""Dataset routes: datasets and their builds, stored evidence packs, reports, server-side checks.

Invariants:

* A dataset name is one an entry carries in its ``dataset`` field or one a build was
  registered under. A token scoped to datasets sees only those names: another name is 403,
  and the listing holds only its names. An unknown dataset or build is 404.
* Packs are served from the database (:mod:`ledger.manifest.stored`), so every worker on a
  shared database serves every pack; a zip goes out part by part and never whole in memory.
* ``/audit`` returns the summary of the pack's signed statement together with the envelope
  itself, so a client checks the signature with the log key instead of trusting this answer.
  ``/{name}`` gives, for each build, a consistency proof from the build's tree size to the
  checkpoint of the answer, so a client can check that every build is of the one log.
* ``POST /v1/manifests/verify`` reads the upload into a temporary file (bounded by
  ``api_max_pack_bytes``), checks it is a plain zip of bounded size, then runs the offline
  verifier on it in the thread pool. Its answer says which key was used; a server-side check is
  only as trustworthy as the server, the auditor's own check is ``ledger manifest verify``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import struct
import tempfile
import urllib.parse
import zipfile
import zlib
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from ledger.api.auth import Auditor, ServiceDep
from ledger.api.errors import ApiError
from ledger.api.models import DatasetAuditOut, DatasetListOut, DatasetOut, VerifyOut
from ledger.api.service import Service, checkpoint_json
from ledger.api.tokens import TokenInfo
from ledger.crypto.dsse import Envelope
from ledger.crypto.note import verifier_key_string
from ledger.errors import InputError, LedgerError, NotFoundError, StoreError
from ledger.log.core_tables import ENTRIES
from ledger.log.store import CheckpointRecord
from ledger.manifest import pack as layout
from ledger.manifest.registry import BuildRecord, list_builds
from ledger.manifest.stored import (
    StoredPack,
    iter_chunks,
    pick_stored,
    read_member,
    stored_packs,
)

__all__ = ["router"]

router = APIRouter(tags=["auditor"])

_ZIP_TYPES = ("application/zip", "application/octet-stream", "application/x-zip-compressed")
#: Uncompressed members of an uploaded pack may total this many times the upload limit (the
#: offline verifier holds a zip's members in memory).
_UNZIPPED_FACTOR = 4
_REPORT = "report.html"
_TRUST_NOTE = (
    "This check ran on the server and is only as trustworthy as the server; an auditor's own "
    "check is `ledger manifest verify PACK --key VKEY` on their machine."
)
_BUILD = Annotated[int | None, Query(ge=1, le=(1 << 63) - 1, description="A build seq.")]


def _visible(principal: TokenInfo, name: str) -> None:
    if "\x00" in name:
        raise InputError("the dataset name contains a NUL character")
    if principal.datasets is not None and name not in principal.datasets:
        raise ApiError(403, "forbidden", f"this token is not scoped to dataset {name!r}")


def _query(service: Service, statement: Any, doing: str) -> list[Any]:
    try:
        with service.engine.connect() as conn:
            return list(conn.execute(statement).all())
    except SQLAlchemyError as exc:
        raise StoreError(f"{doing} failed: {type(exc).__name__}") from exc


def _entry_counts(service: Service, name: str | None = None) -> dict[str, int]:
    """Entries per dataset label: one GROUP BY over the ``dataset`` index (no bodies read)."""
    dataset = ENTRIES.c.dataset
    query = select(dataset, func.count()).group_by(dataset)
    query = query.where(dataset == name) if name is not None else query.where(dataset.isnot(None))
    return {r[0]: int(r[1]) for r in _query(service, query, "counting entries by dataset")}


def _latest_builds(service: Service) -> dict[str, tuple[int, BuildRecord]]:
    """Per build name: how many builds, and the latest one (the registry is read once)."""
    found: dict[str, tuple[int, BuildRecord]] = {}
    for record in list_builds(service.reader.store):  # oldest first: the last one is the latest
        found[record.name] = (found.get(record.name, (0, record))[0] + 1, record)
    return found


def _brief(record: BuildRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "version": record.version,
        "tree_size": record.tree_size,
        "built_at": record.built_at.isoformat(),
        "examples": record.examples,
    }


def _build_json(
    service: Service, record: BuildRecord, pack: StoredPack | None, head: CheckpointRecord | None
) -> dict[str, Any]:
    proof = None
    if head is not None and record.tree_size <= head.tree_size:
        first, second = record.tree_size, head.tree_size
        hashes = service.reader.consistency_proof(first, second)  # empty from 0 or to itself
        proof = {"first": first, "second": second, "hashes": [h.hex() for h in hashes]}
    return record.to_dict() | {
        "stored": pack is not None,
        "pack": pack.to_dict() if pack is not None else None,
        "consistency_proof": proof,
    }


@router.get("/v1/datasets", response_model=DatasetListOut)
def list_datasets(service: ServiceDep, principal: Auditor) -> dict[str, Any]:
    """Every dataset name this token may see, with entry and build counts and the latest build."""
    entries = _entry_counts(service)
    builds = _latest_builds(service)
    names = sorted(set(entries) | set(builds))
    if principal.datasets is not None:
        names = [n for n in names if n in principal.datasets]
    out = []
    for name in names:
        count, latest = builds.get(name, (0, None))
        out.append(
            {
                "name": name,
                "entries": entries.get(name, 0),
                "builds": count,
                "latest_build": _brief(latest) if latest is not None else None,
            }
        )
    return {"datasets": out}


@router.get("/v1/datasets/{name}", response_model=DatasetOut)
def get_dataset(service: ServiceDep, principal: Auditor, name: str) -> dict[str, Any]:
    """The dataset's builds, each with a consistency proof to the current signed checkpoint."""
    _visible(principal, name)
    entries = _entry_counts(service, name).get(name, 0)
    builds = list_builds(service.reader.store, name)
    if not entries and not builds:
        raise NotFoundError(f"no dataset {name!r}: no entry or build carries that name")
    head = service.checkpoint()
    packs = stored_packs(service.engine, [b.seq for b in builds])
    return {
        "name": name,
        "entries": entries,
        "checkpoint": checkpoint_json(head),
        "builds": [_build_json(service, b, packs.get(b.seq), head) for b in builds],
    }


def _pick(
    service: Service, principal: TokenInfo, name: str, build: int | None
) -> tuple[BuildRecord, StoredPack]:
    _visible(principal, name)
    return pick_stored(service.reader.store, name, build)


@router.get("/v1/datasets/{name}/audit", response_model=DatasetAuditOut)
def dataset_audit(
    service: ServiceDep, principal: Auditor, name: str, build: _BUILD = None
) -> dict[str, Any]:
    """The audit summary of the latest stored (or the given) build, with its DSSE envelope.

    The summary is read from the signed statement; verify the envelope with the log's key.
    """
    record, pack = _pick(service, principal, name, build)
    raw = read_member(service.engine, pack, layout.MANIFEST)
    try:
        document = json.loads(raw)
        statement = json.loads(Envelope.from_dict(document).payload)
        predicate = statement["predicate"]
        summary = predicate["summary"]
    except (ValueError, KeyError, TypeError, InputError) as exc:
        raise StoreError(
            f"the stored pack of build {record.seq} has no readable statement"
        ) from exc
    return {
        "name": name,
        "build": _build_json(service, record, pack, None),
        "summary": summary,
        "purpose": predicate.get("purpose"),
        "subject": statement.get("subject", []),
        "envelope": document,
    }


def _etag(pack: StoredPack) -> str:
    return f'"{pack.sha256}"'


@router.get(
    "/v1/datasets/{name}/manifest",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
        304: {"description": "Not modified (If-None-Match named this pack's ETag)."},
    },
)
def dataset_manifest(
    request: Request, service: ServiceDep, principal: Auditor, name: str, build: _BUILD = None
) -> Response:
    """The evidence pack as a zip, streamed; ``ETag`` and ``Repr-Digest`` carry its SHA-256."""
    record, pack = _pick(service, principal, name, build)
    digest = base64.b64encode(bytes.fromhex(pack.sha256)).decode()
    headers = {
        "ETag": _etag(pack),
        "Repr-Digest": f"sha-256=:{digest}:",  # RFC 9530
        "Digest": f"sha-256={digest}",  # RFC 3230, for older clients
        "Cache-Control": "private, no-cache",
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("if-none-match") == _etag(pack):
        return Response(status_code=304, headers=headers)
    chunks = iter_chunks(service.engine, pack)
    first = next(chunks, b"")  # a damaged or unreachable store answers JSON, before any byte
    filename = f"{name}-{record.seq}.zip"
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    quoted = urllib.parse.quote(filename, safe="")
    headers["Content-Disposition"] = f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quoted}"
    headers["Content-Length"] = str(pack.size)
    return StreamingResponse(
        itertools.chain([first], chunks), media_type="application/zip", headers=headers
    )


def _hashes(html: str, tag: str) -> str:
    """CSP hash sources of the page's inline ``<tag>`` elements (HTML newlines normalised)."""
    sources = []
    for body in re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.DOTALL):
        text = body.replace("\r\n", "\n").replace("\r", "\n")
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        sources.append(f"'sha256-{digest}'")
    return " ".join(sources) or "'none'"


def report_csp(html: str) -> str:
    """The Content-Security-Policy of a served report: its own inline script and style only.

    The report is self-contained (no network, no external asset; its verifier uses WebCrypto
    on the embedded pack), so everything else is refused. The inline script never contains
    ``</`` (:mod:`ledger.report.verifier`), so the element's text is exactly what is hashed.
    """
    return (
        f"default-src 'none'; script-src {_hashes(html, 'script')}; "
        f"style-src {_hashes(html, 'style')}; img-src data:; connect-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


@router.get(
    "/v1/datasets/{name}/report",
    response_class=Response,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
def dataset_report(
    service: ServiceDep, principal: Auditor, name: str, build: _BUILD = None
) -> Response:
    """The pack's report.html: the dataset report that verifies the pack in the browser."""
    record, pack = _pick(service, principal, name, build)
    try:
        html = read_member(service.engine, pack, _REPORT).decode("utf-8")
    except NotFoundError:
        raise NotFoundError(
            f"build {record.seq} of {name!r} has no report.html (built with --no-report)"
        ) from None
    except UnicodeDecodeError as exc:
        raise StoreError(f"the report of build {record.seq} is not UTF-8") from exc
    headers = {
        "Content-Security-Policy": report_csp(html),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "private, no-cache",
    }
    return Response(html, media_type="text/html; charset=utf-8", headers=headers)


# -- POST /v1/manifests/verify --------------------------------------------------------------


def _check_zip(path: Path, limit: int) -> None:
    """Refuse what the offline verifier should never be handed: not a zip, or an unusual one."""
    if not zipfile.is_zipfile(path):
        raise InputError("the body is not a zip file (send the evidence pack zip as the body)")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, struct.error) as exc:
        raise InputError(f"the body is not a readable zip: {exc}") from exc
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise InputError(f"the zip member {info.filename!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise InputError(f"the zip member {info.filename!r} uses an unsupported compression")
        total += info.file_size
    if total > _UNZIPPED_FACTOR * limit:
        raise InputError(
            f"the zip's members unpack to {total} bytes, more than {_UNZIPPED_FACTOR} x "
            f"the {limit}-byte upload limit"
        )


def _log_key(service: Service, path: Path) -> str:
    """The verifier key of the log key that signed the envelope (else the active log key)."""
    logs = [k for k in service.reader.keys() if k.kind == "log"]
    if not logs:
        raise NotFoundError("this ledger has no log key: pass ?key=VKEY")
    wanted: set[str] = set()
    try:
        with zipfile.ZipFile(path) as archive:
            envelope = Envelope.from_dict(json.loads(archive.read(layout.MANIFEST)))
        wanted = {s.keyid for s in envelope.signatures}
    except (KeyError, ValueError, TypeError, LedgerError, zipfile.BadZipFile, zlib.error):
        pass  # no readable envelope: the verifier names that failure, under the active key
    chosen = next((k for k in reversed(logs) if k.key_id in wanted), logs[-1])
    return verifier_key_string(chosen.name, chosen.public_key)


def _verify_upload(service: Service, path: Path, key: str | None) -> dict[str, Any]:
    from ledger.manifest import verify

    _check_zip(path, service.settings.api_max_pack_bytes)
    vkey, source = (key.strip(), "query") if key is not None else (_log_key(service, path), "log")
    try:
        result = verify(path, vkey)
    except (zipfile.BadZipFile, zlib.error, EOFError, struct.error, NotImplementedError) as exc:
        raise InputError(f"the uploaded pack cannot be read: {exc}") from exc
    answer = result.to_dict()
    del answer["path"]  # a temporary file of this server's
    return answer | {"verifier_key": vkey, "key_source": source, "note": _TRUST_NOTE}


_PACK_BODY = {
    "required": True,
    "content": {
        media: {"schema": {"type": "string", "format": "binary"}}
        for media in ("application/zip", "application/octet-stream")
    },
}


@router.post(
    "/v1/manifests/verify",
    response_model=VerifyOut,
    openapi_extra={"requestBody": _PACK_BODY},
)
async def verify_manifest(
    request: Request,
    service: ServiceDep,
    _principal: Auditor,
    key: Annotated[
        str | None, Query(max_length=512, description="Verifier key (default: the log's).")
    ] = None,
) -> dict[str, Any]:
    """Verify an uploaded evidence pack (the zip as the raw body) as `ledger manifest verify`.

    Without ``key`` the pack is checked against this log's own verifier key. A server-side
    check is only as trustworthy as the server: an auditor runs the offline check themselves.
    """
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in _ZIP_TYPES:
        raise ApiError(
            415, "unsupported_media_type", "send the pack zip as application/zip (raw body)"
        )
    if key is not None and "\x00" in key:
        raise InputError("the key contains a NUL character")
    limit = service.settings.api_max_pack_bytes
    with tempfile.TemporaryDirectory(prefix="ledger-upload-") as scratch:
        path = Path(scratch) / "pack.zip"
        size = 0
        with path.open("wb") as sink:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, "body_too_large", f"the pack is larger than {limit} bytes")
                sink.write(chunk)
        return await run_in_threadpool(_verify_upload, service, path, key)
