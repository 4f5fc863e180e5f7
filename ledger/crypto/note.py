"""C2SP signed notes and tlog checkpoints.

Specs: https://c2sp.org/signed-note and https://c2sp.org/tlog-checkpoint.

Invariants:

- Only Ed25519 note signatures (signature type 0x01) are produced or accepted. A key is named by
  (key name, key id) where key id = SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4].
- ``open_note`` returns a note's text only when at least one signature by a known key verifies;
  signatures by unknown keys are ignored, and a signature by a known key that fails to verify
  rejects the whole note (C2SP signed-note: SHOULD reject; we always do).
- Everything malformed raises ``NoteFormatError``, a ``CheckpointError`` (notes, checkpoints),
  or ``InputError`` (verifier key strings, key names and texts passed in to be signed); a note
  whose signatures fail raises ``CheckpointError`` itself. A note is never "partly" accepted.
- ``Checkpoint.from_text(c.to_text()) == c`` for every valid checkpoint, and ``from_text``
  accepts exactly the texts that ``to_text`` can produce.
- ``verify_checkpoint`` also requires the checkpoint's origin to equal the verifier key's name
  (C2SP tlog-checkpoint: the log key name SHOULD be the origin; we make it a rule).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ledger.crypto.keys import SigningKey, VerifyingKey
from ledger.errors import CheckpointError, InputError, NoteFormatError

__all__ = [
    "Checkpoint",
    "NoteSigner",
    "NoteVerifier",
    "VerifiedNote",
    "note_key_id",
    "open_note",
    "sign_checkpoint",
    "sign_note",
    "verifier_key_string",
    "verify_checkpoint",
]

SIG_TYPE_ED25519 = 0x01
# C2SP signed-note: verifiers MUST accept at least 16 signatures; Go's sumdb/note caps at 100.
MAX_SIGNATURES = 100
_EM_DASH = "\u2014"
_SIG_PREFIX = _EM_DASH + " "
_KEY_ID_SIZE = 4
_ED25519_SIG_SIZE = 64
_HASH_SIZE = 32
_HEX_KEY_ID = re.compile(r"[0-9a-f]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_MAX_TREE_SIZE = 2**64 - 1


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Strict standard base64 (RFC 4648 4): canonical padding and bits, else None."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    # Reject non-canonical encodings (non-zero trailing bits) so one value has one spelling.
    return data if _b64encode(data) == text else None


def _has_control(text: str) -> bool:
    """C2SP signed-note: no ASCII control characters other than newline."""
    return any(ord(c) < 0x20 and c != "\n" for c in text)


def _check_key_name(name: str) -> None:
    # C2SP signed-note: key names are non-empty, without Unicode spaces or "+".
    if not name or "+" in name or any(c.isspace() for c in name) or _has_control(name):
        raise InputError(f"invalid note key name {name!r}: empty, or has a space, '+' or control")


def note_key_id(name: str, public_key_raw: bytes) -> bytes:
    """The 4-byte C2SP key id of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || key)[:4]."""
    _check_key_name(name)
    if len(public_key_raw) != _HASH_SIZE:
        raise InputError("an Ed25519 public key is 32 raw bytes")
    material = name.encode("utf-8") + b"\n" + bytes([SIG_TYPE_ED25519]) + public_key_raw
    return hashlib.sha256(material).digest()[:_KEY_ID_SIZE]


def verifier_key_string(name: str, public_key_raw: bytes) -> str:
    """The verifier key ("vkey") string ``name+hexkeyid+base64(0x01 || key)``."""
    key_id = note_key_id(name, public_key_raw)
    return f"{name}+{key_id.hex()}+{_b64encode(bytes([SIG_TYPE_ED25519]) + public_key_raw)}"


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """A known note-signing key: name, 4-byte key id and Ed25519 public key.

    Example:
        >>> v = NoteVerifier.from_string(
        ...     "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        >>> v.name, v.key_id.hex()
        ('PeterNeumann', 'c74f20a3')
    """

    name: str
    public_key: VerifyingKey
    key_id: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_id", note_key_id(self.name, self.public_key.raw))

    @classmethod
    def from_string(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key string ``name+hexkeyid+base64(0x01 || pubkey)``.

        Raises:
            InputError: malformed string, unknown signature type, or a key id that does not
                match the name and key.
        """
        # The name has no "+", the hex id has none, the base64 part may: split twice, from the left.
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise InputError("malformed verifier key: want name+hexkeyid+base64key")
        name, hex_id, b64 = parts
        _check_key_name(name)
        if not _HEX_KEY_ID.fullmatch(hex_id):
            raise InputError(
                f"malformed verifier key {name}: key id must be 8 lowercase hex digits"
            )
        blob = _b64decode(b64)
        if not blob:
            raise InputError(f"malformed verifier key {name}: key is not standard base64")
        if blob[0] != SIG_TYPE_ED25519:
            raise InputError(
                f"verifier key {name}: unsupported signature type 0x{blob[0]:02x} (want 0x01)"
            )
        if len(blob) != 1 + _HASH_SIZE:
            raise InputError(
                f"verifier key {name}: an Ed25519 key is 32 bytes, got {len(blob) - 1}"
            )
        verifier = cls(name, VerifyingKey.from_raw(blob[1:]))
        if verifier.key_id.hex() != hex_id:
            raise InputError(f"verifier key {name}: key id {hex_id} does not match the key")
        return verifier

    def to_string(self) -> str:
        """The verifier key string; ``from_string(v.to_string()) == v``."""
        return verifier_key_string(self.name, self.public_key.raw)

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (the bytes after the 4-byte key id) signs ``text``."""
        return self.public_key.is_valid(signature, text)


class NoteSigner:
    """Signs notes as ``name`` with an Ed25519 key."""

    __slots__ = ("key_id", "name", "signing_key")

    def __init__(self, name: str, signing_key: SigningKey) -> None:
        self.key_id = note_key_id(name, signing_key.public_key.raw)
        self.name = name
        self.signing_key = signing_key

    def __repr__(self) -> str:
        return f"NoteSigner({self.verifier_key_string!r})"

    @property
    def verifier_key_string(self) -> str:
        """The vkey string to publish so that others can verify this signer's notes."""
        return verifier_key_string(self.name, self.signing_key.public_key.raw)

    @property
    def verifier(self) -> NoteVerifier:
        """The matching verifier."""
        return NoteVerifier(self.name, self.signing_key.public_key)

    def sign(self, text: bytes) -> bytes:
        """The raw Ed25519 signature of the note text (without the key id)."""
        return self.signing_key.sign(text)


@dataclass(frozen=True, slots=True)
class VerifiedNote:
    """A note whose text was signed by at least one known key."""

    text: str
    verified_by: tuple[str, ...]


def _check_text(text: str, error: type[InputError] | type[CheckpointError]) -> bytes:
    # C2SP signed-note: the text ends in a newline and has no control characters but newline.
    if not text.endswith("\n"):
        raise error("note text must end with a newline")
    if _has_control(text):
        raise error("note text contains a control character other than newline")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise error("note text is not valid UTF-8") from exc


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """Sign ``text`` with every signer and return the signed note.

    Raises:
        InputError: no signers, or the text does not end in a newline or has control characters.

    Example:
        >>> signer = NoteSigner("example.com/log", SigningKey.generate())
        >>> note = sign_note("hello\\n", [signer])
        >>> open_note(note, [signer.verifier]).text
        'hello\\n'
    """
    if not signers:
        raise InputError("a signed note needs at least one signer")
    message = _check_text(text, InputError)
    lines = [f"{_SIG_PREFIX}{s.name} {_b64encode(s.key_id + s.sign(message))}\n" for s in signers]
    # C2SP signed-note: text, one blank line, then the signature lines.
    return text + "\n" + "".join(lines)


def _index_verifiers(verifiers: Sequence[NoteVerifier]) -> dict[tuple[str, bytes], NoteVerifier]:
    index: dict[tuple[str, bytes], NoteVerifier] = {}
    for v in verifiers:
        known = index.setdefault((v.name, v.key_id), v)
        if known != v:
            raise CheckpointError(f"ambiguous verifier keys for {v.name}+{v.key_id.hex()}")
    return index


def open_note(note: str, verifiers: Sequence[NoteVerifier]) -> VerifiedNote:
    """Parse a signed note and check its signatures against the known ``verifiers``.

    Raises:
        CheckpointError: the note is malformed, a known key's signature does not verify, or no
            known key signed it.
    """
    if _has_control(note):
        raise NoteFormatError("malformed note: control character other than newline")
    try:
        note.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteFormatError("malformed note: not valid UTF-8") from exc
    # C2SP signed-note: the last blank line separates the text from the signature lines.
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteFormatError("malformed note: no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith("\n"):
        raise NoteFormatError("malformed note: signature block must end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteFormatError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    index = _index_verifiers(verifiers)
    message = text.encode("utf-8")
    verified: list[str] = []
    for number, line in enumerate(lines, start=1):
        # C2SP signed-note: em dash, space, key name, space, base64(key id || signature).
        parts = line.removeprefix(_SIG_PREFIX).split(" ")
        if not line.startswith(_SIG_PREFIX) or len(parts) != 2:
            raise NoteFormatError(f"malformed note: signature line {number} is not '— name sig'")
        name, b64 = parts
        blob = _b64decode(b64)
        try:
            _check_key_name(name)
        except InputError as exc:
            raise NoteFormatError(f"malformed note: signature line {number}: {exc}") from exc
        if blob is None or len(blob) <= _KEY_ID_SIZE:
            raise NoteFormatError(f"malformed note: signature line {number} has a bad signature")
        key_id, signature = blob[:_KEY_ID_SIZE], blob[_KEY_ID_SIZE:]
        verifier = index.get((name, key_id))
        if verifier is None:
            continue  # C2SP signed-note: MUST ignore signatures from unknown keys.
        if not verifier.verify(message, signature):
            raise CheckpointError(f"signature by known key {name}+{key_id.hex()} does not verify")
        if name not in verified:
            verified.append(name)
    if not verified:
        raise CheckpointError("note has no valid signature from a known key")
    return VerifiedNote(text=text, verified_by=tuple(verified))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A C2SP tlog-checkpoint: the log's origin, tree size and RFC 6962 root hash.

    Example:
        >>> cp = Checkpoint("example.com/log", 0, bytes(32))
        >>> Checkpoint.from_text(cp.to_text()) == cp
        True
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or _has_control(self.origin):
            raise InputError("checkpoint origin must be one non-empty line without controls")
        if type(self.size) is not int or not 0 <= self.size <= _MAX_TREE_SIZE:
            raise InputError(f"checkpoint size must be an integer in [0, 2**64), got {self.size!r}")
        if type(self.root_hash) is not bytes or len(self.root_hash) != _HASH_SIZE:
            raise InputError("checkpoint root hash must be 32 bytes")
        for ext in self.extensions:
            if not ext or "\n" in ext or _has_control(ext):
                raise InputError("checkpoint extension lines must be non-empty single lines")

    def to_text(self) -> str:
        """The checkpoint note text: origin, decimal size, base64 root, extensions; LF-ended."""
        lines = [self.origin, str(self.size), _b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text strictly.

        Raises:
            CheckpointError: not exactly the C2SP tlog-checkpoint body format.
        """
        if not text.endswith("\n"):
            raise NoteFormatError("malformed checkpoint: text must end with a newline")
        lines = text[:-1].split("\n")
        # C2SP tlog-checkpoint: at least origin, tree size and root hash lines.
        if len(lines) < 3:
            raise NoteFormatError("malformed checkpoint: need origin, size and root hash lines")
        origin, size_line, root_line, *extensions = lines
        if not _DECIMAL.fullmatch(size_line):
            raise NoteFormatError(
                f"malformed checkpoint: size {size_line!r} is not a decimal without leading zeros"
            )
        root = _b64decode(root_line)
        if root is None or len(root) != _HASH_SIZE:
            raise NoteFormatError("malformed checkpoint: root hash is not 32 bytes of base64")
        try:
            return cls(origin, int(size_line), root, tuple(extensions))
        except InputError as exc:
            raise NoteFormatError(f"malformed checkpoint: {exc}") from exc


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    """The signed note of ``checkpoint``; the signer's key name must be the origin.

    Raises:
        InputError: the signer's name is not the checkpoint's origin.
    """
    if signer.name != checkpoint.origin:
        raise InputError(
            f"checkpoint origin {checkpoint.origin!r} differs from key name {signer.name!r}"
        )
    return sign_note(checkpoint.to_text(), [signer])


def verify_checkpoint(note: str, verifier: NoteVerifier | str) -> Checkpoint:
    """Verify a signed checkpoint against the log's verifier key and return the checkpoint.

    Raises:
        InputError: ``verifier`` is a malformed verifier key string.
        CheckpointError: malformed, unsigned by this key, or its origin is not the key's name.
    """
    if isinstance(verifier, str):
        verifier = NoteVerifier.from_string(verifier)
    opened = open_note(note, [verifier])
    checkpoint = Checkpoint.from_text(opened.text)
    # C2SP tlog-checkpoint: the origin identifies the log, and its key is named after it.
    if checkpoint.origin != verifier.name:
        raise CheckpointError(
            f"checkpoint origin {checkpoint.origin!r} is not the key name {verifier.name!r}"
        )
    return checkpoint
