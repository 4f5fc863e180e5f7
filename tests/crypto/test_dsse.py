"""DSSE envelopes: checked both ways against securesystemslib's independent implementation."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import CryptoSigner, SSlibKey

from ledger.crypto.dsse import (
    IN_TOTO_PAYLOAD_TYPE,
    Envelope,
    EnvelopeSignature,
    pae,
    sign_envelope,
    verify_envelope,
)
from ledger.crypto.keys import SigningKey
from ledger.errors import InputError, SignatureError

STATEMENT = json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": []}).encode()


def sslib_pair() -> tuple[SigningKey, CryptoSigner]:
    """One Ed25519 key seen by both implementations, under the ledger's key id."""
    private = Ed25519PrivateKey.generate()
    ours = SigningKey(private)
    public = SSlibKey.from_crypto(private.public_key(), keyid=ours.key_id)
    return ours, CryptoSigner(private, public)


def test_pae_known_answer() -> None:
    # The example in the DSSE protocol document.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    # Byte lengths, not character counts.
    assert pae("t\u00e9", "\u00e9".encode()) == b"DSSEv1 3 t\xc3\xa9 2 \xc3\xa9"


@settings(max_examples=50, deadline=None)
@given(kind=st.text(max_size=40), payload=st.binary(max_size=200))
def test_pae_matches_securesystemslib(kind: str, payload: bytes) -> None:
    assert pae(kind, payload) == SslibEnvelope(payload, kind, {}).pae()


def test_our_envelope_verifies_in_securesystemslib() -> None:
    ours, signer = sslib_pair()
    envelope = sign_envelope(STATEMENT, ours)
    theirs = SslibEnvelope.from_dict(json.loads(envelope.to_json()))
    assert theirs.payload_type == IN_TOTO_PAYLOAD_TYPE
    accepted = theirs.verify([signer.public_key], 1)
    assert list(accepted) == [ours.key_id]


def test_securesystemslib_envelope_verifies_here() -> None:
    ours, signer = sslib_pair()
    theirs = SslibEnvelope(STATEMENT, IN_TOTO_PAYLOAD_TYPE, {})
    theirs.sign(signer)
    parsed = Envelope.from_dict(theirs.to_dict())
    assert verify_envelope(parsed, ours.public_key) == STATEMENT


def test_round_trip_and_url_safe_base64() -> None:
    key = SigningKey.generate()
    envelope = sign_envelope(b"\xfb\xff payload", key)
    assert Envelope.from_json(envelope.to_json()) == envelope
    data = envelope.to_dict()
    data["payload"] = base64.urlsafe_b64encode(envelope.payload).decode().rstrip("=")
    assert Envelope.from_dict(data) == envelope


def test_tampering_and_wrong_keys_fail() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    envelope = sign_envelope(STATEMENT, key)
    with pytest.raises(SignatureError, match="no signature by key"):
        verify_envelope(envelope, other.public_key)
    changed = Envelope(STATEMENT + b" ", envelope.payload_type, envelope.signatures)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_envelope(changed, key.public_key)
    retyped = Envelope(STATEMENT, "application/json", envelope.signatures)
    with pytest.raises(SignatureError, match="payloadType"):
        verify_envelope(retyped, key.public_key)
    # Same type string checked, but a signature made over a different type does not carry over.
    with pytest.raises(SignatureError, match="does not verify"):
        verify_envelope(retyped, key.public_key, payload_type="application/json")
    # A signature by another key that claims this key's id is refused.
    forged = Envelope(
        STATEMENT,
        IN_TOTO_PAYLOAD_TYPE,
        (EnvelopeSignature(key.key_id, other.sign(pae(IN_TOTO_PAYLOAD_TYPE, STATEMENT))),),
    )
    with pytest.raises(SignatureError, match="does not verify"):
        verify_envelope(forged, key.public_key)


@pytest.mark.parametrize(
    "text",
    [
        b"not json",
        b"[]",
        b'{"payload": "aGk=", "signatures": []}',
        b'{"payload": "aGk=", "payloadType": "t", "signatures": {}}',
        b'{"payload": "!!", "payloadType": "t", "signatures": []}',
        b'{"payload": "aGk=", "payloadType": "t", "signatures": [{"keyid": 3, "sig": ""}]}',
    ],
)
def test_malformed_envelopes_are_input_errors(text: bytes) -> None:
    with pytest.raises(InputError):
        Envelope.from_json(text)
