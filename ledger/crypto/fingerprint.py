"""Keyed fingerprints and sketches of model outputs, for linking dataset rows to entries.

Invariants:

- Pure: no I/O, no clock, no randomness; equal inputs give equal outputs on every machine.
- Every value is keyed. Fingerprints are HMAC-SHA256 under a key derived per dataset
  (:func:`dataset_key`) and the sketch hashes shingles with keyed BLAKE2b under a subkey of the
  same key, so whoever holds the log but not the key cannot confirm a guessed output ("Yes.")
  from it (C2SP tlog-addenda: blind guessable content). One dataset's key opens only that
  dataset's records: keys of different datasets are independent HMAC outputs of the secret.
- Text is normalized once, by :func:`ledger.crypto.canonical.normalize_output` (NFC, CRLF to LF,
  outer white space stripped), before anything is fingerprinted. Segments and sketches apply
  their own further folding (below), the same on the recorder side and on the matcher side,
  because both call the functions of this module.
- The record format is versioned by :data:`FINGERPRINT_VERSION` (``fv`` in the record); a
  change to any constant or rule below is a new version, never an edit of this one.

Version 1, in full:

- ``fingerprint(key, text)``: the first 16 bytes (128 bits, 32 hex digits) of
  HMAC-SHA256(HMAC-SHA256(key, "fingerprint"), utf8(text)). 128 bits keep accidental collisions
  out of reach (about 2**-64 for 2**32 stored values, far beyond any ledger) and a keyed MAC
  truncated to 128 bits is still unforgeable without the key (NIST SP 800-107 5.3.4); the full
  32 bytes would double every entry's fingerprint bytes for nothing.
- ``answer`` / ``reasoning``: fingerprints of the normalized answer text and of the normalized
  reasoning text (API reasoning fields, thinking blocks, thought parts) when present.
- ``joins`` (both present): the reasoning and answer joined as ``R + "\\n\\n" + A``,
  ``R + "\\n" + A`` and ``"<think>\\n" + R + "\\n</think>\\n\\n" + A`` (the forms datasets and
  inline-reasoning APIs use); other wrappers are undone by the matcher.
- ``segments``: fingerprints of :func:`segments` of the answer, then of the reasoning, at most
  :data:`MAX_SEGMENTS` distinct ones in text order. A segment is a paragraph of several lines
  (blocks split at blank lines) or a single line, folded by :func:`segment_key` (each line
  stripped, blank lines dropped, a leading list marker such as ``1.``, ``-``, ``*`` and then a
  leading field label such as ``Output:`` removed). Segments shorter than
  :data:`MIN_SEGMENT_CHARS` characters are skipped: short lines ("Yes.", "Step 1") recur across
  unrelated texts and would link rows that share nothing else. A segment equal to the whole
  normalized answer or reasoning is skipped too (its fingerprint is already there).
- ``sketch`` / ``reasoning_sketch``: a one-permutation MinHash (Li, Owen and Zhang, NIPS 2012)
  of word shingles, densified by rotation (Shrivastava and Li, ICML 2014). Words are the
  ``\\w+`` runs of the case-folded text (so truecasing and punctuation edits do not move the
  sketch), shingles are :data:`SHINGLE_WORDS` = 2 consecutive words (a text with fewer words is
  one shingle; pairs rather than triples because one edited word then costs two shingles, not
  three, and a 30-word answer with two words changed still scores about 0.75), at most
  :data:`MAX_SHINGLES` of them from the start. Each distinct shingle is hashed with keyed
  BLAKE2b-64; the top 6 bits choose one of :data:`SKETCH_SIZE` = 64 bins, the
  remaining 58 bits compete for the bin's minimum, and the top 32 of those bits are kept. An
  empty bin takes the value of the next non-empty bin to its right (cyclically), shifted by its
  distance, so that equal texts still agree bin by bin. Stored as base64 of 64 big-endian
  uint32 (344 characters).
- :func:`similarity` estimates the Jaccard similarity of the two shingle sets as the fraction of
  bins that agree; its standard error is about sqrt(J(1 - J) / 64), 0.05 at J = 0.8.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import operator
import re
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from ledger.crypto.canonical import normalize_output
from ledger.errors import InputError

__all__ = [
    "FINGERPRINT_VERSION",
    "MAX_SEGMENTS",
    "MAX_SHINGLES",
    "MIN_SEGMENT_CHARS",
    "SHINGLE_WORDS",
    "SKETCH_SIZE",
    "Fingerprinter",
    "Sketch",
    "dataset_key",
    "decode_sketch",
    "encode_sketch",
    "fingerprint",
    "fingerprints_of",
    "join_forms",
    "key_file_text",
    "normalize_output",
    "output_record",
    "parse_key_file",
    "segment_key",
    "segments",
    "similarity",
    "sketch",
    "sketch_words",
]

FINGERPRINT_VERSION = 1

FINGERPRINT_BYTES = 16
MAX_SEGMENTS = 64
MIN_SEGMENT_CHARS = 20
SHINGLE_WORDS = 2
MAX_SHINGLES = 4_096
SKETCH_SIZE = 64

# A sketch is SKETCH_SIZE unsigned 32-bit bin values.
Sketch = tuple[int, ...]

_DATASET_LABEL = b"distill-ledger/fingerprint/v1/dataset\x00"
_FINGERPRINT_LABEL = b"fingerprint"
_SKETCH_LABEL = b"sketch"
_BIN_SHIFT = 58  # 64 - log2(SKETCH_SIZE)
_VALUE_MASK = (1 << _BIN_SHIFT) - 1
_KEEP_SHIFT = _BIN_SHIFT - 32
_EMPTY = 1 << _BIN_SHIFT
# Rotation densification adds distance * C; an odd constant spreads the shifted values.
_ROTATE = 0x9E3779B1
_U32 = 0xFFFFFFFF
_SKETCH_FORMAT = f">{SKETCH_SIZE}I"

_WORD = re.compile(r"\w+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_LIST_MARKER = re.compile(r"(?:\d{1,3}[.)]|[-*+\u2022]|#{1,6})[ \t]+")
_FIELD_LABEL = re.compile(
    r"(?:instruction|input|output|answer|final answer|response|question|solution)[ \t]*:[ \t]*",
    re.IGNORECASE,
)


# -- keys --------------------------------------------------------------------------------------


def dataset_key(secret: bytes, dataset: str | None) -> bytes:
    """The 32-byte fingerprint key of one dataset, derived from the ledger's secret.

    ``None`` (entries recorded without a dataset name) and ``""`` get different keys. Handing
    one dataset's key to its auditor opens that dataset's records and no other's.

    Example:
        >>> dataset_key(b"s" * 32, "a") != dataset_key(b"s" * 32, None)
        True
    """
    if not secret:
        raise InputError("the fingerprint secret is empty")
    name = b"\x00" if dataset is None else b"\x01" + dataset.encode("utf-8")
    return hmac.digest(secret, _DATASET_LABEL + name, "sha256")


def _subkey(key: bytes, label: bytes) -> bytes:
    return hmac.digest(key, label, "sha256")


class Fingerprinter:
    """The two subkeys of one dataset key, derived once: for hashing many texts under it.

    Example:
        >>> f = Fingerprinter(b"k" * 32)
        >>> f.fingerprint("Paris") == fingerprint(b"k" * 32, "Paris")
        True
    """

    __slots__ = ("_mac", "_shingle")

    def __init__(self, key: bytes) -> None:
        if not key:
            raise InputError("the fingerprint key is empty")
        self._mac = hmac.new(_subkey(key, _FINGERPRINT_LABEL), digestmod="sha256")
        self._shingle = hashlib.blake2b(key=_subkey(key, _SKETCH_LABEL), digest_size=8)

    def fingerprint(self, text: str) -> str:
        """:func:`fingerprint` of ``text`` under this key."""
        mac = self._mac.copy()
        mac.update(text.encode("utf-8", "surrogatepass"))
        return mac.digest()[:FINGERPRINT_BYTES].hex()

    def prefix64(self, text: str) -> int:
        """The first 64 bits of :meth:`fingerprint`, as an integer (the matcher's lookup key)."""
        mac = self._mac.copy()
        mac.update(text.encode("utf-8", "surrogatepass"))
        return int.from_bytes(mac.digest()[:8], "big")

    def sketch(self, text: str) -> Sketch | None:
        """:func:`sketch` of ``text`` under this key."""
        return _sketch(self._shingle, text)


def fingerprint(key: bytes, text: str) -> str:
    """Keyed fingerprint (32 hex digits) of ``text`` exactly as given (normalize it first).

    Example:
        >>> len(fingerprint(b"k" * 32, "Paris"))
        32
    """
    return Fingerprinter(key).fingerprint(text)


def key_file_text(dataset: str | None, key: bytes) -> str:
    """The text of a key file an auditor can be given: the key of one dataset, in JSON."""
    return (
        json.dumps(
            {"fingerprint_version": FINGERPRINT_VERSION, "dataset": dataset, "key": key.hex()},
            ensure_ascii=False,
        )
        + "\n"
    )


def parse_key_file(text: str) -> tuple[str | None, bytes]:
    """``(dataset, key)`` from :func:`key_file_text` output, or from a bare hex key (dataset
    ``None``); ``InputError`` on anything else."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise InputError(f"the key file is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("key"), str):
            raise InputError('the key file has no "key"')
        if data.get("fingerprint_version", FINGERPRINT_VERSION) != FINGERPRINT_VERSION:
            raise InputError(
                f"the key file is for fingerprint version {data['fingerprint_version']}, "
                f"this ledger reads version {FINGERPRINT_VERSION}"
            )
        dataset = data.get("dataset")
        if dataset is not None and not isinstance(dataset, str):
            raise InputError('the key file\'s "dataset" must be a string or null')
        stripped = data["key"]
    else:
        dataset = None
    try:
        key = bytes.fromhex(stripped)
    except ValueError as exc:
        raise InputError("the key is not hexadecimal") from exc
    if len(key) < 16:
        raise InputError("the key is shorter than 16 bytes")
    return dataset, key


# -- segments ----------------------------------------------------------------------------------


def segment_key(text: str) -> str:
    """The folded form of one segment (or of a row that may be one): lines stripped, blank lines
    dropped, one leading list marker and then one leading field label removed.

    Example:
        >>> segment_key("  3. Output:  Boil the water first. ")
        'Boil the water first.'
    """
    lines = [line.strip() for line in text.split("\n")]
    folded = "\n".join(line for line in lines if line)
    marker = _LIST_MARKER.match(folded)
    if marker is not None:
        folded = folded[marker.end() :]
    label = _FIELD_LABEL.match(folded)
    if label is not None:
        folded = folded[label.end() :]
    return folded.strip()


def _segments_into(text: str, out: dict[str, None], limit: int, skip: tuple[str, ...] = ()) -> None:
    for paragraph in _PARAGRAPH_BREAK.split(text):
        lines = [line for line in paragraph.split("\n") if line.strip()]
        pieces = [paragraph, *lines] if len(lines) > 1 else lines
        for piece in pieces:
            if len(out) >= limit:
                return
            folded = segment_key(piece)
            if len(folded) >= MIN_SEGMENT_CHARS and folded not in skip:
                out.setdefault(folded, None)


def segments(text: str, *, limit: int = MAX_SEGMENTS) -> list[str]:
    """The distinct folded segments of normalized ``text`` in order: each paragraph of several
    lines, then its lines; those shorter than :data:`MIN_SEGMENT_CHARS` skipped.

    Example:
        >>> segments("1. Boil the water for tea.\\n2. Add the leaves to the pot.")
        ['Boil the water for tea.', 'Add the leaves to the pot.']
    """
    out: dict[str, None] = {}
    _segments_into(text, out, limit)
    return list(out)


def join_forms(reasoning: str, answer: str) -> list[str]:
    """The joins of normalized reasoning and answer that a record fingerprints, in order."""
    return [
        f"{reasoning}\n\n{answer}",
        f"{reasoning}\n{answer}",
        f"<think>\n{reasoning}\n</think>\n\n{answer}",
    ]


# -- sketches ----------------------------------------------------------------------------------


def sketch_words(text: str) -> list[str]:
    """The words a sketch is made of: ``\\w+`` runs of the case-folded text."""
    return _WORD.findall(text.casefold())


def _sketch(hasher: Any, text: str) -> Sketch | None:
    words = sketch_words(text)
    if not words:
        return None
    if len(words) < SHINGLE_WORDS:
        shingles = {" ".join(words)}
    else:
        count = min(len(words) - SHINGLE_WORDS + 1, MAX_SHINGLES)
        shingles = {" ".join(words[i : i + SHINGLE_WORDS]) for i in range(count)}
    mins = [_EMPTY] * SKETCH_SIZE
    for shingle in shingles:
        h = hasher.copy()
        h.update(shingle.encode("utf-8", "surrogatepass"))
        value = int.from_bytes(h.digest(), "big")
        slot = value >> _BIN_SHIFT
        low = value & _VALUE_MASK
        if low < mins[slot]:
            mins[slot] = low
    kept = [m >> _KEEP_SHIFT if m != _EMPTY else -1 for m in mins]
    if -1 in kept:
        # Rotation densification: an empty bin borrows from the next filled bin to its right.
        filled = [i for i, v in enumerate(kept) if v >= 0]
        for i in range(SKETCH_SIZE):
            if kept[i] < 0:
                donor = next((j for j in filled if j > i), filled[0])
                distance = (donor - i) % SKETCH_SIZE
                kept[i] = (kept[donor] + distance * _ROTATE) & _U32
    return tuple(kept)


def sketch(key: bytes, text: str) -> Sketch | None:
    """The keyed sketch of normalized ``text``; ``None`` when it has no words."""
    return Fingerprinter(key).sketch(text)


def encode_sketch(value: Sketch) -> str:
    """Base64 of the bins as big-endian uint32."""
    return base64.b64encode(struct.pack(_SKETCH_FORMAT, *value)).decode("ascii")


def decode_sketch(text: str) -> Sketch:
    """The bins of :func:`encode_sketch` output; ``InputError`` if it is not one."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError("a sketch is not base64") from exc
    if len(raw) != 4 * SKETCH_SIZE:
        raise InputError(f"a sketch has {len(raw)} bytes, not {4 * SKETCH_SIZE}")
    return struct.unpack(_SKETCH_FORMAT, raw)


def similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """Estimated Jaccard similarity of the shingle sets behind two sketches (0.0 .. 1.0).

    Example:
        >>> k = b"k" * 32
        >>> similarity(sketch(k, "the cat sat on the mat"), sketch(k, "The cat sat on the mat!"))
        1.0
    """
    if len(a) != SKETCH_SIZE or len(b) != SKETCH_SIZE:
        raise InputError(f"sketches have {SKETCH_SIZE} bins")
    # map(eq) runs in C: the matcher calls this for every LSH candidate.
    agree: int = sum(map(operator.eq, a, b))
    return agree / SKETCH_SIZE


# -- the record --------------------------------------------------------------------------------


def output_record(
    key: bytes | Fingerprinter, answer: str | None, reasoning: str | None
) -> dict[str, Any]:
    """The JSON-ready fingerprint record of one output (choice / candidate).

    ``answer`` and ``reasoning`` are the raw texts (normalized here); an empty or missing one
    gets ``None`` and contributes nothing else. See the module docstring for every field.
    ``key`` may be a :class:`Fingerprinter` already made for it, so that a caller hashing many
    outputs under one key derives its subkeys once.

    Example:
        >>> record = output_record(b"k" * 32, " Paris. ", None)
        >>> record["answer"] == fingerprint(b"k" * 32, "Paris.")
        True
    """
    keys = key if isinstance(key, Fingerprinter) else Fingerprinter(key)
    a = normalize_output(answer) if answer else ""
    r = normalize_output(reasoning) if reasoning else ""
    found: dict[str, None] = {}
    _segments_into(a, found, MAX_SEGMENTS, (a, r))
    _segments_into(r, found, MAX_SEGMENTS, (a, r))
    joins = join_forms(r, a) if a and r else []
    a_sketch = keys.sketch(a) if a else None
    r_sketch = keys.sketch(r) if r else None
    return {
        "fv": FINGERPRINT_VERSION,
        "answer": keys.fingerprint(a) if a else None,
        "reasoning": keys.fingerprint(r) if r else None,
        "joins": [keys.fingerprint(j) for j in joins],
        "segments": [keys.fingerprint(s) for s in found],
        "sketch": encode_sketch(a_sketch) if a_sketch is not None else None,
        "reasoning_sketch": encode_sketch(r_sketch) if r_sketch is not None else None,
    }


def fingerprints_of(key: bytes, texts: Iterable[str]) -> list[str]:
    """Fingerprints of many texts under one key."""
    keys = Fingerprinter(key)
    return [keys.fingerprint(t) for t in texts]
