"""Ed25519 keys: encodings, key ids, signatures and key files."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.crypto.keys import SigningKey, VerifyingKey
from ledger.errors import InputError, KeyFileError, SignatureError

# RFC 8032 7.1 TEST 1: secret key, public key, empty message, signature.
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIG = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b"
    "d25bf5f0595bbe24655141438e7a100b"
)


@pytest.fixture
def rfc8032_key() -> SigningKey:
    return SigningKey(Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET))


def test_rfc8032_known_answer(rfc8032_key: SigningKey) -> None:
    assert rfc8032_key.public_key.raw == RFC8032_PUBLIC
    assert rfc8032_key.sign(b"") == RFC8032_SIG
    VerifyingKey.from_raw(RFC8032_PUBLIC).verify(RFC8032_SIG, b"")


def test_key_id_is_sha256_of_raw_public_key(rfc8032_key: SigningKey) -> None:
    expected = hashlib.sha256(RFC8032_PUBLIC).hexdigest()
    assert rfc8032_key.key_id == expected
    assert rfc8032_key.public_key.key_id == expected
    assert expected == expected.lower()


def test_verify_rejects_tampering() -> None:
    key = SigningKey.generate()
    sig = key.sign(b"message")
    key.public_key.verify(sig, b"message")
    assert key.public_key.is_valid(sig, b"message")
    with pytest.raises(SignatureError, match=key.key_id):
        key.public_key.verify(sig, b"messagE")
    bad = bytes([sig[0] ^ 1]) + sig[1:]
    assert not key.public_key.is_valid(bad, b"message")
    assert not SigningKey.generate().public_key.is_valid(sig, b"message")
    with pytest.raises(SignatureError, match="64 bytes"):
        key.public_key.verify(sig[:-1], b"message")


def test_verifying_key_round_trips() -> None:
    public = SigningKey.generate().public_key
    assert VerifyingKey.from_raw(public.raw) == public
    pem = public.to_pem()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert VerifyingKey.from_pem(pem) == public
    assert VerifyingKey.from_pem(pem.encode()) == public
    assert hash(VerifyingKey.from_pem(pem)) == hash(public)


def test_verifying_key_is_frozen() -> None:
    public = SigningKey.generate().public_key
    with pytest.raises(AttributeError):
        public.raw = b"x" * 32  # type: ignore[misc]


@pytest.mark.parametrize("raw", [b"", b"\x00" * 31, b"\x00" * 33])
def test_verifying_key_rejects_bad_raw(raw: bytes) -> None:
    with pytest.raises(InputError):
        VerifyingKey.from_raw(raw)


def test_verifying_key_rejects_bad_pem() -> None:
    with pytest.raises(InputError, match="not a PEM public key"):
        VerifyingKey.from_pem("garbage")
    ec_pem = (
        generate_private_key(SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(InputError, match="not an Ed25519 public key"):
        VerifyingKey.from_pem(ec_pem)


@pytest.mark.parametrize("passphrase", [None, b"correct horse"])
def test_signing_key_pem_round_trip(passphrase: bytes | None) -> None:
    key = SigningKey.generate()
    pem = key.to_pem(passphrase)
    label = b"ENCRYPTED PRIVATE KEY" if passphrase else b"BEGIN PRIVATE KEY"
    assert label in pem
    again = SigningKey.from_pem(pem, passphrase)
    assert again.key_id == key.key_id
    assert again.sign(b"m") == key.sign(b"m")


@pytest.mark.parametrize("passphrase", [None, b"pw"])
def test_save_load_round_trip(tmp_path: Path, passphrase: bytes | None) -> None:
    key = SigningKey.generate()
    path = tmp_path / "recorder.key"
    key.save(path, passphrase)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SigningKey.load(path, passphrase).key_id == key.key_id
    assert [p.name for p in tmp_path.iterdir()] == ["recorder.key"]


def test_save_replaces_atomically_and_keeps_0600(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(b"old")
    path.chmod(0o644)
    key = SigningKey.generate()
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SigningKey.load(path).key_id == key.key_id


def test_save_creates_with_0600_from_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The temporary file is opened with O_CREAT | O_EXCL and mode 0600; no chmod afterwards."""
    calls: list[tuple[int, int]] = []
    real_open = os.open

    def spy(path: str | os.PathLike[str], flags: int, mode: int = 0o777, **kw: object) -> int:
        if flags & os.O_CREAT:
            calls.append((flags, mode))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", spy)
    SigningKey.generate().save(tmp_path / "k.pem")
    assert len(calls) == 1
    flags, mode = calls[0]
    assert flags & os.O_EXCL
    assert mode == 0o600


def test_save_failure_is_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="missing"):
        SigningKey.generate().save(tmp_path / "missing" / "k.pem")


def test_load_missing(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"k\.pem does not exist"):
        SigningKey.load(tmp_path / "k.pem")


def test_load_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyFileError, match=r"k\.pem: not a PEM private key"):
        SigningKey.load(path)
    path.write_bytes(b"not a key at all")
    with pytest.raises(KeyFileError, match=r"k\.pem: not a PEM private key"):
        SigningKey.load(path)


def test_load_wrong_key_type(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    path.write_bytes(
        generate_private_key(SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyFileError, match=r"ec\.pem: not an Ed25519 private key"):
        SigningKey.load(path)


def test_load_encrypted_without_or_with_wrong_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    SigningKey.generate().save(path, b"right")
    with pytest.raises(KeyFileError, match="encrypted and no passphrase"):
        SigningKey.load(path)
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        SigningKey.load(path, b"wrong")


def test_load_plain_key_with_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    SigningKey.generate().save(path)
    with pytest.raises(KeyFileError, match="not encrypted"):
        SigningKey.load(path, b"pw")


def test_messages_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(b"\x00\x01garbage")
    with pytest.raises(KeyFileError) as info:
        SigningKey.load(path)
    assert "\n" not in str(info.value)


def test_repr_does_not_leak_private_key() -> None:
    key = SigningKey.generate()
    assert repr(key) == f"SigningKey(key_id={key.key_id!r})"
