"""Dataset routes over real evidence packs built on the served ledger (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ledger.api.datasets import report_csp
from ledger.crypto.dsse import Envelope, verify_envelope
from ledger.crypto.merkle import verify_consistency
from ledger.crypto.note import NoteVerifier, verify_checkpoint
from ledger.errors import ConsistencyError
from ledger.manifest import BuildResult, build, verify
from ledger.manifest.pack import RECORDS
from ledger.testing.fake_provider import FakeProviderServer
from tests.api.conftest import Served, ServeFactory, close_served, open_served
from tests.audit.conftest import fake_provider  # noqa: F401 - the shared stand-in teacher
from tests.audit.helpers import FACTS
from tests.conftest import BACKENDS, fresh_postgres_schema
from tests.manifest.conftest import Scenario, scenario_on
from tests.report.conftest import browser, page  # noqa: F401 - real headless Chromium
from tests.report.helpers import checks, give_files, verdict, wait_done
from tests.report.test_verify_browser import ALL_CHECKS


@dataclass
class Packs:
    served: Served
    scene: Scenario
    zipped: BuildResult  # --zip, with report: seq 1
    folder: BuildResult  # a folder pack, with report: seq 2
    no_report: BuildResult  # --zip --no-report: seq 3, the latest stored
    unstored: BuildResult  # --no-store: seq 4

    def get(self, path: str, who: str = "auditor", **kw: Any) -> Any:
        return self.served.client.get(path, headers=self.served.headers(who), **kw)

    def post_pack(self, data: bytes, key: str | None = None, **headers: str) -> Any:
        return self.served.client.post(
            "/v1/manifests/verify",
            content=data,
            params={"key": key} if key is not None else None,
            headers={
                **self.served.headers("auditor"),
                "Content-Type": "application/zip",
                **headers,
            },
        )


@contextmanager
def _backend(param: str, folder: Path) -> Iterator[str]:
    if param == "sqlite":
        yield f"sqlite:///{folder / 'ledger.db'}"
    else:
        with fresh_postgres_schema() as url:
            yield url


@pytest.fixture(scope="module", params=BACKENDS)
def packs(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    fake_provider: FakeProviderServer,  # noqa: F811 - the imported fixture
) -> Iterator[Packs]:
    """Four builds of dataset ``tutor`` (read-only for the tests: built once per backend)."""
    folder = tmp_path_factory.mktemp("packs")
    with _backend(request.param, folder) as url:
        served = open_served(folder / "home", url)
        writer = served.app.state.service.writer
        try:
            with scenario_on(writer, folder / "home", fake_provider, folder) as scene:

                def one(out: str, **kw: Any) -> BuildResult:
                    return build(writer, [scene.dataset], folder / out, name="tutor",
                                 profile=FACTS, **kw)  # fmt: skip

                yield Packs(
                    served,
                    scene,
                    one("p1", zip_pack=True),
                    one("p2"),
                    one("p3", zip_pack=True, report=False),
                    one("p4", zip_pack=True, store=False),
                )
        finally:
            close_served(served)


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message"}
    return str(error["message"])


def test_listing_counts_entries_and_builds_and_follows_the_scope(packs: Packs) -> None:
    listed = packs.get("/v1/datasets").json()["datasets"]
    by_name = {d["name"]: d for d in listed}
    assert sorted(by_name) == ["alpha", "beta", "tutor"]
    assert (by_name["alpha"]["entries"], by_name["beta"]["entries"]) == (6, 6)
    assert (by_name["alpha"]["builds"], by_name["alpha"]["latest_build"]) == (0, None)
    tutor = by_name["tutor"]
    assert tutor["entries"] == len([b for b in packs.scene.lg.entries() if b.body.get("dataset")
                                    == "tutor"])  # fmt: skip
    assert tutor["builds"] == 4
    assert tutor["latest_build"]["seq"] == packs.unstored.record.seq == 4
    assert tutor["latest_build"]["examples"] == 6
    scoped = packs.get("/v1/datasets", "scoped_beta").json()["datasets"]
    assert [d["name"] for d in scoped] == ["beta"]


def test_one_dataset_lists_builds_with_consistency_proofs_to_the_checkpoint(packs: Packs) -> None:
    answer = packs.get("/v1/datasets/tutor").json()
    verifier = NoteVerifier.from_string(packs.served.verifier_key)
    head = verify_checkpoint(answer["checkpoint"]["note"], verifier)
    assert [b["seq"] for b in answer["builds"]] == [1, 2, 3, 4]
    for item, built in zip(
        answer["builds"], [packs.zipped, packs.folder, packs.no_report, packs.unstored], strict=True
    ):
        assert (
            item["manifest_sha256"]
            == hashlib.sha256(_member(built, "manifest.dsse.json")).hexdigest()
        )
        old = verify_checkpoint(item["checkpoint"], verifier)
        assert (old.size, old.root_hash.hex()) == (item["tree_size"], item["root_hash"])
        proof = item["consistency_proof"]
        assert (proof["first"], proof["second"]) == (old.size, head.size)
        verify_consistency(
            old.size,
            head.size,
            [bytes.fromhex(h) for h in proof["hashes"]],
            old.root_hash,
            head.root_hash,
        )
    assert [b["stored"] for b in answer["builds"]] == [True, True, True, False]
    assert answer["builds"][0]["pack"]["sha256"] == _sha(packs.zipped.path.read_bytes())
    assert answer["builds"][0]["pack"]["size"] == packs.zipped.path.stat().st_size
    assert answer["builds"][3]["pack"] is None
    # A proof that does not fit is caught: another root does not verify.
    first = answer["builds"][0]
    with pytest.raises(ConsistencyError):
        verify_consistency(
            first["tree_size"],
            head.size,
            [bytes.fromhex(h) for h in first["consistency_proof"]["hashes"]],
            b"\x01" * 32,
            head.root_hash,
        )


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _member(built: BuildResult, name: str) -> bytes:
    if built.path.is_dir():
        return (built.path / name).read_bytes()
    with zipfile.ZipFile(built.path) as archive:
        return archive.read(name)


def test_the_pack_downloads_byte_for_byte_and_verifies(packs: Packs, tmp_path: Path) -> None:
    response = packs.get("/v1/datasets/tutor/manifest?build=1")
    assert response.status_code == 200, response.text
    built = packs.zipped.path.read_bytes()
    assert response.content == built
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"].startswith('attachment; filename="tutor-1.zip"')
    assert response.headers["etag"] == f'"{_sha(built)}"'
    digest = base64.b64encode(hashlib.sha256(built).digest()).decode()
    assert response.headers["repr-digest"] == f"sha-256=:{digest}:"
    saved = tmp_path / "downloaded.zip"
    saved.write_bytes(response.content)
    result = verify(saved, packs.served.verifier_key, datasets=[packs.scene.dataset])
    assert result.ok, result.failure
    cached = packs.served.client.get(
        "/v1/datasets/tutor/manifest?build=1",
        headers={**packs.served.headers("auditor"), "If-None-Match": f'"{_sha(built)}"'},
    )
    assert (cached.status_code, cached.content) == (304, b"")

    # The folder pack is stored as a zip of the folder's files, which verifies as well.
    folder = packs.get("/v1/datasets/tutor/manifest?build=2")
    with zipfile.ZipFile(io.BytesIO(folder.content)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    on_disk = {
        p.relative_to(packs.folder.path).as_posix(): p.read_bytes()
        for p in packs.folder.path.rglob("*")
        if p.is_file()
    }
    assert members == on_disk
    (tmp_path / "folder.zip").write_bytes(folder.content)
    assert verify(tmp_path / "folder.zip", packs.served.verifier_key).ok
    # Default: the latest stored build (3; 4 was built with --no-store).
    latest = packs.get("/v1/datasets/tutor/manifest")
    assert latest.content == packs.no_report.path.read_bytes()


def test_audit_summary_comes_with_the_envelope_that_signs_it(packs: Packs) -> None:
    answer = packs.get("/v1/datasets/tutor/audit?build=2").json()
    assert answer["build"]["seq"] == 2
    assert answer["summary"] == packs.folder.statement["predicate"]["summary"]
    assert answer["subject"] == packs.folder.statement["subject"]
    assert answer["purpose"] == "train-model"
    envelope = Envelope.from_dict(answer["envelope"])
    key = NoteVerifier.from_string(packs.served.verifier_key).public_key
    statement = json.loads(verify_envelope(envelope, key))
    assert statement["predicate"]["summary"] == answer["summary"]
    assert packs.get("/v1/datasets/tutor/audit").json()["build"]["seq"] == 3


def test_the_report_is_served_with_a_tight_policy(packs: Packs) -> None:
    response = packs.get("/v1/datasets/tutor/report?build=1")
    assert response.status_code == 200, response.text
    html = response.text
    assert html.encode() == _member(packs.zipped, "report.html")
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    csp = response.headers["content-security-policy"]
    assert csp == report_csp(html)
    assert "unsafe-inline" not in csp
    assert "default-src 'none'" in csp
    assert "connect-src 'none'" in csp
    # The one executable inline script is allowed by its hash, nothing else.
    scripts = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert re.search(r"script-src ([^;]+);", csp).group(1) == f"'sha256-{digest}'"  # type: ignore[union-attr]
    message = _error(packs.get("/v1/datasets/tutor/report"), 404)
    assert "no report.html" in message
    assert "--no-report" in message


def test_the_served_report_verifies_in_a_real_browser_under_its_policy(
    packs: Packs,
    page: Any,  # noqa: F811 - fails at teardown on any console error, a CSP violation included
) -> None:
    response = packs.get("/v1/datasets/tutor/report?build=2")
    assert response.status_code == 200, response.text
    # The browser gets exactly the service's answer, headers and all, at an https origin
    # (WebCrypto needs a secure context), so it enforces the header's policy.
    url = "https://ledger.test/v1/datasets/tutor/report"
    page.route(
        url,
        lambda route: route.fulfill(
            status=200, headers=dict(response.headers), body=response.content
        ),
    )
    page.goto(url)
    wait_done(page, 1)
    # The pack's report embeds the proof and entries; the auditor drops the rest onto it.
    folder = packs.folder.path
    give_files(page, [folder / "manifest.dsse.json", folder / RECORDS, packs.scene.dataset])
    found = {name: status for name, (status, _) in checks(page).items()}
    assert found == dict.fromkeys(ALL_CHECKS, "pass")
    assert verdict(page) == "pass"


def test_unknown_names_builds_and_unstored_packs_are_404(packs: Packs) -> None:
    assert "no dataset" in _error(packs.get("/v1/datasets/nope"), 404)
    for route in ("audit", "manifest", "report"):
        _error(packs.get(f"/v1/datasets/nope/{route}"), 404)
        assert "not a build" in _error(packs.get(f"/v1/datasets/tutor/{route}?build=99"), 404)
        assert "--no-store" in _error(packs.get(f"/v1/datasets/tutor/{route}?build=4"), 404)
        # alpha has entries but no build
        _error(packs.get(f"/v1/datasets/alpha/{route}"), 404)
        assert "scoped" in _error(packs.get(f"/v1/datasets/tutor/{route}", "scoped_beta"), 403)
    _error(packs.get("/v1/datasets/tutor", "scoped_beta"), 403)
    _error(packs.get("/v1/datasets/tutor/manifest?build=0"), 422)


def test_server_side_verification_passes_and_names_a_tampered_member(packs: Packs) -> None:
    good = packs.zipped.path.read_bytes()
    answer = packs.post_pack(good).json()
    assert answer["ok"] is True, answer["failure"]
    assert answer["key_source"] == "log"
    assert answer["verifier_key"] == packs.served.verifier_key
    assert "only as trustworthy as the server" in answer["note"]
    assert "signature" in answer["passed"]
    assert "path" not in answer
    explicit = packs.post_pack(good, packs.served.verifier_key).json()
    assert (explicit["ok"], explicit["key_source"]) == (True, "query")

    tampered = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as source, zipfile.ZipFile(tampered, "w") as out:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "proof.json":
                data = data.replace(b'"tree_size"', b'"tree_size" ', 1)
            out.writestr(info, data)
    failed = packs.post_pack(tampered.getvalue()).json()
    assert failed["ok"] is False
    assert failed["failure"]["where"] == "proof.json"
    assert failed["failure"]["check"]

    from ledger.crypto.keys import SigningKey
    from ledger.crypto.note import verifier_key_string

    stranger = verifier_key_string("stranger", SigningKey.generate().public_key.raw)
    wrong = packs.post_pack(good, stranger).json()
    assert (wrong["ok"], wrong["failure"]["check"]) == (False, "signature")


def test_bad_uploads_get_json_4xx(packs: Packs) -> None:
    assert "not a zip" in _error(packs.post_pack(b"PK\x03\x04 not really a zip" * 10), 400)
    _error(packs.post_pack(packs.zipped.path.read_bytes(), "nonsense"), 400)
    _error(packs.post_pack(b"{}", **{"Content-Type": "application/json"}), 415)
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as out:
        out.writestr("README.md", "hello")
    assert "not an evidence pack" in _error(packs.post_pack(empty.getvalue()), 400)


def test_a_pack_over_the_limit_gets_413(serve: ServeFactory) -> None:
    served = serve(count=2, api_max_pack_bytes=4096)
    headers = {**served.headers("auditor"), "Content-Type": "application/zip"}
    declared = served.client.post("/v1/manifests/verify", content=b"x" * 5000, headers=headers)
    assert "4096" in _error(declared, 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        for _ in range(5):
            yield b"y" * 1000

    streamed = served.client.post("/v1/manifests/verify", content=chunks(), headers=headers)
    _error(streamed, 413)
    # Other routes keep their own limit; the pack limit does not loosen them.
    assert served.settings.api_max_body_bytes == 8 * 1024 * 1024


def test_stored_pack_rows_are_append_only(packs: Packs) -> None:
    engine = packs.served.app.state.service.writer.store.engine
    for table in ("manifest_packs", "manifest_pack_chunks"):
        for statement in (f"UPDATE {table} SET seq = seq", f"DELETE FROM {table}"):
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
                conn.execute(text(statement))
