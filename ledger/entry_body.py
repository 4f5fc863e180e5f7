"""The entry body: its one typed definition, and the one reader every layer uses.

Invariants:

- :data:`ENTRY_VERSION` is what the recorder writes now (2). Version 1 bodies stay valid and
  read the same way; a reader never needs to know which version it holds, except for the
  per-output dataset fingerprints, which only version 2 has (``outputs``; version 1 has the
  unkeyed ``output_sha256`` list instead).
- Reading is total: :func:`read_call` never raises. A field of the wrong type reads as absent,
  and a time it cannot use is reported in :attr:`CallView.time_error` so that a strict reader
  (the policy facts) can refuse the body while a tolerant one (the conduct detectors) skips it.
- Model precedence, one rule with two names: :attr:`CallView.model` is the model that
  answered (``response_model``, else ``request_model``) and decides which terms apply;
  :attr:`CallView.requested_model` is what the caller asked for (``request_model``, else
  ``response_model``) and groups a caller's attempts (an error response names no model, so
  grouping by the answering model would split a 429 from the retry that followed it).
- Time: the call time is ``started_at`` if present, else ``recorded_at``, and is always a
  timezone-aware UTC ``datetime``. A stamp without a zone (the recorder and the log write only
  ``...Z``; only a hand-made body has one) is not guessed: it is a time error, like a stamp that
  does not parse.
- Organization: request headers the caller sent (``org_headers``) and, from version 2, the
  organization headers the provider returned (``response_org_headers``; Anthropic names the
  organization only in its response). :attr:`CallView.organization` prefers what the provider
  reported over what was sent; :attr:`CallView.sent_organization` is what the request sent.

Nothing here performs I/O; this module sits below every layer (like ``ledger.vocabulary``).
"""

# No ``from __future__ import annotations`` here: TypedDict reads ``NotRequired`` from evaluated
# annotations only (Python 3.11), and __required_keys__ must be right (a test checks bodies).
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, NotRequired, TypedDict, cast

__all__ = [
    "CLIENT_HEADERS",
    "CLIENT_HEADER_PREFIXES",
    "ENTRY_VERSION",
    "ORG_HEADERS",
    "ORG_ID_HEADERS",
    "PROJECT_HEADERS",
    "CallView",
    "EndpointBody",
    "EntryBody",
    "OutputRecord",
    "UsageBody",
    "call_stamp",
    "call_stamp_of",
    "call_time",
    "read_call",
    "requested_model",
    "served_model",
    "served_model_of",
]

ENTRY_VERSION = 2
"""Version the recorder writes: 2 adds ``outputs`` and ``response_org_headers`` and drops the
unkeyed ``output_sha256`` (a guessed short output must not be confirmable from the log)."""

ORG_ID_HEADERS: tuple[str, ...] = (
    "openai-organization",
    "anthropic-organization-id",
    "x-goog-user-project",
)
"""Headers naming the organization an API key belongs to, most specific first."""

PROJECT_HEADERS: tuple[str, ...] = ("openai-project", "anthropic-workspace")
"""Headers naming a project or workspace inside an organization (one organization's key may
serve several, so these never count as separate organizations)."""

ORG_HEADERS: frozenset[str] = frozenset({*ORG_ID_HEADERS, *PROJECT_HEADERS})
"""Every organization or project header the recorder keeps, sent or returned."""

CLIENT_HEADERS: frozenset[str] = frozenset(
    {"x-goog-api-client", "anthropic-version", "anthropic-beta"}
)
"""Request headers that identify the client SDK (kept under ``client.headers``)."""

CLIENT_HEADER_PREFIXES: tuple[str, ...] = ("x-stainless-",)
"""Prefixes of request headers that identify the client SDK."""


# --------------------------------------------------------------------------- the shape


class EndpointBody(TypedDict):
    """Where the call went; never the query string (it can hold keys)."""

    scheme: str
    host: str
    port: int | None
    path: str


class UsageBody(TypedDict):
    """Tokens the provider reported; ``None`` when it did not."""

    input_tokens: int | None
    output_tokens: int | None


class ClientBody(TypedDict):
    """The SDK identity the request carried."""

    user_agent: str | None
    headers: dict[str, str]


