"""The recorder: every teacher call made through a wrapped client becomes a signed ledger entry.

Invariants (details in each module):

- Recording never changes what the caller sees: bytes pass through unchanged and unbuffered;
  the only addition is the ``x-ledger-entry-id`` response header. ``x-ledger-*`` request headers
  are read and removed before the request leaves.
- One entry per HTTP attempt (SDK retries are separate entries), finalized exactly once as
  ``complete``, ``truncated`` or ``error``.
- No credential is ever stored, spooled or logged; accounts are HMAC fingerprints.
- ``durability="async"``: entries are committed or spooled to disk, never dropped, before a
  normal interpreter exit; ``flush()`` returns once every call that returned is committed or
  spooled, and what neither the ledger nor the spool takes is held and retried while the
  process lives (``ledger.recorder.sinks``). ``durability="sync"``: a call returns only once its
  entry is committed.

Example:
    >>> import openai, ledger  # doctest: +SKIP
    >>> client = ledger.wrap(openai.OpenAI(), purpose="train-model")  # doctest: +SKIP
    >>> with ledger.recording(tags=["batch-7"]):  # doctest: +SKIP
    ...     client.chat.completions.create(model="gpt-4.1", messages=[...])
"""

from __future__ import annotations

from ledger.log.ids import uuid7
from ledger.recorder.core import Recorder
from ledger.recorder.httpx import AsyncRecordingTransport, RecordingTransport
from ledger.recorder.httpx2 import AsyncHttpx2RecordingTransport, Httpx2RecordingTransport
from ledger.recorder.labels import PURPOSES, Labels, recording
from ledger.recorder.sinks import flush_all as flush
from ledger.recorder.spool import ReplayResult, SetAside, Spool, SpoolStatus
from ledger.recorder.wrap import recording_client, wrap

__all__ = [
    "PURPOSES",
    "AsyncHttpx2RecordingTransport",
    "AsyncRecordingTransport",
    "Httpx2RecordingTransport",
    "Labels",
    "Recorder",
    "RecordingTransport",
    "ReplayResult",
    "SetAside",
    "Spool",
    "SpoolStatus",
    "flush",
    "recording",
    "recording_client",
    "uuid7",
    "wrap",
]
