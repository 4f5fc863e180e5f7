"""The fake provider server itself: routes, switches, headers, recording and the script mode."""

from __future__ import annotations

import gzip
import http.client
import json
import statistics
import subprocess
import sys
import time
from typing import Any

import pytest

from ledger.testing.fake_provider import FakeProviderServer, expected_text

CHAT = "/v1/chat/completions"


def post(
    server: FakeProviderServer,
    path: str,
    body: object,
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(
            "POST", path, json.dumps(body), {"content-type": "application/json", **(headers or {})}
        )
        response = conn.getresponse()
        return response, response.read()
    finally:
        if own:
            conn.close()


def sse_data(raw: bytes) -> list[Any]:
    events = []
    for line in raw.replace(b"\r\n", b"\n").split(b"\n"):
        if line.startswith(b"data: ") and line != b"data: [DONE]":
            events.append(json.loads(line[6:]))
    return events


def test_records_every_request_with_headers_and_body(fake_provider: FakeProviderServer) -> None:
    fake_provider.clear()
    body = {"model": "gpt-4o", "messages": []}
    post(fake_provider, CHAT, body, {"x-ledger-purpose": "evaluate", "x-trace": "1"})
    (request,) = fake_provider.requests
    assert request.method == "POST"
    assert request.path == CHAT
    assert request.headers["x-ledger-purpose"] == "evaluate"
    assert request.headers["x-trace"] == "1"
    assert request.json() == body
    fake_provider.clear()
    assert fake_provider.requests == []


def test_chat_echoes_model_choices_and_chunk_count(fake_provider: FakeProviderServer) -> None:
    response, raw = post(fake_provider, CHAT, {"model": "my-model", "n": 3}, {"x-fake-chunks": "4"})
    body = json.loads(raw)
    assert response.status == 200
    assert body["model"] == "my-model"
    assert [c["message"]["content"] for c in body["choices"]] == [
        expected_text(i, 4) for i in range(3)
    ]
    assert body["usage"]["completion_tokens"] == 12
    for name in ("x-request-id", "openai-organization", "openai-processing-ms"):
        assert response.getheader(name)
    assert response.getheader("x-ratelimit-remaining-requests") == "9999"


def test_chat_stream_include_usage_chunk(fake_provider: FakeProviderServer) -> None:
    body = {"model": "m", "stream": True, "stream_options": {"include_usage": True}}
    response, raw = post(fake_provider, CHAT, body, {"x-fake-chunks": "200"})
    assert response.getheader("content-type", "").startswith("text/event-stream")
    assert response.getheader("transfer-encoding") == "chunked"
    assert raw.endswith(b"data: [DONE]\n\n")
    events = sse_data(raw)
    contents = [e["choices"][0]["delta"].get("content") for e in events if e["choices"]]
    assert sum(1 for c in contents if c) == 200
    assert events[-1]["choices"] == []
    assert events[-1]["usage"]["completion_tokens"] == 200
    assert all(e["usage"] is None for e in events[:-1])


@pytest.mark.parametrize(
    ("path", "check"),
    [
        (CHAT, lambda b: b["error"]["type"] == "rate_limit_exceeded"),
        (
            "/v1/messages",
            lambda b: b["type"] == "error" and b["error"]["type"] == "rate_limit_error",
        ),
        (
            "/v1beta/models/g:generateContent",
            lambda b: b["error"]["status"] == "RESOURCE_EXHAUSTED" and b["error"]["code"] == 429,
        ),
    ],
)
def test_status_429_in_provider_format(
    fake_provider: FakeProviderServer, path: str, check: Any
) -> None:
    response, raw = post(fake_provider, path, {"model": "m"}, {"x-fake-status": "429"})
    assert response.status == 429
    assert response.getheader("retry-after") == "1"
    assert check(json.loads(raw))
    if path == "/v1/messages":
        assert response.getheader("request-id")
        assert response.getheader("anthropic-ratelimit-requests-remaining") == "3999"
    if path == CHAT:
        assert response.getheader("x-ratelimit-limit-tokens")


def test_status_500(fake_provider: FakeProviderServer) -> None:
    response, raw = post(fake_provider, CHAT, {"model": "m"}, {"x-fake-status": "500"})
    assert response.status == 500
    assert json.loads(raw)["error"]["type"] == "server_error"
    assert response.getheader("retry-after") is None


def test_gzip_json_and_stream(fake_provider: FakeProviderServer) -> None:
    response, raw = post(fake_provider, CHAT, {"model": "m"}, {"x-fake-gzip": "1"})
    assert response.getheader("content-encoding") == "gzip"
    assert json.loads(gzip.decompress(raw))["model"] == "m"
    body = {"model": "m", "stream": True}
    response, raw = post(fake_provider, "/v1/messages", body, {"x-fake-gzip": "1"})
    assert response.getheader("content-encoding") == "gzip"
    assert b"message_stop" in gzip.decompress(raw)


def test_abort_after_cuts_streams_and_bodies(fake_provider: FakeProviderServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fake_provider.port, timeout=10)
    body = {"model": "m", "stream": True}
    conn.request("POST", CHAT, json.dumps(body), {"x-fake-chunks": "9", "x-fake-abort-after": "3"})
    response = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    conn.close()
    assert len(sse_data(cut.value.partial)) == 3
    conn = http.client.HTTPConnection("127.0.0.1", fake_provider.port, timeout=10)
    conn.request("POST", CHAT, json.dumps({"model": "m"}), {"x-fake-abort-after": "10"})
    response = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    conn.close()
    assert cut.value.partial == b'{"id": "ch'


def test_delay(fake_provider: FakeProviderServer) -> None:
    start = time.perf_counter()
    post(fake_provider, CHAT, {"model": "m"}, {"x-fake-delay-ms": "120"})
    assert time.perf_counter() - start >= 0.12


def test_keep_alive_and_no_delayed_ack_stall(fake_provider: FakeProviderServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fake_provider.port, timeout=10)
    post(fake_provider, CHAT, {"model": "m"}, conn=conn)
    sock = conn.sock
    timings = []
    for _ in range(15):
        start = time.perf_counter()
        response, _raw = post(fake_provider, CHAT, {"model": "m"}, conn=conn)
        timings.append(time.perf_counter() - start)
        assert response.status == 200
    assert conn.sock is sock  # one connection served every request
    conn.close()
    # Headers and body in one send with Nagle off: no ~40 ms delayed-ACK stall per call.
    assert statistics.median(timings) < 0.02


def test_other_routes(fake_provider: FakeProviderServer) -> None:
    _, raw = post(fake_provider, "/v1/embeddings", {"model": "e", "input": ["a", "b"]})
    assert [d["index"] for d in json.loads(raw)["data"]] == [0, 1]
    _, raw = post(fake_provider, "/v1/responses", {"model": "r", "stream": True})
    kinds = [e["type"] for e in sse_data(raw)]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    _, raw = post(fake_provider, "/v1/completions", {"model": "c", "prompt": "x"})
    assert json.loads(raw)["choices"][0]["text"] == expected_text(0, 3)
    gemini = "/v1beta/models/gem:streamGenerateContent"
    cfg = {"generationConfig": {"candidateCount": 2}}
    _, raw = post(fake_provider, gemini + "?alt=sse", cfg)
    assert b"\r\n\r\n" in raw
    chunks = sse_data(raw)
    assert [c["usageMetadata"]["candidatesTokenCount"] for c in chunks] == [2, 4, 6]
    _, raw = post(fake_provider, gemini, cfg)
    assert [c["modelVersion"] for c in json.loads(raw)] == ["gem"] * 3
    response, raw = post(fake_provider, "/v1/nothing", {})
    assert response.status == 404


def test_runs_as_a_script_and_prints_its_port_and_base_urls() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledger.testing", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()
        assert first[0] == "PORT"
        port = int(first[1])
        usage = {line.split()[0]: line for line in (proc.stdout.readline() for _ in range(4))}
        base = f"http://127.0.0.1:{port}"
        assert f"base_url='{base}/v1'" in usage["openai"]
        assert f"base_url='{base}'" in usage["anthropic"]
        assert f"HttpOptions(base_url='{base}')" in usage["gemini"]
        assert "hosts={'127.0.0.1': 'openai'}" in usage["hosts"]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/messages", json.dumps({"model": "claude-x"}))
        response = conn.getresponse()
        assert json.loads(response.read())["model"] == "claude-x"
        conn.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
