"""Routes of the log: public heads and keys, auditor reads with proofs, recorder appends.

Invariants:

* The hot reads (the checkpoint, one entry, a page) are ``async``: with the checkpoint known
  (:meth:`~ledger.api.service.Service.served_checkpoint`) their work is a few indexed queries
  that never wait for a lock (SQLite WAL readers, PostgreSQL MVCC) and runs on the event loop.
  Through the thread pool the same request cost 0.27 ms more CPU, and with 32 clients the
  pool threads' hand-offs of the GIL put p99 near 90 ms where the loop gives 7 ms
  (bench/api_bench.py, SQLite). On PostgreSQL the loop also waits for the server's answer
  (about a millisecond on loopback); measured at 1M entries with 32 clients that still beats
  the pool (one entry p99 57 against 339 ms, a page 123 against 284 ms). A database far from
  the service would make that wait longer: run more workers there. What can take long
  (signing a new checkpoint, a token not yet cached, appends, large streams and uploads)
  runs in the thread pool: every other route is a plain ``def``, which FastAPI runs there.
* An answer with entries holds the signed checkpoint it was served against and the proof of
  its entries against that checkpoint (see :mod:`ledger.api.service`); entries go out as the
  exact stored leaf bytes.
* A recorder token submits only entries signed by its own bound key; every entry of a batch is
  checked before any is stored, and a batch is stored in one transaction (all or none).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Response

from ledger.api.auth import Auditor, Recorder, ServiceDep
from ledger.api.errors import ApiError
from ledger.api.models import (
    CheckpointOut,
    ConsistencyProofOut,
    EntryAnswer,
    EntryPage,
    InclusionProofOut,
    ReceiptsOut,
    SealedBatch,
)
from ledger.api.service import EntryFilters, checkpoint_json, decode_cursor, encode_cursor
from ledger.api.tokens import TokenInfo
from ledger.entry_body import call_time
from ledger.errors import InputError, NotFoundError
from ledger.vocabulary import resolve_provider

__all__ = ["router"]

router = APIRouter()

_JSON = "application/json"


def _dumps(value: object) -> bytes:
    return orjson.dumps(value)


def _item(leaf_index: int, data: bytes) -> bytes:
    # The stored leaf is RFC 8785 JSON: spliced as it is, it is exactly what a client hashes.
    return b'{"leaf_index":' + str(leaf_index).encode() + b',"entry":' + data + b"}"


def _scope(principal: TokenInfo, dataset: str | None) -> tuple[str, ...] | None:
    if principal.datasets is None:
        return None
    if dataset is not None and dataset not in principal.datasets:
        raise ApiError(403, "forbidden", f"this token is not scoped to dataset {dataset!r}")
    return principal.datasets


@router.get("/healthz", tags=["public"])
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/v1/log/checkpoint", tags=["public"], response_model=CheckpointOut)
async def get_checkpoint(service: ServiceDep) -> dict[str, Any]:
    """The latest signed checkpoint (C2SP tlog-checkpoint in a signed note)."""
    return checkpoint_json(await service.served_checkpoint())


@router.get("/v1/keys", tags=["public"])
def get_keys(service: ServiceDep) -> dict[str, Any]:
    """Log keys (verifier key strings) and recorder public keys, retired ones included."""
    return service.keys()


@router.get(
    "/v1/entries",
    tags=["auditor"],
    response_class=Response,
    responses={200: {"model": EntryPage, "content": {_JSON: {}}}},
)
async def list_entries(
    service: ServiceDep,
    principal: Auditor,
    dataset: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    account: str | None = None,
    purpose: str | None = None,
    verdict: str | None = None,
    since: Annotated[datetime | None, Query(description="recorded_at >= since")] = None,
    until: Annotated[datetime | None, Query(description="recorded_at < until")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1)] = 100,
) -> Response:
    """A page of entries in leaf order, with the checkpoint and one multiproof of the page."""
    if limit > service.settings.api_max_page:
        raise InputError(f"limit {limit} is above the maximum {service.settings.api_max_page}")
    scope = _scope(principal, dataset)
    filters = EntryFilters(
        dataset=dataset,
        provider=resolve_provider(provider) if provider is not None else None,
        model=model,
        account=account,
        purpose=purpose,
        verdict=verdict,
        since=since,
        until=until,
    )
    start = decode_cursor(cursor, filters) if cursor is not None else 0
    page = service.page(filters, scope, start, limit, await service.served_checkpoint())
    proof = service.page_proof(page)
    next_cursor = encode_cursor(page.next_start, filters) if page.next_start is not None else None
    body = b"".join(
        [
            b'{"checkpoint":',
            _dumps(checkpoint_json(page.checkpoint)),
            b',"entries":[',
            b",".join(_item(i, data) for i, data in page.rows),
            b'],"multiproof":',
            _dumps(proof),
            b',"next_cursor":',
            _dumps(next_cursor),
            b"}",
        ]
    )
    return Response(body, media_type=_JSON)


@router.get(
    "/v1/entries/{leaf_index}",
    tags=["auditor"],
    response_class=Response,
    responses={200: {"model": EntryAnswer, "content": {_JSON: {}}}},
)
async def get_entry(service: ServiceDep, principal: Auditor, leaf_index: int) -> Response:
    """One entry, the checkpoint and the entry's RFC 9162 inclusion proof against it."""
    scope = _scope(principal, None)
    record, data, proof = service.entry(leaf_index, scope, await service.served_checkpoint())
    inclusion = {
        "leaf_index": leaf_index,
        "tree_size": record.tree_size,
        "hashes": [h.hex() for h in proof],
    }
    body = b"".join(
        [
            b'{"checkpoint":',
            _dumps(checkpoint_json(record)),
            b',"entry":',
            _item(leaf_index, data),
            b',"inclusion_proof":',
            _dumps(inclusion),
            b"}",
        ]
    )
    return Response(body, media_type=_JSON)


