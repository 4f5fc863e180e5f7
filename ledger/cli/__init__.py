"""The ``ledger`` command line (Typer).

Exit codes: 0 ok, 1 a check failed, 2 usage or input error (one line on stderr).

Start-up: ``main()`` imports only the command group the arguments name (the policy engine,
the recorders and the dataset auditor cost most of a second to import, and a read command on
a small ledger should answer in well under that), and gives the parameters a coercion that
needs no pydantic (:mod:`ledger.cli._params`). ``ledger.cli.app`` (what tests and embedders
use) has every group and typer's own coercion.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from ledger.cli import log
from ledger.cli._common import print_json, set_overrides
from ledger.cli._params import use_plain_coercion

__all__ = ["app", "build_app", "main"]

# Command groups in modules of their own: name -> (module, help).
_GROUPS = {
    "policy": ("ledger.cli.policy", "Provider policies: list, show, lint, export, check, diff."),
    "audit": ("ledger.cli.audit", "Audits of datasets and of conduct across calls."),
    "spool": ("ledger.cli.spool", "The on-disk spool of entries not yet committed."),
    "token": ("ledger.cli.token", "Bearer tokens of the audit service: create, list, revoke."),
    "manifest": ("ledger.cli.manifest", "Signed evidence packs of datasets: build, verify."),
    "serve": ("ledger.cli.serve", "Run the audit service (REST API, uvicorn)."),
}
# Root options that take a value (skipped when looking for the command name).
_VALUED = {"--home", "--db"}


def _print_version(ctx: typer.Context, value: bool) -> None:
    if not value:
        return
    from ledger import __version__

    if ctx.params.get("json_out") or "--json" in sys.argv[1:]:
        from ledger.report import verify_html_sha256

        # The in-browser verifier's hash, so an auditor can pin the page they are asked to trust.
        print_json({
            "version": __version__,
            "python": sys.version.split()[0],
            "verify_html_sha256": verify_html_sha256(),
        })  # fmt: skip
    else:
        typer.echo(f"distill-ledger {__version__}")
    raise typer.Exit(0)


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


# Click's UsageError, whichever click typer runs on (recent typer carries its own copy, so the
# class is found from typer's public BadParameter rather than imported from ``click``).
_USAGE_ERROR: type[Exception] = next(
    k for k in typer.BadParameter.__mro__ if k.__name__ == "UsageError"
)


def _one_line(exc: Any) -> typer.Exit:
    """Report a usage error as every other input error is reported: one line, exit 2."""
    message = exc.format_message()
    if exc.ctx is not None:
        message = f"{message.removesuffix('.')} (see '{exc.ctx.command_path} --help')"
    typer.echo(f"ledger: {message}", err=True)
    return typer.Exit(2)


def _shown_as_help(exc: Exception) -> bool:
    # A group called with no arguments raises a usage error subclass that prints the help:
    # that one keeps click's behaviour.
    return type(exc).__name__ == "NoArgsIsHelpError"


@contextmanager
def _usage_errors_in_one_line() -> Iterator[None]:
    try:
        yield
    except _USAGE_ERROR as exc:
        if _shown_as_help(exc):
            raise
        raise _one_line(exc) from None


class _RootGroup(TyperGroup):
    """The root command: a usage error anywhere below it (an unknown option or command, a
    missing or malformed argument) is one line on stderr instead of click's usage block.

    Subcommands parse their arguments inside the root's ``invoke``, so the two overrides see
    every level. A command group called with no arguments still prints its help.
    """

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        with _usage_errors_in_one_line():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with _usage_errors_in_one_line():
            return super().invoke(ctx)


def build_app(
    groups: Iterable[str] | None = None, core: Collection[str] | None = None
) -> typer.Typer:
    """The root ``ledger`` app with the named groups and core commands (default: all)."""
    root = typer.Typer(
        cls=_RootGroup,
        name="ledger",
        help="Terms-of-service compliance and provenance ledger for model distillation.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    root.callback()(_root)
    log.register(root, core)
    for name in _GROUPS if groups is None else groups:
        module, help_text = _GROUPS[name]
        root.add_typer(importlib.import_module(module).app, name=name, help=help_text)
    return root


def _named_group(args: Sequence[str]) -> list[str] | None:
    """The group the command line names, [] for a core command, None when unsure (help).

    A core command comes back as ``[name]`` too; :func:`main` tells the two apart.
    """
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _VALUED:
            skip = True
        elif arg == "--version":
            return []
        elif arg.startswith("-"):
            continue
        else:
            return [arg] if arg in _GROUPS or arg in log.COMMANDS else None
    return None


def main() -> None:
    """Console-script entry point."""
    # Plain coercion of the parameters: typer's own imports pydantic, which costs a read
    # command a third of its start-up.
    use_plain_coercion()
    named = _named_group(sys.argv[1:])
    if named is None or not named:  # help, or --version: every command
        build_app(named)()
    elif named[0] in _GROUPS:
        build_app(named, core=())()
    else:  # a core command: only it (typer reads each registered command's signature)
        build_app([], core=named)()


if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        if name == "app":  # built on first use: importing ledger.cli stays cheap
            built = globals()["app"] = build_app()
            return built
        raise AttributeError(f"module 'ledger.cli' has no attribute {name!r}")
else:
    app: typer.Typer
