"""Evidence packs built from real SDK calls: an honest pack verifies offline, and every kind of
tampering is caught and named (the file, the example line or the leaf)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ledger import manifest
from ledger.crypto.canonical import canonical_json
from ledger.crypto.dsse import sign_envelope
from ledger.crypto.keys import SigningKey
from ledger.crypto.note import Checkpoint, NoteSigner, sign_checkpoint
from ledger.errors import InputError, VerificationError
from ledger.manifest import pack as layout
from ledger.testing.fake_provider import FakeProviderServer
from tests.audit.conftest import fake_provider  # noqa: F401 - the shared stand-in teacher
from tests.audit.helpers import FACTS
from tests.conftest import LedgerFactory
from tests.manifest.conftest import Scenario, Template, scenario_on
from tests.recorder.helpers import open_ledger


@pytest.fixture
def built(scenario: Scenario, tmp_path: Path) -> Path:
    """This test's copy of the pack built once from the scenario (``scenario`` is the ledger
    it was built from, with that build in its registry): free to tamper with."""
    return tmp_path / "pack"


def _copy(pack: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(pack, target)
    return target


def _statement(pack: Path) -> dict[str, Any]:
    envelope = json.loads((pack / layout.MANIFEST).read_text())
    return dict(json.loads(base64.b64decode(envelope["payload"])))


def _resign(pack: Path, key: SigningKey, edit: Callable[[dict[str, Any]], None]) -> None:
    """Play a builder holding the log key: change the statement, fix every digest, sign again."""
    statement = _statement(pack)
    predicate = statement["predicate"]
    for name in list(predicate["files"]):
        predicate["files"][name] = hashlib.sha256((pack / name).read_bytes()).hexdigest()
    lines = gzip.decompress((pack / layout.RECORDS).read_bytes()).split(b"\n")
    predicate["records_root"] = layout.records_root(x for x in lines if x).hex()
    edit(statement)
    envelope = sign_envelope(canonical_json(statement), key)
    (pack / layout.MANIFEST).write_bytes(envelope.to_json())


def _records(pack: Path) -> list[dict[str, Any]]:
    data = gzip.decompress((pack / layout.RECORDS).read_bytes())
    return [json.loads(line) for line in data.splitlines() if line]


def _write_records(pack: Path, records: list[dict[str, Any]]) -> None:
    lines = [json.dumps(r, separators=(",", ":")).encode() for r in records]
    (pack / layout.RECORDS).write_bytes(layout.gzip_lines(lines))


def test_honest_pack_verifies_offline(
    scenario: Scenario, built: Path, built_template: Template
) -> None:
    vkey = scenario.lg.verifier_key
    result = manifest.verify(built, vkey, datasets=[scenario.dataset])
    assert result.failure is None
    assert result.passed == ("signature", "checkpoint", "digests", "entries", "multiproof",
                             "records", "verdicts", "summary", "dataset")  # fmt: skip
    statement = _statement(built)
    assert statement["predicateType"] == manifest.PREDICATE_TYPE
    digest = hashlib.sha256(scenario.dataset.read_bytes()).hexdigest()
    assert statement["subject"] == [{"name": "train.jsonl", "digest": {"sha256": digest}}]
    summary = statement["predicate"]["summary"]
    assert (summary["examples"], summary["linked"], summary["unlinked"]) == (6, 5, 1)
    assert summary["by_match"]["near"] >= 1
    assert summary["by_match"]["template"] == 1
    # No builder paths in the statement (it was built in the template's folder).
    assert str(built_template.folder) not in json.dumps(statement)
    assert str(built.parent) not in json.dumps(statement)
    # Every linked entry once, one multiproof over exactly those leaves.
    records = _records(built)
    linked = sorted({x["leaf_index"] for r in records for x in r["links"]})
    proof = json.loads((built / layout.PROOF).read_text())
    assert proof["leaf_indexes"] == linked
    assert proof["tree_size"] == scenario.lg.size
    # The envelope is plain DSSE: securesystemslib verifies it under the log key.
    public = SSlibKey.from_crypto(
        scenario.lg.log_key._key.public_key(),
        keyid=scenario.lg.log_key.key_id,
    )
    envelope = SslibEnvelope.from_dict(json.loads((built / layout.MANIFEST).read_text()))
    assert list(envelope.verify([public], 1)) == [scenario.lg.log_key.key_id]
    manifest.verify_pack(built, vkey)


def test_flipped_byte_in_every_file_is_named(
    scenario: Scenario, built: Path, tmp_path: Path
) -> None:
    vkey = scenario.lg.verifier_key
    members = sorted(p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file())
    expected = {layout.MANIFEST, layout.RECORDS, layout.ENTRIES, layout.PROOF, layout.VERDICTS,
                layout.README, layout.CONSISTENCY, "keys/0.key", "policies/openai.yaml",
                "report.html", "verify.html"}  # fmt: skip
    assert expected <= set(members)
    for number, member in enumerate(members):
        copy = _copy(built, tmp_path, f"flip{number}")
        data = bytearray((copy / member).read_bytes())
        data[len(data) // 2] ^= 0x01
        (copy / member).write_bytes(bytes(data))
        result = manifest.verify(copy, vkey)
        assert result.failure is not None, member
        assert member in result.failure.where, (member, result.failure)
        with pytest.raises(VerificationError, match=member.replace(".", r"\.")):
            manifest.verify_pack(copy, vkey)


def test_added_file_is_named(scenario: Scenario, built: Path) -> None:
    (built / "policies" / "extra.yaml").write_text("id: extra\n", encoding="utf-8")
    failure = manifest.verify(built, scenario.lg.verifier_key).failure
    assert failure is not None
    assert (failure.check, failure.where) == ("digests", "policies/extra.yaml")


def test_dataset_edits_are_named_by_line(scenario: Scenario, built: Path, tmp_path: Path) -> None:
    vkey = scenario.lg.verifier_key
    lines = scenario.dataset.read_text(encoding="utf-8").splitlines()

    def verify_with(new_lines: list[str]) -> manifest.Failure | None:
        folder = tmp_path / f"d{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        path = folder / "train.jsonl"
        path.write_text("\n".join(new_lines) + "\n", encoding="utf-8")
        return manifest.verify(built, vkey, datasets=[path]).failure

    edited = lines.copy()
    edited[2] = edited[2].replace("Answer:", "Answer :")
    failure = verify_with(edited)
    assert failure is not None
    assert (failure.check, failure.where) == ("dataset", "train.jsonl:3")
    assert "edited" in failure.message
    failure = verify_with(lines[:1] + lines[2:])  # line 2 removed
    assert failure is not None
    assert failure.where == "train.jsonl:2"
    failure = verify_with([*lines, json.loads(json.dumps(lines[0]))])  # one added at the end
    assert failure is not None
    assert (failure.where, failure.message) == (
        "train.jsonl:7",
        "this example is not in the pack's records",
    )
    failure = verify_with(lines[:-1])  # the last one removed
    assert failure is not None
    assert failure.where == "train.jsonl:6"
    # Whitespace outside the rows changes the file's digest but no example: named as the file.
    failure = verify_with([*lines, ""])
    assert failure is not None
    assert (failure.check, failure.where) == ("dataset", "train.jsonl")


def test_record_pointing_at_another_entry_is_caught(scenario: Scenario, built: Path) -> None:
    records = _records(built)
    first, last = records[0], records[-1]
    # A validly signed pack whose first record claims an entry that holds other text.
    other = next(x["leaf_index"] for x in last["links"]
                 if x["leaf_index"] != first["links"][0]["leaf_index"])  # fmt: skip
    first["links"][0]["leaf_index"] = other
    _write_records(built, records)
    _resign(built, scenario.lg.log_key, lambda statement: None)
    vkey = scenario.lg.verifier_key
    assert manifest.verify(built, vkey).ok  # the pack alone is self-consistent
    failure = manifest.verify(built, vkey, datasets=[scenario.dataset]).failure
    assert failure is not None
    assert (failure.check, failure.where) == ("links", "train.jsonl:1")
    assert f"leaf {other}" in failure.message


def test_signed_but_wrong_verdict_summary_and_proof(
    scenario: Scenario, built: Path, tmp_path: Path
) -> None:
    vkey, key = scenario.lg.verifier_key, scenario.lg.log_key
    copy = _copy(built, tmp_path, "verdict")
    records = _records(copy)
    records[0]["verdict"] = "prohibited"
    _write_records(copy, records)
    _resign(copy, key, lambda s: None)
    failure = manifest.verify(copy, vkey).failure
    assert failure is not None
    assert (failure.check, failure.where) == ("verdicts", "train.jsonl:1")

    copy = _copy(built, tmp_path, "summary")
    _resign(copy, key, lambda s: s["predicate"]["summary"].update(linked=6, unlinked=0))
    failure = manifest.verify(copy, vkey).failure
    assert failure is not None
    assert failure.check == "summary"

    copy = _copy(built, tmp_path, "proof")
    proof = json.loads((copy / layout.PROOF).read_text())
    dropped = proof["leaf_indexes"].pop()
    (copy / layout.PROOF).write_text(json.dumps(proof))
    _resign(copy, key, lambda s: None)
    failure = manifest.verify(copy, vkey).failure
    assert failure is not None
    assert (failure.check, failure.where) == ("multiproof", f"leaf {dropped}")


def test_entry_signed_by_an_unlisted_recorder_key(scenario: Scenario, built: Path) -> None:
    leaf = json.loads(gzip.decompress((built / layout.ENTRIES).read_bytes()).splitlines()[0])
    key_id = leaf["entry"]["key_id"]
    _resign(built, scenario.lg.log_key,
            lambda s: s["predicate"]["ledger"]["recorder_keys"].pop(key_id))  # fmt: skip
    failure = manifest.verify(built, scenario.lg.verifier_key).failure
    assert failure is not None
    assert (failure.check, failure.where) == ("entries", f"leaf {leaf['leaf_index']}")
    assert "does not list" in failure.message


def test_changed_file_outranks_a_bad_key_list(scenario: Scenario, built: Path) -> None:
    # The key list is read before the files are hashed (the signature worker boots meanwhile);
    # a bad one is still reported after the digests, in the fixed order.
    _resign(built, scenario.lg.log_key,
            lambda s: s["predicate"]["ledger"].update(recorder_keys="none"))  # fmt: skip
    failure = manifest.verify(built, scenario.lg.verifier_key).failure
    assert failure is not None
    assert (failure.check, failure.where) == ("entries", layout.MANIFEST)
    data = bytearray((built / layout.PROOF).read_bytes())
    data[-2] ^= 1
    (built / layout.PROOF).write_bytes(bytes(data))
    failure = manifest.verify(built, scenario.lg.verifier_key).failure
    assert failure is not None
    assert (failure.check, failure.where) == ("digests", layout.PROOF)


def test_bad_entry_signature_outranks_the_later_checks(scenario: Scenario, built: Path) -> None:
    # Signatures are checked beside the later passes; a bad one must still be the failure
    # reported, although the multiproof (which this edit breaks too) was checked first.
    lines = gzip.decompress((built / layout.ENTRIES).read_bytes()).split(b"\n")
    item = json.loads(lines[1])
    body = canonical_json(item["entry"]["body"])
    forged = base64.b64encode(SigningKey.generate().sign(body)).decode()
    lines[1] = lines[1].replace(item["entry"]["sig"].encode(), forged.encode())
    (built / layout.ENTRIES).write_bytes(gzip.compress(b"\n".join(lines), mtime=0))
    _resign(built, scenario.lg.log_key, lambda s: None)
    result = manifest.verify(built, scenario.lg.verifier_key, datasets=[scenario.dataset])
    assert result.failure is not None
    assert (result.failure.check, result.failure.where) == ("entries", f"leaf {item['leaf_index']}")
    assert "entries" not in result.passed
    assert "multiproof" not in result.passed


def test_wrong_key(scenario: Scenario, built: Path, tmp_path: Path) -> None:
    other = open_ledger(tmp_path / "other")
    try:
        failure = manifest.verify(built, other.verifier_key).failure
    finally:
        other.close()
    assert failure is not None
    assert (failure.check, failure.where) == ("signature", layout.MANIFEST)
    with pytest.raises(InputError):
        manifest.verify(built, "not a key")


def test_earlier_checkpoints_fork_and_rollback(
    scenario: Scenario, built: Path, tmp_path: Path
) -> None:
    lg, vkey = scenario.lg, scenario.lg.verifier_key
    first_note = _statement(built)["predicate"]["ledger"]["checkpoint"]
    first_size = lg.size
    scenario.call(18)
    second = manifest.build(lg, [scenario.dataset], tmp_path / "second", name="tutor",
                            profile=FACTS, version="2")  # fmt: skip
    assert lg.size == first_size + 1
    assert [b.tree_size for b in manifest.list_builds(lg.store, "tutor")] == [
        first_size, first_size + 1]  # fmt: skip
    assert manifest.verify(second.path, vkey, checkpoint=first_note).ok
    assert manifest.verify(built, vkey, checkpoint=first_note).ok  # same checkpoint
    # A checkpoint the log showed someone else at the same size: a fork.
    signer = NoteSigner(lg.origin, lg.log_key)
    forked = sign_checkpoint(Checkpoint(lg.origin, first_size, bytes(32)), signer)
    failure = manifest.verify(second.path, vkey, checkpoint=forked).failure
    assert failure is not None
    assert (failure.check, failure.where) == ("consistency", layout.CONSISTENCY)
    failure = manifest.verify(built, vkey, checkpoint=forked).failure
    assert failure is not None
    assert "forked" in failure.message
    # The auditor has already seen the newer tree: the older pack is a rollback.
    newer = _statement(second.path)["predicate"]["ledger"]["checkpoint"]
    failure = manifest.verify(built, vkey, checkpoint=newer).failure
    assert failure is not None
    assert "rolled back" in failure.message
    # A size the pack has no proof from.
    other = sign_checkpoint(Checkpoint(lg.origin, 1, bytes(32)), signer)
    failure = manifest.verify(second.path, vkey, checkpoint=other).failure
    assert failure is not None
    assert "no consistency proof from your size 1" in failure.message
    # A note another key signed, or no note at all, is refused before the pack is checked.
    stranger = sign_checkpoint(Checkpoint(lg.origin, 1, bytes(32)),
                               NoteSigner(lg.origin, SigningKey.generate()))  # fmt: skip
    for given in (stranger, "not a note\n"):
        with pytest.raises(InputError, match="earlier checkpoint is not one this key signed"):
            manifest.verify(second.path, vkey, checkpoint=given)


def test_auditor_policies_show_differences(scenario: Scenario, built: Path, tmp_path: Path) -> None:
    own = tmp_path / "own-policies"
    own.mkdir()
    shutil.copy(built / "policies" / "anthropic.yaml", own)
    result = manifest.verify(built, scenario.lg.verifier_key, policies=own)
    assert result.ok
    # Without the openai terms every entry is judged otherwise; the pack still verifies.
    assert result.differences
    assert {(d.pack, d.auditor) for d in result.differences} == {("allowed", "unknown")}
    assert result.example_differences == 5
    same = manifest.verify(built, scenario.lg.verifier_key, policies=built / "policies")
    assert (same.differences, same.example_differences) == ((), 0)
    # A folder of the auditor's that does not load is their input's mistake (exit 2 in the
    # CLI), found before the pack's checks, not a failure of the pack.
    (own / "broken.yaml").write_text("provider: [\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"your policies at .* do not load: .*broken\.yaml"):
        manifest.verify(built, scenario.lg.verifier_key, policies=own)


def test_bad_input(scenario: Scenario, built: Path, tmp_path: Path) -> None:
    vkey = scenario.lg.verifier_key
    with pytest.raises(InputError, match="not an evidence pack"):
        manifest.verify(scenario.dataset, vkey)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not an evidence pack"):
        manifest.verify(tmp_path / "empty", vkey)
    (tmp_path / "gone").mkdir()
    with pytest.raises(InputError, match="cannot read dataset file"):
        manifest.verify(built, vkey, datasets=[tmp_path / "gone" / "train.jsonl"])
    # A mistyped name is reported as the unreadable file it is, not as a subject not given.
    with pytest.raises(InputError, match=r"cannot read dataset file .*trian\.jsonl"):
        manifest.verify(built, vkey, datasets=[scenario.dataset, tmp_path / "trian.jsonl"])
    with pytest.raises(InputError, match="no dataset file"):
        manifest.build(scenario.lg, [], tmp_path / "p")
    with pytest.raises(InputError, match="is a folder: an evidence pack's subjects are files"):
        manifest.build(scenario.lg, [tmp_path / "gone"], tmp_path / "p")
    assert not (tmp_path / "p").exists()
    with pytest.raises(InputError, match="already exists"):
        manifest.build(scenario.lg, [scenario.dataset], built)
    with pytest.raises(InputError, match="unknown --format"):
        manifest.build(scenario.lg, [scenario.dataset], tmp_path / "p", format="xml")


def test_zip_pack_and_registry_is_append_only(scenario: Scenario, tmp_path: Path) -> None:
    result = manifest.build(scenario.lg, [scenario.dataset], tmp_path / "z", zip_pack=True,
                            profile=FACTS)  # fmt: skip
    assert result.path == tmp_path / "z.zip"
    assert manifest.verify(result.path, scenario.lg.verifier_key, datasets=[scenario.dataset]).ok
    assert result.record.name == "tutor"  # the entries' dataset name
    with pytest.raises(DBAPIError), scenario.lg.store.engine.begin() as conn:
        conn.execute(text("UPDATE manifest_builds SET name = 'x'"))
    with pytest.raises(DBAPIError), scenario.lg.store.engine.begin() as conn:
        conn.execute(text("DELETE FROM manifest_builds"))
    assert len(manifest.list_builds(scenario.lg.store)) == 1
    # Members are read when checked, not when the zip is opened: a byte flipped inside one
    # member's data (its CRC-32 no longer matches) is named as that member, as input that
    # cannot be read, and a changed member with its CRC made to match is a digest failure.
    with zipfile.ZipFile(result.path) as archive:
        info = archive.getinfo(layout.ENTRIES)
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data = bytearray(result.path.read_bytes())
    data[start + info.compress_size // 2] ^= 1
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(data))
    with pytest.raises(InputError, match=f"cannot read {layout.ENTRIES} in the zip"):
        manifest.verify(damaged, scenario.lg.verifier_key)
    members = {}
    with zipfile.ZipFile(result.path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members[layout.RECORDS] = gzip.compress(b'{"index": 0}\n', mtime=0)
    rezipped = tmp_path / "rezipped.zip"
    with zipfile.ZipFile(rezipped, "w") as archive:
        for name, member in members.items():
            archive.writestr(name, member)
    failure = manifest.verify(rezipped, scenario.lg.verifier_key).failure
    assert failure is not None
    assert (failure.check, failure.where) == ("digests", layout.RECORDS)


def test_forged_near_link_is_caught(scenario: Scenario, built: Path) -> None:
    records = _records(built)
    near = next(r for r in records if r["match"] == "near" and r["line"] == 4)
    near["links"][0]["similarity"] = 0.99  # claims far more similarity than the text has
    _write_records(built, records)
    _resign(built, scenario.lg.log_key, lambda statement: None)
    failure = manifest.verify(built, scenario.lg.verifier_key, datasets=[scenario.dataset]).failure
    assert failure is not None
    assert (failure.check, failure.where) == ("links", "train.jsonl:4")
    assert "near link" in failure.message


def test_build_and_verify_on_each_backend(
    make_ledger: LedgerFactory,
    fake_provider: FakeProviderServer,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    lg = make_ledger()
    with scenario_on(lg, tmp_path / "home", fake_provider, tmp_path) as scene:
        first = manifest.build(lg, [scene.dataset], tmp_path / "a", profile=FACTS)
        scene.call(20)
        second = manifest.build(lg, [scene.dataset], tmp_path / "b", profile=FACTS)
    note = _statement(first.path)["predicate"]["ledger"]["checkpoint"]
    result = manifest.verify(second.path, lg.verifier_key, datasets=[scene.dataset],
                             checkpoint=note)  # fmt: skip
    assert result.ok, result.failure
    assert [b.seq for b in manifest.list_builds(lg.store, "tutor")] == [1, 2]
    with pytest.raises(DBAPIError), lg.store.engine.begin() as conn:
        conn.execute(text("UPDATE manifest_builds SET examples = 0"))
