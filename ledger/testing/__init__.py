"""Helpers for testing a recording setup offline.

:class:`FakeProviderServer` is a local stand-in teacher API on 127.0.0.1 that speaks the OpenAI
(chat, responses, completions, embeddings), Anthropic (messages) and Gemini (generateContent)
wire formats, streamed or not, with switches for rate limits, server errors, gzip and cut
connections. The project's own tests and ``ledger demo`` run the real SDKs against it.
"""

from __future__ import annotations

from ledger.testing.fake_provider import FakeProviderServer, RecordedRequest, expected_text

__all__ = ["FakeProviderServer", "RecordedRequest", "expected_text"]
