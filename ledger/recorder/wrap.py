"""``wrap``: official SDK clients whose every HTTP attempt is recorded; recording httpx clients.

Invariants:

- ``wrap`` never mutates the client it is given and never monkeypatches an SDK: it returns a copy
  of the client (same class) built by the SDK's own ``with_options``/``copy`` (openai,
  anthropic) or constructor (google-genai), whose HTTP client sends through a recording
  transport. Base URL, credentials, default headers, timeouts and retries carry over because the
  SDK copies them itself.
- The recording transport wraps the transport of the HTTP client the SDK client already had, so
  a custom client's proxy or TLS settings keep applying; the SDK's own default client is replaced
  by the SDK's default client class (same limits and redirects) around a fresh default transport.
- The transport package follows the client: ``httpx2`` for current SDK releases, ``httpx`` when
  the SDK client runs on a legacy ``httpx`` client. ``httpx2.alias_httpx()`` is never called.
- A google-genai client gets both a sync and an async recording transport, so its ``.aio`` side
  never falls back to aiohttp (which no transport sees).
- ``content`` and ``durability`` not given default to the ledger's ``default_content`` and
  ``default_durability`` (``ledger.open()`` sets them from ``LEDGER_CONTENT`` and
  ``LEDGER_DURABILITY``); this module reads no environment itself.
- An ``openai`` client whose host the ledger does not know (and ``hosts`` does not name) is
  recorded as provider ``unknown``: many servers speak OpenAI's format, so the SDK proves
  nothing. ``wrap`` logs one warning per client (logger ``ledger.recorder``) naming the host and
  the ``hosts=`` argument that fixes it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar, cast, overload

import httpx
import httpx2

from ledger.errors import InputError
from ledger.recorder.core import Content, Durability, Recorder
from ledger.recorder.httpx import AsyncRecordingTransport, RecordingTransport
from ledger.recorder.httpx2 import AsyncHttpx2RecordingTransport, Httpx2RecordingTransport
from ledger.recorder.providers import provider_for_host
from ledger.recorder.sinks import LedgerLike

__all__ = ["recording_client", "wrap"]

C = TypeVar("C")

_log = logging.getLogger("ledger.recorder")

# What each SDK speaks, when its host says nothing. The openai SDK is deliberately absent: it
# is the common client of many OpenAI-compatible servers, so its class proves nothing about who
# answers; those are identified by host or by the ``hosts`` map.
_SDK_PROVIDERS = {"anthropic": "anthropic", "genai": "gcp.gemini"}


def _open_default() -> LedgerLike:
    # Imported at call time: the top-level package re-exports this module.
    return cast(LedgerLike, importlib.import_module("ledger").open())


def _options(
    lg: LedgerLike, content: Content | None, durability: Durability | None
) -> tuple[Content, Durability]:
    """The content and durability to record with: given ones, else the ledger's defaults."""
    default_content: Content = getattr(lg, "default_content", "hash")
    default_durability: Durability = getattr(lg, "default_durability", "async")
    return content or default_content, durability or default_durability


def _warn_if_unknown_host(client: Any, hosts: Mapping[str, str] | None) -> None:
    base_url = getattr(client, "base_url", None)
    host = getattr(base_url, "host", None)
    if not isinstance(host, str) or not host:
        return
    if provider_for_host(host, hosts=hosts) != "unknown":
        return
    _log.warning(
        "ledger: calls of this openai client to %s are recorded as provider 'unknown' and "
        "cannot be judged against any provider's terms; if you know who answers there, say "
        "so: ledger.wrap(client, hosts={%r: 'openai'}) (or the provider's name)",
        host,
        host,
    )


def _sdk_of(client: object) -> tuple[str, bool]:
    """``(sdk, is_async)`` for a supported client, by its class's module."""
    for cls in type(client).__mro__:
        module = cls.__module__.split(".", 1)[0]
        name = cls.__name__
        if module == "openai" and name in ("OpenAI", "AsyncOpenAI"):
            return "openai", name.startswith("Async")
        if module == "anthropic" and name in ("Anthropic", "AsyncAnthropic"):
            return "anthropic", name.startswith("Async")
        if cls.__module__.startswith("google.genai") and name == "Client":
            return "genai", False
    raise InputError(
        f"ledger.wrap does not know {type(client).__module__}.{type(client).__name__}; it wraps "
        "openai.OpenAI/AsyncOpenAI, anthropic.Anthropic/AsyncAnthropic and google.genai.Client "
        "(for anything else use ledger.recording_client or a RecordingTransport)"
    )


