"""The private keys and the account secret of one ledger home.

Layout under ``<home>/keys/`` (every file mode 0600, written atomically):

* ``recorder.pem``: Ed25519 PKCS#8 key that signs entries;
* ``log.pem``: Ed25519 PKCS#8 key that signs checkpoints (C2SP signed notes);
* ``account.secret``: 32 random bytes (hex) keying the HMAC that fingerprints API credentials;
* ``fingerprint.secret``: 32 random bytes (hex) from which each dataset's output-fingerprint key
  is derived (``ledger.crypto.fingerprint.dataset_key``). Homes made before it existed lack it:
  it is created when such a home is opened for writing, never required to load the rest, and
  created at most once even by processes racing on one home (exclusive link, then re-read);
* ``retired/<kind>-<key id>.pem``: keys replaced by a rotation, kept so that an operator can
  still prove possession; their public halves stay in the ``keys`` table and keep verifying old
  signatures;
* ``<kind>.pem.next``: only while a rotation is under way (written before the database
  registers the new key, renamed over ``<kind>.pem`` after).

Invariants: nothing is written while loading an existing keyring, so a wrong passphrase or a
corrupt file fails before any change; a missing keyring is created whole. The one write to an
existing keyring is adding a missing ``fingerprint.secret``, after everything else loaded.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from ledger.crypto.keys import SigningKey
from ledger.errors import ConfigError, KeyFileError

__all__ = ["FINGERPRINT_FILE", "KEY_KINDS", "Keyring", "read_fingerprint_secret"]

KEY_KINDS = ("recorder", "log")
FINGERPRINT_FILE = "fingerprint.secret"

_log = logging.getLogger("ledger.keys")


class Keyring:
    """Signing keys and the account secret kept under ``home/keys``."""

    def __init__(
        self,
        home: Path,
        keys: dict[str, SigningKey],
        account_secret: bytes,
        passphrase: bytes | None,
        fingerprint_secret: bytes | None = None,
    ) -> None:
        self.home = home
        self._keys = keys
        self._account_secret = account_secret
        self._passphrase = passphrase
        self._fingerprint_secret = fingerprint_secret

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
        return cls(home, keys, secret, passphrase, _try_fingerprint_secret(folder))

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
        return cls(home, keys, secret, passphrase, _ensure_fingerprint_secret(folder))

    def prepare_rotation(self, kind: str) -> SigningKey:
        """A fresh ``kind`` key saved as ``<kind>.pem.next``; the active key is unchanged.

        Rotation is two-phase so that the home never names a key the database does not: the
        caller registers the new public key, then calls :meth:`finish_rotation` (or
        :meth:`abandon_rotation` when registering failed). A process that died in between is
        settled by :meth:`settle_rotation` at the next open.
        """
        if kind not in KEY_KINDS:
            raise ConfigError(f"unknown key kind {kind!r}: expected one of {', '.join(KEY_KINDS)}")
        new = SigningKey.generate()
        new.save(self._next_path(kind), self._passphrase)
        return new

    def finish_rotation(self, kind: str, new: SigningKey) -> None:
        """Retire the active ``kind`` key under ``retired/`` and make ``new`` the active one."""
        old = self._keys[kind]
        retired = self.folder / "retired"
        retired.mkdir(exist_ok=True, mode=0o700)
        old.save(retired / f"{kind}-{old.key_id[:16]}.pem", self._passphrase)
        try:
            os.replace(self._next_path(kind), self.folder / f"{kind}.pem")
        except OSError as exc:
            raise KeyFileError(f"cannot install the new {kind} key: {exc.strerror}") from exc
        self._keys[kind] = new

    def abandon_rotation(self, kind: str) -> None:
        """Remove a prepared key that was never registered."""
        self._next_path(kind).unlink(missing_ok=True)

    def settle_rotation(self, kind: str, active_key_id: str | None) -> None:
        """Finish or drop a rotation a dead process left half done.

        The database decides: if its active ``kind`` key is the prepared one, the rotation
        was registered and is finished here; otherwise the prepared key was never registered
        and is removed.
        """
        path = self._next_path(kind)
        if not path.exists():
            return
        pending = SigningKey.load(path, self._passphrase)
        if pending.key_id == active_key_id and self._keys[kind].key_id != active_key_id:
            _log.warning("finishing a %s key rotation an earlier process left half done", kind)
            self.finish_rotation(kind, pending)
        else:
            self.abandon_rotation(kind)

    def rotate(self, kind: str) -> SigningKey:
        """Replace the ``kind`` key at once (no database involved: for a bare keyring)."""
        new = self.prepare_rotation(kind)
        self.finish_rotation(kind, new)
        return new

    def _next_path(self, kind: str) -> Path:
        return self.folder / f"{kind}.pem.next"

    def account_fingerprint(self, credential: str) -> str:
        """HMAC-SHA256 (hex) of an API credential under the ledger-local secret.

        The same credential always gives the same fingerprint in one ledger, and nothing about
        the credential can be learnt from it without the secret. (About a microsecond; not
        cached, so the credential is never kept.)
        """
        return hmac.new(self._account_secret, credential.encode(), hashlib.sha256).hexdigest()

    @property
    def fingerprint_secret(self) -> bytes:
        """The secret the per-dataset output-fingerprint keys derive from."""
        if self._fingerprint_secret is None:  # the key folder was not writable at open: retry
            self._fingerprint_secret = _ensure_fingerprint_secret(self.folder)
        return self._fingerprint_secret


def read_fingerprint_secret(home: Path) -> bytes | None:
    """The fingerprint secret under ``home/keys``, ``None`` when there is none; reads only.

    Raises:
        KeyFileError: the file exists but is not 16 or more bytes of hex.
    """
    path = home / "keys" / FINGERPRINT_FILE
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the fingerprint secret file {path}") from exc
    try:
        secret = bytes.fromhex(text.strip())
    except ValueError:
        secret = b""
    if len(secret) < 16:
        raise KeyFileError(f"corrupt fingerprint secret file {path}")
    return secret


def _try_fingerprint_secret(folder: Path) -> bytes | None:
    """:func:`_ensure_fingerprint_secret`, or ``None`` when the key folder is not writable.

    An old home in a read-only place must keep opening; the secret is then tried again when a
    fingerprint key is first asked for, and that call raises.
    """
    try:
        return _ensure_fingerprint_secret(folder)
    except KeyFileError:
        raise  # a corrupt secret file fails the open, like a corrupt account secret
    except ConfigError as exc:
        _log.warning("%s; output fingerprints are off until it can be created", exc)
        return None


def _ensure_fingerprint_secret(folder: Path) -> bytes:
    """The fingerprint secret of ``folder``, created first when missing.

    Two processes opening one old home at once must end with the same secret, so the new file
    is written aside and linked into place only if no file is there yet (``link`` fails when
    the name exists, unlike ``replace``); the loser of the race reads the winner's file.
    """
    existing = read_fingerprint_secret(folder.parent)
    if existing is not None:
        return existing
    path = folder / FINGERPRINT_FILE
    secret = secrets.token_bytes(32)
    try:
        tmp = _write_private_tmp(path, secret.hex().encode("ascii") + b"\n")
    except OSError as exc:
        raise ConfigError(f"cannot create the fingerprint secret {path}: {exc.strerror}") from exc
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot create the fingerprint secret {path}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    winner = read_fingerprint_secret(folder.parent)
    if winner is None:  # pragma: no cover - linked or found above, unless removed meanwhile
        raise KeyFileError(f"the fingerprint secret {path} vanished while it was created")
    return winner


def _write_private(path: Path, data: bytes) -> None:
    os.replace(_write_private_tmp(path, data), path)


def _write_private_tmp(path: Path, data: bytes) -> Path:
    """``data`` in a fresh 0600 file beside ``path``, fsync'd; the caller moves it into place."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp
