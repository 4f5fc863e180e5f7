"""`ledger audit ...` commands: audits that look across many entries.

``ledger audit conduct`` runs the conduct detectors (:mod:`ledger.policy.conduct`) over the
configured ledger. Exit codes follow the CLI contract: 0 no finding, 1 at least one finding (the
check failed), 2 bad input or configuration. Thresholds and official-host overrides come from
the YAML file named by ``--config`` or the ``LEDGER_CONDUCT_CONFIG`` setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from ledger.cli._common import (
    EXIT_CHECK_FAILED,
    current_settings,
    fail,
    handle_errors,
    open_ledger,
    print_json,
)
from ledger.entry_body import call_time
from ledger.errors import ConfigError
from ledger.policy.conduct import ConductThresholds, Finding, detect, load_conduct_config

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
    settings = current_settings()
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
        for stored in lg.entries(provider=provider):
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
