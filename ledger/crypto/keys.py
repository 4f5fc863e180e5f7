"""Ed25519 signing and verifying keys, and their key files.

Invariants:

- A key id is the lowercase hex SHA-256 of the raw 32-byte Ed25519 public key; a signing key's
  id is its public key's id. Key ids never depend on an encoding (PEM, DER, base64).
- ``VerifyingKey.verify`` raises ``SignatureError`` and nothing else for a bad signature;
  ``is_valid`` is its non-raising twin.
- ``SigningKey.save`` never lets the private key exist on disk with permissions wider than 0600:
  the bytes go to a temporary file created with mode 0600 (``O_CREAT | O_EXCL``) in the target
  folder, are fsync'd, then renamed over the target with ``os.replace``. A reader sees either the
  old file or the complete new one.
- A ``VerifyingKey`` is never a small-order point (it would accept forged signatures).
- ``SigningKey.load`` maps every failure to ``KeyFileError``, one line naming the file.

This is the only module of ``ledger.crypto`` that touches the file system.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.crypto.small_order import has_small_order
from ledger.errors import InputError, KeyFileError, SignatureError

__all__ = ["SigningKey", "VerifyingKey"]

_RAW_KEY_SIZE = 32
_SIGNATURE_SIZE = 64
_ENCRYPTED_PEM_LABEL = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    """An Ed25519 public key.

    Example:
        >>> key = SigningKey.generate()
        >>> key.public_key.verify(key.sign(b"msg"), b"msg")
    """

    raw: bytes
    key_id: str = field(init=False)
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.raw) is not bytes or len(self.raw) != _RAW_KEY_SIZE:
            raise InputError(f"an Ed25519 public key is {_RAW_KEY_SIZE} raw bytes")
        if has_small_order(self.raw):
            # Such a key accepts forged signatures (see ledger.crypto.small_order).
            raise InputError("not a usable Ed25519 public key: it is a small-order point")
        try:
            key = Ed25519PublicKey.from_public_bytes(self.raw)
        except ValueError as exc:
            raise InputError(f"not a valid Ed25519 public key: {exc}") from exc
        # Frozen dataclass: derived fields are set once, here, and never change.
        object.__setattr__(self, "key_id", hashlib.sha256(self.raw).hexdigest())
        object.__setattr__(self, "_key", key)

    @classmethod
    def from_raw(cls, raw: bytes) -> VerifyingKey:
        """Build a key from its 32 raw bytes (RFC 8032 encoding)."""
        return cls(bytes(raw))

    @classmethod
    def from_pem(cls, data: str | bytes) -> VerifyingKey:
        """Build a key from a SubjectPublicKeyInfo PEM block.

        Raises:
            InputError: not a PEM public key, or not an Ed25519 one.
        """
        pem = data.encode("ascii", "replace") if isinstance(data, str) else data
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise InputError(f"not a PEM public key: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise InputError(f"not an Ed25519 public key: {type(key).__name__}")
        return cls(key.public_bytes_raw())

    def to_pem(self) -> str:
        """The key as a SubjectPublicKeyInfo PEM block."""
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    def verify(self, signature: bytes, message: bytes) -> None:
        """Check an Ed25519 signature over ``message``.

        Raises:
            SignatureError: the signature is malformed or does not verify under this key.
        """
        if len(signature) != _SIGNATURE_SIZE:
            raise SignatureError(
                f"an Ed25519 signature is {_SIGNATURE_SIZE} bytes, got {len(signature)}"
            )
        try:
            self._key.verify(signature, message)
        except InvalidSignature as exc:
            raise SignatureError(f"signature does not verify under key {self.key_id}") from exc

    def is_valid(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` verifies over ``message`` (the non-raising twin of ``verify``)."""
        try:
            self.verify(signature, message)
        except SignatureError:
            return False
        return True


class SigningKey:
    """An Ed25519 private key.

    Example:
        >>> key = SigningKey.generate()
        >>> len(key.sign(b"msg"))
        64
    """

    __slots__ = ("_key", "public_key")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = VerifyingKey(key.public_key().public_bytes_raw())

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r})"

    @property
    def key_id(self) -> str:
        """The id of the public key: lowercase hex SHA-256 of its raw bytes."""
        return self.public_key.key_id

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh random key from the operating system's CSPRNG."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = None) -> SigningKey:
        """Load a PKCS#8 PEM private key, decrypting it with ``passphrase`` if it is encrypted.

        Raises:
            InputError: the data is not an Ed25519 PEM private key, is encrypted and no
                passphrase was given, was given a passphrase but is not encrypted, or the
                passphrase is wrong.
        """
        encrypted = _ENCRYPTED_PEM_LABEL in data
        if encrypted and not passphrase:
            raise InputError("key is encrypted and no passphrase was given")
        if not encrypted and passphrase:
            raise InputError("a passphrase was given but the key is not encrypted")
        try:
            key = serialization.load_pem_private_key(data, password=passphrase or None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            if encrypted:
                raise InputError("wrong passphrase, or the encrypted key is corrupt") from exc
            raise InputError("not a PEM private key (corrupt or wrong format)") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise InputError(f"not an Ed25519 private key but {type(key).__name__}")
        return cls(key)

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        """The key as PKCS#8 PEM, encrypted with the best available scheme if ``passphrase``."""
        algorithm: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, algorithm
        )

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (deterministic, RFC 8032)."""
        return self._key.sign(message)

    def save(self, path: Path, passphrase: bytes | None = None) -> None:
        """Write the key to ``path`` atomically, readable by the owner only (mode 0600).

        An existing file at ``path`` is replaced.

        Raises:
            KeyFileError: the file could not be written.
        """
        path = Path(path)
        data = self.to_pem(passphrase)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            # O_EXCL: never reuse (or follow a symlink planted at) an existing name. The mode is
            # applied at creation, so the key is never readable by others, not even briefly.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                # A restrictive umask may have removed owner bits; restore exactly 0600.
                os.fchmod(fd, 0o600)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise KeyFileError(f"cannot write key file {path}: {exc.strerror or exc}") from exc
        _fsync_directory(path.parent)

    @classmethod
    def load(cls, path: Path, passphrase: bytes | None = None) -> SigningKey:
        """Read a key written by ``save`` (or any PKCS#8 PEM Ed25519 key).

        Raises:
            KeyFileError: the file is missing or unreadable, is not an Ed25519 PEM key, is
                encrypted and no passphrase was given, or the passphrase is wrong.
        """
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise KeyFileError(f"key file {path} does not exist") from exc
        except OSError as exc:
            raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from exc
        try:
            return cls.from_pem(data, passphrase)
        except InputError as exc:
            raise KeyFileError(f"key file {path}: {exc}") from exc


def _fsync_directory(folder: Path) -> None:
    """Make a rename in ``folder`` durable; best effort where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        # Some file systems refuse fsync on a directory; the rename itself already happened.
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
