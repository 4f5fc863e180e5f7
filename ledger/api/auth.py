"""Bearer authentication and role checks, as FastAPI dependencies.

Invariants:

* Every non-public route depends on exactly one of :data:`Recorder`, :data:`Auditor` or
  :data:`Admin`; the token is looked up on every request, so a revocation takes effect on the
  next one. No token, a malformed, unknown, expired or revoked one: 401. A valid token of
  another role: 403. Admin tokens read what auditors read.
* The token string is used only to compute its digest; it is never logged or echoed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ledger.api.errors import ApiError
from ledger.api.service import Service
from ledger.api.tokens import TokenInfo, authenticate

__all__ = ["Admin", "Auditor", "Recorder", "ServiceDep", "get_service"]

_bearer = HTTPBearer(auto_error=False, description="A token from `ledger token create`.")


def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


def _principal(
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenInfo:
    if credentials is None:
        raise ApiError(401, "unauthorized", "this route needs a bearer token")
    return authenticate(service.engine, credentials.credentials)


def _role(*roles: str) -> object:
    def check(principal: Annotated[TokenInfo, Depends(_principal)]) -> TokenInfo:
        if principal.role not in roles:
            wanted = " or ".join(roles)
            raise ApiError(403, "forbidden", f"this route needs a {wanted} token")
        return principal

    return check


Recorder = Annotated[TokenInfo, Depends(_role("recorder"))]
Auditor = Annotated[TokenInfo, Depends(_role("auditor", "admin"))]
Admin = Annotated[TokenInfo, Depends(_role("admin"))]
