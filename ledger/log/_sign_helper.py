"""The signing helper process of :mod:`ledger.log.signing` (run as a script, not imported).

Reads a PEM private key, then batches of messages, from stdin; writes one 64-byte Ed25519
signature per message to stdout; exits when stdin closes. Imports nothing of ``ledger`` so it
starts fast; the wire format is described in :mod:`ledger.log.signing`.
"""

from __future__ import annotations

import struct
import sys
from typing import IO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

_U32 = struct.Struct(">I")


def _read(stream: IO[bytes], size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """Sign until stdin closes; 0 on a clean end, 1 on a malformed request."""
    head = _read(stdin, 4)
    pem = _read(stdin, _U32.unpack(head)[0]) if head else None
    if pem is None:
        return 1
    key = load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        return 1
    while (head := _read(stdin, 4)) is not None:
        # Read the whole batch before signing: the parent's write must not wait on our work.
        messages = []
        for _ in range(_U32.unpack(head)[0]):
            size = _read(stdin, 4)
            message = _read(stdin, _U32.unpack(size)[0]) if size else None
            if message is None:
                return 1
            messages.append(message)
        stdout.write(b"".join(key.sign(message) for message in messages))
        stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.stdin.buffer, sys.stdout.buffer))
