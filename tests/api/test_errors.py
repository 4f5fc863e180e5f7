"""Bad input gets a 4xx JSON error, never a 5xx or a traceback; bodies are bounded."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest

from ledger.crypto.canonical import canonical_json
from ledger.errors import InputError
from ledger.log.records import seal_entry
from tests.api.conftest import Served, ServeFactory

BAD_READS = [
    ("/v1/entries?limit=0", 422),
    ("/v1/entries?limit=100000", 400),
    ("/v1/entries?limit=abc", 422),
    ("/v1/entries?cursor=%%%", 400),
    ("/v1/entries?cursor=djE6MTp4eA", 400),  # well formed, issued for other filters
    ("/v1/entries?cursor=" + "9" * 40, 400),
    ("/v1/log/proof/inclusion?leaf_index=100000000000000000000000000", 400),
    ("/v1/log/proof/consistency?first=100000000000000000000000000", 400),
    ("/v1/entries?provider=nosuchprovider", 400),
    ("/v1/entries?verdict=fine", 400),
    ("/v1/entries?since=yesterday", 422),
    ("/v1/entries/-1", 404),
    ("/v1/entries/abc", 422),
    ("/v1/entries/100000000000000000000000000000", 404),
    ("/v1/log/proof/inclusion", 422),
    ("/v1/log/proof/inclusion?leaf_index=50", 400),
    ("/v1/log/proof/inclusion?leaf_index=1&tree_size=500", 400),
    ("/v1/log/proof/consistency?first=9&second=3", 400),
    ("/v1/log/proof/consistency?first=1&second=99999", 400),
    ("/v1/policies/nosuchprovider", 400),
    ("/v1/audit/conduct?provider=zzzz", 400),
    ("/v1/nowhere", 404),
]


def _check_error(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message"}
    assert error["message"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize(("path", "status"), BAD_READS)
def test_bad_reads_are_4xx_json(served: Served, path: str, status: int) -> None:
    _check_error(served.client.get(path, headers=served.headers("auditor")), status)


def test_a_cursor_resumes_only_its_own_listing(served: Served) -> None:
    auditor = served.headers("auditor")
    page = served.client.get("/v1/entries?limit=2&dataset=alpha", headers=auditor).json()
    cursor = page["next_cursor"]
    again = served.client.get(f"/v1/entries?limit=2&dataset=alpha&cursor={cursor}", headers=auditor)
    assert [e["entry"]["body"]["n"] for e in again.json()["entries"]] == [4, 6]
    other = served.client.get(f"/v1/entries?limit=2&dataset=beta&cursor={cursor}", headers=auditor)
    _check_error(other, 400)
    from ledger.api.service import EntryFilters, encode_cursor

    huge = encode_cursor(10**30, EntryFilters())  # right filters, a leaf no BIGINT can hold
    _check_error(served.client.get(f"/v1/entries?cursor={huge}", headers=auditor), 400)


def _bad_posts(served: Served) -> list[tuple[Any, int]]:
    good = served.seal({"n": 1})
    forged = {**good, "body": {**good["body"], "n": 2}}
    foreign = seal_entry({"n": 3}, served.recorder_key, "another-ledger")
    unsigned = {"body": {"n": 4}, "key_id": served.recorder_key.key_id}
    return [
        ({"entries": "no"}, 422),
        ({"entries": [1, 2]}, 422),
        ({"items": []}, 422),
        ([good], 422),
        ({"entries": [unsigned]}, 400),
        ({"entries": [forged]}, 422),
        ({"entries": [foreign]}, 422),
        ({"entries": [good, forged]}, 422),
    ]


def test_bad_posts_are_4xx_json_and_store_nothing(served: Served) -> None:
    recorder = served.headers("recorder")
    size = served.app.state.service.reader.size
    for body, status in _bad_posts(served):
        _check_error(served.client.post("/v1/entries", headers=recorder, json=body), status)
    raw = served.client.post("/v1/entries", headers=recorder, content=b"{not json")
    _check_error(raw, 422)
    assert served.app.state.service.reader.size == size  # the good entry went in no batch


def test_bad_admin_requests_are_4xx_json(served: Served) -> None:
    admin = served.headers("admin")
    for body, status in [
        ({"role": "god", "name": "x"}, 422),
        ({"role": "recorder", "name": "x"}, 400),
        ({"role": "recorder", "name": "x", "recorder_key_id": "ab" * 32}, 404),
        ({"role": "admin", "name": "x", "datasets": ["a"]}, 400),
        ({"role": "auditor", "name": "x", "expires": "soon"}, 400),
        ({"role": "auditor", "name": ""}, 422),
    ]:
        _check_error(served.client.post("/v1/admin/tokens", headers=admin, json=body), status)
    _check_error(served.client.post("/v1/admin/tokens/nope/revoke", headers=admin), 404)
    for body in ({"name": "k", "public_key": "!!"}, {"name": "k", "public_key": "AAAA"}):
        _check_error(served.client.post("/v1/admin/keys", headers=admin, json=body), 400)


def test_bodies_over_the_limit_are_refused(serve: ServeFactory) -> None:
    served = serve(api_max_body_bytes=4096, api_max_batch=3)
    recorder = served.headers("recorder")
    big = {"entries": [served.seal({"pad": "x" * 5000})]}
    _check_error(served.client.post("/v1/entries", headers=recorder, json=big), 413)

    def chunks() -> Any:  # no Content-Length: the limit applies to the streamed bytes
        yield b'{"entries": ['
        for _ in range(10):
            yield b'"' + b"y" * 1000 + b'",'
        yield b"1]}"

    streamed = served.client.post("/v1/entries", headers=recorder, content=chunks())
    _check_error(streamed, 413)
    many = {"entries": [served.seal({"n": n}) for n in range(4)]}
    _check_error(served.client.post("/v1/entries", headers=recorder, json=many), 413)


def test_a_read_only_service_refuses_writes_with_4xx(serve: ServeFactory) -> None:
    served = serve()
    served.app.state.service.close()
    from fastapi.testclient import TestClient

    from ledger.api import create_app

    settings = served.settings.model_copy(update={"api_read_only": True})
    app = create_app(settings)
    try:
        client = TestClient(app)
        recorder = served.headers("recorder")
        body = {"entries": [served.seal({"n": 1})]}
        _check_error(client.post("/v1/entries", headers=recorder, json=body), 405)
        admin = served.headers("admin")
        made = client.post("/v1/admin/tokens", headers=admin, json={"role": "admin", "name": "x"})
        _check_error(made, 405)
        assert client.get("/v1/entries/1", headers=served.headers("auditor")).status_code == 200
    finally:
        app.state.service.close()


def test_tokens_never_reach_logs_or_errors(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts = []
    for who in ("expired", "revoked", "recorder", "auditor"):
        texts.append(served.client.get("/v1/admin/tokens", headers=served.headers(who)).text)
    bogus = "ldt_0000000000000000_" + "B" * 43
    texts.append(
        served.client.get("/v1/entries", headers={"Authorization": f"Bearer {bogus}"}).text
    )
    texts.append(served.client.get("/v1/entries", headers={"Authorization": "Bearer x"}).text)
    for token in [*served.tokens.values(), bogus]:
        secret = token.split("_", 2)[2]  # ldt_<id>_<secret>; the secret may hold "_" itself
        assert all(secret not in text for text in texts)
        assert secret not in caplog.text


def test_cors_is_off_by_default(served: Served) -> None:
    answer = served.client.options(
        "/v1/log/checkpoint",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in answer.headers
    plain = served.client.get("/v1/log/checkpoint", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in plain.headers


def test_an_unexpected_error_is_a_bare_500(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    # A bug (here: a method that blows up) must not leak its text or traceback.
    def boom(*_args: object) -> None:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(type(served.app.state.service), "keys", boom)
    from fastapi.testclient import TestClient

    client = TestClient(served.app, raise_server_exceptions=False)
    answer = client.get("/v1/keys")
    assert answer.status_code == 500
    assert answer.json() == {"error": {"code": "internal", "message": "internal error"}}


def test_a_read_only_service_sees_what_a_writer_beside_it_commits(tmp_path: Path) -> None:
    # No write-ahead log at start-up (the writer closed), then a writer appends: a read-only
    # service must follow the log, not read the file as immutable.
    from fastapi.testclient import TestClient

    from ledger._ledger import Ledger
    from ledger.api import create_app
    from ledger.api.tokens import create_token
    from ledger.settings import Settings
    from tests.api.conftest import api_settings, body, fill

    home = tmp_path / "home"
    fill(home, None, 2)
    settings = Settings(home=home, checkpoint_every=0, checkpoint_interval=0)
    with Ledger.from_settings(settings) as lg:
        token = create_token(lg.store.engine, role="auditor", name="ro")[0]
    assert not (home / "ledger.db-wal").exists()
    app = create_app(api_settings(home, f"sqlite:///{home / 'ledger.db'}", api_read_only=True))
    try:
        client = TestClient(app)
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/v1/log/checkpoint").json()["tree_size"] == 2
        with Ledger.from_settings(settings) as lg:
            lg.append_many([body(n) for n in range(2, 5)])
            lg.checkpoint()
            assert client.get("/v1/log/checkpoint").json()["tree_size"] == 5
            assert (
                client.get("/v1/entries/4", headers=headers).json()["entry"]["entry"]["body"]["n"]
                == 4
            )
    finally:
        app.state.service.close()


def test_nul_characters_are_bad_input_on_every_backend(served: Served) -> None:
    auditor, admin = served.headers("auditor"), served.headers("admin")
    for path in (
        "/v1/entries?dataset=a%00b",
        "/v1/entries?model=%00",
        "/v1/audit/conduct?dataset=%00",
    ):
        _check_error(served.client.get(path, headers=auditor), 400)
    for body in ({"role": "auditor", "name": "a\x00b"},
                 {"role": "auditor", "name": "a", "datasets": ["\x00"]}):  # fmt: skip
        _check_error(served.client.post("/v1/admin/tokens", headers=admin, json=body), 400)
    _check_error(served.client.post("/v1/admin/tokens/%00/revoke", headers=admin), 404)
    key = {"name": "k\x00", "public_key": "A" * 43 + "="}
    _check_error(served.client.post("/v1/admin/keys", headers=admin, json=key), 400)
    # seal_entry itself refuses NUL now; a client that skipped that check signs by hand.
    with pytest.raises(InputError, match="NUL"):
        served.seal({"dataset": "x\x00y"})
    good = served.seal({"dataset": "xy"})
    body = {**good["body"], "dataset": "x\x00y"}
    signature = served.recorder_key.sign(canonical_json(body))
    forged = {**good, "body": body, "sig": base64.b64encode(signature).decode()}
    sealed = {"entries": [forged]}
    _check_error(
        served.client.post("/v1/entries", headers=served.headers("recorder"), json=sealed), 400
    )
