"""Commands of the ledger core: init, verify, entries, checkpoint, proof, key."""

from __future__ import annotations

import json
import sys
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ledger.cli import _common
from ledger.cli._common import (
    EXIT_CHECK_FAILED,
    current_settings,
    fail,
    handle_errors,
    open_ledger,
    print_json,
    set_overrides,
)
from ledger.crypto.note import Checkpoint, NoteVerifier, open_note, verify_checkpoint
from ledger.errors import CheckpointError, InputError, LedgerError, NoteFormatError
from ledger.vocabulary import resolve_provider

if TYPE_CHECKING:
    from ledger._ledger import Ledger
    from ledger.log.verify import VerifyReport

__all__ = ["COMMANDS", "register"]

_PROGRESS_FROM = 20_000  # entries; a smaller log verifies in about a second

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]

entries_app = typer.Typer(help="Read entries.", no_args_is_help=True)
checkpoint_app = typer.Typer(
    help="Print the latest signed checkpoint (--new: sign one now), or verify one.",
    invoke_without_command=True,
)
proof_app = typer.Typer(help="Inclusion and consistency proofs.", no_args_is_help=True)
key_app = typer.Typer(help="Show or rotate the recorder and log keys.", no_args_is_help=True)


#: The root-level commands :func:`register` adds.
COMMANDS = ("init", "verify", "demo", "entries", "checkpoint", "proof", "key")


def register(app: typer.Typer, only: Collection[str] | None = None) -> None:
    """Attach the core commands (:data:`COMMANDS`, or those of them in ``only``) to ``app``.

    ``only`` serves start-up: typer reads the signature of every registered command before it
    runs one, so the console script registers just the command it runs.
    """
    wanted = COMMANDS if only is None else only
    for name, command in (("init", init), ("verify", verify), ("demo", demo)):
        if name in wanted:
            app.command(name)(command)
    for name, group in (
        ("entries", entries_app), ("checkpoint", checkpoint_app), ("proof", proof_app),
        ("key", key_app),
    ):  # fmt: skip
        if name in wanted:
            app.add_typer(group, name=name)


