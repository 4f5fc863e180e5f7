"""The ``ledger`` command line (Typer).

Exit codes: 0 ok, 1 a check failed, 2 usage or input error (one line on stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ledger.cli import audit, log, policy, spool
from ledger.cli._common import print_json, set_overrides

__all__ = ["app", "main"]

app = typer.Typer(
    name="ledger",
    help="Terms-of-service compliance and provenance ledger for model distillation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(ctx: typer.Context, value: bool) -> None:
    if not value:
        return
    from ledger import __version__

    if ctx.params.get("json_out") or "--json" in sys.argv[1:]:
        print_json({"version": __version__, "python": sys.version.split()[0]})
    else:
        typer.echo(f"distill-ledger {__version__}")
    raise typer.Exit(0)


@app.callback()
def _root(
    home: Annotated[
        Path | None,
        typer.Option(
            "--home", help="Ledger home folder (keys, default database). Env: LEDGER_HOME."
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Database URL. Env: LEDGER_DATABASE_URL."),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print the version and exit (with --json: as JSON).",
        ),
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", is_eager=True, hidden=True, help="With --version: JSON.")
    ] = False,
) -> None:
    set_overrides(home=home, database_url=db)


log.register(app)
app.add_typer(policy.app, name="policy", help="Provider policies: list, show, lint, export, check.")
app.add_typer(audit.app, name="audit", help="Audits of datasets and of conduct across calls.")
app.add_typer(spool.app, name="spool", help="The on-disk spool of entries not yet committed.")


def main() -> None:
    """Console-script entry point."""
    app()
