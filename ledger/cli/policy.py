"""`ledger policy ...` commands: list, show, lint, export and check provider policies.

Exit codes follow the CLI contract: 0 ok; ``lint`` exits 1 when a file fails; bad input (an
unknown purpose, a bad date or fact, an unknown provider, a path that does not exist) exits 2
with one line on stderr. ``check`` and ``diff`` exit 0 whatever they find: they are reports, not
gates. Every command that reports takes ``--json``. Provider names go through
:func:`ledger.vocabulary.resolve_provider`, so aliases (``xai``, ``mistral``, ``bedrock``) work
and a typo gets a did-you-mean. Clauses known only from secondary sources (confidence S or U)
print as UNVERIFIED. Verdicts report what dated terms say, with their sources; they are not
legal advice.
"""

from __future__ import annotations

import datetime as dt
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.cli._common import EXIT_CHECK_FAILED, current_settings, fail, handle_errors, print_json
from ledger.errors import InputError
from ledger.policy.diff import PolicyDiff, RuleChange, diff_policy
from ledger.policy.engine import evaluate
from ledger.policy.facts import CallFacts, DeclaredFacts, load_facts_file
from ledger.policy.loader import PolicySet, default_policies, lint_paths, load_policies
from ledger.policy.loader import version_digest as _digest
from ledger.policy.odrl import export_odrl
from ledger.policy.schema import PURPOSES, PolicyFile
from ledger.policy.verdict import RuleRef, Verdict
from ledger.vocabulary import resolve_provider

__all__ = ["app"]

app = typer.Typer(help="Provider policies: list, show, lint, export, check.", no_args_is_help=True)

DISCLAIMER = (
    "This reports what the dated terms say, with their sources. It is not legal advice and "
    "says nothing about what is lawful or enforceable."
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
PoliciesOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--policies",
        help="Policy file or folder to use instead of the shipped policies (repeatable).",
    ),
]


def _policies(paths: list[Path] | None) -> PolicySet:
    return load_policies(paths) if paths else default_policies()


def _provider(policies: PolicySet, name: str) -> str:
    """The provider slug ``name`` stands for.

    A slug that a loaded policy governs is taken as written, so files given with
    ``--policies`` may name providers of their own (a self-configured host, say); anything
    else goes through :func:`resolve_provider`, which knows the aliases and raises
    InputError with a did-you-mean for a typo.
    """
    if policies.for_provider(name):
        return name
    return resolve_provider(name)


def _find(policies: PolicySet, name: str) -> list[PolicyFile]:
    """The policy with id ``name``, else the policies governing provider ``name`` (or alias)."""
    found = policies.get(name)
    if found is not None:
        return [found]
    slug = _provider(policies, name)
    chosen = policies.for_provider(slug)
    if not chosen:
        raise InputError(f"no policy governs provider {slug!r}")
    return chosen


def _confidence_counts(policy: PolicyFile) -> dict[str, int]:
    """Rule entries of every version by confidence (P primary text ... U unverified)."""
    counts = dict.fromkeys(("P", "C", "S", "U"), 0)
    for version in policy.versions:
        for rule in version.rules:
            counts[rule.confidence] += 1
    return counts


