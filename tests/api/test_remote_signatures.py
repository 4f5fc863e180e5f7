"""RemoteLedger checks each entry's recorder signature, not only its proof.

The lying server here holds the log key (it signs valid checkpoints) but not the recorder's
key: it logs an entry whose body it changed, so the inclusion proof, the multiproof and the
checkpoint are all valid for the changed entry, and only the signature shows the forgery.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import ledger
from ledger._ledger import Ledger
from ledger.api import create_app
from ledger.api.tokens import create_token
from ledger.crypto.canonical import canonical_json
from ledger.crypto.keys import SigningKey
from ledger.crypto.merkle import leaf_hash
from ledger.errors import SignatureError
from ledger.log.records import PreparedEntry, indexed_values, parse_timestamp, signed_entry_bytes
from ledger.settings import Settings
from tests.api.conftest import api_settings, fill


def _log_as_is(lg: Ledger, entry: dict[str, Any]) -> None:
    """Store ``entry`` exactly as given, unchecked: what a server that lies would do."""
    body = entry["body"]
    data = signed_entry_bytes(canonical_json(body), entry["key_id"], entry["sig"])
    prepared = PreparedEntry(body["id"], data, leaf_hash(data), entry["key_id"],
                             parse_timestamp(body["recorded_at"]), indexed_values(body),
                             body)  # fmt: skip
    lg.store.append([prepared])


def _forged_log(tmp_path: Path, database_url: str) -> tuple[Path, SigningKey]:
    home = tmp_path / "home"
    fill(home, database_url, 6)
    settings = Settings(home=home, database_url=database_url, checkpoint_every=0,
                        checkpoint_interval=0)  # fmt: skip
    stranger = SigningKey.generate()
    with Ledger.from_settings(settings) as lg:
        honest = lg.seal({"purpose": "evaluate", "dataset": "alpha", "n": 6})
        changed = {**honest, "body": {**honest["body"], "purpose": "train-a-competitor"}}
        _log_as_is(lg, changed)  # leaf 6: a changed body under the honest signature
        alien = {
            "purpose": "evaluate",
            "dataset": "alpha",
            "n": 7,
            "v": 1,
            "id": "alien-entry",
            "recorder": stranger.key_id,
            "recorded_at": "2026-12-01T00:00:00.000000Z",
        }
        sig = base64.b64encode(stranger.sign(canonical_json(alien))).decode()
        _log_as_is(lg, {"body": alien, "key_id": stranger.key_id, "sig": sig})  # leaf 7
        lg.append({"purpose": "evaluate", "dataset": "alpha", "n": 8})  # leaf 8: honest
        lg.checkpoint()  # the log key vouches for all of it
    return home, stranger


def test_a_changed_body_with_a_valid_proof_is_refused(tmp_path: Path, database_url: str) -> None:
    home, _ = _forged_log(tmp_path, database_url)
    app = create_app(api_settings(home, database_url))
    try:
        engine = app.state.service.writer.store.engine
        token = create_token(engine, role="auditor", name="a")[0]
        http = TestClient(app)
        client = ledger.connect("http://testserver", token, client=http)
        assert client.entry(5).body["n"] == 5  # honest entries pass
        assert client.entry(8).body["n"] == 8
        with pytest.raises(SignatureError, match="entry 6 does not match its body"):
            client.entry(6)
        with pytest.raises(SignatureError, match="entry 7 is signed by key"):
            client.entry(7)
        with pytest.raises(SignatureError, match="entry 6"):
            client.page(limit=20)  # one forged entry refuses the page
        first, _ = client.page(limit=6)
        assert [e.body["n"] for e in first] == list(range(6))
        unchecked = ledger.connect("http://testserver", token, client=http, verify=False)
        assert unchecked.entry(6).body["purpose"] == "train-a-competitor"  # what was caught
        http.close()
    finally:
        app.state.service.close()


def test_a_key_registered_later_is_fetched_once_more(tmp_path: Path, database_url: str) -> None:
    home = tmp_path / "home"
    fill(home, database_url, 3)
    app = create_app(api_settings(home, database_url))
    try:
        service = app.state.service
        token = create_token(service.writer.store.engine, role="auditor", name="a")[0]
        calls: list[str] = []

        def count(request: httpx.Request) -> None:
            calls.append(request.url.path)

        http = TestClient(app)
        http.event_hooks = {"request": [count]}
        client = ledger.connect("http://testserver", token, client=http)
        client.entry(0)
        service.writer.rotate_key("recorder")  # entries from now on name a new key
        service.writer.append({"purpose": "evaluate", "n": 3})
        service.writer.checkpoint()
        assert client.entry(3).body["n"] == 3
        assert client.entry(1).body["n"] == 1  # the retired key still verifies old entries
        assert calls.count("/v1/keys") == 2  # first use, then once for the new key
        http.close()
    finally:
        app.state.service.close()
