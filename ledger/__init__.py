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
    "Settings",
    "StoreError",
    "StoredEntry",
    "VerificationError",
    "VerifyReport",
    "open",
    "recording",
    "recording_client",
    "wrap",
]
