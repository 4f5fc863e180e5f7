"""Recording transports for ``httpx`` clients (sync and async twins, side by side).

Invariants:

- The transport only snapshots the request, tags the response with ``x-ledger-entry-id`` and
  replaces ``response.stream`` with a tee; everything else happens behind the ``Recorder``.
- The tee yields every chunk unchanged the moment the inner stream yields it: no buffering, no
  read-ahead, no added latency to the first chunk.
- Finalization happens in ``close()``/``aclose()``, the hook httpx and the SDKs always call (end
  of body, ``send(stream=False)``, errors, early exit from a stream); the inner stream is closed
  in ``finally`` so the pooled connection is released even if recording raises. A stream dropped
  without ``close()`` is finalized as ``truncated`` when it is garbage collected.
- Outcome: ``complete`` once the inner stream is exhausted, ``error`` if it raised, otherwise
  ``truncated``.
- ``httpx`` and ``httpx2`` types are distinct; these classes serve ``httpx`` only (see
  ``ledger.recorder.httpx2``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import httpx

from ledger.errors import RecordingError
from ledger.recorder.core import Call, Recorder

__all__ = ["AsyncRecordingTransport", "RecordingTransport"]


class _TeeStream(httpx.SyncByteStream):
    __slots__ = ("_call", "_closed", "_inner")

    def __init__(self, inner: httpx.SyncByteStream, call: Call) -> None:
        self._inner = inner
        self._call = call
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        call = self._call
        feed = call.feed
        try:
            for chunk in self._inner:
                feed(chunk)
                yield chunk
        except Exception as exc:
            call.fail(exc)
            raise
        call.ended = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._call.finish()
        finally:
            self._inner.close()

    def __del__(self) -> None:
        if not self._closed:
            self._call.abandon()


class _AsyncTeeStream(httpx.AsyncByteStream):
    __slots__ = ("_call", "_closed", "_inner")

    def __init__(self, inner: httpx.AsyncByteStream, call: Call) -> None:
        self._inner = inner
        self._call = call
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        call = self._call
        feed = call.feed
        try:
            async for chunk in self._inner:
                feed(chunk)
                yield chunk
        except Exception as exc:
            call.fail(exc)
            raise
        call.ended = True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._call.afinish()
        finally:
            await self._inner.aclose()

    def __del__(self) -> None:
        if not self._closed:
            self._call.abandon()


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
        call = self.recorder.begin(
            request.method,
            str(request.url),
            request.headers.multi_items(),
            request.read(),
            request.headers.__delitem__,
        )
        try:
            response = self.inner.handle_request(request)
        except Exception as exc:
            call.fail(exc)
            # The transport error is the news here; with sync durability a failure to record
            # it has already been spooled and logged, so it must not mask the original error.
            with contextlib.suppress(RecordingError):
                call.finish()
            raise
        call.respond(response.status_code, response.headers)
        response.headers["x-ledger-entry-id"] = call.entry_id
        stream = response.stream
        if not isinstance(stream, httpx.SyncByteStream):
            raise TypeError(f"the inner transport returned a {type(stream).__name__} stream")
        response.stream = _TeeStream(stream, call)
        return response

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
        call = self.recorder.begin(
            request.method,
            str(request.url),
            request.headers.multi_items(),
            await request.aread(),
            request.headers.__delitem__,
        )
        try:
            response = await self.inner.handle_async_request(request)
        except Exception as exc:
            call.fail(exc)
            with contextlib.suppress(RecordingError):
                await call.afinish()
            raise
        call.respond(response.status_code, response.headers)
        response.headers["x-ledger-entry-id"] = call.entry_id
        stream = response.stream
        if not isinstance(stream, httpx.AsyncByteStream):
            raise TypeError(f"the inner transport returned a {type(stream).__name__} stream")
        response.stream = _AsyncTeeStream(stream, call)
        return response

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self.inner.aclose()
