"""C2SP signed notes and checkpoints, against the published examples."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.crypto.keys import SigningKey
from ledger.crypto.note import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    note_key_id,
    open_note,
    sign_checkpoint,
    sign_note,
    verifier_key_string,
    verify_checkpoint,
)
from ledger.errors import CheckpointError, InputError, NoteFormatError

# golang.org/x/mod sumdb/note: note.go docs and note_test.go (TestOpen, TestSign).
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdng"
    "otpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnW"
    "Lox33WWd1RvMc+QQ=\n"
)
# C2SP signed-note v1.0.0 example.
FOO_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
FOO_NOTE = (
    "This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppz"
    "i2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)
# Derived (not published): the PeterNeumann seed signing a checkpoint of the RFC 6962 8-leaf tree.
LEDGER_VKEY = "example.com/ledger+fc3f660e+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ROOT8 = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
LEDGER_CHECKPOINT = (
    "example.com/ledger\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n"
    "\u2014 example.com/ledger /D9mDhnGus7AtH8H1mgxbu/wvWsC8hRKQNDL2usUkuq8UCLNeQVr+onoMFTckSTbhGS"
    "/tHsWOgQj3vdIqI/wPmxtqw8=\n"
)


def _seed_key(skey: str) -> SigningKey:
    """A Go sumdb/note private key string: PRIVATE+KEY+name+hexid+base64(0x01 || seed)."""
    blob = base64.b64decode(skey.split("+", 4)[4])
    assert blob[0] == 0x01
    return SigningKey(Ed25519PrivateKey.from_private_bytes(blob[1:]))


@pytest.fixture
def peter() -> NoteSigner:
    return NoteSigner("PeterNeumann", _seed_key(PETER_SKEY))


def test_peter_known_answers(peter: NoteSigner) -> None:
    assert peter.key_id.hex() == "c74f20a3"
    assert peter.verifier_key_string == PETER_VKEY
    assert verifier_key_string("PeterNeumann", peter.signing_key.public_key.raw) == PETER_VKEY
    assert note_key_id("PeterNeumann", peter.signing_key.public_key.raw) == peter.key_id


def test_sign_reproduces_go_example(peter: NoteSigner) -> None:
    assert sign_note(TEXT, [peter]) == TEXT + "\n" + PETER_SIG


def test_open_go_example() -> None:
    verifier = NoteVerifier.from_string(PETER_VKEY)
    assert (verifier.name, verifier.key_id.hex()) == ("PeterNeumann", "c74f20a3")
    opened = open_note(TEXT + "\n" + PETER_SIG, [verifier])
    assert opened.text == TEXT
    assert opened.verified_by == ("PeterNeumann",)


def test_open_c2sp_spec_example() -> None:
    verifier = NoteVerifier.from_string(FOO_VKEY)
    assert verifier.key_id.hex() == "530d903a"
    assert open_note(FOO_NOTE, [verifier]).text == "This is an example message.\n"
    with pytest.raises(CheckpointError, match="does not verify"):
        open_note(FOO_NOTE.replace("example message", "example massage"), [verifier])


def test_tampered_note_fails() -> None:
    verifier = NoteVerifier.from_string(PETER_VKEY)
    tampered = TEXT.replace("answer", "Answer") + "\n" + PETER_SIG
    with pytest.raises(CheckpointError, match=r"PeterNeumann\+c74f20a3 does not verify"):
        open_note(tampered, [verifier])
    # Go TestOpen "Invalid signature": bytes spliced into the base64.
    spliced = TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(CheckpointError, match="does not verify") as caught:
        open_note(spliced, [verifier])
    # Well formed, badly signed: a failed check, not a text of the wrong format.
    assert not isinstance(caught.value, NoteFormatError)
    # A known key id with a one-byte signature: a signature that fails, as in Go's TestOpen.
    with pytest.raises(CheckpointError, match="does not verify") as caught:
        open_note(TEXT + "\n" + "\u2014 PeterNeumann x08go/Y=\n", [verifier])
    assert not isinstance(caught.value, NoteFormatError)


def test_unknown_signatures_are_ignored() -> None:
    peter, enoch = NoteVerifier.from_string(PETER_VKEY), NoteVerifier.from_string(ENOCH_VKEY)
    note = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert open_note(note, [peter]).verified_by == ("PeterNeumann",)
    assert open_note(note, [peter, enoch]).verified_by == ("PeterNeumann", "EnochRoot")
    with pytest.raises(CheckpointError, match="no valid signature from a known key"):
        open_note(note, [])
    # A key sharing only the name (different id) is unknown, so its signature is ignored.
    other = NoteSigner("PeterNeumann", SigningKey.generate())
    with pytest.raises(CheckpointError, match="no valid signature"):
        open_note(note, [other.verifier])


def test_duplicate_signatures_and_ambiguous_verifiers() -> None:
    peter = NoteVerifier.from_string(PETER_VKEY)
    note = TEXT + "\n" + PETER_SIG + PETER_SIG
    assert open_note(note, [peter, peter]).verified_by == ("PeterNeumann",)
    with pytest.raises(CheckpointError, match="malformed note: more than 100"):
        open_note(TEXT + "\n" + PETER_SIG * 101, [peter])
    impostor = NoteVerifier("PeterNeumann", SigningKey.generate().public_key)
    object.__setattr__(impostor, "key_id", peter.key_id)  # forge a colliding key id
    with pytest.raises(CheckpointError, match="ambiguous"):
        open_note(TEXT + "\n" + PETER_SIG, [peter, impostor])


@pytest.mark.parametrize(
    "note",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        "\ud800" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"),
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Peter+Neumann"),
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG.replace("\u2014", "-"),
        TEXT + "\n" + PETER_SIG.replace("\u2014 ", "\u2014  "),
        TEXT + "\n" + "\u2014 PeterNeumann x08g\n",
        TEXT + "\n" + "\u2014 PeterNeumann not*base64\n",
        TEXT.rstrip("\n") + "\t\n\n" + PETER_SIG,
    ],
)
def test_malformed_notes(note: str) -> None:
    with pytest.raises(NoteFormatError):
        open_note(note, [NoteVerifier.from_string(PETER_VKEY)])


def test_text_may_contain_blank_lines(peter: NoteSigner) -> None:
    text = "first\n\nthird\n\n"
    assert open_note(sign_note(text, [peter]), [peter.verifier]).text == text


def test_sign_note_rejects_bad_text(peter: NoteSigner) -> None:
    for text in ("no newline", "", "tab\there\n", "\ud800\n"):
        with pytest.raises(InputError):
            sign_note(text, [peter])
    with pytest.raises(InputError, match="at least one signer"):
        sign_note(TEXT, [])


def test_multiple_signers(peter: NoteSigner) -> None:
    other = NoteSigner("example.com/witness", SigningKey.generate())
    note = sign_note(TEXT, [peter, other])
    assert open_note(note, [other.verifier]).verified_by == ("example.com/witness",)
    assert open_note(note, [peter.verifier, other.verifier]).verified_by == (
        "PeterNeumann",
        "example.com/witness",
    )


@pytest.mark.parametrize(
    ("vkey", "match"),
    [
        ("PeterNeumann+c74f20a3", "want name"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "invalid note key name"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name"),
        ("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 lowercase"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 lowercase"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "base64"),
        ("PeterNeumann+c74f20a3+", "base64"),
        # Go TestNewVerifier: wrong-length key with adjusted hash; wrong algorithm byte.
        (
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            "base64|32 bytes",
        ),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "type 0x65"),
    ],
)
def test_malformed_verifier_keys(vkey: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        NoteVerifier.from_string(vkey)


def test_every_mangled_vkey_is_rejected() -> None:
    """Go TestNewVerifier: every proper substring and every single-byte bump is rejected."""
    for i in range(len(PETER_VKEY)):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) != (0, len(PETER_VKEY)):
                with pytest.raises(InputError):
                    NoteVerifier.from_string(PETER_VKEY[i:j])
    for i, c in enumerate(PETER_VKEY):
        bumped = PETER_VKEY[:i] + chr(ord(c) + 1) + PETER_VKEY[i + 1 :]
        with pytest.raises(InputError):
            NoteVerifier.from_string(bumped)


def test_verifier_round_trip(peter: NoteSigner) -> None:
    verifier = NoteVerifier.from_string(PETER_VKEY)
    assert verifier.to_string() == PETER_VKEY
    assert NoteVerifier.from_string(verifier.to_string()) == verifier
    assert peter.verifier == verifier
    assert verifier.verify(TEXT.encode(), peter.sign(TEXT.encode()))
    assert not verifier.verify(TEXT.encode() + b"x", peter.sign(TEXT.encode()))


def test_key_id_definition() -> None:
    raw = SigningKey.generate().public_key.raw
    want = hashlib.sha256(b"example.com/log\n\x01" + raw).digest()[:4]
    assert note_key_id("example.com/log", raw) == want
    with pytest.raises(InputError):
        note_key_id("bad name", raw)


# -- Checkpoints ---------------------------------------------------------------------------------


def test_checkpoint_known_answer() -> None:
    signer = NoteSigner("example.com/ledger", _seed_key(PETER_SKEY))
    assert signer.verifier_key_string == LEDGER_VKEY
    checkpoint = Checkpoint("example.com/ledger", 8, ROOT8)
    assert sign_checkpoint(checkpoint, signer) == LEDGER_CHECKPOINT
    assert verify_checkpoint(LEDGER_CHECKPOINT, LEDGER_VKEY) == checkpoint
    assert verify_checkpoint(LEDGER_CHECKPOINT, signer.verifier) == checkpoint


def test_tampered_checkpoint_fails() -> None:
    for old, new in (("\n8\n", "\n9\n"), ("Xcna", "Ycna"), ("ledger\n8", "ledgeR\n8")):
        with pytest.raises(CheckpointError):
            verify_checkpoint(LEDGER_CHECKPOINT.replace(old, new, 1), LEDGER_VKEY)


def test_checkpoint_origin_must_match_key_name() -> None:
    signer = NoteSigner("example.com/other", SigningKey.generate())
    checkpoint = Checkpoint("example.com/ledger", 1, ROOT8)
    with pytest.raises(InputError, match="differs from key name"):
        sign_checkpoint(checkpoint, signer)
    note = sign_note(checkpoint.to_text(), [signer])
    with pytest.raises(CheckpointError, match="is not the key name"):
        verify_checkpoint(note, signer.verifier)


def test_verify_checkpoint_rejects_bad_vkey() -> None:
    with pytest.raises(InputError):
        verify_checkpoint(LEDGER_CHECKPOINT, "not a key")


@pytest.mark.parametrize(
    "checkpoint",
    [
        Checkpoint("example.com/ledger", 0, bytes(32)),
        Checkpoint("example.com/ledger", 8, ROOT8),
        Checkpoint("o", 2**64 - 1, ROOT8, ("ext one", "Timestamp: 1")),
    ],
)
def test_checkpoint_text_round_trip(checkpoint: Checkpoint) -> None:
    text = checkpoint.to_text()
    assert text.endswith("\n")
    assert Checkpoint.from_text(text) == checkpoint
    assert Checkpoint.from_text(text).to_text() == text


def test_checkpoint_text_layout() -> None:
    text = Checkpoint("example.com/ledger", 8, ROOT8, ("x",)).to_text()
    assert text == "example.com/ledger\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\nx\n"


ROOT8_B64 = "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg="


@pytest.mark.parametrize(
    "text",
    [
        f"o\n8\n{ROOT8_B64}",
        "o\n8\n",
        f"\n8\n{ROOT8_B64}\n",
        f"o\n08\n{ROOT8_B64}\n",
        f"o\n00\n{ROOT8_B64}\n",
        f"o\n-1\n{ROOT8_B64}\n",
        f"o\n+8\n{ROOT8_B64}\n",
        f"o\n 8\n{ROOT8_B64}\n",
        f"o\n\u0668\n{ROOT8_B64}\n",  # Arabic-Indic digit eight
        f"o\n{2**64}\n{ROOT8_B64}\n",
        f"o\n8\n{ROOT8_B64[:-4]}\n",
        f"o\n8\n{ROOT8_B64.rstrip('=')}\n",
        "o\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyh=\n",  # non-canonical trailing bits
        f"o\n8\n{ROOT8_B64}\n\n",  # empty extension line
        f"o\n8\n{ROOT8_B64}\r\n",
        f"o\t\n8\n{ROOT8_B64}\n",
    ],
)
def test_checkpoint_from_text_is_strict(text: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.from_text(text)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", 1, ROOT8), "origin"),
        (("a\nb", 1, ROOT8), "origin"),
        (("o", -1, ROOT8), "size"),
        (("o", 2**64, ROOT8), "size"),
        (("o", 1, ROOT8[:31]), "32 bytes"),
        (("o", 1, ROOT8, ("",)), "extension"),
        (("o", 1, ROOT8, ("a\nb",)), "extension"),
    ],
)
def test_checkpoint_constructor_validates(args: tuple[object, ...], match: str) -> None:
    with pytest.raises(InputError, match=match):
        Checkpoint(*args)  # type: ignore[arg-type]


def test_checkpoint_is_frozen() -> None:
    checkpoint = Checkpoint("o", 1, ROOT8)
    with pytest.raises(AttributeError):
        checkpoint.size = 2  # type: ignore[misc]
