"""Fixtures for recorder tests: one fake provider server per session, and a wire capture.

``fake_provider`` is the local fake OpenAI/Anthropic/Gemini server (``ledger.testing``).
``capture`` is a small ``httpx2`` transport for adapter tests: it forwards to the real
``httpx2.HTTPTransport`` and keeps, per HTTP attempt, the request bytes and the response bytes
exactly as they came off the wire (compressed if the wire was), so a test can build the
``Exchange`` the recorder would build and compare the adapter's facts with what the SDK returned.
It is deliberately not the recorder's transport (that is the thing under test elsewhere).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx2
import pytest

from ledger.recorder.providers import Exchange
from ledger.testing.fake_provider import FakeProviderServer

# Credential headers never reach an Exchange (the transport strips them before adapters run).
_CREDENTIALS = frozenset({"authorization", "x-api-key", "api-key", "x-goog-api-key"})


def decode_body(raw: bytes, encoding: str | None) -> bytes:
    """Decode a (possibly truncated) gzip body as the transport does; identity otherwise."""
    if encoding != "gzip":
        return raw
    return zlib.decompressobj(wbits=31).decompress(raw)


@dataclass
class Captured:
    """One HTTP attempt as seen on the wire."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int | None
    response_headers: dict[str, str]
    raw: bytearray = field(default_factory=bytearray)
    complete: bool = False

    def exchange(self) -> Exchange:
        """The ``Exchange`` a recorder would hand to the adapters."""
        return Exchange(
            method=self.method,
            url=self.url,
            request_headers=self.request_headers,
            request_body=self.request_body,
            status=self.status,
            response_headers=self.response_headers,
            response_body=decode_body(
                bytes(self.raw), self.response_headers.get("content-encoding")
            ),
            complete=self.complete,
        )


class _Tee(httpx2.SyncByteStream):
    def __init__(self, inner: httpx2.SyncByteStream, captured: Captured) -> None:
        self._inner = inner
        self._captured = captured

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._captured.raw += chunk
            yield chunk
        self._captured.complete = True

    def close(self) -> None:
        self._inner.close()


class CaptureTransport(httpx2.HTTPTransport):
    """``httpx2.HTTPTransport`` that keeps every attempt in ``self.calls``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Captured] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request``, keeping its bytes and teeing the response bytes."""
        body = request.read()
        captured = Captured(
            method=request.method,
            url=str(request.url),
            request_headers={
                k.lower(): v for k, v in request.headers.items() if k.lower() not in _CREDENTIALS
            },
            request_body=body,
            status=None,
            response_headers={},
        )
        self.calls.append(captured)
        response = super().handle_request(request)
        captured.status = response.status_code
        captured.response_headers = {k.lower(): v for k, v in response.headers.items()}
        assert isinstance(response.stream, httpx2.SyncByteStream)
        response.stream = _Tee(response.stream, captured)
        return response

    @property
    def last(self) -> Captured:
        """The most recent attempt."""
        return self.calls[-1]


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeProviderServer]:
    """The local fake OpenAI/Anthropic/Gemini server (see ``ledger/testing/fake_provider.py``).

    Attributes used by tests: ``base_url`` (``http://127.0.0.1:PORT``), ``openai_base_url``
    (with ``/v1``), ``anthropic_base_url``, ``gemini_base_url``, ``requests`` (every request
    received, oldest first) and ``clear()``.
    """
    with FakeProviderServer() as server:
        yield server


@pytest.fixture
def capture() -> Iterator[CaptureTransport]:
    """A fresh capturing ``httpx2`` transport; pass it as ``httpx2.Client(transport=...)``."""
    transport = CaptureTransport()
    yield transport
    transport.close()
