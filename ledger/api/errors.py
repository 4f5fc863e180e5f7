"""The one place that turns errors into HTTP answers, and the request body limit.

Invariants:

* Every error answer is ``{"error": {"code": ..., "message": ...}}``. A :class:`LedgerError`
  maps by class to a 4xx status (:data:`STATUS`); a store or configuration failure (database
  unreachable) is 503; anything else is a bug: 500 with a fixed message, logged here with its
  traceback, never sent to the client.
* Messages come from the ledger's own errors, which never carry secrets; a bearer token is
  never part of one (:mod:`ledger.api.tokens` names tokens by id only).
* A body larger than the limit is refused with 413 before the route sees it: at once when
  ``Content-Length`` says so, or as soon as the streamed bytes pass the limit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.api.tokens import TokenError
from ledger.errors import (
    ConfigError,
    InputError,
    LedgerError,
    NotFoundError,
    ReadOnlyError,
    StoreError,
    VerificationError,
)

__all__ = ["STATUS", "ApiError", "BodyLimit", "error_body", "install_handlers"]

log = logging.getLogger("ledger.api")


class ApiError(Exception):
    """A refusal decided by the API itself (authentication, roles, scopes, bad cursors)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


#: LedgerError subclasses and their answers, most specific first.
STATUS: tuple[tuple[type[LedgerError], int, str], ...] = (
    (TokenError, 401, "unauthorized"),
    (ReadOnlyError, 405, "read_only"),
    (NotFoundError, 404, "not_found"),
    (InputError, 400, "bad_request"),
    (VerificationError, 422, "verification_failed"),
    (ConfigError, 503, "unavailable"),
    (StoreError, 503, "unavailable"),
)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _answer(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def install_handlers(app: FastAPI) -> None:
    """Register the handlers; after this no exception leaves the app as a traceback."""

    @app.exception_handler(ApiError)
    async def _api(_request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _answer(exc.status, exc.code, exc.message, headers)

    @app.exception_handler(LedgerError)
    async def _ledger(_request: Request, exc: LedgerError) -> JSONResponse:
        for kind, status, code in STATUS:
            if isinstance(exc, kind):
                if status >= 500:
                    log.warning("ledger unavailable: %s", exc)
                headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
                return _answer(status, code, str(exc), headers)
        log.error("unmapped ledger error", exc_info=exc)
        return _answer(500, "internal", "internal error")

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for item in exc.errors()[:5]:
            where = ".".join(str(p) for p in item.get("loc", ()))
            problems.append(f"{where}: {item.get('msg', 'invalid')}")
        return _answer(422, "invalid_request", "; ".join(problems) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            exc.status_code, "http_error"
        )
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        return _answer(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error answering a request", exc_info=exc)
        return _answer(500, "internal", "internal error")


class _TooLarge(StarletteHTTPException):
    # An HTTPException, so that a route reading the body (FastAPI turns other exceptions
    # raised while reading into a 400) answers 413 through the handler above.
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodyLimit:
    """ASGI middleware refusing request bodies over ``limit`` bytes with a JSON 413.

    ``paths`` maps an exact request path to its own limit (an uploaded evidence pack).
    """

    def __init__(self, app: ASGIApp, limit: int, paths: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.paths = dict(paths or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.paths.get(scope.get("path", ""), self.limit)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = False
            if too_big:
                await self._refuse(send, limit)
                return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        response = _answer(413, "body_too_large", f"the request body is larger than {limit} bytes")
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:  # pragma: no cover - a JSONResponse never reads
    return {"type": "http.disconnect"}
