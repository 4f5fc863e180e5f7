"""The recording logic both transport families share (``httpx`` and ``httpx2``).

Invariants:

- A transport only snapshots the request, tags the response with ``x-ledger-entry-id`` and
  replaces ``response.stream`` with a tee; everything else happens behind the ``Recorder``.
- The tee yields every chunk unchanged the moment the inner stream yields it: no buffering, no
  read-ahead, no added latency to the first chunk.
- Finalization happens in ``close()``/``aclose()``, the hook httpx and the SDKs always call (end
  of body, ``send(stream=False)``, errors, early exit from a stream); the inner stream is closed
  in ``finally`` so the pooled connection is released even if recording raises. A stream dropped
  without ``close()`` is finalized as ``truncated`` when it is garbage collected.
- Outcome: ``complete`` once the inner stream is exhausted, ``error`` if it raised, otherwise
  ``truncated``.

``httpx`` and ``httpx2`` have the same shapes but distinct types (an ``httpx2`` client rejects an
``httpx`` stream), so ``ledger.recorder.httpx`` and ``ledger.recorder.httpx2`` each combine these
mixins with their own package's base classes in a few lines.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from ledger.errors import RecordingError
from ledger.recorder.core import Call, Recorder

__all__ = ["AsyncTee", "SyncTee", "record_async", "record_sync"]


class _SyncStream(Iterable[bytes], Protocol):
    def close(self) -> None: ...


class _AsyncStream(AsyncIterable[bytes], Protocol):
    async def aclose(self) -> None: ...


class _Headers(Protocol):
    def multi_items(self) -> list[tuple[str, str]]: ...
    def __delitem__(self, key: str) -> None: ...
    def __setitem__(self, key: str, value: str) -> None: ...


class _Request(Protocol):
    @property
    def method(self) -> str: ...
    @property
    def url(self) -> object: ...
    @property
    def headers(self) -> _Headers: ...
    def read(self) -> bytes: ...
    async def aread(self) -> bytes: ...


class _Response(Protocol):
    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> _Headers: ...
    @property
    def stream(self) -> object: ...
    @stream.setter
    def stream(self, value: Any) -> None: ...  # each package types it as its own stream


RequestT = TypeVar("RequestT", bound=_Request)
ResponseT = TypeVar("ResponseT", bound=_Response)


class SyncTee:
    """Mixin of a sync byte stream that hashes chunks as they pass and finalizes on close."""

    __slots__ = ("_call", "_closed", "_inner")

    def __init__(self, inner: _SyncStream, call: Call) -> None:
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


class AsyncTee:
    """Mixin of an async byte stream that hashes chunks as they pass and finalizes on aclose."""

    __slots__ = ("_call", "_closed", "_inner")

    def __init__(self, inner: _AsyncStream, call: Call) -> None:
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


def record_sync(
    recorder: Recorder,
    request: RequestT,
    send: Callable[[RequestT], ResponseT],
    tee: Callable[[_SyncStream, Call], object],
    stream_type: type,
) -> ResponseT:
    """Send ``request`` with ``send`` and tee the response body (the sync transport's body)."""
    call = recorder.begin(
        request.method,
        str(request.url),
        request.headers.multi_items(),
        request.read(),
        request.headers.__delitem__,
    )
    try:
        response = send(request)
    except Exception as exc:
        call.fail(exc)
        # The transport error is the news here; with sync durability a failure to record it
        # has already been spooled and logged, so it must not mask the original error.
        with contextlib.suppress(RecordingError):
            call.finish()
        raise
    return _tee_response(call, response, tee, stream_type)


async def record_async(
    recorder: Recorder,
    request: RequestT,
    send: Callable[[RequestT], Awaitable[ResponseT]],
    tee: Callable[[_AsyncStream, Call], object],
    stream_type: type,
) -> ResponseT:
    """Send ``request`` with ``send`` and tee the response body (the async transport's body)."""
    call = recorder.begin(
        request.method,
        str(request.url),
        request.headers.multi_items(),
        await request.aread(),
        request.headers.__delitem__,
    )
    try:
        response = await send(request)
    except Exception as exc:
        call.fail(exc)
        with contextlib.suppress(RecordingError):
            await call.afinish()
        raise
    return _tee_response(call, response, tee, stream_type)


def _tee_response(
    call: Call, response: ResponseT, tee: Callable[[Any, Call], object], stream_type: type
) -> ResponseT:
    call.respond(response.status_code, response.headers)  # type: ignore[arg-type]  # a Headers mapping
    response.headers["x-ledger-entry-id"] = call.entry_id
    stream = response.stream
    if not isinstance(stream, stream_type):
        raise TypeError(f"the inner transport returned a {type(stream).__name__} stream")
    response.stream = tee(stream, call)
    return response