def wrap(
    client: C,
    *,
    ledger: LedgerLike | None = None,
    purpose: str | None = None,
    dataset: str | None = None,
    tags: Iterable[str] = (),
    durability: Durability | None = None,
    content: Content | None = None,
    hosts: Mapping[str, str] | None = None,
) -> C:
    """Return a copy of ``client`` whose every HTTP attempt becomes a signed ledger entry.

    Args:
        client: ``openai.OpenAI``/``AsyncOpenAI``, ``anthropic.Anthropic``/``AsyncAnthropic`` or
            ``google.genai.Client`` (its ``.aio`` side is recorded too).
        ledger: Ledger to write to; default ``ledger.open()`` (SQLite under the default home).
        purpose: One of ``ledger.recorder.PURPOSES`` (``train-model``, ``evaluate``, ...).
        dataset: Dataset the outputs are for.
        tags: Free labels.
        durability: ``"async"`` never waits for the database; ``"sync"`` waits for each commit
            and raises ``RecordingError`` if it fails. Default: the ledger's
            ``default_durability`` (``LEDGER_DURABILITY``, else ``"async"``).
        content: ``"full"`` also stores prompts and outputs. Default: the ledger's
            ``default_content`` (``LEDGER_CONTENT``, else ``"hash"``).
        hosts: Host-to-provider map for servers the ledger does not know
            (``{"vllm.internal": "self-hosted"}``). An openai client on an unknown host is
            recorded as provider ``unknown``, with one logged warning.

    Returns:
        A client of the same type; ``client`` itself is unchanged.

    Raises:
        InputError: an unsupported client or an unknown purpose.

    Example:
        >>> client = ledger.wrap(openai.OpenAI(), purpose="train-model")  # doctest: +SKIP
        >>> client.chat.completions.create(model="gpt-4.1", messages=[...])  # doctest: +SKIP
    """
    sdk, is_async = _sdk_of(client)
    lg = ledger if ledger is not None else _open_default()
    content, durability = _options(lg, content, durability)
    recorder = Recorder(
        lg,
        purpose=purpose,
        dataset=dataset,
        tags=tags,
        content=content,
        durability=durability,
        provider_hint=_SDK_PROVIDERS.get(sdk),
        hosts=hosts,
    )
    if sdk == "openai":
        _warn_if_unknown_host(client, hosts)
    if sdk == "genai":
        return cast(C, _wrap_genai(client, recorder))
    return cast(C, _wrap_stainless(client, sdk, is_async, recorder))


def _wrap_stainless(client: Any, sdk: str, is_async: bool, recorder: Recorder) -> Any:
    """openai and anthropic: both generated by Stainless, both copy themselves the same way."""
    module = importlib.import_module(sdk)
    current = getattr(client, "_client", None)
    # The SDK's own default client (made because the user gave none) carries nothing to keep.
    own = type(current).__name__ in ("SyncHttpxClientWrapper", "AsyncHttpxClientWrapper")
    http: httpx.Client | httpx.AsyncClient | httpx2.Client | httpx2.AsyncClient
    if isinstance(current, httpx.AsyncClient) and not own:
        http = httpx.AsyncClient(
            transport=AsyncRecordingTransport(recorder, _inner(current)),
            timeout=current.timeout,
            follow_redirects=current.follow_redirects,
        )
    elif isinstance(current, httpx.Client) and not own:
        http = httpx.Client(
            transport=RecordingTransport(recorder, _inner(current)),
            timeout=current.timeout,
            follow_redirects=current.follow_redirects,
        )
    elif is_async:
        inner_async = _inner(current) if current is not None and not own else None
        http = module.DefaultAsyncHttpxClient(
            transport=AsyncHttpx2RecordingTransport(recorder, inner_async)
        )
    else:
        inner_sync = _inner(current) if current is not None and not own else None
        http = module.DefaultHttpxClient(transport=Httpx2RecordingTransport(recorder, inner_sync))
    return client.with_options(http_client=http)


_RECORDING = (
    RecordingTransport,
    AsyncRecordingTransport,
    Httpx2RecordingTransport,
    AsyncHttpx2RecordingTransport,
)


def _inner(http: Any) -> Any:
    # A user-supplied client's transport (proxies, TLS, retries configured there) is reused.
    # ``_transport`` is private to httpx/httpx2 but has been stable across both for years.
    transport = getattr(http, "_transport", None)
    # Wrapping a wrapped client replaces its recorder instead of recording every call twice.
    while isinstance(transport, _RECORDING):
        transport = transport.inner
    return transport


