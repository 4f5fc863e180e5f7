"""distill-ledger: a signed, tamper-evident provenance ledger for teacher-model API calls.

Example:
    >>> import ledger
    >>> lg = ledger.open()                       # SQLite under ./.ledger
    >>> receipt = lg.append({"provider": "openai", "purpose": "evaluate"})
    >>> lg.inclusion_proof(receipt.leaf_index, lg.size)
    [...]
    >>> client = ledger.wrap(openai.OpenAI(), ledger=lg, purpose="train-model")
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from ledger._ledger import Ledger
    from ledger._ledger import open_ledger as open
    from ledger.errors import (
        ConfigError,
        InputError,
        LedgerError,
        NotFoundError,
        PolicyError,
        RecordingError,
        StoreError,
        VerificationError,
    )
    from ledger.log.records import Receipt, StoredEntry
    from ledger.log.store import CheckpointRecord
    from ledger.log.verify import VerifyReport
    from ledger.recorder import (
        AsyncHttpx2RecordingTransport,
        AsyncRecordingTransport,
        Httpx2RecordingTransport,
        Recorder,
        RecordingTransport,
        recording,
        recording_client,
        wrap,
    )
    from ledger.recorder.ids import entry_id
    from ledger.remote import RemoteLedger, connect
    from ledger.settings import Settings

__version__ = "0.1.0"

__all__ = [
    "AsyncHttpx2RecordingTransport",
    "AsyncRecordingTransport",
    "CheckpointRecord",
    "ConfigError",
    "Httpx2RecordingTransport",
    "InputError",
    "Ledger",
    "LedgerError",
    "NotFoundError",
    "PolicyError",
    "Receipt",
    "Recorder",
    "RecordingError",
    "RecordingTransport",
    "RemoteLedger",
    "Settings",
    "StoreError",
    "StoredEntry",
    "VerificationError",
    "VerifyReport",
    "connect",
    "entry_id",
    "open",
    "recording",
    "recording_client",
    "wrap",
]

# Where each public name lives. Importing ``ledger`` loads none of them: a worker that needs one
# submodule (verify's) or a CLI command that needs a few does not pay for the policy engine,
# the recorders and the migrations. ``ledger.open`` is ``_ledger.open_ledger``.
_HOMES = {
    "Ledger": "ledger._ledger",
    "open": "ledger._ledger:open_ledger",
    "Receipt": "ledger.log.records",
    "StoredEntry": "ledger.log.records",
    "CheckpointRecord": "ledger.log.store",
    "VerifyReport": "ledger.log.verify",
    "Settings": "ledger.settings",
    "entry_id": "ledger.recorder.ids",
    "connect": "ledger.remote",
    "RemoteLedger": "ledger.remote",
    **dict.fromkeys(
        ["ConfigError", "InputError", "LedgerError", "NotFoundError", "PolicyError",
         "RecordingError", "StoreError", "VerificationError"],
        "ledger.errors",
    ),
    **dict.fromkeys(
        ["AsyncHttpx2RecordingTransport", "AsyncRecordingTransport", "Httpx2RecordingTransport",
         "Recorder", "RecordingTransport", "recording", "recording_client", "wrap"],
        "ledger.recorder",
    ),
}  # fmt: skip


if not _typing.TYPE_CHECKING:  # type checkers see the imports above instead

    def __getattr__(name: str) -> object:
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module 'ledger' has no attribute {name!r}")
        module, _, attribute = home.partition(":")
        value = getattr(_importlib.import_module(module), attribute or name)
        globals()[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
