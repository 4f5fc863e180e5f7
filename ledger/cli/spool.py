"""`ledger spool status|flush`: inspect and replay entries that waited on disk for the ledger.

The spool lives under ``<home>/spool`` of the ledger the global options (``--home``, ``--db``)
and ``LEDGER_*`` settings name, like every other command. ``flush`` replays it into that
ledger; replay is idempotent by entry id, so running it twice (or after a crash) stores nothing
twice. ``flush`` exits 1 when it set any line aside (it names each one's file and byte range)
or kept unsigned records back; ``--accept-unsigned`` appends those, signed at replay time.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ledger.cli._common import (
    EXIT_CHECK_FAILED,
    current_settings,
    handle_errors,
    open_ledger,
    print_json,
)
from ledger.recorder.spool import ReplayResult, Spool

app = typer.Typer(help="Inspect and replay the recorder's on-disk spool.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
AcceptUnsigned = Annotated[
    bool,
    typer.Option(
        "--accept-unsigned",
        help=(
            "Also append plain (unsigned) records from a spool written before records were "
            "signed at record time; they are signed now."
        ),
    ),
]


@app.command("status")
@handle_errors
def status(json_output: JsonOption = False) -> None:
    """Show how many entries wait in the spool."""
    result = Spool.for_home(current_settings().home).status()
    if json_output:
        print_json(result.to_dict())
        return
    typer.echo(
        f"{result.entries} entries in {result.files} file(s), {result.bytes} bytes, "
        f"in {result.directory}"
        + (f"; {result.unsigned} unsigned" if result.unsigned else "")
        + (f"; {result.rejected} rejected line(s) set aside" if result.rejected else "")
    )


@app.command("flush")
@handle_errors
def flush(json_output: JsonOption = False, accept_unsigned: AcceptUnsigned = False) -> None:
    """Replay the spool into the ledger, then remove what was committed."""
    settings = current_settings()
    spool = Spool.for_home(settings.home)
    lg = open_ledger(write=True)
    try:
        result = spool.replay(lg, accept_unsigned=accept_unsigned)
        size = lg.size
    finally:
        lg.close()
    if json_output:
        print_json({**result.to_dict(), "ledger_size": size})
    else:
        _report(result, size, accept_unsigned)
    if result.rejected or (result.unsigned and not accept_unsigned):
        raise typer.Exit(EXIT_CHECK_FAILED)


def _report(result: ReplayResult, size: int, accept_unsigned: bool) -> None:
    typer.echo(
        f"replayed {result.replayed} entries from {result.files} file(s); ledger size {size}"
    )
    if result.rejected:
        typer.echo(f"set aside {result.rejected} line(s) in {result.rejected_path}:", err=True)
        for item in result.set_aside:
            typer.echo(f"  {item.describe()}", err=True)
    if result.unsigned and not accept_unsigned:
        typer.echo(
            f"kept {result.unsigned} unsigned record(s) (from before spool records were signed) "
            f"in {', '.join(result.kept)}: rerun with --accept-unsigned to sign and append them",
            err=True,
        )
