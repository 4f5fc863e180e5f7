"""Recording transports for ``httpx2`` clients (sync and async twins, side by side).

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
- ``httpx2`` and ``httpx`` types are distinct; these classes serve ``httpx2`` only (current
  ``openai``, ``anthropic`` and ``google-genai`` releases), ``ledger.recorder.httpx`` the other.
  The code mirrors ``ledger.recorder.httpx`` line by line so the two can be reviewed together.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import httpx2

from ledger.errors import RecordingError
from ledger.recorder.core import Call, Recorder

__all__ = ["AsyncHttpx2RecordingTransport", "Httpx2RecordingTransport"]


class _TeeStream(httpx2.SyncByteStream):
    __slots__ = ("_call", "_closed", "_inner")

    def __init__(self, inner: httpx2.SyncByteStream, call: Call) -> None:
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


class _AsyncTeeStream(httpx2.AsyncByteStream):
    __slots__ = ("_call", "_closed", "_inner")

    def __init__(self, inner: httpx2.AsyncByteStream, call: Call) -> None:
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
        if not isinstance(stream, httpx2.SyncByteStream):
            raise TypeError(f"the inner transport returned a {type(stream).__name__} stream")
        response.stream = _TeeStream(stream, call)
        return response

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
        if not isinstance(stream, httpx2.AsyncByteStream):
            raise TypeError(f"the inner transport returned a {type(stream).__name__} stream")
        response.stream = _AsyncTeeStream(stream, call)
        return response

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self.inner.aclose()
