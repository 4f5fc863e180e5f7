"""A chunk of Ed25519 signature checks: the task a signature worker interpreter runs.

It lives apart from :mod:`ledger.manifest`, whose package pulls in the pack builder and the
database layer: a worker that imported it took 0.45 s to start, against 0.1 s for this
module and the keys alone, and the verifier's first chunks waited for it.

Invariants:

* An item is ``(leaf, body bytes, key id, signature)``; the result of a chunk is the first
  leaf whose signature does not verify under its key (with the reason), or None.
* A worker holds only public keys, set once by :func:`init`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ledger.crypto.keys import VerifyingKey
from ledger.errors import SignatureError

__all__ = ["Item", "check", "check_with", "init"]

Item = tuple[int, bytes, str, bytes]
_keys: dict[str, VerifyingKey] = {}


def init(keys: Mapping[str, bytes]) -> None:
    """A worker's initializer: the raw public keys by key id."""
    _keys.clear()
    _keys.update({key_id: VerifyingKey.from_raw(raw) for key_id, raw in keys.items()})


def check(chunk: Sequence[Item]) -> tuple[int, str] | None:
    """A worker's task, under the keys its :func:`init` was given."""
    return check_with(_keys, chunk)


def check_with(keys: Mapping[str, VerifyingKey], chunk: Sequence[Item]) -> tuple[int, str] | None:
    """The first ``(leaf, reason)`` of ``chunk`` whose signature fails under ``keys``, or None."""
    for leaf, body, key_id, signature in chunk:
        try:
            keys[key_id].verify(signature, body)
        except SignatureError as exc:
            return leaf, str(exc)
    return None
