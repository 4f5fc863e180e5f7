"""The private keys and the account secret of one ledger home.

Layout under ``<home>/keys/`` (every file mode 0600, written atomically):

* ``recorder.pem``: Ed25519 PKCS#8 key that signs entries;
* ``log.pem``: Ed25519 PKCS#8 key that signs checkpoints (C2SP signed notes);
* ``account.secret``: 32 random bytes (hex) keying the HMAC that fingerprints API credentials;
* ``retired/<kind>-<key id>.pem``: keys replaced by :meth:`Keyring.rotate`, kept so that an
  operator can still prove possession; their public halves stay in the ``keys`` table and keep
  verifying old signatures.

Invariants: nothing is written while loading an existing keyring, so a wrong passphrase or a
corrupt file fails before any change; a missing keyring is created whole.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from ledger.crypto.keys import SigningKey
from ledger.errors import ConfigError, KeyFileError

__all__ = ["KEY_KINDS", "Keyring"]

KEY_KINDS = ("recorder", "log")


class Keyring:
    """Signing keys and the account secret kept under ``home/keys``."""

    def __init__(
        self,
        home: Path,
        keys: dict[str, SigningKey],
        account_secret: bytes,
        passphrase: bytes | None,
    ) -> None:
        self.home = home
        self._keys = keys
        self._account_secret = account_secret
        self._passphrase = passphrase

    @property
    def folder(self) -> Path:
        return self.home / "keys"

    @property
    def recorder(self) -> SigningKey:
        return self._keys["recorder"]

    @property
    def log(self) -> SigningKey:
        return self._keys["log"]

    @classmethod
    def open(cls, home: Path, passphrase: bytes | None = None) -> Keyring:
        """Load the keyring under ``home``, creating it when none exists yet."""
        folder = home / "keys"
        paths = {kind: folder / f"{kind}.pem" for kind in KEY_KINDS}
        secret_path = folder / "account.secret"
        present = [p for p in (*paths.values(), secret_path) if p.exists()]
        if not present:
            return cls._create(home, passphrase)
        if len(present) != len(paths) + 1:
            missing = sorted(str(p) for p in (*paths.values(), secret_path) if not p.exists())
            raise KeyFileError(f"incomplete keyring in {folder}: missing {', '.join(missing)}")
        keys = {kind: SigningKey.load(path, passphrase) for kind, path in paths.items()}
        try:
            secret = bytes.fromhex(secret_path.read_text(encoding="ascii").strip())
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"corrupt account secret file {secret_path}") from exc
        if len(secret) < 16:
            raise KeyFileError(f"corrupt account secret file {secret_path}: too short")
        return cls(home, keys, secret, passphrase)

    @classmethod
    def _create(cls, home: Path, passphrase: bytes | None) -> Keyring:
        folder = home / "keys"
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(f"cannot create the key folder {folder}: {exc.strerror}") from exc
        keys = {kind: SigningKey.generate() for kind in KEY_KINDS}
        for kind, key in keys.items():
            key.save(folder / f"{kind}.pem", passphrase)
        secret = secrets.token_bytes(32)
        _write_private(folder / "account.secret", secret.hex().encode("ascii") + b"\n")
        return cls(home, keys, secret, passphrase)

    def rotate(self, kind: str) -> SigningKey:
        """Replace the ``kind`` key with a fresh one, keeping the old file under ``retired/``."""
        if kind not in KEY_KINDS:
            raise ConfigError(f"unknown key kind {kind!r}: expected one of {', '.join(KEY_KINDS)}")
        old = self._keys[kind]
        retired = self.folder / "retired"
        retired.mkdir(exist_ok=True, mode=0o700)
        old.save(retired / f"{kind}-{old.key_id[:16]}.pem", self._passphrase)
        new = SigningKey.generate()
        new.save(self.folder / f"{kind}.pem", self._passphrase)
        self._keys[kind] = new
        return new

    def account_fingerprint(self, credential: str) -> str:
        """HMAC-SHA256 (hex) of an API credential under the ledger-local secret.

        The same credential always gives the same fingerprint in one ledger, and nothing about
        the credential can be learnt from it without the secret. (About a microsecond; not
        cached, so the credential is never kept.)
        """
        return hmac.new(self._account_secret, credential.encode(), hashlib.sha256).hexdigest()


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