@app.command("list")
@handle_errors
def list_policies(as_json: JsonOpt = False, policies: PoliciesOpt = None) -> None:
    """List the policies: id, layer, providers and dated versions."""
    rows: list[dict[str, Any]] = [
        {**p.summary(), "rules_by_confidence": _confidence_counts(p)}
        for p in _policies(policies).policies
    ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        scope = ", ".join(row["providers"]) or "chosen by model id"
        counts = row["rules_by_confidence"]
        rules = f"{sum(counts.values())} rules, {counts['P']} from primary text"
        typer.echo(f"{row['id']:<18} {row['layer']:<12} {scope} ({rules})")
        for version in row["versions"]:
            until = version["effective_until"] or "now"
            typer.echo(f"    {version['id']:<46} {version['effective_from']} .. {until}")


@app.command("show")
@handle_errors
def show(
    provider: Annotated[str, typer.Argument(help="Policy id or provider slug.")],
    as_json: JsonOpt = False,
    policies: PoliciesOpt = None,
) -> None:
    """Show every version of a policy with its sources and rules."""
    chosen = _find(_policies(policies), provider)
    if as_json:
        print_json(
            [
                p.model_dump(mode="json")
                | {"version_sha256": {v.id: _digest(v) for v in p.versions}}
                for p in chosen
            ]
        )
        return
    for policy in chosen:
        typer.echo(f"{policy.id}: {policy.title} ({policy.layer}; set by {policy.assigner})")
        for version in policy.versions:
            until = version.effective_until or "now"
            typer.echo(
                f"\n  version {version.id}: {version.effective_from} .. {until} "
                f"(date {version.date_basis}, confidence {version.date_confidence}"
                f"{' UNVERIFIED' if version.date_confidence in ('S', 'U') else ''})"
            )
            if version.models:
                typer.echo(f"    models: {', '.join(version.models)}")
            for doc in version.documents:
                mark = " UNVERIFIED" if doc.confidence in ("S", "U") else ""
                typer.echo(f"    source {doc.id}: {doc.title} [{doc.confidence}{mark}] {doc.url}")
                if doc.evidence:
                    # Where the text was read, so a reviewer can repeat the check.
                    typer.echo(f"      read from: {doc.evidence}")
            for rule in version.rules:
                subject = (
                    f"conduct {rule.conduct}" if rule.conduct else ", ".join(rule.purposes or [])
                )
                mark = " UNVERIFIED" if rule.confidence in ("S", "U") else ""
                typer.echo(
                    f"    - {rule.type} {rule.id} ({subject}) {rule.clause} "
                    f"[{rule.confidence}{mark}]"
                )
                typer.echo(f"        {rule.paraphrase}")
    typer.echo(f"\n{DISCLAIMER}")


@app.command("evidence")
@handle_errors
def evidence(
    provider: Annotated[
        str | None, typer.Argument(help="Policy id or provider slug (default: all).")
    ] = None,
    as_json: JsonOpt = False,
    policies: PoliciesOpt = None,
) -> None:
    """The evidence table: every source document, how sure we are of it, and where it was read.

    One row per document of every version (archive commit or stored page in ``read from``), so a
    reviewer can open the same snapshot and repeat the check. Rules cite these documents.
    """
    policy_set = _policies(policies)
    chosen = list(policy_set.policies) if provider is None else _find(policy_set, provider)
    rows = [
        {
            "policy": p.id,
            "version": v.id,
            "document": d.id,
            "title": d.title,
            "url": d.url,
            "date": d.date.isoformat() if d.date else None,
            "confidence": d.confidence,
            "verified": d.confidence not in ("S", "U"),
            "evidence": d.evidence,
            "rules": sum(1 for r in v.rules if r.source == d.id),
        }
        for p in chosen
        for v in p.versions
        for d in v.documents
    ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        mark = "" if row["verified"] else " UNVERIFIED"
        typer.echo(
            f"{row['policy']}/{row['version']}/{row['document']} [{row['confidence']}{mark}] "
            f"{row['rules']} rule(s): {row['title']}"
        )
        typer.echo(f"    read from: {row['evidence'] or '(not recorded)'}")


@app.command("lint")
@handle_errors
def lint(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Policy files or folders (default: the shipped policies)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate policy files: schema, date ranges, cited sources, purposes and facts.

    Exits 1 when any file fails, naming file and line for each problem.
    """
    missing = [p for p in paths or [] if not p.exists()]
    if missing:
        raise fail(f"no such file or folder: {missing[0]}")
    files, problems = lint_paths(paths or None)
    if not files:
        raise fail(f"no policy files (*.yaml) in {', '.join(str(p) for p in paths or [])}")
    if as_json:
        print_json(
            {
                "ok": not problems,
                "files": [str(f) for f in files],
                "problems": [
                    {"file": p.file, "line": p.line, "message": p.message} for p in problems
                ],
            }
        )
    else:
        for problem in problems:
            typer.echo(str(problem), err=True)
        status = "ok" if not problems else f"{len(problems)} problem(s)"
        typer.echo(f"{len(files)} policy file(s) checked: {status}")
    if problems:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("export")
@handle_errors
def export(
    provider: Annotated[
        str | None, typer.Argument(help="Policy id or provider slug (default: all).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="Export format: odrl.")] = "odrl",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (the export is always JSON-LD).")
    ] = False,
    policies: PoliciesOpt = None,
) -> None:
    """Export policy versions as W3C ODRL 2.2 JSON-LD (a JSON array of Offer policies)."""
    del as_json  # accepted like every reporting command's --json; the export is JSON already
    if fmt != "odrl":
        raise fail(f"unknown export format {fmt!r} (supported: odrl)")
    print_json(export_odrl(_policies(policies), provider))


def _parse_at(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--at {value!r} is not an ISO 8601 date or time") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@app.command("check")
@handle_errors
def check(
    provider: Annotated[str, typer.Argument(help="Provider slug, e.g. openai or self-hosted.")],
    model: Annotated[str, typer.Argument(help="Model id as sent or answered.")],
    purpose: Annotated[str, typer.Option("--purpose", help=f"One of: {', '.join(PURPOSES)}.")],
    at: Annotated[
        str | None,
        typer.Option("--at", help="Call time, ISO 8601 (UTC when no zone); default: now."),
    ] = None,
    fact: Annotated[
        list[str] | None,
        typer.Option("--fact", help="Declared fact key=value, overriding the profile (repeat)."),
    ] = None,
    facts_file: Annotated[
        Path | None,
        typer.Option(
            "--facts-file", help="Organization profile YAML (default: LEDGER_FACTS_FILE)."
        ),
    ] = None,
    modality: Annotated[
        str, typer.Option("--modality", help="Output modality: text, embedding, image, audio.")
    ] = "text",
    host: Annotated[str | None, typer.Option("--host", help="Endpoint host, if known.")] = None,
    as_json: JsonOpt = False,
    policies: PoliciesOpt = None,
) -> None:
    """Judge a call for a purpose under every layer of terms that applies.

    Exits 0 whatever the verdict: the command is a report, not a gate (use --json and read
    "verdict" to gate). Bad input exits 2. Not legal advice.
    """
    if purpose not in PURPOSES:
        raise fail(f"unknown purpose {purpose!r} (known: {', '.join(PURPOSES)})")
    if modality not in ("text", "embedding", "image", "audio"):
        raise fail(f"unknown output modality {modality!r}")
    when = _parse_at(at)
    profile_path = facts_file or current_settings().facts_file
    profile = load_facts_file(profile_path) if profile_path else DeclaredFacts()
    declared = profile.merged(DeclaredFacts.parse_pairs(fact or []))
    policy_set = _policies(policies)
    call = CallFacts.model_validate(
        {
            "provider": _provider(policy_set, provider),
            "model": model,
            "at": when,
            "host": host,
            "output_modality": modality,
        }
    )
    verdict = evaluate(call, purpose, declared, policies=policy_set)
    if as_json:
        print_json(verdict.to_dict() | {"disclaimer": DISCLAIMER})
        return
    _print_verdict(verdict, policy_set)


def _parse_day(option: str, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{option} {value!r} is not a date (YYYY-MM-DD)") from None


@app.command("diff")
@handle_errors
def diff(
    policy: Annotated[str, typer.Argument(help="Policy id or provider slug.")],
    from_day: Annotated[str, typer.Option("--from", help="Earlier day, YYYY-MM-DD.")],
    to_day: Annotated[str, typer.Option("--to", help="Later day, YYYY-MM-DD.")],
    as_json: JsonOpt = False,
    policies: PoliciesOpt = None,
) -> None:
    """Which rules changed between the versions in force on two days (added, removed, reworded).

    Use it to see whether calls made after a terms change need judging again. Exits 0 whatever
    changed (a report); bad input exits 2.
    """
    start, end = _parse_day("--from", from_day), _parse_day("--to", to_day)
    if end < start:
        raise fail(f"--to {end} is before --from {start}")
    diffs = [diff_policy(p, start, end) for p in _find(_policies(policies), policy)]
    if as_json:
        print_json([d.to_dict() for d in diffs])
        return
    for index, found in enumerate(diffs):
        if index:
            typer.echo("")
        _print_diff(found)


def _print_diff(found: PolicyDiff) -> None:
    typer.echo(
        f"{found.policy}: {found.from_day} -> {found.to_day}, version "
        f"{found.from_version or '(none)'} -> {found.to_version or '(none)'}"
    )
    if not found.changed:
        same = "the same version" if found.from_version == found.to_version else "no rule changes"
        typer.echo(f"  unchanged ({same})")
    for kind in ("added", "removed", "reworded"):
        for change in found.of_kind(kind):
            typer.echo(f"  {kind:<9} {_describe(change)}")
    for doc in found.documents:
        what = f": {', '.join(doc.fields)} changed" if doc.fields else ""
        view = doc.after or doc.before or {}
        typer.echo(f"  document {doc.change} {doc.document_id} ({view.get('title')}){what}")


def _describe(change: RuleChange) -> str:
    view = change.after or change.before or {}
    subject = (
        f"conduct {view['conduct']}"
        if view.get("conduct")
        else ", ".join(view.get("purposes") or [])
    )
    mark = " UNVERIFIED" if view.get("confidence") in ("S", "U") else ""
    text = f"{change.rule_id} ({view.get('type')}; {subject}) [{view.get('confidence')}{mark}]"
    if change.fields:
        text += f": {', '.join(change.fields)} changed"
    return text


def _rule_lines(rule: RuleRef) -> list[str]:
    mark = f"UNVERIFIED (confidence {rule.confidence}) " if not rule.verified else ""
    return [
        f"      {mark}{rule.clause} [{rule.confidence}]",
        f"      {rule.source_url}",
        f"      {rule.paraphrase}",
    ]


def _unverified_sources(policies: PolicySet, policy_id: str, version_id: str) -> list[str]:
    """The documents of a version known only at confidence S or U, as printable lines."""
    policy = policies.get(policy_id)
    if policy is None:
        return []
    try:
        version = policy.version(version_id)
    except KeyError:
        return []
    return [
        f"  UNVERIFIED source (confidence {doc.confidence}): {doc.title} {doc.url}"
        for doc in version.documents
        if doc.confidence in ("S", "U")
    ]


def _print_verdict(verdict: Verdict, policies: PolicySet) -> None:
    call: dict[str, Any] = dict(verdict.call)
    typer.echo(
        f"Verdict: {verdict.verdict.upper()} for purpose {verdict.purpose} "
        f"({call.get('provider')} {call.get('model')} at {call.get('at')})"
    )
    typer.echo(DISCLAIMER)
    for layer in verdict.layers:
        picked = (
            f"version {layer.version.version} (picked by {layer.version.selected_by})"
            if layer.version
            else "no version"
        )
        typer.echo(f"\n[{layer.layer}] {layer.policy}, {picked}: {layer.verdict}")
        if layer.version is not None:
            for line in _unverified_sources(policies, layer.policy, layer.version.version):
                typer.echo(line)
        for reason in layer.reasons:
            typer.echo(f"  - {reason.effect}: {reason.note}")
            if reason.rule is not None:
                typer.echo(f"      rule {reason.rule.rule_id}")
                for line in _rule_lines(reason.rule):
                    typer.echo(line)
    if verdict.duties:
        typer.echo("\nDuties:")
        for duty in verdict.duties:
            typer.echo(f"  - {duty.describe()} ({duty.rule_id})")
    if verdict.missing_facts:
        typer.echo(f"\nUndeclared facts needed: {', '.join(verdict.missing_facts)}")
    if verdict.facts:
        declared = ", ".join(f"{k}={v}" for k, v in sorted(verdict.facts.items()))
        typer.echo(f"\nDeclared facts: {declared}")
    typer.echo(f"Policy digest: {verdict.policy_digest}")
