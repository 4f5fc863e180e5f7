"""`ledger serve [--host 127.0.0.1] [--port 8000] [--workers N]`: run the audit service (uvicorn).

The socket is bound here, before any worker starts, so that ``--port 0`` picks a free port
and the line ``ledger: serving on http://HOST:PORT`` (stdout, flushed) names the real one;
tests and scripts read it instead of guessing. The ledger is opened once up front so that a
bad database, schema or key file fails with exit 2 before anything listens. With several
workers each one opens the ledger itself from the same ``LEDGER_*`` settings (appends stay
serialized by the store: SQLite's write lock, PostgreSQL's advisory lock).
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Annotated

import typer

from ledger.cli._common import current_settings, fail, handle_errors

app = typer.Typer(help="Run the audit service.", invoke_without_command=True)


@app.callback(invoke_without_command=True)
@handle_errors
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free port).")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes.")] = 1,
    read_only: Annotated[
        bool,
        typer.Option(
            "--read-only", help="Serve reads only, from public data (no key files needed)."
        ),
    ] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
) -> None:
    """Serve the REST API (OpenAPI at /openapi.json) until interrupted."""
    import uvicorn

    from ledger.api import create_app
    from ledger.api.settings import ApiSettings

    if not 0 <= port <= 65535:
        raise fail(f"--port must be 0 to 65535, not {port}")
    if workers < 1:
        raise fail(f"--workers must be at least 1, not {workers}")
    base = current_settings()
    overrides = base.model_dump(exclude_unset=True)
    if read_only:
        overrides["api_read_only"] = True
    settings = ApiSettings(**overrides)
    # Workers build their settings from the environment: hand them the global options.
    os.environ["LEDGER_HOME"] = str(settings.home)
    if settings.database_url:
        os.environ["LEDGER_DATABASE_URL"] = settings.database_url
    if read_only:
        os.environ["LEDGER_API_READ_ONLY"] = "true"
    application = create_app(settings)  # opens the ledger: bad settings fail here, exit 2
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    sys.stdout.write(f"ledger: serving on http://{shown}:{bound} ({workers} worker(s))\n")
    sys.stdout.flush()
    if workers == 1:
        from ledger.api import settle_heap

        settle_heap()
        config = uvicorn.Config(application, log_level=log_level, lifespan="on")
        uvicorn.Server(config).run(sockets=[sock])
        return
    application.state.service.close()  # the parent only checked; each worker opens its own
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        "ledger.api:app_from_env", factory=True, workers=workers, log_level=log_level
    )
    Multiprocess(config, sockets=[sock]).run()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY on accepted connections only
    # when the socket says it is TCP, and without it every answer waited ~40 ms for a
    # delayed ACK (Nagle's algorithm holding the body behind the headers).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock
