"""Bearer authentication and role checks, as FastAPI dependencies.

Invariants:

* Every non-public route depends on exactly one of :data:`Recorder`, :data:`Auditor` or
  :data:`Admin`. No token, a malformed, unknown, expired or revoked one: 401. A valid token of
  another role: 403. Admin tokens read what auditors read.
* A token is checked through the service's :class:`~ledger.api.tokens.TokenCache`: from the
  database on first use, then from memory for at most ``api_token_cache_seconds``. A
  revocation through this process holds from the next request, one through another process
  within that bound (see :mod:`ledger.api.tokens`).
* The dependencies are ``async``: FastAPI would run each plain ``def`` dependency as its own
  hop through the thread pool (three per request before the route itself ran). A cached
  token is checked on the event loop in microseconds; a database check still runs in the
  thread pool, never on the loop.
* The token string is used only to compute its digest; it is never logged or echoed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from ledger.api.errors import ApiError
from ledger.api.service import Service
from ledger.api.tokens import TokenInfo

__all__ = ["Admin", "Auditor", "Recorder", "ServiceDep", "get_service"]

_bearer = HTTPBearer(auto_error=False, description="A token from `ledger token create`.")


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


async def _principal(
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenInfo:
    if credentials is None:
        raise ApiError(401, "unauthorized", "this route needs a bearer token")
    token = credentials.credentials
    cached = service.tokens.cached(token)
    if cached is not None:
        return cached
    return await run_in_threadpool(service.tokens.authenticate, token)


def _role(*roles: str) -> object:
    async def check(principal: Annotated[TokenInfo, Depends(_principal)]) -> TokenInfo:
        if principal.role not in roles:
            wanted = " or ".join(roles)
            raise ApiError(403, "forbidden", f"this route needs a {wanted} token")
        return principal

    return check


Recorder = Annotated[TokenInfo, Depends(_role("recorder"))]
Auditor = Annotated[TokenInfo, Depends(_role("auditor", "admin"))]
Admin = Annotated[TokenInfo, Depends(_role("admin"))]
