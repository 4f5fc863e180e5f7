"""The in-browser verifier in a real headless Chromium: a good pack passes every check, and a
tampered checkpoint, entry or dataset file fails the check that guards it."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import random
from pathlib import Path
from typing import Any

from ledger.crypto.canonical import canonical_json
from ledger.crypto.merkle import leaf_hash
from ledger.crypto.tree import TreeFrontier
from ledger.manifest.pack import ENTRIES, MANIFEST, PROOF, RECORDS
from ledger.report import (
    REPORT_HTML,
    VERIFY_HTML,
    ReportPack,
    pack_pages,
    render_dataset_report,
    verify_html,
)
from tests.report.conftest import BuiltPack
from tests.report.helpers import checks, give_files, open_page, png_pixels, runs, verdict, wait_done

PACK_FILES = [MANIFEST, PROOF, ENTRIES, RECORDS]
ALL_CHECKS = {"key", "dsse", "checkpoint", "files", "proof", "entries", "records", "dataset"}


def _verifier(tmp_path: Path) -> Path:
    page = tmp_path / "verify.html"
    page.write_bytes(verify_html())
    return page


def _feed(page: Any, built: BuiltPack, dataset: Path | None = None) -> dict[str, tuple[str, str]]:
    files = [built.path / name for name in PACK_FILES]
    give_files(page, [*files, dataset or built.dataset])
    return checks(page)


def test_good_pack_passes_every_check(page: Any, built: BuiltPack, tmp_path: Path) -> None:
    open_page(page, _verifier(tmp_path))
    found = _feed(page, built)
    assert set(found) == ALL_CHECKS
    assert {name: status for name, (status, _) in found.items()} == dict.fromkeys(
        ALL_CHECKS, "pass"
    ), found
    assert verdict(page) == "pass"
    leaves = len(json.loads((built.path / PROOF).read_text())["leaf_indexes"])
    assert f"{leaves} entries signed" in found["entries"][1]
    assert "root matches" in found["proof"][1]
    assert "taken from the pack itself" in found["key"][1]


def test_pinned_key_of_another_log_fails_dsse(
    page: Any, built: BuiltPack, tmp_path: Path, scenario: Any
) -> None:
    from ledger.crypto.keys import SigningKey
    from ledger.crypto.note import verifier_key_string

    open_page(page, _verifier(tmp_path))
    other = verifier_key_string(built.lg.origin, SigningKey.generate().public_key.raw)
    page.fill("#ledger-vkey", other)
    found = _feed(page, built)
    assert found["key"] == ("pass", found["key"][1])
    assert "the key you entered" in found["key"][1]
    assert found["dsse"][0] == "fail"
    assert "no signature by key" in found["dsse"][1]
    assert verdict(page) == "fail"


def test_tampered_checkpoint_fails_its_signature(
    page: Any, built: BuiltPack, tmp_path: Path
) -> None:
    statement = built.statement()
    note = statement["predicate"]["ledger"]["checkpoint"]
    origin, size, rest = note.split("\n", 2)
    forged = f"{origin}\n{int(size) + 1}\n{rest}"  # a bigger tree under the old signature

    def change(s: dict[str, Any]) -> None:
        s["predicate"]["ledger"]["checkpoint"] = forged

    built.resign(change)
    open_page(page, _verifier(tmp_path))
    found = _feed(page, built)
    assert found["dsse"][0] == "pass"  # re-signed: only the checkpoint is wrong
    assert found["checkpoint"] == ("fail", found["checkpoint"][1])
    assert "does not verify" in found["checkpoint"][1]
    assert found["proof"][0] == "skip"  # nothing is proved against an unverified head
    assert verdict(page) == "fail"


def test_tampered_entry_fails_its_signature_and_the_proof(
    page: Any, built: BuiltPack, tmp_path: Path
) -> None:
    lines = gzip.decompress((built.path / ENTRIES).read_bytes()).split(b"\n")
    victim = json.loads(lines[1])["leaf_index"]
    # Change one digit of the token count: the line stays canonical JSON, only the bytes differ.
    old = json.loads(lines[1])["entry"]["body"]["usage"]["output_tokens"]
    lines[1] = lines[1].replace(b'"output_tokens":%d' % old, b'"output_tokens":%d' % (old + 1), 1)
    (built.path / ENTRIES).write_bytes(gzip.compress(b"\n".join(lines), mtime=0))
    built.relist(ENTRIES)  # the statement lists the new file: the entry itself must be caught
    open_page(page, _verifier(tmp_path))
    found = _feed(page, built)
    assert found["files"][0] == "pass"
    assert found["entries"][0] == "fail"
    assert found["entries"][1] == f"leaf {victim}: signature does not verify"
    assert found["proof"][0] == "fail"
    assert "not the checkpoint's" in found["proof"][1]
    assert verdict(page) == "fail"


def test_tampered_dataset_fails_its_digest(page: Any, built: BuiltPack, tmp_path: Path) -> None:
    edited = tmp_path / "edited" / built.dataset.name
    edited.parent.mkdir()
    data = bytearray(built.dataset.read_bytes())
    data[len(data) // 2] ^= 0x01
    edited.write_bytes(bytes(data))
    open_page(page, _verifier(tmp_path))
    found = _feed(page, built, edited)
    assert found["dataset"][0] == "fail"
    assert found["dataset"][1].startswith(f"{built.dataset.name}: SHA-256 ")
    assert "differs from" in found["dataset"][1]
    assert {n: s for n, (s, _) in found.items() if n != "dataset"} == dict.fromkeys(
        ALL_CHECKS - {"dataset"}, "pass"
    )


def test_pack_member_with_a_changed_byte_fails_the_digests(
    page: Any, built: BuiltPack, tmp_path: Path
) -> None:
    proof = json.loads((built.path / PROOF).read_text())
    proof["extra"] = 1  # still a proof to the verifier, but not the signed bytes
    (built.path / PROOF).write_text(json.dumps(proof))
    open_page(page, _verifier(tmp_path))
    found = _feed(page, built)
    assert found["files"] == ("fail", f"digest differs: {PROOF}")


def test_zip_pack_dropped_on_the_page_passes(
    page: Any, built: BuiltPack, tmp_path: Path, scenario: Any, facts: Any
) -> None:
    from ledger import manifest

    zipped = manifest.build(
        scenario.lg, [scenario.dataset], tmp_path / "zipped", profile=facts, zip_pack=True
    )
    open_page(page, _verifier(tmp_path))
    # A real drop event carrying the zip and the dataset, as a user's drag and drop makes.
    before = runs(page)
    page.evaluate(
        """([zip, dataset, name]) => {
          const transfer = new DataTransfer();
          transfer.items.add(new File([new Uint8Array(zip)], "pack.zip"));
          transfer.items.add(new File([new Uint8Array(dataset)], name));
          document.getElementById("ledger-drop").dispatchEvent(
            new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }""",
        [list(zipped.path.read_bytes()), list(built.dataset.read_bytes()), built.dataset.name],
    )
    wait_done(page, before + 1)
    found = checks(page)
    assert {n: s for n, (s, _) in found.items()} == dict.fromkeys(ALL_CHECKS, "pass"), found
    assert "not loaded" not in found["files"][1]  # the zip brought every member


def test_streaming_sha256_agrees_with_hashlib(page: Any, tmp_path: Path) -> None:
    open_page(page, _verifier(tmp_path))
    # Block boundaries (55/56/63/64/65 bytes) and a file larger than one 4 MiB read.
    for size in (0, 1, 55, 56, 63, 64, 65, 127, 1000):
        data = os.urandom(size)
        got = page.evaluate(
            "bytes => { const h = new window.ledgerVerify.Sha256();"
            " h.update(new Uint8Array(bytes.slice(0, 7)));"
            " h.update(new Uint8Array(bytes.slice(7)));"
            " return Array.from(h.digest(), b => b.toString(16).padStart(2, '0')).join(''); }",
            list(data),
        )
        assert got == hashlib.sha256(data).hexdigest(), size
    big = os.urandom(4096) * 1100 + b"tail"  # 4.5 MB: two chunks
    got = page.evaluate(
        """async ([seed, copies]) => {
          const block = new Uint8Array(seed);
          const parts = Array(copies).fill(block);
          parts.push(new TextEncoder().encode("tail"));
          const digest = await window.ledgerVerify.hashFile(new Blob(parts));
          return Array.from(digest, b => b.toString(16).padStart(2, '0')).join('');
        }""",
        [list(big[:4096]), 1100],
    )
    assert got == hashlib.sha256(big).hexdigest()


def test_gzip_lines_stream_across_chunks_and_the_frontier_root_agrees(
    page: Any, tmp_path: Path
) -> None:
    # A million-example pack's members are read line by line as they inflate: lines cross the
    # decompressor's chunks (tens of KB), some are long, some hold multi-byte UTF-8, one is
    # empty and the last has no newline; the records root is folded from a frontier.
    open_page(page, _verifier(tmp_path))
    rng = random.Random(5)  # noqa: S311 - test data, not a secret
    lines = [
        ("é" * rng.randrange(1, 50) + "x" * rng.randrange(0, 3000)).encode() for _ in range(400)
    ]
    lines.insert(100, b"y" * 300_000)
    data = gzip.compress(b"\n".join(lines[:200]) + b"\n\n" + b"\n".join(lines[200:]), mtime=0)
    got = page.evaluate(
        """async (bytes) => {
          const out = [];
          const frontier = new window.ledgerVerify.Frontier();
          await window.ledgerVerify.forEachGzipLine(new Uint8Array(bytes), async (line, n) => {
            out.push([n, line.length, line.slice(0, 8)]);
            const leaf = new Uint8Array([0, ...new TextEncoder().encode(line)]);
            await frontier.push(await window.ledgerVerify.sha256(leaf));
          });
          const root = await frontier.root();
          return [out, Array.from(root, b => b.toString(16).padStart(2, '0')).join('')];
        }""",
        list(data),
    )
    seen, root = got
    numbers = list(range(1, 201)) + list(range(202, 403))  # line 201 is the empty one
    texts = [line.decode() for line in lines]
    assert seen == [[n, len(t), t[:8]] for n, t in zip(numbers, texts, strict=True)]
    frontier = TreeFrontier()
    for line in lines:
        frontier.append(leaf_hash(line))
    assert root == frontier.root().hex()


def test_report_verifies_its_embedded_pack_and_renders(
    page: Any, built: BuiltPack, tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    html = render_dataset_report(built.result.audit, ReportPack.from_pack(built.path))
    report.write_text(html, encoding="utf-8")
    open_page(page, report)
    found = checks(page)
    # Embedded: everything but the dataset is checked at once, offline, from file://.
    assert {n: s for n, (s, _) in found.items()} == {
        **dict.fromkeys(ALL_CHECKS - {"dataset", "records"}, "pass"),
        "dataset": "skip",
        "records": "skip",  # not embedded (one line per example): dropped on demand
    }, found
    give_files(page, [built.dataset, built.path / RECORDS])
    assert {n: s for n, (s, _) in checks(page).items()} == dict.fromkeys(ALL_CHECKS, "pass")
    assert page.evaluate("window.isSecureContext") is True
    # Rendered, not blank: the check rows exist and the screenshot is not one flat colour.
    assert page.locator("#ledger-checks tr[data-check]").count() == len(ALL_CHECKS)
    assert page.locator("#chart-verdicts svg g.bar").count() == 5
    shot = page.screenshot(full_page=False)
    width, height, rows = png_pixels(shot)
    assert (width, height) == (1200, 900)
    colours = {row[x : x + 3] for row in rows[::9] for x in range(0, len(row), 27)}
    assert len(colours) > 8, f"the page looks empty: {len(colours)} colours"
    # And a blank page would fail that measure.
    page.set_content("<html><body style='background:#fff'></body></html>")
    _, _, blank = png_pixels(page.screenshot())
    assert len({row[x : x + 3] for row in blank[::9] for x in range(0, len(row), 27)}) == 1


def test_pack_folder_picked_whole_checks_every_member(
    page: Any, built: BuiltPack, tmp_path: Path
) -> None:
    open_page(page, _verifier(tmp_path))
    before = runs(page)
    page.set_input_files("#ledger-folder", str(built.path))
    wait_done(page, before + 1)
    found = checks(page)
    listed = built.statement()["predicate"]["files"]
    assert found["files"] == ("pass", f"{len(listed)} file(s) match")
    assert {n: s for n, (s, _) in found.items()} == {
        **dict.fromkeys(ALL_CHECKS - {"dataset"}, "pass"),
        "dataset": "skip",
    }, found


def test_record_linking_to_an_unproved_leaf_fails(
    page: Any, built: BuiltPack, tmp_path: Path
) -> None:
    lines = gzip.decompress((built.path / RECORDS).read_bytes()).split(b"\n")
    record = json.loads(lines[0])
    record["links"][0]["leaf_index"] = 10_000  # no entry in the pack, so no proof
    lines[0] = json.dumps(record, separators=(",", ":")).encode()
    (built.path / RECORDS).write_bytes(gzip.compress(b"\n".join(lines), mtime=0))
    built.relist(RECORDS)
    open_page(page, _verifier(tmp_path))
    found = _feed(page, built)
    assert found["files"][0] == "pass"
    assert found["records"] == (
        "fail",
        f"{RECORDS} line 1 links to leaf 10000, which the pack does not prove",
    )


def test_report_inside_a_pack_finishes_when_the_manifest_is_dropped(
    page: Any, built: BuiltPack, tmp_path: Path
) -> None:
    # As manifest build would write it: before the statement exists, listed in its digests.
    members = {n: (built.path / n).read_bytes() for n in (PROOF, ENTRIES, "verdicts.json")}
    pages = pack_pages(built.result.audit, members)
    assert pages[VERIFY_HTML] == verify_html()
    report = tmp_path / REPORT_HTML
    report.write_bytes(pages[REPORT_HTML])
    open_page(page, report)
    assert checks(page)["dsse"] == ("skip", "load manifest.dsse.json")
    give_files(page, [built.path / MANIFEST])
    found = checks(page)
    assert {
        n: s for n, (s, _) in found.items() if n in {"dsse", "checkpoint", "proof", "entries"}
    } == (dict.fromkeys(["dsse", "checkpoint", "proof", "entries"], "pass")), found


def test_small_order_recorder_key_is_refused(page: Any, built: BuiltPack, tmp_path: Path) -> None:
    # The identity point as a "recorder key" with R = identity, S = 0 verifies any message in
    # WebCrypto and in OpenSSL alike: a statement listing such a key must not pass.
    identity = bytes([1]) + bytes(31)
    key_id = hashlib.sha256(identity).hexdigest()
    lines = gzip.decompress((built.path / ENTRIES).read_bytes()).split(b"\n")
    item = json.loads(lines[0])
    forged = {"body": {**item["entry"]["body"], "provider": "forged"}, "key_id": key_id,
              "sig": base64.b64encode(identity + bytes(32)).decode()}  # fmt: skip
    lines[0] = b'{"leaf_index":%d,"entry":%b}' % (item["leaf_index"], canonical_json(forged))
    (built.path / ENTRIES).write_bytes(gzip.compress(b"\n".join(lines), mtime=0))
    digest = hashlib.sha256((built.path / ENTRIES).read_bytes()).hexdigest()

    def change(s: dict[str, Any]) -> None:
        s["predicate"]["ledger"]["recorder_keys"][key_id] = base64.b64encode(identity).decode()
        s["predicate"]["files"][ENTRIES] = digest

    built.resign(change)
    open_page(page, _verifier(tmp_path))
    found = _feed(page, built)
    assert found["files"][0] == "pass"
    assert found["entries"] == ("fail", f"recorder key {key_id[:16]}... is a small-order point")


def test_report_of_a_large_pack_verifies_once_its_entries_are_dropped(
    page: Any, built: BuiltPack, tmp_path: Path, monkeypatch: Any
) -> None:
    # As for a million examples: the entries file is too large to inline, so the page names
    # it and checks it once the reader drops it (with the dataset and the records).
    from ledger.report import render

    inlined = sum((built.path / name).stat().st_size for name in (MANIFEST, PROOF))
    monkeypatch.setattr(render, "EMBED_LIMIT", inlined)
    report = tmp_path / "report.html"
    html = render_dataset_report(built.result.audit, ReportPack.from_pack(built.path))
    report.write_text(html, encoding="utf-8")
    assert 'id="not-embedded"' in html
    open_page(page, report)
    found = checks(page)
    assert found["entries"] == ("skip", "load entries.jsonl.gz")
    assert found["dsse"][0] == "pass"
    give_files(page, [built.path / ENTRIES, built.path / RECORDS, built.dataset])
    assert {n: s for n, (s, _) in checks(page).items()} == dict.fromkeys(ALL_CHECKS, "pass")
