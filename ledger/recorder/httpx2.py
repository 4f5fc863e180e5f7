"""Recording transports for ``httpx2`` clients (sync and async twins, side by side).

The recording logic is shared with ``ledger.recorder.httpx`` (see :mod:`ledger.recorder.tee` for
its invariants); this module only binds it to ``httpx2``'s own base classes, because
``httpx`` and ``httpx2`` types are distinct and each client accepts only its own.
"""

from __future__ import annotations

import httpx2

from ledger.recorder.core import Recorder
from ledger.recorder.tee import AsyncTee, SyncTee, record_async, record_sync

__all__ = ["AsyncHttpx2RecordingTransport", "Httpx2RecordingTransport"]


class _TeeStream(SyncTee, httpx2.SyncByteStream):
    __slots__ = ()


class _AsyncTeeStream(AsyncTee, httpx2.AsyncByteStream):
    __slots__ = ()


class Httpx2RecordingTransport(httpx2.BaseTransport):
    """An ``httpx2`` transport that records every attempt through ``recorder``.

    Args:
        recorder: The recorder that builds and writes entries.
        inner: The transport that really sends requests; default ``httpx2.HTTPTransport()``.

    Example:
        >>> rec = Recorder(ledger.open(), purpose="research")  # doctest: +SKIP
        >>> client = httpx2.Client(transport=Httpx2RecordingTransport(rec))  # doctest: +SKIP
    """

    def __init__(self, recorder: Recorder, inner: httpx2.BaseTransport | None = None) -> None:
        self.recorder = recorder
        self.inner = inner if inner is not None else httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request`` through the inner transport and tee the response body."""
        return record_sync(
            self.recorder, request, self.inner.handle_request, _TeeStream, httpx2.SyncByteStream
        )

    def close(self) -> None:
        """Close the inner transport."""
        self.inner.close()


class AsyncHttpx2RecordingTransport(httpx2.AsyncBaseTransport):
    """An ``httpx2`` async transport that records every attempt through ``recorder``.

    Args:
        recorder: The recorder that builds and writes entries.
        inner: The transport that really sends requests; default ``httpx2.AsyncHTTPTransport()``.
    """

    def __init__(self, recorder: Recorder, inner: httpx2.AsyncBaseTransport | None = None) -> None:
        self.recorder = recorder
        self.inner = inner if inner is not None else httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request`` through the inner transport and tee the response body."""
        return await record_async(
            self.recorder,
            request,
            self.inner.handle_async_request,
            _AsyncTeeStream,
            httpx2.AsyncByteStream,
        )

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self.inner.aclose()
