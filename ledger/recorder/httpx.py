"""Recording transports for ``httpx`` clients (sync and async twins, side by side).

The recording logic is shared with ``ledger.recorder.httpx2`` (see :mod:`ledger.recorder.tee` for
its invariants); this module only binds it to ``httpx``'s own base classes, because
``httpx`` and ``httpx2`` types are distinct and each client accepts only its own.
"""

from __future__ import annotations

import httpx

from ledger.recorder.core import Recorder
from ledger.recorder.tee import AsyncTee, SyncTee, record_async, record_sync

__all__ = ["AsyncRecordingTransport", "RecordingTransport"]


class _TeeStream(SyncTee, httpx.SyncByteStream):
    __slots__ = ()


class _AsyncTeeStream(AsyncTee, httpx.AsyncByteStream):
    __slots__ = ()


class RecordingTransport(httpx.BaseTransport):
    """An ``httpx`` transport that records every attempt through ``recorder``.

    Args:
        recorder: The recorder that builds and writes entries.
        inner: The transport that really sends requests; default ``httpx.HTTPTransport()``.

    Example:
        >>> rec = Recorder(ledger.open(), purpose="research")  # doctest: +SKIP
        >>> client = httpx.Client(transport=RecordingTransport(rec))  # doctest: +SKIP
    """

    def __init__(self, recorder: Recorder, inner: httpx.BaseTransport | None = None) -> None:
        self.recorder = recorder
        self.inner = inner if inner is not None else httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the inner transport and tee the response body."""
        return record_sync(
            self.recorder, request, self.inner.handle_request, _TeeStream, httpx.SyncByteStream
        )

    def close(self) -> None:
        """Close the inner transport."""
        self.inner.close()


class AsyncRecordingTransport(httpx.AsyncBaseTransport):
    """An ``httpx`` async transport that records every attempt through ``recorder``.

    Args:
        recorder: The recorder that builds and writes entries.
        inner: The transport that really sends requests; default ``httpx.AsyncHTTPTransport()``.
    """

    def __init__(self, recorder: Recorder, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.recorder = recorder
        self.inner = inner if inner is not None else httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the inner transport and tee the response body."""
        return await record_async(
            self.recorder,
            request,
            self.inner.handle_async_request,
            _AsyncTeeStream,
            httpx.AsyncByteStream,
        )

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self.inner.aclose()
