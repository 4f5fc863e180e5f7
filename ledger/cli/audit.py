"""`ledger audit ...` commands: audits that look across many entries.

``ledger audit dataset FILE...`` links every example of a training set to the entries that
produced it (:mod:`ledger.audit`) and judges it for the dataset's declared purpose. Exit 0 when
every example is linked and allowed or conditional (``--max-unlinked`` tolerates a share of
unlinked rows; bad rows count as unlinked), 1 otherwise, 2 on bad input. The ledger is opened
read-only; the fingerprint key comes from the home's secret or from ``--fingerprint-key``.

``ledger audit conduct`` runs the conduct detectors (:mod:`ledger.policy.conduct`) over the
configured ledger. Exit codes follow the CLI contract: 0 no finding, 1 at least one finding (the
check failed), 2 bad input or configuration. Thresholds and official-host overrides come from
the YAML file named by ``--config`` or the ``LEDGER_CONDUCT_CONFIG`` setting.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from ledger.audit import DEFAULT_NEAR_THRESHOLD, DEFAULT_WRAPPERS, FORMATS
from ledger.cli._common import (
    EXIT_CHECK_FAILED,
    current_settings,
    fail,
    handle_errors,
    new_file,
    open_ledger,
    print_json,
    read_settings,
)
from ledger.entry_body import call_time
from ledger.errors import ConfigError, InputError
from ledger.policy.conduct import ConductThresholds, Finding, detect, load_conduct_config
from ledger.vocabulary import resolve_provider

if TYPE_CHECKING:
    from ledger.audit import DatasetAudit

__all__ = ["app"]

app = typer.Typer(help="Audits of datasets and of conduct across calls.", no_args_is_help=True)


@app.callback()
def _audit() -> None:
    """Audits that look across many ledger entries."""


def _parse_since(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"--since {value!r} is not an ISO 8601 date or time") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _entry_time(body: Mapping[str, Any]) -> datetime | None:
    # The one body reader's rule (started_at, else recorded_at; aware UTC; no guessed zone).
    return call_time(body)[0]


def _load_config(path: Path) -> tuple[ConductThresholds, dict[str, frozenset[str]] | None]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read conduct config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"conduct config {path} is not valid YAML: {exc}") from exc
    if data is None:
        return ConductThresholds(), None
    if not isinstance(data, Mapping):
        raise ConfigError(f"conduct config {path} must be a mapping of threshold names")
    return load_conduct_config(data)


def _print_text(findings: list[Finding], examined: int) -> None:
    if not findings:
        typer.echo(f"No conduct findings in {examined} entries.")
        return
    typer.echo(f"{len(findings)} conduct finding(s) in {examined} entries:")
    for finding in findings:
        leaves = finding.leaf_indexes
        shown = ", ".join(str(i) for i in leaves[:8]) + (", ..." if len(leaves) > 8 else "")
        typer.echo(
            f"\n[{finding.severity}] {finding.kind}  {finding.provider}  "
            f"{finding.first_at} .. {finding.last_at}  {len(leaves)} entries: {shown}"
        )
        typer.echo(f"    {finding.summary}")
        for ref in finding.clauses:
            typer.echo(f"    source: {ref.source_url} ({ref.rule_id}, confidence {ref.confidence})")


@app.command("conduct")
@handle_errors
def conduct(
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="Only entries started at or after this ISO date/time.")
    ] = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider's entries.")] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="YAML file of thresholds and official_hosts (default: settings)."),
    ] = None,
) -> None:
    """Detect conduct the providers' terms forbid: multiple accounts, rate-limit evasion, key
    sharing, unofficial endpoints, spoofed client identity, retries after safety refusals.

    Exit 0 when nothing is found, 1 when there are findings, 2 on bad input.
    """
    settings = read_settings()  # a read command: no pydantic-settings (start-up, issue 8)
    since_at = _parse_since(since) if since is not None else None
    config_path = config or settings.conduct_config
    thresholds, hosts = (
        _load_config(config_path) if config_path is not None else (ConductThresholds(), None)
    )
    database = settings.home / "ledger.db"
    if settings.database_url is None and not database.exists():
        raise fail(f"no ledger at {database} (run `ledger init` or pass --home)")
    selected: list[tuple[int, Mapping[str, Any]]] = []
    with open_ledger() as lg:
        for stored in lg.entries(
            provider=resolve_provider(provider) if provider is not None else None
        ):
            body = stored.body
            if since_at is not None:
                at = _entry_time(body)
                if at is None or at < since_at:
                    continue
            selected.append((stored.leaf_index, body))
    findings = detect(selected, thresholds=thresholds, official_hosts=hosts)
    if json_out:
        print_json(
            {
                "findings": [f.to_dict() for f in findings],
                "entries_examined": len(selected),
                "thresholds": thresholds.to_dict(),
            }
        )
    else:
        _print_text(findings, len(selected))
    if findings:
        raise typer.Exit(EXIT_CHECK_FAILED)


# -- audit dataset ---------------------------------------------------------------------------


def _key_file(path: Path) -> tuple[str | None, bytes]:
    from ledger.crypto.fingerprint import parse_key_file

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read key file {path}: {exc.strerror}") from exc
    return parse_key_file(text)


def _print_dataset(audit: DatasetAudit) -> None:
    summary = audit.summary()
    typer.echo(
        f"{summary['examples']} examples in {len(audit.files)} file(s), purpose "
        f"{audit.purpose}: {summary['linked']} linked ({summary['linked_percent']}%), "
        f"{summary['unlinked']} unlinked, {summary['bad_rows']} bad rows"
    )
    by_match = ", ".join(f"{k} {v}" for k, v in summary["by_match"].items())
    by_verdict = ", ".join(f"{k} {v}" for k, v in summary["by_verdict"].items())
    typer.echo(f"  by match:   {by_match}")
    typer.echo(f"  by verdict: {by_verdict}")
    if summary["ambiguous"]:
        typer.echo(f"  ambiguous (several candidate entries): {summary['ambiguous']}")
    if summary["purpose_drift"]:
        purposes = ", ".join(f"{k} {v}" for k, v in summary["drift_purposes"].items())
        typer.echo(
            f"  purpose drift: {summary['purpose_drift']} examples come from calls recorded "
            f"for another purpose ({purposes})"
        )
    for name in ("by_provider", "by_model", "by_policy_version", "by_month"):
        if summary[name]:
            values = ", ".join(f"{k} {v}" for k, v in summary[name].items())
            typer.echo(f"  {name.replace('_', ' ')}: {values}")
    for duty in audit.duties:
        typer.echo(f"  duty: {duty.description} [{duty.rule_id}] ({duty.examples} examples)")
    for finding in audit.conduct:
        typer.echo(f"  conduct [{finding.severity}] {finding.kind}: {finding.summary}")
    for problem in audit.id_findings[:10]:
        typer.echo(f"  id: {problem.file}:{problem.line}: {problem.entry_id}: {problem.problem}")
    for bad in audit.bad_rows[:10]:
        typer.echo(f"  bad row: {bad}")
    for row in summary["first_unlinked"][:10]:
        typer.echo(f"  unlinked: {row['file']}:{row['line']} (row {row['index']})")
    for note in audit.notes[:10]:
        typer.echo(f"  note: {note}")


@app.command("dataset")
@handle_errors
def dataset(
    files: Annotated[
        list[Path], typer.Argument(help="Dataset files (JSONL, JSON, CSV, Parquet, HF folders).")
    ],
    format_: Annotated[
        str,
        typer.Option("--format", help=f"Row shape or container: {', '.join(FORMATS)}."),
    ] = "auto",
    purpose: Annotated[str, typer.Option(help="The dataset's declared purpose.")] = "train-model",
    facts: Annotated[
        Path | None,
        typer.Option("--facts", help="Organization profile YAML (default: LEDGER_FACTS_FILE)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    records: Annotated[
        Path | None,
        typer.Option("--records", help="Write one JSON line per example to this new file."),
    ] = None,
    max_unlinked: Annotated[
        float,
        typer.Option("--max-unlinked", help="Tolerated unlinked rows, in percent.", min=0, max=100),
    ] = 0.0,
    strict: Annotated[bool, typer.Option(help="A bad row is fatal (exit 2).")] = False,
    text_field: Annotated[
        str | None, typer.Option(help="Dotted path of the trained text in each row.")
    ] = None,
    id_field: Annotated[
        str, typer.Option(help="Field holding the entry id (top level or under metadata).")
    ] = "ledger_entry_id",
    fingerprint_key: Annotated[
        Path | None,
        typer.Option(help="Key file of one dataset (instead of the home's secret)."),
    ] = None,
    dataset_names: Annotated[
        list[str] | None,
        typer.Option("--dataset", help="Only entries recorded under this dataset name."),
    ] = None,
    near_threshold: Annotated[
        float, typer.Option(help="Sketch similarity from which a near link counts.")
    ] = DEFAULT_NEAR_THRESHOLD,
    wrapper: Annotated[
        list[str] | None,
        typer.Option(help="Extra template regex with (?P<answer>) and (?P<reasoning>) groups."),
    ] = None,
    conduct_: Annotated[
        bool, typer.Option("--conduct/--no-conduct", help="Conduct findings over linked entries.")
    ] = True,
) -> None:
    """Link every example of a dataset to the teacher calls that produced it, and judge it.

    Exit 0 when every example is linked and allowed or conditional, 1 otherwise, 2 on bad input.
    """
    settings = current_settings()
    if records is not None and records.exists():
        # Before the audit, which can take minutes: --records never replaces a file.
        raise fail(f"{records} already exists (--records writes a new file)")
    profile_path = facts or settings.facts_file
    from ledger.policy.facts import DeclaredFacts, load_facts_file

    profile = load_facts_file(profile_path) if profile_path else DeclaredFacts()
    keys: Any = None
    names: list[str | None] | None = list(dataset_names) if dataset_names else None
    if fingerprint_key is not None:
        name, key = _key_file(fingerprint_key)
        keys = {name: key}
        if names is None:
            names = [name]
    database = settings.home / "ledger.db"
    if settings.database_url is None and not database.exists():
        raise fail(f"no ledger at {database} (run `ledger init` or pass --home)")
    options: dict[str, Any] = {
        "purpose": purpose,
        "profile": profile,
        "format": format_,
        "text_field": text_field,
        "id_field": id_field,
        "datasets": names,
        "wrappers": (*DEFAULT_WRAPPERS, *(wrapper or ())),
        "near_threshold": near_threshold,
        "conduct": conduct_,
        "strict": strict,
    }
    if keys is not None:
        options["keys"] = keys
    with open_ledger() as lg:
        if sys.stderr.isatty() and not json_out:
            from rich.console import Console
            from rich.progress import Progress

            with Progress(console=Console(stderr=True), transient=True) as bar:
                tasks: dict[str, Any] = {}

                def progress(phase: str, done: int, total: int | None) -> None:
                    if phase not in tasks:
                        tasks[phase] = bar.add_task(phase, total=total)
                    bar.update(tasks[phase], completed=done, total=total)

                audit = lg.audit_dataset(files, progress=progress, **options)
        else:
            audit = lg.audit_dataset(files, **options)
    if records is not None:
        with new_file(records, "--records") as out:
            audit.write_records(out)
    if json_out:
        print_json(audit.to_dict())
    else:
        _print_dataset(audit)
    if not audit.passed(max_unlinked):
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("key")
@handle_errors
def key(
    dataset: Annotated[
        str | None, typer.Argument(help="Dataset name (omit for calls recorded without one).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the key to this new file (default: stdout)."),
    ] = None,
) -> None:
    """Export one dataset's fingerprint key for its auditor (for --fingerprint-key).

    The key opens that dataset's output fingerprints and no other's; keep it as secret as the
    dataset itself.
    """
    from ledger.crypto.fingerprint import key_file_text

    with open_ledger() as lg:
        text = key_file_text(dataset, lg.fingerprint_key(dataset))
    if out is None:
        typer.echo(text, nl=False)
        return
    with new_file(out, "--out", mode=0o600) as handle:
        handle.write(text)
