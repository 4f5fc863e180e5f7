"""RemoteLedger checks what the server says: proofs, checkpoint signatures, consistency."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import ledger
from ledger.api import create_app
from ledger.crypto.keys import SigningKey
from ledger.crypto.note import verifier_key_string
from ledger.errors import CheckpointError, ConsistencyError, InclusionProofError, NotFoundError
from ledger.remote import RemoteLedger
from tests.api.conftest import Served, api_settings, fill


class Switch(httpx.BaseTransport):
    """Sends each request to whichever app is current (a server swapped underneath)."""

    def __init__(self, app: FastAPI, edit: Callable[[bytes], bytes] | None = None) -> None:
        self.client = TestClient(app)
        self.edit = edit

    def use(self, app: FastAPI) -> None:
        self.client.close()
        self.client = TestClient(app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.client.request(
            request.method, str(request.url), headers=request.headers, content=request.read()
        )
        content = self.edit(answer.content) if self.edit else answer.content
        return httpx.Response(answer.status_code, headers=answer.headers, content=content)

    def close(self) -> None:
        self.client.close()


def remote(served: Served, who: str = "auditor", **kwargs: object) -> RemoteLedger:
    return ledger.connect("http://testserver", served.tokens[who], client=served.client, **kwargs)  # type: ignore[arg-type]


def test_reads_verify_and_match_the_log(served: Served) -> None:
    client = remote(served, verifier_key=served.verifier_key)
    assert not client.trusted_on_first_use
    checkpoint = client.checkpoint()
    assert checkpoint.size == 12
    entry = client.entry(5)
    assert entry.body["n"] == 5
    every = list(client.entries(limit=5))
    assert [e.leaf_index for e in every] == list(range(12))
    alpha = list(client.entries(dataset="alpha", provider="OpenAI", limit=2))
    assert alpha
    assert all(e.body["dataset"] == "alpha" for e in alpha)
    assert all(e.body["provider"] == "openai" for e in alpha)
    assert client.last_checkpoint == checkpoint


def test_first_seen_key_is_said_plainly(served: Served) -> None:
    client = remote(served)
    assert client.trusted_on_first_use
    client.checkpoint()
    assert client.verifier_key == served.verifier_key


def test_a_checkpoint_under_another_key_is_refused(served: Served) -> None:
    impostor = verifier_key_string(served.app.state.service.reader.origin,
                                   SigningKey.generate().public_key.raw)  # fmt: skip
    with pytest.raises(CheckpointError):
        remote(served, verifier_key=impostor).checkpoint()


@pytest.mark.parametrize("route", ["entry", "page"])
def test_a_tampered_entry_is_caught(served: Served, route: str) -> None:
    def edit(content: bytes) -> bytes:
        answer = json.loads(content)
        items = answer.get("entries") or ([answer["entry"]] if "entry" in answer else [])
        for item in items:
            item["entry"]["body"]["purpose"] = "research"  # what a lying server would rewrite
        return json.dumps(answer).encode()

    switch = Switch(served.app, edit)
    http = httpx.Client(base_url="http://testserver", transport=switch)
    client = ledger.connect("http://testserver", served.tokens["auditor"], client=http)
    read: Callable[[], object] = (
        (lambda: client.entry(3)) if route == "entry" else (lambda: client.page(limit=4))
    )
    with pytest.raises(InclusionProofError):
        read()
    http.close()


def test_entries_beyond_the_checkpoint_are_not_served(served: Served) -> None:
    with pytest.raises(NotFoundError):
        remote(served).entry(12)


def test_forked_and_rewound_servers_are_caught(tmp_path: Path) -> None:
    # Two copies of one log (same keys, same install id) that diverge after 4 entries.
    home = tmp_path / "home"
    first, second = tmp_path / "a.db", tmp_path / "b.db"
    fill(home, f"sqlite:///{first}", 4)
    shutil.copy(first, second)
    rewound = tmp_path / "c.db"
    shutil.copy(first, rewound)
    fill(home, f"sqlite:///{first}", 3, start=100)
    fill(home, f"sqlite:///{second}", 3, start=200)
    apps = [create_app(api_settings(home, f"sqlite:///{db}")) for db in (first, second, rewound)]
    honest, forked, behind = apps
    try:
        token = _auditor_token(apps)
        switch = Switch(honest)
        http = httpx.Client(base_url="http://testserver", transport=switch)
        client = ledger.connect("http://testserver", token, client=http)
        assert client.checkpoint().size == 7
        switch.use(forked)  # same size, another history
        with pytest.raises(ConsistencyError, match="forked"):
            client.checkpoint()
        with pytest.raises(ConsistencyError):
            client.entry(5)
        switch.use(behind)  # an older head that the server cannot prove leads to 7
        with pytest.raises(ConsistencyError, match="rewound"):
            client.checkpoint()
        switch.use(honest)
        assert client.entry(6).body["n"] == 102  # the honest server is still accepted
        http.close()
        switch.close()
    finally:
        for app in apps:
            app.state.service.close()


def test_honest_growth_is_proved_and_accepted(served: Served) -> None:
    client = remote(served)
    before = client.checkpoint()
    sealed = [served.seal({"dataset": "alpha", "n": 500 + i}) for i in range(5)]
    receipts = remote(served, "recorder").append_sealed(sealed)
    assert [r.leaf_index for r in receipts] == list(range(12, 17))
    after = client.checkpoint()
    assert after.size == 17
    assert before.size == 12
    assert client.entry(16).body["n"] == 504
    again = remote(served, "recorder").append_sealed(sealed)  # idempotent by entry id
    assert [r.leaf_index for r in again] == [r.leaf_index for r in receipts]
    assert client.checkpoint().size == 17


def _auditor_token(apps: list[FastAPI]) -> str:
    # One token row in each copy: the same token works on every server.
    from datetime import UTC, datetime

    from sqlalchemy import insert
    from sqlmodel import SQLModel

    from ledger.api.tokens import token_digest

    token = "ldt_0123456789abcdef_" + "A" * 43
    row = {"token_id": "0123456789abcdef", "name": "auditor", "role": "auditor",
           "token_sha256": token_digest(token), "datasets": None, "recorder_key_id": None,
           "created_at": datetime.now(UTC), "expires_at": None}  # fmt: skip
    for app in apps:
        with app.state.service.writer.store.engine.begin() as conn:
            conn.execute(insert(SQLModel.metadata.tables["api_tokens"]), [row])
    return token


@pytest.mark.parametrize(
    "lie",
    [
        lambda a: a["entries"].append(a["entries"][0]),  # an entry counted twice
        lambda a: a["entries"].reverse(),  # out of order
        lambda a: a.update(entries="none"),  # not a list
        lambda a: a.update(multiproof=[]),  # not an object
        lambda a: a["multiproof"]["nodes"].pop(),  # a node missing
    ],
)
def test_a_malformed_page_is_refused(served: Served, lie: Callable[[dict], object]) -> None:
    def edit(content: bytes) -> bytes:
        answer = json.loads(content)
        if "entries" in answer:
            lie(answer)
        return json.dumps(answer).encode()

    http = httpx.Client(base_url="http://testserver", transport=Switch(served.app, edit))
    client = ledger.connect("http://testserver", served.tokens["auditor"], client=http)
    with pytest.raises(InclusionProofError):
        client.page(limit=4)
    http.close()
