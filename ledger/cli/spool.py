"""`ledger spool status|flush`: inspect and replay entries that waited on disk for the ledger.

The spool lives under ``<LEDGER_HOME>/spool``. ``flush`` replays it into the configured ledger;
replay is idempotent by entry id, so running it twice (or after a crash) stores nothing twice.
"""

from __future__ import annotations

from typing import Annotated

import typer

import ledger
from ledger.cli._common import handle_errors, print_json
from ledger.recorder.spool import Spool
from ledger.settings import Settings

app = typer.Typer(help="Inspect and replay the recorder's on-disk spool.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _spool(settings: Settings) -> Spool:
    return Spool(settings.home / "spool")


@app.command("status")
@handle_errors
def status(json_output: JsonOption = False) -> None:
    """Show how many entries wait in the spool."""
    result = _spool(Settings()).status()
    if json_output:
        print_json(result.to_dict())
        return
    typer.echo(
        f"{result.entries} entries in {result.files} file(s), {result.bytes} bytes, "
        f"in {result.directory}"
        + (f"; {result.rejected} rejected line(s) set aside" if result.rejected else "")
    )


@app.command("flush")
@handle_errors
def flush(json_output: JsonOption = False) -> None:
    """Replay the spool into the configured ledger, then remove what was committed."""

    settings = Settings()
    spool = _spool(settings)
    lg = ledger.open(settings.resolved_database_url(), home=settings.home)
    try:
        result = spool.replay(lg)
        size = lg.size
    finally:
        lg.close()
    if json_output:
        print_json({**result.to_dict(), "ledger_size": size})
        return
    typer.echo(
        f"replayed {result.replayed} entries from {result.files} file(s); ledger size {size}"
        + (f"; {result.rejected} rejected line(s) set aside" if result.rejected else "")
    )