class OutputRecord(TypedDict, total=False):
    """One output (choice / candidate) in version 2: its index and the keyed fingerprints.

    The other fields are whatever ``ledger.crypto.fingerprint.output_record`` returns (keyed
    under the dataset's key, versioned by its own ``fv`` field); only ``index`` is fixed here.
    """

    index: int


class EntryBody(TypedDict):
    """The signed provenance record of one HTTP attempt (DESIGN.md, Formats).

    ``v``, ``id``, ``recorded_at`` and ``recorder`` are filled by the log when absent. Version 1
    bodies have ``output_sha256`` and no ``outputs`` / ``response_org_headers``.
    """

    v: int
    id: str
    recorded_at: NotRequired[str]
    recorder: NotRequired[str]
    started_at: str
    duration_ms: float
    provider: str
    operation: str
    endpoint: EndpointBody
    request_model: str | None
    response_model: str | None
    response_id: str | None
    provider_request_id: str | None
    account: str | None
    org_headers: dict[str, str]
    response_org_headers: NotRequired[dict[str, str]]
    client: ClientBody
    status: int | None
    outcome: str  # "complete", "truncated" or "error"
    error: str | None
    stream: bool
    finish_reasons: list[str]
    usage: UsageBody
    output_modality: str | None
    output_sha256: NotRequired[list[str]]
    outputs: NotRequired[list[OutputRecord]]
    rate_limit: dict[str, str]
    purpose: str | None
    dataset: str | None
    tags: list[str]
    request_sha256: NotRequired[str]
    response_sha256: NotRequired[str | None]
    content_encoding: NotRequired[str | None]
    content: NotRequired[dict[str, Any]]
    facts: NotRequired[dict[str, Any]]
    ledger_id: NotRequired[str]  # sealed (spooled) entries: the install id they were signed for


# --------------------------------------------------------------------------- the reader

_EMPTY: Mapping[str, Any] = {}


def _mapping(value: object) -> Mapping[str, Any]:
    # Bodies parsed from JSON hold plain dicts; the ABC check is the slow path for the rest.
    if type(value) is dict:
        return value
    if value is None or not isinstance(value, Mapping):
        return _EMPTY
    return cast(Mapping[str, Any], value)


def _text(value: object) -> str | None:
    return value if (type(value) is str or isinstance(value, str)) and value else None