@handle_errors
def init(
    db: Annotated[str | None, typer.Option("--db", help="Database URL (default: SQLite).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Create (or migrate) the ledger database and its keys."""
    if db is not None:
        set_overrides(**{**_common._overrides, "database_url": db})
    with open_ledger(create=True) as lg:
        info = {
            "home": str(lg.home.resolve()),
            "database": lg.url,
            "origin": lg.origin,
            "verifier_key": lg.verifier_key,
            "recorder_key_id": lg.recorder_key_id,
            "entries": lg.size,
        }
    if json_out:
        print_json(info)
    else:
        for name, value in info.items():
            typer.echo(f"{name}: {value}")


def _read_checkpoint_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read checkpoint file {path}: {exc}") from exc


def _auditor_checkpoint(path: Path, verifiers: list[NoteVerifier], given_key: bool) -> Checkpoint:
    """The checkpoint in ``path`` checked against ``verifiers``; a bad signature fails the check,
    a file that is no checkpoint note at all is an input error."""
    try:
        return _auditor_note(_read_checkpoint_file(path), verifiers)
    except NoteFormatError as exc:
        raise InputError(f"checkpoint file {path} is not a checkpoint note: {exc}") from exc
    except CheckpointError as exc:
        whose = "the given key" if given_key else "any log key this ledger lists"
        raise CheckpointError(f"checkpoint file {path} is not signed by {whose} ({exc})") from exc


def _auditor_note(note: str, verifiers: list[NoteVerifier]) -> Checkpoint:
    """The checkpoint in ``note`` if one of ``verifiers`` signed it; CheckpointError if none did."""
    last = "no key to check it with"
    for verifier in verifiers:
        try:
            return verify_checkpoint(note, verifier)
        except NoteFormatError:
            raise  # the same under every key
        except LedgerError as exc:
            last = str(exc)
    raise CheckpointError(last)


@handle_errors
def verify(
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            help="A checkpoint obtained earlier (auditor's copy); the log must extend it.",
        ),
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key",
            help="The log's verifier key as the auditor was given it: --checkpoint files and "
            "the log's latest checkpoint must carry its signature (repeat it for a key that "
            "was rotated since the earlier checkpoint).",
        ),
    ] = None,
    verdicts: Annotated[
        bool,
        typer.Option(
            "--verdicts",
            help="Also re-evaluate every stored verdict under the policy set it names.",
        ),
    ] = False,
    policies: Annotated[
        list[Path] | None,
        typer.Option("--policies", help="Policy files or folders for --verdicts."),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Recompute and check every entry, signature, indexed column, hash and checkpoint.

    Reads only public data (no key file is needed) and never writes. Exit 1 names the first
    problem (leaf index, checkpoint or verdict) when anything is wrong.
    """
    given = [NoteVerifier.from_string(k) for k in key or []]
    with open_ledger() as lg:
        listed = [
            NoteVerifier.from_string(_vkey(k.name, k.public_key))
            for k in lg.keys()
            if k.kind == "log"
        ]
        verifiers = given or listed
        trusted = [_auditor_checkpoint(p, verifiers, bool(given)) for p in checkpoint or []]
        report = _verify_with_progress(lg, trusted)
        problems = [str(p) for p in report.problems]
        if given:
            problems += _latest_signed_by(lg, given)
        rechecked = None
        if verdicts:
            rechecked = lg.recheck_verdicts(policies=policies)
            problems += rechecked.problems
    document = report.to_dict()
    document.update(
        ok=not problems,
        problems_text=problems,
        first_problem=problems[0] if problems else None,
        key="given" if given else "listed by the database only",
    )
    if rechecked is not None:
        document["verdicts"] = rechecked.to_dict()
    if json_out:
        print_json(document)
    elif not problems:
        typer.echo(
            f"ok: {report.entries} entries, {report.checkpoints} checkpoints"
            + (f", consistent with {len(trusted)} auditor checkpoint(s)" if trusted else "")
            + (f", {rechecked.checked} verdicts re-evaluated" if rechecked is not None else "")
            + f", root {report.root.hex()}"
        )
        if not given:
            typer.echo(
                "note: checkpoints were checked only against the log keys this database "
                "lists; pass --key with the verifier key you were given to bind them to it"
            )
    if problems:
        raise fail(
            f"verification failed: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            EXIT_CHECK_FAILED,
        )


def _latest_signed_by(lg: Ledger, verifiers: list[NoteVerifier]) -> list[str]:
    latest = lg.latest_checkpoint()
    if latest is None:
        return []
    try:
        _auditor_note(latest.note, verifiers)
    except LedgerError as exc:
        return [
            f"checkpoint {latest.seq}: the latest checkpoint is not signed by the given key ({exc})"
        ]
    return []


def _verify_with_progress(lg: Ledger, trusted: list[Checkpoint]) -> VerifyReport:
    """Verify, with a progress bar on stderr when a person is watching a large log."""
    if not sys.stderr.isatty() or lg.size < _PROGRESS_FROM:
        return lg.verify(trusted=trusted)
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("verifying", total=lg.size)
        return lg.verify(
            trusted=trusted,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )


def _vkey(name: str, public_key: bytes) -> str:
    from ledger.crypto.note import verifier_key_string

    return verifier_key_string(name, public_key)


# -- entries ---------------------------------------------------------------------------------


@entries_app.command("list")
@handle_errors
def entries_list(
    start: Annotated[int, typer.Option(min=0, help="First leaf index.")] = 0,
    limit: Annotated[int | None, typer.Option(min=1, help="Most entries to print.")] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only this dataset.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """List entries (JSON: one signed entry per line with its leaf_index)."""
    with open_ledger() as lg:
        shown = 0
        wanted = resolve_provider(provider) if provider is not None else None
        for stored in lg.entries(start, provider=wanted, dataset=dataset):
            if limit is not None and shown >= limit:
                break
            if json_out:
                print_json(stored.to_dict())
            else:
                body = stored.body
                typer.echo(
                    f"{stored.leaf_index:>8}  {body.get('recorded_at', '')}  "
                    f"{body.get('provider') or '-'}  {body.get('request_model') or '-'}  "
                    f"{body.get('purpose') or '-'}  {body.get('id')}"
                )
            shown += 1


@entries_app.command("show")
@handle_errors
def entries_show(
    leaf_index: Annotated[int, typer.Argument(min=0, help="Leaf index of the entry.")],
    json_out: JsonFlag = False,
) -> None:
    """Show one entry with its leaf hash."""
    with open_ledger() as lg:
        stored = lg.entry(leaf_index)
    document = {**stored.to_dict(), "leaf_hash": stored.leaf_hash.hex()}
    if json_out:
        print_json(document)
    else:
        typer.echo(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False))


# -- checkpoints -----------------------------------------------------------------------------


@checkpoint_app.callback()
@handle_errors
def checkpoint_latest(
    ctx: typer.Context,
    new: Annotated[bool, typer.Option("--new", help="Sign a checkpoint of the log now.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Print the latest signed checkpoint (a C2SP signed note)."""
    if ctx.invoked_subcommand is not None:
        return
    with open_ledger(write=new) as lg:
        record = lg.checkpoint() if new else lg.latest_checkpoint()
        if record is None:
            raise InputError("the log has no checkpoint yet: run `ledger checkpoint --new`")
        vkey = lg.verifier_key
    if json_out:
        print_json(
            {
                "seq": record.seq,
                "tree_size": record.tree_size,
                "root": record.root_hash.hex(),
                "note": record.note,
                "signed_at": record.signed_at.isoformat(),
                "verifier_key": vkey,
            }
        )
    else:
        typer.echo(record.note, nl=False)


@checkpoint_app.command("verify")
@handle_errors
def checkpoint_verify(
    file: Annotated[Path, typer.Argument(help="File holding a C2SP signed checkpoint note.")],
    key: Annotated[str, typer.Option("--key", help="C2SP verifier key string.")],
    json_out: JsonFlag = False,
) -> None:
    """Verify any C2SP checkpoint against a verifier key (no database needed)."""
    note = _read_checkpoint_file(file)
    verifier = NoteVerifier.from_string(key)
    checkpoint = verify_checkpoint(note, verifier)
    opened = open_note(note, [verifier])
    result: dict[str, Any] = {
        "ok": True,
        "origin": checkpoint.origin,
        "tree_size": checkpoint.size,
        "root": checkpoint.root_hash.hex(),
        "signed_by": list(opened.verified_by),
    }
    if json_out:
        print_json(result)
    else:
        typer.echo(
            f"ok: {checkpoint.origin} size {checkpoint.size} root {checkpoint.root_hash.hex()}"
        )


# -- proofs ----------------------------------------------------------------------------------


@proof_app.command("inclusion")
@handle_errors
def proof_inclusion(
    leaf: Annotated[int, typer.Argument(min=0, help="Leaf index.")],
    size: Annotated[
        int | None, typer.Option("--size", min=1, help="Tree size (default: current).")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Print the inclusion proof of LEAF in the tree of --size entries."""
    with open_ledger() as lg:
        tree_size = lg.size if size is None else size
        proof = lg.inclusion_proof(leaf, tree_size)
        stored = lg.entry(leaf)
        root = lg.root(tree_size)
    document = {
        "leaf_index": leaf,
        "tree_size": tree_size,
        "leaf_hash": stored.leaf_hash.hex(),
        "hashes": [h.hex() for h in proof],
        "root": root.hex(),
    }
    _print_proof(document, json_out)


@proof_app.command("consistency")
@handle_errors
def proof_consistency(
    first: Annotated[int, typer.Argument(min=0, help="Older tree size.")],
    second: Annotated[int, typer.Argument(min=0, help="Newer tree size.")],
    json_out: JsonFlag = False,
) -> None:
    """Print the consistency proof between tree sizes FIRST and SECOND."""
    with open_ledger() as lg:
        proof = lg.consistency_proof(first, second)
        document = {
            "first": first,
            "second": second,
            "hashes": [h.hex() for h in proof],
            "first_root": lg.root(first).hex(),
            "second_root": lg.root(second).hex(),
        }
    _print_proof(document, json_out)


def _print_proof(document: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(document)
        return
    for name, value in document.items():
        if isinstance(value, list):
            typer.echo(f"{name}:")
            for item in value:
                typer.echo(f"  {item}")
        else:
            typer.echo(f"{name}: {value}")


# -- keys ------------------------------------------------------------------------------------


@key_app.command("show")
@handle_errors
def key_show(json_out: JsonFlag = False) -> None:
    """Show the active recorder and log keys and every retired one."""
    from ledger.crypto.keys import VerifyingKey

    with open_ledger() as lg:
        records = lg.keys()
        log_vkey = lg.verifier_key
    latest = {record.kind: record for record in records}  # the last row of a kind is active
    document: dict[str, Any] = {"retired": []}
    seen: set[tuple[str, str]] = set()
    for record in reversed(records):  # newest first: a key listed again later is not retired
        if (record.kind, record.key_id) in seen:
            continue
        seen.add((record.kind, record.key_id))
        item = {
            "kind": record.kind,
            "key_id": record.key_id,
            "name": record.name,
            "public_key_pem": VerifyingKey.from_raw(record.public_key).to_pem(),
            "verifier_key": _vkey(record.name, record.public_key) if record.kind == "log" else None,
            "created_at": record.created_at.isoformat(),
        }
        if latest[record.kind] is record:
            document[record.kind] = item
        else:
            document["retired"].insert(0, item)
    document["log"]["verifier_key"] = log_vkey
    if json_out:
        print_json(document)
        return
    typer.echo(f"recorder key id: {document['recorder']['key_id']}")
    typer.echo(f"log verifier key: {log_vkey}")
    for item in document["retired"]:
        typer.echo(f"retired {item['kind']} key: {item['key_id']}")


@key_app.command("rotate")
@handle_errors
def key_rotate(
    kind: Annotated[str, typer.Argument(help="Which key: recorder or log.")],
    json_out: JsonFlag = False,
) -> None:
    """Replace a key; its public half stays registered so old signatures still verify."""
    if kind not in ("recorder", "log"):
        raise InputError(f"unknown key kind {kind!r}: use recorder or log")
    with open_ledger(write=True) as lg:
        record = lg.rotate_key(kind)
        vkey = lg.verifier_key
    document = {"kind": kind, "key_id": record.key_id}
    if kind == "log":
        document["verifier_key"] = vkey
    if json_out:
        print_json(document)
    else:
        typer.echo(f"new {kind} key: {record.key_id}")


# -- demo ------------------------------------------------------------------------------------


@handle_errors
def demo() -> None:
    """Run a short end-to-end session on the embedded ledger."""
    from ledger.cli.demo import run_demo

    settings = current_settings()
    run_demo(settings, echo=typer.echo)