@router.get("/v1/log/proof/inclusion", tags=["auditor"], response_model=InclusionProofOut)
def inclusion_proof(
    service: ServiceDep,
    _principal: Auditor,
    leaf_index: Annotated[int, Query(ge=0)],
    tree_size: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """RFC 9162 inclusion proof of a leaf (default tree size: the latest checkpoint's)."""
    size = tree_size if tree_size is not None else service.checkpoint().tree_size
    if leaf_index >= size:
        raise InputError(f"leaf index {leaf_index} is not below tree size {size}")
    proof = service.reader.inclusion_proof(leaf_index, size)
    return {"leaf_index": leaf_index, "tree_size": size, "hashes": [h.hex() for h in proof]}


@router.get("/v1/log/proof/consistency", tags=["auditor"], response_model=ConsistencyProofOut)
def consistency_proof(
    service: ServiceDep,
    _principal: Auditor,
    first: Annotated[int, Query(ge=0)],
    second: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    """RFC 9162 consistency proof from tree size ``first`` to ``second`` (default: latest)."""
    size = second if second is not None else service.checkpoint().tree_size
    if first > size:
        raise InputError(f"first size {first} is larger than second size {size}")
    proof = service.reader.consistency_proof(first, size)
    return {"first": first, "second": size, "hashes": [h.hex() for h in proof]}


@router.post(
    "/v1/entries",
    tags=["recorder"],
    response_class=Response,
    responses={200: {"model": ReceiptsOut, "content": {_JSON: {}}}},
)
def record_entries(service: ServiceDep, principal: Recorder, batch: SealedBatch) -> Response:
    """Store sealed entries signed by this token's recorder key; idempotent by entry id."""
    if len(batch.entries) > service.settings.api_max_batch:
        raise ApiError(
            413,
            "batch_too_large",
            f"{len(batch.entries)} entries in one batch; at most {service.settings.api_max_batch}",
        )
    for n, entry in enumerate(batch.entries):
        if entry.get("key_id") != principal.recorder_key_id:
            raise ApiError(
                403, "forbidden", f"entry {n} is not signed by this token's recorder key"
            )
    # append_sealed checks the rest, NUL in an indexed field included (ledger.log.records).
    receipts = service.writable().append_sealed(batch.entries) if batch.entries else []
    # Plain JSON of plain values: validating 500 receipts against the model cost more.
    return Response(_dumps({"receipts": [r.to_dict() for r in receipts]}), media_type=_JSON)


@router.get("/v1/policies", tags=["auditor"])
def list_policies(service: ServiceDep, _principal: Auditor) -> list[dict[str, Any]]:
    """The installed provider policies: id, layer, providers and dated versions."""
    return [p.summary() for p in service.policies().policies]


@router.get("/v1/policies/{provider}", tags=["auditor"])
def get_policy(service: ServiceDep, _principal: Auditor, provider: str) -> list[dict[str, Any]]:
    """Every policy governing ``provider`` (a slug or alias, or a policy id), in full."""
    policies = service.policies()
    found = policies.get(provider)
    chosen = [found] if found is not None else policies.for_provider(resolve_provider(provider))
    if not chosen:
        raise NotFoundError(f"no policy governs provider {provider!r}")
    return [p.model_dump(mode="json") for p in chosen]


@router.get("/v1/audit/conduct", tags=["auditor"])
def audit_conduct(
    service: ServiceDep,
    principal: Auditor,
    provider: str | None = None,
    dataset: str | None = None,
    since: datetime | None = None,
) -> dict[str, Any]:
    """Conduct findings (multiple accounts, rate-limit evasion, ...) over the visible entries.

    They report what the dated terms say, with the clauses cited, not what is lawful.
    """
    from ledger.policy.conduct import detect

    scope = _scope(principal, dataset)
    EntryFilters(dataset=dataset)  # the same checks as a listing's (no NUL)
    filters = {}
    if provider is not None:
        filters["provider"] = resolve_provider(provider)
    if dataset is not None:
        filters["dataset"] = dataset
    record = service.checkpoint()
    selected = service.all_entries(scope, filters)
    if since is not None:
        cutoff = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
        selected = [
            (i, b) for i, b in selected if (at := _started_at(b)) is not None and at >= cutoff
        ]
    thresholds, hosts = service.conduct_config()
    findings = detect(selected, thresholds=thresholds, official_hosts=hosts)
    return {
        "checkpoint": checkpoint_json(record),
        "entries_examined": len(selected),
        "findings": [f.to_dict() for f in findings],
        "thresholds": thresholds.to_dict(),
    }


def _started_at(body: Mapping[str, Any]) -> datetime | None:
    # The one body reader's rule, as `ledger audit conduct --since` uses it.
    return call_time(body)[0]
