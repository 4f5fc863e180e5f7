"""The token cache: fast repeat checks, revocation at once here, within the TTL elsewhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert
from sqlmodel import SQLModel

from ledger.api.tokens import TokenCache, TokenError, create_token, revoke_token

from .conftest import ServeFactory

_REVOKED = SQLModel.metadata.tables["api_token_revocations"]


def test_a_cached_token_stays_valid_until_the_ttl_and_revocation_here_is_at_once(
    serve: ServeFactory,
) -> None:
    served = serve()
    engine = served.app.state.service.writer.store.engine
    token, info = create_token(engine, role="auditor", name="cached")
    cache = TokenCache(engine, ttl=3600)
    assert cache.cached(token) is None  # not yet asked
    assert cache.authenticate(token).token_id == info.token_id
    assert cache.cached(token) == cache.authenticate(token)
    # Another process revokes: a row appears, no call reaches this process's caches.
    with engine.begin() as conn:
        conn.execute(
            insert(_REVOKED), [{"token_id": info.token_id, "revoked_at": datetime.now(UTC)}]
        )
    assert cache.authenticate(token).token_id == info.token_id  # the documented bound
    with pytest.raises(TokenError, match="revoked"):
        TokenCache(engine, ttl=0).authenticate(token)  # no cache: the database says
    revoke_token(engine, info.token_id)  # already revoked, but this process now knows
    with pytest.raises(TokenError, match="revoked"):
        cache.authenticate(token)


def test_refusals_are_not_cached_and_expiry_is_checked_every_time(serve: ServeFactory) -> None:
    served = serve()
    engine = served.app.state.service.writer.store.engine
    cache = TokenCache(engine, ttl=3600)
    token, _ = create_token(engine, role="auditor", name="short", expires_in=timedelta(hours=1))
    assert cache.authenticate(token).role == "auditor"
    later = datetime.now(UTC) + timedelta(hours=2)
    assert cache.cached(token, later) is None
    with pytest.raises(TokenError, match="expired"):
        cache.authenticate(token, later)
    unknown = token[:-1] + ("A" if token[-1] != "A" else "B")
    for _ in range(2):
        with pytest.raises(TokenError, match="unknown"):
            cache.authenticate(unknown)
    with pytest.raises(TokenError, match="malformed"):
        cache.authenticate("not-a-token")


def test_the_service_revokes_through_its_own_cache(serve: ServeFactory) -> None:
    served = serve(api_token_cache_seconds=3600)
    made = served.client.post(
        "/v1/admin/tokens", headers=served.headers("admin"), json={"role": "auditor", "name": "x"}
    ).json()
    headers = {"Authorization": f"Bearer {made['token']}"}
    for _ in range(2):  # the second answer comes from the cache
        assert served.client.get("/v1/entries/0", headers=headers).status_code == 200
    assert served.app.state.service.tokens.cached(made["token"]) is not None
    served.client.post(
        f"/v1/admin/tokens/{made['token_id']}/revoke", headers=served.headers("admin")
    )
    refused = served.client.get("/v1/entries/0", headers=headers)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]
