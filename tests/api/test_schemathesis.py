"""Property-based requests from /openapi.json (schemathesis): no 5xx, errors in one shape."""

from __future__ import annotations

from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api.conftest import Served, build_alpha_pack

CASES = 1200


def test_generated_requests_never_get_a_server_error(served: Served, tmp_path: Path) -> None:
    build_alpha_pack(served, tmp_path)  # so the dataset routes have a stored pack to serve
    schema = schemathesis.openapi.from_asgi("/openapi.json", served.app)
    seen = {"cases": 0}
    problems: list[str] = []

    @settings(max_examples=CASES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=schema.as_strategy())
    def one(case: schemathesis.Case) -> None:
        seen["cases"] += 1
        recording = case.operation.method.upper() == "POST" and case.operation.path == "/v1/entries"
        headers = served.headers("recorder" if recording else "admin")
        response = case.call(headers={**(case.headers or {}), **headers})
        if response.status_code >= 500:
            problems.append(f"{case.operation.method} {case.path}: {response.status_code}")
        elif response.status_code >= 400:
            error = response.json()["error"]
            assert set(error) == {"code", "message"}, response.text

    one()
    assert seen["cases"] >= 1000
    assert problems == []
