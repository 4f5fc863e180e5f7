"""Remote recording end to end: the real openai SDK, a real server killed and restarted."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

import ledger
from ledger.errors import StoreError
from ledger.recorder.spool import Spool
from ledger.testing.fake_provider import FakeProviderServer
from tests.api.conftest import Served, fill
from tests.api.server_process import ServerProcess

HOSTS = {"127.0.0.1": "openai"}
MESSAGES = [{"role": "user", "content": "Say hi"}]


def _token(home: Path, role: str, **kw: object) -> str:
    from ledger._ledger import Ledger
    from ledger.api.keys import register_recorder_key
    from ledger.api.tokens import create_token
    from ledger.crypto.keys import VerifyingKey
    from ledger.settings import Settings

    with Ledger.from_settings(Settings(home=home), create=False) as lg:
        key = kw.pop("recorder_key", None)
        if isinstance(key, VerifyingKey):
            kw["recorder_key_id"] = register_recorder_key(lg, key.raw, "box").key_id
        return create_token(lg.store.engine, role=role, name=role, **kw)[0]  # type: ignore[arg-type]


def test_nothing_lost_nothing_doubled_across_a_server_crash(tmp_path: Path) -> None:
    server_home, box = tmp_path / "server", tmp_path / "box"
    fill(server_home, None, 3)
    from ledger.log.keyring import Keyring

    recorder_key = Keyring.open(box).recorder.public_key
    recorder_token = _token(server_home, "recorder", recorder_key=recorder_key)
    auditor_token = _token(server_home, "auditor")
    log = tmp_path / "server.log"
    server = ServerProcess(server_home, log)
    seen: list[str] = []
    with FakeProviderServer() as fake:
        remote = ledger.connect(server.url, recorder_token, home=box)
        bare = openai.OpenAI(api_key="sk-test", base_url=fake.openai_base_url, max_retries=0)
        client = ledger.wrap(bare, ledger=remote, purpose="evaluate", hosts=HOSTS)

        def calls(n: int) -> None:
            for _ in range(n):
                raw = client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=MESSAGES
                )
                raw.parse()
                seen.append(raw.headers["x-ledger-entry-id"])

        calls(10)
        assert remote.flush(30)
        server.kill()
        calls(10)  # the server is down: the batches fail, the sink spools them
        assert remote.flush(60)
        assert Spool.for_home(box).status().entries >= 10
        server = ServerProcess(server_home, log, port=server.port)  # same address again
        calls(10)  # the first batch that goes through replays the spool
        assert remote.flush(60)
        remote.replay_spool()  # whatever the automatic replay had not reached yet
        assert Spool.for_home(box).status().entries == 0
        client.close()
        remote.close()
    try:
        auditor = ledger.connect(server.url, auditor_token)
        ids = [e.body["id"] for e in auditor.entries(limit=100)][3:]  # after the 3 fill() made
        auditor.close()
    finally:
        server.stop()
    assert len(seen) == 30
    assert sorted(ids) == sorted(seen)  # every call once: nothing lost, nothing doubled
    with ledger.open(home=server_home, read_only=True) as lg:
        assert lg.verify().ok


def test_a_recording_home_remembers_the_ledger_id_for_offline_restarts(
    served: Served, tmp_path: Path
) -> None:
    import httpx

    from ledger.crypto.keys import VerifyingKey

    box = tmp_path / "box"
    first = ledger.connect("http://testserver", served.tokens["recorder"], client=served.client,
                           home=box)  # fmt: skip
    key = VerifyingKey.from_pem(first.recorder_public_pem)
    assert key.key_id == first.recorder_key_id
    first.close()

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    offline = httpx.Client(base_url="http://testserver", transport=httpx.MockTransport(down))
    later = ledger.connect("http://testserver", served.tokens["recorder"], client=offline,
                           home=box)  # fmt: skip
    sealed = later.seal({"purpose": "evaluate"})  # no server needed
    assert sealed["body"]["ledger_id"] == served.ledger_id
    with pytest.raises(StoreError):
        later.append_sealed([sealed])
    later.close()
    offline.close()
