"""`ledger token create|list|revoke`: bearer tokens of the audit service (``ledger serve``).

A token is printed once, by ``create``, and only its SHA-256 is stored; ``list`` shows ids,
names, roles and scopes, never tokens. A recorder token is bound to one recorder public key
(``--recorder-key``: a PEM file, registered on the spot, or the id of a registered key).
Revoking adds a row (the token tables are append-only) and takes effect on the next request.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ledger.cli._common import fail, handle_errors, open_ledger, print_json

if TYPE_CHECKING:
    from ledger._ledger import Ledger

app = typer.Typer(help="Bearer tokens of the audit service.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _recorder_key(lg: Ledger, value: str) -> str:
    """The key id ``--recorder-key`` names, registering a PEM public key file first."""
    from ledger.api.keys import find_recorder_key, register_recorder_key
    from ledger.crypto.keys import VerifyingKey
    from ledger.errors import InputError

    path = Path(value)
    if path.is_file():
        try:
            key = VerifyingKey.from_pem(path.read_bytes())
        except OSError as exc:
            raise InputError(f"cannot read recorder key {path}: {exc.strerror}") from exc
        return register_recorder_key(lg, key.raw, path.stem).key_id
    return find_recorder_key(lg, value.strip().lower()).key_id


@app.command("create")
@handle_errors
def create(
    role: Annotated[str, typer.Option("--role", help="recorder, auditor or admin.")],
    name: Annotated[str, typer.Option("--name", help="A label saying who holds the token.")],
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", help="Auditor tokens: see only this dataset (repeatable)."),
    ] = None,
    recorder_key: Annotated[
        str | None,
        typer.Option(
            "--recorder-key",
            help="Recorder tokens: a PEM public key file, or a registered recorder key id.",
        ),
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime such as 30d, 12h or 2w.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    from ledger.api.tokens import create_token, parse_duration

    lifetime = parse_duration(expires) if expires is not None else None
    if role == "recorder" and recorder_key is None:
        raise fail("a recorder token needs --recorder-key (PEM file or registered key id)")
    with open_ledger(write=True) as lg:
        key_id = _recorder_key(lg, recorder_key) if recorder_key is not None else None
        token, info = create_token(
            lg.store.engine,
            role=role,
            name=name,
            datasets=dataset or None,
            recorder_key_id=key_id,
            expires_in=lifetime,
        )
    if json_output:
        print_json({"token": token, **info.to_dict()})
        return
    typer.echo(token)
    typer.echo(
        f"token {info.token_id} ({info.role}, {info.name}) created; it is shown only now",
        err=True,
    )


@app.command("list")
@handle_errors
def list_(json_output: JsonOption = False) -> None:
    """List every token (ids, names, roles, scopes; never the tokens themselves)."""
    from ledger.api.tokens import list_tokens

    with open_ledger() as lg:
        infos = list_tokens(lg.store.engine)
    if json_output:
        print_json([i.to_dict() for i in infos])
        return
    for info in infos:
        state = "active" if info.active() else ("revoked" if info.revoked_at else "expired")
        scope = ",".join(info.datasets) if info.datasets is not None else "all datasets"
        if info.role == "recorder":
            scope = f"key {(info.recorder_key_id or '')[:16]}"
        until = info.expires_at.isoformat() if info.expires_at else "never"
        typer.echo(
            f"{info.token_id}  {info.role:<8} {state:<8} {info.name}  ({scope}; expires {until})"
        )


@app.command("revoke")
@handle_errors
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token id (from `ledger token list`).")],
    json_output: JsonOption = False,
) -> None:
    """Revoke a token for good."""
    from ledger.api.tokens import revoke_token

    with open_ledger(write=True) as lg:
        info = revoke_token(lg.store.engine, token_id)
    if json_output:
        print_json(info.to_dict())
        return
    typer.echo(f"token {info.token_id} ({info.name}) revoked")
