"""`ledger manifest ...` commands: signed evidence packs for datasets.

``ledger manifest build DATASET... --out DIR`` audits the dataset against the ledger and writes
the pack (:mod:`ledger.manifest`); it opens the ledger for writing, because the log key signs a
fresh checkpoint and the statement. ``ledger manifest verify DIR|ZIP --key VKEY`` checks a pack
with nothing but the pack and the log's verifier key: no database, no private key, no network.
``build`` also stores the pack in the ledger (``--no-store`` skips it); ``ledger manifest list``
shows the builds registry and ``ledger manifest get NAME --out FILE.zip`` writes a stored pack
back out, both opening the ledger read-only.
Exit codes follow the CLI contract: 0 ok, 1 a check failed (the first failure named on stderr),
2 bad input (one line on stderr).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ledger.audit import DEFAULT_NEAR_THRESHOLD, FORMATS
from ledger.cli._common import (
    EXIT_CHECK_FAILED,
    current_settings,
    fail,
    handle_errors,
    new_file,
    open_ledger,
    print_json,
)
from ledger.policy import DeclaredFacts, load_facts_file

__all__ = ["app"]

app = typer.Typer(help="Signed evidence packs: build, verify, export.", no_args_is_help=True)


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise fail(f"cannot read {what} {path}: {reason}") from None


@app.command("build")
@handle_errors
def build_cmd(
    files: Annotated[list[Path], typer.Argument(help="Dataset files (JSONL, JSON, CSV, ...).")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the pack to (new).")],
    zip_pack: Annotated[bool, typer.Option("--zip", help="Write one zip file instead.")] = False,
    purpose: Annotated[str, typer.Option(help="The dataset's declared purpose.")] = "train-model",
    facts: Annotated[
        Path | None,
        typer.Option("--facts", help="Organization profile YAML (default: LEDGER_FACTS_FILE)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Dataset name for the builds registry.")] = None,
    version: Annotated[str | None, typer.Option(help="Dataset version label.")] = None,
    format_: Annotated[
        str, typer.Option("--format", help=f"Row shape or container: {', '.join(FORMATS)}.")
    ] = "auto",
    near_threshold: Annotated[
        float, typer.Option(help="Sketch similarity from which a near link counts.")
    ] = DEFAULT_NEAR_THRESHOLD,
    report: Annotated[
        bool, typer.Option("--report/--no-report", help="Add report.html and verify.html.")
    ] = True,
    store: Annotated[
        bool,
        typer.Option("--store/--no-store", help="Keep the pack's zip in the ledger (served)."),
    ] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Audit a dataset and write its signed evidence pack."""
    from ledger.manifest import build

    settings = current_settings()
    profile_path = facts or settings.facts_file
    profile = load_facts_file(profile_path) if profile_path else DeclaredFacts()
    database = settings.home / "ledger.db"
    if settings.database_url is None and not database.exists():
        raise fail(f"no ledger at {database} (run `ledger init` or pass --home)")
    with open_ledger(write=True) as lg:
        result = build(
            lg, files, out, name=name, version=version, purpose=purpose, profile=profile,
            zip_pack=zip_pack, format=format_, near_threshold=near_threshold, report=report,
            store=store,
        )  # fmt: skip
        vkey = lg.verifier_key
    if json_out:
        print_json(result.to_dict() | {"verifier_key": vkey})
        return
    summary = result.statement["predicate"]["summary"]
    typer.echo(
        f"pack {result.path}: {summary['examples']} examples, {summary['linked']} linked, "
        f"{len(result.statement['predicate']['files'])} files, build {result.record.seq} of "
        f"{result.record.name!r} at tree size {result.record.tree_size}"
    )
    bad_rows = result.audit.bad_rows
    if bad_rows:
        # Rows that could not be read are in no record: say so, as `audit dataset` does.
        typer.echo(f"{len(bad_rows)} bad row(s) skipped, not in the pack:")
        for bad in bad_rows[:10]:
            typer.echo(f"  bad row: {bad}")
    if result.stored is not None:
        typer.echo(
            f"stored in the ledger: {result.stored.size} bytes, sha256 {result.stored.sha256}"
        )
    typer.echo(f"verify: ledger manifest verify {result.path} --key '{vkey}'")