def _wrap_genai(client: Any, recorder: Recorder) -> Any:
    from google import genai

    api = client._api_client
    legacy = isinstance(getattr(api, "_httpx_client", None), httpx.Client)
    sync_transport: httpx.BaseTransport | httpx2.BaseTransport
    async_transport: httpx.AsyncBaseTransport | httpx2.AsyncBaseTransport
    if legacy:
        sync_transport = RecordingTransport(recorder)
        async_transport = AsyncRecordingTransport(recorder)
    else:
        sync_transport = Httpx2RecordingTransport(recorder)
        async_transport = AsyncHttpx2RecordingTransport(recorder)
    old = api._http_options
    # Transports go in through client_args rather than ready-made clients: google-genai then
    # builds the clients itself (its defaults, the user's other client_args) and owns them, so
    # ``close()``/``aio.aclose()`` release them. A transport in async_client_args also turns off
    # its aiohttp path, which no transport would see.
    options = old.model_copy(
        update={
            "httpx_client": None,
            "httpx_async_client": None,
            "aiohttp_client": None,
            "client_args": {**(old.client_args or {}), "transport": sync_transport},
            "async_client_args": {**(old.async_client_args or {}), "transport": async_transport},
        }
    )
    if getattr(api, "vertexai", False):
        recorder.provider_hint = "gcp.vertex_ai"
        return genai.Client(
            vertexai=True,
            api_key=api.api_key,
            credentials=getattr(api, "_credentials", None),
            project=api.project,
            location=api.location,
            http_options=options,
        )
    return genai.Client(api_key=api.api_key, http_options=options)


@overload
def recording_client(
    *,
    ledger: LedgerLike | None = ...,
    package: Literal["httpx2"] = ...,
    asynchronous: Literal[False] = ...,
    purpose: str | None = ...,
    dataset: str | None = ...,
    tags: Iterable[str] = ...,
    durability: Durability | None = ...,
    content: Content | None = ...,
    hosts: Mapping[str, str] | None = ...,
    provider_hint: str | None = ...,
    **client_options: Any,
) -> httpx2.Client: ...
@overload
def recording_client(
    *,
    ledger: LedgerLike | None = ...,
    package: Literal["httpx2"] = ...,
    asynchronous: Literal[True],
    purpose: str | None = ...,
    dataset: str | None = ...,
    tags: Iterable[str] = ...,
    durability: Durability | None = ...,
    content: Content | None = ...,
    hosts: Mapping[str, str] | None = ...,
    provider_hint: str | None = ...,
    **client_options: Any,
) -> httpx2.AsyncClient: ...
@overload
def recording_client(
    *,
    ledger: LedgerLike | None = ...,
    package: Literal["httpx"],
    asynchronous: Literal[False] = ...,
    purpose: str | None = ...,
    dataset: str | None = ...,
    tags: Iterable[str] = ...,
    durability: Durability | None = ...,
    content: Content | None = ...,
    hosts: Mapping[str, str] | None = ...,
    provider_hint: str | None = ...,
    **client_options: Any,
) -> httpx.Client: ...
@overload
def recording_client(
    *,
    ledger: LedgerLike | None = ...,
    package: Literal["httpx"],
    asynchronous: Literal[True],
    purpose: str | None = ...,
    dataset: str | None = ...,
    tags: Iterable[str] = ...,
    durability: Durability | None = ...,
    content: Content | None = ...,
    hosts: Mapping[str, str] | None = ...,
    provider_hint: str | None = ...,
    **client_options: Any,
) -> httpx.AsyncClient: ...
def recording_client(
    *,
    ledger: LedgerLike | None = None,
    package: Literal["httpx", "httpx2"] = "httpx2",
    asynchronous: bool = False,
    purpose: str | None = None,
    dataset: str | None = None,
    tags: Iterable[str] = (),
    durability: Durability | None = None,
    content: Content | None = None,
    hosts: Mapping[str, str] | None = None,
    provider_hint: str | None = None,
    **client_options: Any,
) -> httpx.Client | httpx.AsyncClient | httpx2.Client | httpx2.AsyncClient:
    """A new ``httpx``/``httpx2`` client (sync or async) whose every request is recorded.

    For any client library that accepts an HTTP client (litellm's ``client_session``, older SDK
    releases, plain REST calls). Extra keyword arguments go to the client constructor.

    Example:
        >>> http = ledger.recording_client(package="httpx", purpose="research")  # doctest: +SKIP
        >>> http.post("https://api.openai.com/v1/embeddings", json={...})  # doctest: +SKIP
    """
    lg = ledger if ledger is not None else _open_default()
    content, durability = _options(lg, content, durability)
    recorder = Recorder(
        lg,
        purpose=purpose,
        dataset=dataset,
        tags=tags,
        content=content,
        durability=durability,
        provider_hint=provider_hint,
        hosts=hosts,
    )
    if package == "httpx":
        if asynchronous:
            return httpx.AsyncClient(transport=AsyncRecordingTransport(recorder), **client_options)
        return httpx.Client(transport=RecordingTransport(recorder), **client_options)
    if package == "httpx2":
        if asynchronous:
            return httpx2.AsyncClient(
                transport=AsyncHttpx2RecordingTransport(recorder), **client_options
            )
        return httpx2.Client(transport=Httpx2RecordingTransport(recorder), **client_options)
    raise InputError(f"package must be 'httpx' or 'httpx2', not {package!r}")
