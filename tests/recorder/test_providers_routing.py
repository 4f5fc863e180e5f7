"""Choosing the provider (host, user configuration, SDK hint) and the wire format (path)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.recorder.providers import (
    AnthropicAdapter,
    Exchange,
    GeminiAdapter,
    OpenAIAdapter,
    UnknownAdapter,
    identify,
    parse_exchange,
    provider_for_host,
)


@pytest.mark.parametrize(
    ("host", "provider"),
    [
        ("api.openai.com", "openai"),
        ("API.OpenAI.com:443", "openai"),
        ("myres.openai.azure.com", "azure.ai.openai"),
        ("myres.cognitiveservices.azure.com", "azure.ai.openai"),
        ("api.anthropic.com", "anthropic"),
        ("generativelanguage.googleapis.com", "gcp.gemini"),
        ("api.deepseek.com", "deepseek"),
        ("openrouter.ai", "openrouter"),
        ("api.together.xyz", "together"),
        ("api.groq.com", "groq"),
        ("api.mistral.ai", "mistral_ai"),
        ("api.x.ai", "x_ai"),
        ("127.0.0.1:8000", "unknown"),
        ("openai.azure.com.evil.example", "unknown"),
    ],
)
def test_provider_by_host(host: str, provider: str) -> None:
    assert provider_for_host(host) == provider


def test_precedence_host_then_configuration_then_hint() -> None:
    hosts = {"vllm.internal:8000": "self-hosted", "*.corp.example": "self-hosted"}
    # A known host wins over a hint (the OpenAI SDK pointed at DeepSeek is DeepSeek).
    assert provider_for_host("api.deepseek.com", provider_hint="openai", hosts=hosts) == "deepseek"
    assert provider_for_host("vllm.internal", provider_hint="openai", hosts=hosts) == "self-hosted"
    assert provider_for_host("gpu1.corp.example", hosts=hosts) == "self-hosted"
    assert provider_for_host("corp.example.org", provider_hint="openai", hosts=hosts) == "openai"
    assert provider_for_host("[::1]:8080", provider_hint="anthropic") == "anthropic"
    assert provider_for_host("[::1]:8080", hosts={"[::1]": "self-hosted"}) == "self-hosted"
    # urlsplit().hostname drops the brackets; configuration may keep them.
    assert provider_for_host("::1", hosts={"[::1]:8000": "self-hosted"}) == "self-hosted"


@pytest.mark.parametrize(
    ("path", "adapter"),
    [
        ("/v1/chat/completions", OpenAIAdapter("unknown", "chat")),
        ("/chat/completions", OpenAIAdapter("unknown", "chat")),
        ("/api/v1/chat/completions", OpenAIAdapter("unknown", "chat")),
        ("/openai/v1/chat/completions/", OpenAIAdapter("unknown", "chat")),
        ("/v1/responses", OpenAIAdapter("unknown", "responses")),
        ("/v1/completions?x=1", OpenAIAdapter("unknown", "text_completion")),
        ("/beta/completions", OpenAIAdapter("unknown", "text_completion")),
        ("/v1/embeddings", OpenAIAdapter("unknown", "embeddings")),
        (
            "/openai/deployments/my-dep/embeddings",
            OpenAIAdapter("unknown", "embeddings", path_model="my-dep"),
        ),
        ("/v1/messages", AnthropicAdapter("unknown")),
        ("/anthropic/v1/messages", AnthropicAdapter("unknown")),
        (
            "/v1beta/models/gemini-2.5-flash:generateContent",
            GeminiAdapter("unknown", "gemini-2.5-flash", streaming=False),
        ),
        (
            "/v1/models/gemini-2.5-flash:streamGenerateContent",
            GeminiAdapter("unknown", "gemini-2.5-flash", streaming=True),
        ),
        (
            "/v1beta/models/gemini-2.5-flash%3AstreamGenerateContent",
            GeminiAdapter("unknown", "gemini-2.5-flash", streaming=True),
        ),
        (
            "/v1/projects/p/locations/us/publishers/google/models/gemini-2.0:generateContent",
            GeminiAdapter("unknown", "gemini-2.0", streaming=False),
        ),
        ("/v1beta/models/gemini-2.5-flash:countTokens", UnknownAdapter("unknown")),
        ("/v1/messages/count_tokens", UnknownAdapter("unknown")),
        ("/v1/threads/th_1/messages", UnknownAdapter("unknown")),
        ("/v1/files", UnknownAdapter("unknown")),
        ("/", UnknownAdapter("unknown")),
        ("", UnknownAdapter("unknown")),
    ],
)
def test_format_by_path(path: str, adapter: object) -> None:
    assert identify("unknown.example", path) == adapter


def test_unknown_host_with_known_path_is_still_parsed() -> None:
    body = {"id": "chatcmpl-9", "model": "llama-3", "choices": [{"message": {"content": "hi"}}]}
    facts = parse_exchange(
        Exchange(
            method="POST",
            url="http://10.0.0.5:8000/v1/chat/completions",
            request_headers={},
            request_body=b'{"model": "llama-3"}',
            status=200,
            response_headers={"content-type": "application/json"},
            response_body=json.dumps(body).encode(),
            complete=True,
        )
    )
    assert (facts.provider, facts.operation, facts.outputs) == ("unknown", "chat", ("hi",))
    configured = parse_exchange(
        Exchange("POST", "http://10.0.0.5:8000/v1/chat/completions", {}, b"{}", 200, {}, b"", True),
        hosts={"10.0.0.5": "self-hosted"},
    )
    assert configured.provider == "self-hosted"


def test_unknown_path_records_nothing_from_the_body() -> None:
    body = json.dumps({"id": "file-1", "model": "x", "usage": {"prompt_tokens": 3}}).encode()
    facts = parse_exchange(
        Exchange(
            method="POST",
            url="https://api.openai.com/v1/files?purpose=x",
            request_headers={},
            request_body=b'{"model": "gpt-4o"}',
            status=200,
            response_headers={"content-type": "application/json"},
            response_body=body,
            complete=True,
        )
    )
    assert facts.provider == "openai"
    assert facts.operation == "unknown"
    assert (facts.request_model, facts.response_model, facts.response_id) == (None, None, None)
    assert (facts.input_tokens, facts.outputs, facts.output_modality) == (None, (), None)
    assert facts.request_json == {"model": "gpt-4o"}


_URLS = st.sampled_from(
    [
        "https://api.openai.com/v1/chat/completions",
        "https://api.openai.com/v1/responses",
        "https://api.openai.com/v1/completions",
        "https://api.openai.com/v1/embeddings",
        "https://api.anthropic.com/v1/messages",
        "https://generativelanguage.googleapis.com/v1beta/models/g:streamGenerateContent?alt=sse",
        "https://generativelanguage.googleapis.com/v1beta/models/g:generateContent",
        "http://[::1/broken",
        "not a url",
    ]
)
_FRAGMENTS = st.sampled_from(
    [
        b"data: ",
        b"event: message_delta\n",
        b"\n\n",
        b"\r\n",
        b'{"choices": [{"index": 0, "delta": {"content": "x"}}]}',
        b'{"type": "message_delta", "usage": {"output_tokens": "7"}}',
        b'{"type": "response.completed", "response": {"output": 3}}',
        b'{"candidates": [{"index": -1, "content": {"parts": [1, {"text": 2}]}}]}',
        b'{"usage": {"prompt_tokens": true, "completion_tokens": -3}}',
        b"[",
        b",",
        b"]",
        b"[DONE]",
        b"\x1f\x8b",
        b"\xff",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    url=_URLS,
    body=st.one_of(st.binary(max_size=300), st.lists(_FRAGMENTS, max_size=12).map(b"".join)),
    request=st.one_of(st.binary(max_size=50), st.just(b'{"model": 1, "stream": true}')),
    content_type=st.sampled_from(["text/event-stream", "application/json", None]),
    status=st.sampled_from([200, 429, None]),
)
def test_parse_exchange_never_raises(
    url: str, body: bytes, request: bytes, content_type: str | None, status: int | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    facts = parse_exchange(Exchange("POST", url, {}, request, status, headers, body, False))
    assert all(isinstance(t, str) for t in facts.outputs)
    assert all(isinstance(r, str) for r in facts.finish_reasons)
    for count in (facts.input_tokens, facts.output_tokens):
        assert count is None or (isinstance(count, int) and count >= 0)
    assert facts.request_model is None or isinstance(facts.request_model, str)


def test_meta_llama_api_is_recorded_as_meta() -> None:
    """Meta's Llama API has terms of its own (policies/meta.yaml): its calls must say so."""
    adapter = identify("api.llama.com", "/compat/v1/chat/completions")
    assert isinstance(adapter, OpenAIAdapter)
    assert adapter.provider == "meta"
