"""Every route against every kind of caller: no token, expired, revoked, each role, scoped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Served, build_alpha_pack

CALLERS = ("none", "expired", "revoked", "recorder", "auditor", "scoped_beta", "admin")
PUBLIC = dict.fromkeys(CALLERS, 200)
AUDITOR = {"none": 401, "expired": 401, "revoked": 401, "recorder": 403, "auditor": 200,
           "scoped_beta": 200, "admin": 200}  # fmt: skip
ADMIN = {**AUDITOR, "auditor": 403, "scoped_beta": 403}
NOT_BETA = {**AUDITOR, "scoped_beta": 403}  # a dataset route of alpha
RECORDER = {**AUDITOR, "recorder": 200, "auditor": 403, "scoped_beta": 403, "admin": 403}

# (method, route path as declared, concrete path, expected status by caller). Leaf 0 is in
# dataset alpha, so a token scoped to beta must not see it.
MATRIX: list[tuple[str, str, str, dict[str, int]]] = [
    ("GET", "/healthz", "/healthz", PUBLIC),
    ("GET", "/v1/log/checkpoint", "/v1/log/checkpoint", PUBLIC),
    ("GET", "/v1/keys", "/v1/keys", PUBLIC),
    ("GET", "/v1/entries", "/v1/entries?provider=openai", AUDITOR),
    ("GET", "/v1/entries", "/v1/entries?dataset=alpha", {**AUDITOR, "scoped_beta": 403}),
    ("GET", "/v1/entries/{leaf_index}", "/v1/entries/0", {**AUDITOR, "scoped_beta": 404}),
    ("GET", "/v1/entries/{leaf_index}", "/v1/entries/1", AUDITOR),
    ("GET", "/v1/log/proof/inclusion", "/v1/log/proof/inclusion?leaf_index=3", AUDITOR),
    ("GET", "/v1/log/proof/consistency", "/v1/log/proof/consistency?first=4", AUDITOR),
    ("GET", "/v1/policies", "/v1/policies", AUDITOR),
    ("GET", "/v1/policies/{provider}", "/v1/policies/anthropic", AUDITOR),
    ("GET", "/v1/audit/conduct", "/v1/audit/conduct", AUDITOR),
    ("GET", "/v1/datasets", "/v1/datasets", AUDITOR),
    ("GET", "/v1/datasets/{name}", "/v1/datasets/alpha", NOT_BETA),
    ("GET", "/v1/datasets/{name}", "/v1/datasets/beta", AUDITOR),
    ("GET", "/v1/datasets/{name}/audit", "/v1/datasets/alpha/audit", NOT_BETA),
    ("GET", "/v1/datasets/{name}/manifest", "/v1/datasets/alpha/manifest?build=1", NOT_BETA),
    ("GET", "/v1/datasets/{name}/report", "/v1/datasets/alpha/report", NOT_BETA),
    ("POST", "/v1/manifests/verify", "/v1/manifests/verify", AUDITOR),
    ("POST", "/v1/entries", "/v1/entries", RECORDER),
    ("GET", "/v1/admin/tokens", "/v1/admin/tokens", ADMIN),
    ("POST", "/v1/admin/tokens", "/v1/admin/tokens", {**ADMIN, "admin": 201}),
    ("POST", "/v1/admin/tokens/{token_id}/revoke", "/v1/admin/tokens/{victim}/revoke", ADMIN),
    ("POST", "/v1/admin/keys", "/v1/admin/keys", {**ADMIN, "admin": 201}),
]


def _body(served: Served, method: str, route: str, n: int) -> Any:
    if method != "POST":
        return None
    if route == "/v1/entries":
        return {"entries": [served.seal({"dataset": "beta", "n": 1000 + n})]}
    if route == "/v1/admin/tokens":
        return {"role": "auditor", "name": f"made {n}", "datasets": ["alpha"]}
    if route == "/v1/admin/keys":
        from ledger.crypto.keys import SigningKey

        raw = SigningKey.generate().public_key.raw
        import base64

        return {"name": f"key {n}", "public_key": base64.b64encode(raw).decode()}
    return None


def test_the_matrix_covers_every_route(served: Served) -> None:
    # Every route is in the OpenAPI document, and every one of those is in the matrix.
    paths = served.client.get("/openapi.json").json()["paths"]
    declared = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    assert declared == {(method, route) for method, route, _, _ in MATRIX}


@pytest.mark.parametrize(("method", "route", "path", "expected"), MATRIX)
def test_authorization_matrix(
    served: Served, method: str, route: str, path: str, expected: dict[str, int], tmp_path: Path
) -> None:
    pack = None
    if route.startswith(("/v1/datasets/{name}/", "/v1/manifests/")):
        pack = build_alpha_pack(served, tmp_path).read_bytes()
    for n, caller in enumerate(CALLERS):
        concrete = path
        if "{victim}" in path:
            from ledger.api.tokens import create_token

            _, info = create_token(served.app.state.service.writer.store.engine, role="auditor",
                                   name="victim")  # fmt: skip
            concrete = path.replace("{victim}", info.token_id)
        if route == "/v1/manifests/verify":
            headers = {**served.headers(caller), "Content-Type": "application/zip"}
            response = served.client.post(concrete, headers=headers, content=pack)
        else:
            body = _body(served, method, route, n)
            response = served.client.request(
                method, concrete, headers=served.headers(caller), json=body
            )
        assert response.status_code == expected[caller], (caller, response.text)
        if response.status_code >= 400:
            error = response.json()["error"]
            assert set(error) == {"code", "message"}
            assert error["code"] in {"unauthorized", "forbidden", "not_found"}
        if response.status_code == 401:
            assert response.headers["www-authenticate"] == "Bearer"
        for token in served.tokens.values():
            assert token not in response.text


def test_scoped_auditor_sees_only_its_datasets(served: Served) -> None:
    page = served.client.get("/v1/entries", headers=served.headers("scoped_beta")).json()
    datasets = {item["entry"]["body"]["dataset"] for item in page["entries"]}
    assert datasets == {"beta"}
    everything = served.client.get("/v1/entries", headers=served.headers("auditor")).json()
    assert {item["entry"]["body"]["dataset"] for item in everything["entries"]} == {"alpha", "beta"}
    findings = served.client.get("/v1/audit/conduct", headers=served.headers("scoped_beta"))
    assert findings.json()["entries_examined"] == len(page["entries"])


def test_a_revoked_token_stops_working_on_the_next_request(served: Served) -> None:
    made = served.client.post(
        "/v1/admin/tokens", headers=served.headers("admin"), json={"role": "auditor", "name": "x"}
    ).json()
    headers = {"Authorization": f"Bearer {made['token']}"}
    assert served.client.get("/v1/entries", headers=headers).status_code == 200
    revoked = served.client.post(
        f"/v1/admin/tokens/{made['token_id']}/revoke", headers=served.headers("admin")
    )
    assert revoked.json()["active"] is False
    refused = served.client.get("/v1/entries", headers=headers)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]["message"]
    listed = served.client.get("/v1/admin/tokens", headers=served.headers("admin")).text
    assert made["token"] not in listed


def test_a_recorder_token_submits_only_its_own_keys_entries(served: Served) -> None:
    from ledger.crypto.keys import SigningKey
    from ledger.log.records import seal_entry

    other = seal_entry({"purpose": "evaluate"}, SigningKey.generate(), served.ledger_id)
    refused = served.client.post(
        "/v1/entries", headers=served.headers("recorder"), json={"entries": [other]}
    )
    assert refused.status_code == 403
