"""Admin routes: tokens (create, list, revoke) and remote recorder keys (register).

Invariants: only admin tokens reach these routes; every write goes through the service's
writable ledger (a read-only service answers 405); a created token is in the answer once and
nowhere else, and token listings never contain tokens.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter

from ledger.api.auth import Admin, ServiceDep
from ledger.api.keys import find_recorder_key, register_recorder_key
from ledger.api.models import KeyIn, TokenIn
from ledger.api.tokens import create_token, list_tokens, parse_duration, revoke_token
from ledger.errors import InputError

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get("/tokens")
def get_tokens(service: ServiceDep, _principal: Admin) -> list[dict[str, Any]]:
    """Every token (ids, names, roles, scopes and state; never the tokens)."""
    return [info.to_dict() for info in list_tokens(service.engine)]


@router.post("/tokens", status_code=201)
def post_token(service: ServiceDep, _principal: Admin, request: TokenIn) -> dict[str, Any]:
    """Create a token; the answer is the only place it is ever shown."""
    lg = service.writable()
    key_id = None
    if request.recorder_key_id is not None:
        key_id = find_recorder_key(lg, request.recorder_key_id.strip().lower()).key_id
    token, info = create_token(
        lg.store.engine,
        role=request.role,
        name=request.name,
        datasets=request.datasets,
        recorder_key_id=key_id,
        expires_in=parse_duration(request.expires) if request.expires is not None else None,
    )
    return {"token": token, **info.to_dict()}


@router.post("/tokens/{token_id}/revoke")
def post_revoke(service: ServiceDep, _principal: Admin, token_id: str) -> dict[str, Any]:
    """Revoke a token for good (a new row; revoking twice changes nothing)."""
    return revoke_token(service.writable().store.engine, token_id).to_dict()


@router.post("/keys", status_code=201)
def post_key(service: ServiceDep, _principal: Admin, request: KeyIn) -> dict[str, Any]:
    """Register a remote recorder's public key, so that a recorder token can be bound to it."""
    try:
        raw = base64.b64decode(request.public_key, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError("public_key is not base64") from exc
    record = register_recorder_key(service.writable(), raw, request.name)
    return {
        "key_id": record.key_id,
        "name": record.name,
        "public_key": base64.b64encode(record.public_key).decode(),
        "created_at": record.created_at.isoformat(),
    }