def _first(headers: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    if not headers:
        return None
    for name in names:
        value = headers.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def served_model(body: Mapping[str, Any]) -> str | None:
    """The model that answered: ``response_model``, else ``request_model`` (non-empty strings)."""
    return served_model_of(body.get("response_model"), body.get("request_model"))


def served_model_of(response_model: object, request_model: object) -> str | None:
    """:func:`served_model` from the two fields' values (for a caller holding them, not a body)."""
    return _text(response_model) or _text(request_model)


def requested_model(body: Mapping[str, Any]) -> str | None:
    """The model the caller asked for: ``request_model``, else ``response_model``."""
    return _text(body.get("request_model")) or _text(body.get("response_model"))


def call_stamp(body: Mapping[str, Any]) -> object:
    """The raw call-time field: ``started_at`` when present (not null or empty), else
    ``recorded_at``."""
    return call_stamp_of(body.get("started_at"), body.get("recorded_at"))


def call_stamp_of(started_at: object, recorded_at: object) -> object:
    """:func:`call_stamp` from the two fields' values (for a caller holding them, not a body)."""
    return recorded_at if started_at is None or started_at == "" else started_at


def call_time(body: Mapping[str, Any]) -> tuple[datetime | None, str | None]:
    """``(time, error)``: the call time as aware UTC, or ``None`` and why it is unusable.

    A body with neither field gives ``(None, None)``: no time, and nothing wrong with that.
    """
    return _parse_stamp(call_stamp(body))


def _parse_stamp(stamp: object) -> tuple[datetime | None, str | None]:
    if stamp is None:
        return None, None
    if not isinstance(stamp, str):
        return None, f"entry time {stamp!r} is not a string"
    try:
        # Python 3.11's fromisoformat reads the "Z" suffix the log writes.
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None, f"entry time {stamp!r} is not an ISO 8601 timestamp"
    offset = moment.utcoffset()
    if offset is None:
        return None, f"entry time {stamp!r} has no time zone (timestamps are UTC with a zone)"
    return (moment if offset == _ZERO and moment.tzinfo is UTC else moment.astimezone(UTC)), None


_ZERO = timedelta(0)


class CallView(NamedTuple):
    """What one entry body says about its call, read once by :func:`read_call` (immutable).

    A named tuple rather than a frozen dataclass: the conduct detectors read every entry of a
    ledger through it, and a tuple is built several times faster.

    Attributes:
        version: ``v`` (1 when absent or malformed: the first format had no other).
        entry_id: ``id``.
        provider: ``provider``, ``"unknown"`` when absent.
        operation: ``operation``.
        model: The model that answered (see the module rule).
        requested_model: The model the caller asked for.
        at: The call time, aware UTC, or ``None``.
        time_error: Why the body's time is unusable, or ``None``.
        host: ``endpoint.host`` lowercased, trailing dot removed.
        output_modality: ``output_modality`` as stored (validated by its readers).
        account: The credential fingerprint.
        recorder: ``recorder`` (the signing key id).
        status: HTTP status, when an integer.
        finish_reasons: Strings of ``finish_reasons``.
        organization: The organization id: returned by the provider, else sent.
        sent_organization: The organization id the request itself sent (the caller's choice
            among organizations it belongs to), ``None`` when it sent none.
        project: The project or workspace id: returned, else sent.
        user_agent: ``client.user_agent``.
        sdk_headers: ``client.headers`` with lowercased names, or ``None`` when absent.
        rate_limit: ``rate_limit``.
        request_sha256: ``request_sha256``.
        purpose: ``purpose``.
        dataset: ``dataset``.
    """

    version: int
    entry_id: str | None
    provider: str
    operation: str | None
    model: str | None
    requested_model: str | None
    at: datetime | None
    time_error: str | None
    host: str | None
    output_modality: object
    account: str | None
    recorder: str | None
    status: int | None
    finish_reasons: tuple[str, ...]
    organization: str | None
    sent_organization: str | None
    project: str | None
    user_agent: str | None
    sdk_headers: Mapping[str, Any] | None
    rate_limit: Mapping[str, Any]
    request_sha256: str | None
    purpose: str | None
    dataset: str | None


def read_call(body: Mapping[str, Any]) -> CallView:
    """Read an entry body (any version) into a :class:`CallView`; never raises.

    Example:
        >>> view = read_call({"provider": "openai", "request_model": "gpt-4o",
        ...                   "response_model": "gpt-4o-2024-08-06",
        ...                   "started_at": "2025-07-01T12:00:00.000000Z"})
        >>> view.model, view.requested_model, view.at.isoformat()
        ('gpt-4o-2024-08-06', 'gpt-4o', '2025-07-01T12:00:00+00:00')
    """
    # The hot loop of the conduct detectors: one dict lookup per field, few calls.
    get = body.get
    stamp = get("started_at")
    at, time_error = _parse_stamp(get("recorded_at") if stamp is None or stamp == "" else stamp)
    host = _text(_mapping(get("endpoint")).get("host"))
    sent = _mapping(get("org_headers"))
    returned = _mapping(get("response_org_headers"))
    client = _mapping(get("client"))
    headers = client.get("headers")
    status = get("status")
    reasons = get("finish_reasons")
    version = get("v")
    request = _text(get("request_model"))
    response = _text(get("response_model"))
    return CallView(
        version if type(version) is int else 1,
        _text(get("id")),
        _text(get("provider")) or "unknown",
        _text(get("operation")),
        response or request,
        request or response,
        at,
        time_error,
        host.lower().rstrip(".") if host else None,
        get("output_modality"),
        _text(get("account")),
        _text(get("recorder")),
        status if type(status) is int else None,
        tuple(r for r in reasons if isinstance(r, str)) if type(reasons) is list else (),
        _first(returned, ORG_ID_HEADERS) or _first(sent, ORG_ID_HEADERS),
        _first(sent, ORG_ID_HEADERS),
        _first(returned, PROJECT_HEADERS) or _first(sent, PROJECT_HEADERS),
        _text(client.get("user_agent")),
        ({str(k).lower(): v for k, v in headers.items()} if isinstance(headers, Mapping) else None),
        _mapping(get("rate_limit")),
        _text(get("request_sha256")),
        _text(get("purpose")),
        _text(get("dataset")),
    )
