"""DSSE (Dead Simple Signing Envelope) v1 with Ed25519: sign and verify an envelope.

Invariants:

* What is signed is ``PAE(payloadType, payload)`` exactly as the DSSE v1 protocol defines it:
  ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, lengths as ASCII decimal byte counts.
  The payload itself is never signed directly and never parsed before its signature checks.
* An envelope is ``{"payload": b64, "payloadType": str, "signatures": [{"keyid": str, "sig":
  b64}]}``. Output uses standard base64 with padding; input also accepts URL-safe base64, as the
  spec asks of verifiers.
* ``keyid`` is the ledger's key id (lowercase hex SHA-256 of the raw Ed25519 public key). A
  verifier trusts only the key it is given: a signature passes when its ``keyid`` names that key
  and the Ed25519 signature verifies under it. Other signatures in the envelope are ignored,
  never trusted.
* Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger.crypto.keys import SigningKey, VerifyingKey
from ledger.errors import InputError, SignatureError

__all__ = [
    "IN_TOTO_PAYLOAD_TYPE",
    "Envelope",
    "EnvelopeSignature",
    "pae",
    "sign_envelope",
    "verify_envelope",
]

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding of ``payload`` under ``payload_type``.

    Example:
        >>> pae("http://example.com/HelloWorld", b"hello world")
        b'DSSEv1 29 http://example.com/HelloWorld 11 hello world'
    """
    kind = payload_type.encode("utf-8")
    # DSSE protocol: LEN(s) is the byte length of s as ASCII decimal, no leading zeros.
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def _b64decode(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise InputError(f"DSSE {what} is not a base64 string")
    # DSSE protocol: verifiers accept standard and URL-safe base64, padded or not.
    normalized = text.replace("-", "+").replace("_", "/")
    normalized += "=" * (-len(normalized) % 4)
    try:
        return base64.b64decode(normalized, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"DSSE {what} is not valid base64") from exc


@dataclass(frozen=True, slots=True)
class EnvelopeSignature:
    """One signature of an envelope: the signing key's id and the raw Ed25519 signature."""

    keyid: str
    sig: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A DSSE envelope: the payload bytes, their type, and the signatures over their PAE."""

    payload: bytes
    payload_type: str
    signatures: tuple[EnvelopeSignature, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the DSSE spec."""
        return {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")}
                for s in self.signatures
            ],
        }

    def to_json(self) -> bytes:
        """The envelope as UTF-8 JSON bytes (one object, keys in spec order)."""
        return json.dumps(self.to_dict(), indent=2).encode("utf-8") + b"\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Envelope:
        """Parse the JSON form.

        Raises:
            InputError: a field is missing, has the wrong type or is not base64.
        """
        if not isinstance(data, Mapping):
            raise InputError("a DSSE envelope is a JSON object")
        payload_type = data.get("payloadType")
        if not isinstance(payload_type, str):
            raise InputError("DSSE payloadType is missing or not a string")
        signatures = data.get("signatures")
        if not isinstance(signatures, list):
            raise InputError("DSSE signatures is missing or not a list")
        parsed = []
        for n, item in enumerate(signatures):
            if not isinstance(item, Mapping):
                raise InputError(f"DSSE signature {n} is not an object")
            keyid = item.get("keyid", "")
            if not isinstance(keyid, str):
                raise InputError(f"DSSE signature {n} keyid is not a string")
            parsed.append(EnvelopeSignature(keyid, _b64decode(item.get("sig"), f"signature {n}")))
        return cls(_b64decode(data.get("payload"), "payload"), payload_type, tuple(parsed))

    @classmethod
    def from_json(cls, data: bytes | str) -> Envelope:
        """Parse an envelope from JSON text.

        Raises:
            InputError: not JSON, or not an envelope.
        """
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"DSSE envelope is not JSON: {exc}") from exc
        return cls.from_dict(parsed)


def sign_envelope(
    payload: bytes, key: SigningKey, payload_type: str = IN_TOTO_PAYLOAD_TYPE
) -> Envelope:
    """An envelope around ``payload`` with one Ed25519 signature by ``key``.

    Example:
        >>> key = SigningKey.generate()
        >>> env = sign_envelope(b'{"_type": "x"}', key)
        >>> verify_envelope(env, key.public_key)
        b'{"_type": "x"}'
    """
    signature = key.sign(pae(payload_type, payload))
    return Envelope(payload, payload_type, (EnvelopeSignature(key.key_id, signature),))


def verify_envelope(
    envelope: Envelope, key: VerifyingKey, payload_type: str = IN_TOTO_PAYLOAD_TYPE
) -> bytes:
    """The payload, once a signature by exactly ``key`` over its PAE has verified.

    Raises:
        SignatureError: the payload type is not ``payload_type``, no signature names ``key``,
            or the one that does fails to verify.
    """
    # The type is part of what was signed; checking it first only gives a clearer message.
    if envelope.payload_type != payload_type:
        raise SignatureError(
            f"DSSE payloadType is {envelope.payload_type!r}, expected {payload_type!r}"
        )
    mine = [s for s in envelope.signatures if s.keyid == key.key_id]
    if not mine:
        raise SignatureError(f"DSSE envelope has no signature by key {key.key_id}")
    message = pae(envelope.payload_type, envelope.payload)
    if not any(key.is_valid(s.sig, message) for s in mine):
        raise SignatureError(f"DSSE signature by key {key.key_id} does not verify")
    return envelope.payload
