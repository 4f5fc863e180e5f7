"""Version-2 entries: keyed per-output fingerprints, the fingerprint secret, and their privacy.

Calls go through the real SDKs (wrapped by ``ledger.wrap``) to the fake provider, or, where a
chosen answer text is needed ("Yes."), through the recorder's own begin/respond/feed/finish.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

import ledger
from ledger.crypto.canonical import canonical_json, normalize_output
from ledger.crypto.fingerprint import dataset_key, fingerprint, output_record
from ledger.entry_body import ENTRY_VERSION, EntryBody
from ledger.log.keyring import FINGERPRINT_FILE, Keyring, _ensure_fingerprint_secret
from ledger.recorder import Recorder, wrap
from ledger.testing.fake_provider import THOUGHT, FakeProviderServer, expected_text
from tests.recorder.helpers import API_KEY, bodies, open_ledger

THOUGHTS = {"x-fake-thoughts": "1"}
CHAT: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def lg(tmp_path: Path) -> Iterator[ledger.Ledger]:
    lg = open_ledger(tmp_path / "home")
    yield lg
    lg.close()


def _record(lg: ledger.Ledger, dataset: str | None, answer: str, reasoning: str | None) -> None:
    """Record one OpenAI-format chat call whose only choice is ``answer`` (and ``reasoning``)."""
    message: dict[str, Any] = {"role": "assistant", "content": answer}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    response = {
        "id": "chatcmpl-chosen",
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }
    recorder = Recorder(lg, purpose="evaluate", dataset=dataset, durability="sync")
    call = recorder.begin(
        "POST",
        "https://api.openai.com/v1/chat/completions",
        [("content-type", "application/json"), ("authorization", f"Bearer {API_KEY}")],
        b'{"model": "m", "messages": []}',
    )
    call.respond(200, {"content-type": "application/json"})
    call.feed(json.dumps(response).encode())
    call.ended = True
    call.finish()


def test_chat_outputs_are_keyed_per_choice_with_reasoning(
    fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    bare = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key=API_KEY, max_retries=0)
    with wrap(bare, ledger=lg, purpose="train-model", dataset="set-a", durability="sync") as c:
        got = c.chat.completions.create(model="m", messages=CHAT, n=2, extra_headers=THOUGHTS)
    (body,) = bodies(lg)
    assert body["v"] == ENTRY_VERSION == 2
    assert "output_sha256" not in body
    key = lg.fingerprint_key("set-a")
    assert [o["index"] for o in body["outputs"]] == [0, 1]
    for output, choice in zip(body["outputs"], got.choices, strict=True):
        assert output == {
            "index": choice.index,
            **output_record(key, choice.message.content, THOUGHT),
        }
        assert output["answer"] == fingerprint(key, normalize_output(choice.message.content or ""))
        assert output["reasoning"] == fingerprint(key, normalize_output(THOUGHT))
        joined = f"{normalize_output(THOUGHT)}\n\n{normalize_output(choice.message.content or '')}"
        assert fingerprint(key, joined) in output["joins"]
    # Another dataset's key opens nothing of this one's.
    other = lg.fingerprint_key("set-b")
    assert other != key
    assert (
        body["outputs"][0]["answer"]
        != output_record(other, got.choices[0].message.content, None)["answer"]
    )


def test_anthropic_and_gemini_reasoning_is_fingerprinted(
    fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    ant = anthropic.Anthropic(
        base_url=fake_provider.anthropic_base_url, api_key=API_KEY, max_retries=0
    )
    options = types.HttpOptions(base_url=fake_provider.gemini_base_url, headers=THOUGHTS)
    gem = genai.Client(api_key=API_KEY, http_options=options)
    with wrap(ant, ledger=lg, purpose="evaluate", durability="sync") as client:
        with client.messages.stream(
            model="c",
            max_tokens=64,
            messages=[{"role": "user", "content": "Hi"}],
            extra_headers=THOUGHTS,
        ) as stream:
            text = stream.get_final_text()
    wrapped = wrap(gem, ledger=lg, purpose="evaluate", durability="sync")
    reply = wrapped.models.generate_content(model="g", contents="Hi")
    first, second = bodies(lg)
    key = lg.fingerprint_key(None)
    assert first["outputs"] == [{"index": 0, **output_record(key, text, THOUGHT)}]
    assert second["outputs"] == [{"index": 0, **output_record(key, reply.text, THOUGHT)}]
    assert first["outputs"][0]["reasoning"] is not None


def test_outputs_without_text_and_embeddings(
    fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    bare = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key=API_KEY, max_retries=0)
    with wrap(bare, ledger=lg, purpose="evaluate", durability="sync") as client:
        client.embeddings.create(model="e", input="hello")
        client.chat.completions.create(
            model="m", messages=CHAT, extra_headers={"x-fake-tool-calls": "1"}
        )
    embedding, tools = bodies(lg)
    assert "outputs" not in embedding  # no text output at all
    assert tools["outputs"][0]["answer"] is None  # a choice with only a tool call
    assert tools["outputs"][0]["index"] == 0


def test_a_guessed_short_output_cannot_be_confirmed_without_the_key(lg: ledger.Ledger) -> None:
    _record(lg, "ds", "Yes.", None)
    stored = next(iter(lg.entries()))
    leaf = canonical_json(stored.entry).decode()
    # Nothing in the signed entry is an unkeyed digest of any plausible form of the guess.
    for guess in ("Yes.", "Yes", "yes.", " Yes.\n", "yes"):
        for form in {guess, normalize_output(guess)}:
            data = form.encode()
            for digest in (
                hashlib.sha256(data).hexdigest(),
                hashlib.sha1(data).hexdigest(),  # noqa: S324 - looking for it, not using it
                hashlib.md5(data).hexdigest(),  # noqa: S324 - looking for it, not using it
                hashlib.blake2b(data).hexdigest(),
                hashlib.sha256(data).hexdigest()[:32],
            ):
                assert digest not in leaf
    # A key derived from any secret other than the ledger's does not reproduce the record ...
    answer = stored.body["outputs"][0]["answer"]
    for secret in (b"\x00" * 32, hashlib.sha256(b"guess").digest()):
        assert fingerprint(dataset_key(secret, "ds"), "Yes.") != answer
    # ... and no other guess matches under the right key: only the key holder can check.
    key = lg.fingerprint_key("ds")
    assert fingerprint(key, "Yes.") == answer
    assert fingerprint(key, "No.") != answer


def test_fingerprint_secret_file(lg: ledger.Ledger) -> None:
    path = lg.home / "keys" / FINGERPRINT_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
    assert len(secret) == 32
    assert lg.fingerprint_key("x") == dataset_key(secret, "x")
    assert lg.fingerprint_key(None) != lg.fingerprint_key("")


def test_an_old_home_without_the_secret_opens_and_gets_one(tmp_path: Path) -> None:
    home = tmp_path / "old"
    first = open_ledger(home)
    first.append({"provider": "openai", "purpose": "evaluate"})
    first.close()
    (home / "keys" / FINGERPRINT_FILE).unlink()  # a home made before the file existed
    again = open_ledger(home)
    try:
        assert (home / "keys" / FINGERPRINT_FILE).exists()
        assert again.verify().ok
        assert len(again.fingerprint_key(None)) == 32
    finally:
        again.close()
    # The secret stays the same across opens: fingerprints recorded earlier keep matching.
    reopened = Keyring.open(home)
    assert reopened.fingerprint_secret == Keyring.open(home).fingerprint_secret


def test_an_old_home_in_a_read_only_key_folder_still_opens(tmp_path: Path) -> None:
    home = tmp_path / "ro"
    open_ledger(home).close()
    folder = home / "keys"
    (folder / FINGERPRINT_FILE).unlink()
    folder.chmod(0o500)
    immutable = False
    try:
        if os.access(folder, os.W_OK):
            # root ignores the mode bits; the immutable attribute stops root too (ext4, xfs).
            chattr = shutil.which("chattr")
            done = chattr and subprocess.run([chattr, "+i", str(folder)], check=False)
            if not done or done.returncode != 0:
                pytest.skip("cannot make a folder unwritable for this user")
            immutable = True
        keyring = Keyring.open(home)  # loads; the secret is simply not there yet
        with pytest.raises(ledger.ConfigError, match="fingerprint secret"):
            _ = keyring.fingerprint_secret
        assert not (folder / FINGERPRINT_FILE).exists()
    finally:
        if immutable:
            subprocess.run([str(shutil.which("chattr")), "-i", str(folder)], check=True)
        folder.chmod(0o700)


def test_racing_creators_end_with_one_secret(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir()
    barrier = threading.Barrier(8)
    results: list[bytes] = []

    def create() -> None:
        barrier.wait()
        results.append(_ensure_fingerprint_secret(folder))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert len(set(results)) == 1
    assert [p.name for p in folder.iterdir()] == [FINGERPRINT_FILE]  # no temporary file left


def test_a_ledger_without_fingerprint_key_records_without_outputs(
    lg: ledger.Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    class NoFingerprints:
        """A ledger-like object from before fingerprint_key existed."""

        def __init__(self, inner: ledger.Ledger) -> None:
            self._inner = inner
            self.home = inner.home

        def __getattr__(self, name: str) -> Any:
            if name == "fingerprint_key":
                raise AttributeError(name)
            return getattr(self._inner, name)

    old = NoFingerprints(lg)
    recorder = Recorder(old, purpose="evaluate", durability="sync")  # type: ignore[arg-type]
    call = recorder.begin("POST", "https://api.openai.com/v1/completions", [], b"{}")
    call.respond(200, {"content-type": "application/json"})
    call.feed(json.dumps({"choices": [{"index": 0, "text": expected_text(0, 2)}]}).encode())
    call.ended = True
    with caplog.at_level("WARNING", logger="ledger.recorder"):
        call.finish()
    (body,) = bodies(lg)
    assert "outputs" not in body
    assert "output_sha256" not in body
    assert "without output fingerprints" in caplog.text


def test_recorded_bodies_have_the_typed_shape(
    fake_provider: FakeProviderServer, lg: ledger.Ledger
) -> None:
    """What the recorder writes is exactly ``EntryBody``: every required field, nothing unknown."""
    bare = openai.OpenAI(base_url=fake_provider.openai_base_url, api_key=API_KEY, max_retries=0)
    with wrap(bare, ledger=lg, purpose="evaluate", durability="sync") as client:
        client.chat.completions.create(model="m", messages=CHAT)
        for _ in client.chat.completions.create(model="m", messages=CHAT, stream=True):
            pass
        client.embeddings.create(model="e", input="x")
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(
                model="m", messages=CHAT, extra_headers={"x-fake-status": "429"}
            )
    recorded = bodies(lg)
    assert len(recorded) == 4
    known = EntryBody.__required_keys__ | EntryBody.__optional_keys__
    for body in recorded:
        assert EntryBody.__required_keys__ <= set(body), EntryBody.__required_keys__ - set(body)
        assert set(body) <= known, set(body) - known


def test_a_read_only_ledger_reads_the_key_and_never_creates_it(tmp_path: Path) -> None:
    home = tmp_path / "shared"
    writer = open_ledger(home)
    expected = writer.fingerprint_key("ds")
    writer.close()
    settings = ledger.Settings(home=home, database_url=f"sqlite:///{home / 'ledger.db'}")
    reader = ledger.Ledger.from_settings(settings, read_only=True)
    try:
        assert reader.fingerprint_key("ds") == expected
        (home / "keys" / FINGERPRINT_FILE).unlink()
        with pytest.raises(ledger.ConfigError, match="no fingerprint secret"):
            reader.fingerprint_key("ds")
        assert not (home / "keys" / FINGERPRINT_FILE).exists()
    finally:
        reader.close()
