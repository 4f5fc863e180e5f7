"""The audit service (FastAPI): DESIGN.md's routes under ``/v1``, bearer tokens with roles.

Invariants:

* :func:`create_app` is the only way the app is built; it opens the ledger (read-only for
  reads, writable unless ``api_read_only``) before answering anything, so a bad database or
  key file fails at start-up, not on the first request.
* Errors are ``{"error": {"code", "message"}}`` (:mod:`ledger.api.errors` is the one mapping);
  CORS is off unless origins are configured; request bodies are bounded.

Example:
    >>> from ledger.api import create_app
    >>> from ledger.api.settings import ApiSettings
    >>> app = create_app(ApiSettings(home="/tmp/demo-ledger"))  # doctest: +SKIP
    >>> # uvicorn.run(app)  or  `ledger serve`
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ledger.settings import Settings

__all__ = ["app_from_env", "create_app", "settle_heap"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI app serving the ledger that ``settings`` describe (default: environment)."""
    from ledger import __version__
    from ledger.api import admin, datasets, routes
    from ledger.api.errors import BodyLimit, install_handlers
    from ledger.api.service import Service
    from ledger.api.settings import ApiSettings

    if isinstance(settings, ApiSettings):
        api_settings = settings
    elif settings is not None:
        api_settings = ApiSettings(**settings.model_dump(exclude_unset=True))
    else:
        api_settings = ApiSettings()
    service = Service(api_settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="distill-ledger audit service",
        version=__version__,
        description=(
            "Provenance ledger of teacher-model API calls. Every answer with entries carries "
            "the signed checkpoint it was served against and the proof of its entries. "
            "Verdicts report what dated provider terms say, not what is lawful."
        ),
        lifespan=lifespan,
    )
    app.state.service = service
    install_handlers(app)
    app.include_router(routes.router)
    app.include_router(admin.router)
    app.include_router(datasets.router)
    app.add_middleware(
        BodyLimit,
        limit=api_settings.api_max_body_bytes,
        paths={"/v1/manifests/verify": api_settings.api_max_pack_bytes},
    )
    if api_settings.api_cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=api_settings.api_cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    return app


def app_from_env() -> FastAPI:
    """The app from ``LEDGER_*`` settings: the factory each ``ledger serve`` worker calls."""
    app = create_app()
    settle_heap()
    return app


def settle_heap() -> None:
    """Take what start-up built out of the garbage collector's walks, in a serving process.

    A worker starts with ~135,000 objects the collector tracks (modules, FastAPI's routes and
    models, SQLAlchemy's tables), all living as long as the process; a full collection walked
    them in 80-106 ms, measured in workers under load, and every request on that worker
    waited. Frozen (:func:`gc.freeze`) they are never walked again; later objects are
    collected as before. Called by ``ledger serve`` only, not by :func:`create_app`: a
    process that builds apps and drops them (tests) would keep their cyclic garbage.
    """
    import gc

    gc.collect()
    gc.freeze()