@app.command("list")
@handle_errors
def list_cmd(
    name: Annotated[str | None, typer.Argument(help="Only the builds of this name.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The builds registry, oldest first, with each build's stored pack (read-only)."""
    from ledger.manifest import list_builds
    from ledger.manifest.stored import stored_packs

    with open_ledger() as lg:
        builds = list_builds(lg.store, name)
        packs = stored_packs(lg.store.engine, [b.seq for b in builds])
    if json_out:
        print_json(
            {
                "builds": [
                    b.to_dict() | {"stored": p.to_dict() if (p := packs.get(b.seq)) else None}
                    for b in builds
                ]
            }
        )
        return
    if not builds:
        typer.echo("no builds" + (f" of {name!r}" if name is not None else ""))
    for b in builds:
        pack = packs.get(b.seq)
        stored = f"stored {pack.size} bytes sha256 {pack.sha256[:16]}" if pack else "not stored"
        typer.echo(
            f"{b.seq:>5}  {b.name}  {b.version or '-'}  tree {b.tree_size}  "
            f"{b.examples} examples  {b.built_at.isoformat(timespec='seconds')}  {stored}"
        )


@app.command("get")
@handle_errors
def get_cmd(
    name: Annotated[str, typer.Argument(help="The dataset name of the build.")],
    out: Annotated[Path, typer.Option("--out", help="The zip file to write (new).")],
    build_seq: Annotated[
        int | None, typer.Option("--build", help="This build (default: the latest stored).")
    ] = None,
) -> None:
    """Write a pack stored in the ledger to a zip file (read-only)."""
    from ledger.manifest.stored import pick_stored, write_stored

    if out.exists():
        raise fail(f"{out} already exists")
    with open_ledger() as lg:
        build, pack = pick_stored(lg.store, name, build_seq)
        write_stored(lg.store.engine, pack, out)
    typer.echo(f"{out}: build {build.seq} of {name!r}, {pack.size} bytes, sha256 {pack.sha256}")


@app.command("verify")
@handle_errors
def verify_cmd(
    pack: Annotated[Path, typer.Argument(help="The pack folder or zip.")],
    key: Annotated[str, typer.Option("--key", help="The log's verifier key, or a file with it.")],
    dataset: Annotated[
        list[Path] | None,
        typer.Option("--dataset", help="A dataset file to check and re-link (repeatable)."),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="A checkpoint you kept earlier (fork/rollback)."),
    ] = None,
    policies: Annotated[
        Path | None, typer.Option("--policies", help="Your own policy folder, to compare.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Check an evidence pack offline: exit 0 if every check passes, 1 at the first failure."""
    from ledger.manifest import verify

    vkey = key
    if "+" not in key and Path(key).is_file():
        vkey = _read_text(Path(key), "key file").strip()
    earlier = _read_text(checkpoint, "checkpoint") if checkpoint is not None else None
    if policies is not None and not policies.is_dir():
        raise fail(f"--policies {policies} is not a folder")
    result = verify(pack, vkey, datasets=dataset or None, checkpoint=earlier, policies=policies)
    if json_out:
        print_json(result.to_dict())
    else:
        for name in result.passed:
            typer.echo(f"ok   {name}")
        for diff in result.differences:
            typer.echo(
                f"diff leaf {diff.leaf_index}: pack {diff.pack}, your policies {diff.auditor}"
            )
        if result.differences:
            typer.echo(f"{result.example_differences} examples would get another verdict")
    if result.failure is not None:
        raise fail(str(result.failure), EXIT_CHECK_FAILED)


@app.command("export")
@handle_errors
def export_cmd(
    pack: Annotated[Path, typer.Argument(help="The pack folder or zip.")],
    format_: Annotated[
        str, typer.Option("--format", help="croissant, eu-template or card.")
    ] = "croissant",
    markdown: Annotated[
        bool, typer.Option("--markdown", help="eu-template as Markdown instead of JSON.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this new file instead of stdout.")
    ] = None,
) -> None:
    """Export a pack as Croissant 1.1 JSON-LD, the EU public-summary sections, or a card.

    The export does not check signatures: run `ledger manifest verify` first.
    """
    from ledger.manifest.export import export

    text = export(pack, format_, markdown=markdown)
    if out is None:
        typer.echo(text, nl=False)
        return
    with new_file(out, "--out") as handle:
        handle.write(text)
