"""Linking one assistant turn of a dataset row to the outputs recorded in the ledger, in stages.

Invariants:

- Stages run in order and the first that links decides the turn's class: ``id`` (the row names
  an entry and that entry contains the text by one of the next three stages), ``exact`` (the
  normalized text's fingerprint is an output's answer or reasoning, or a version 1 entry's
  ``output_sha256``), ``template`` (equal after undoing a known wrapper: a recorded reasoning
  and answer join, or a wrapper pattern whose ``answer`` group, and ``reasoning`` group when it
  has one, are that entry's), ``part`` (the text, or every substantial paragraph or line of it,
  is a recorded segment or output: one call split into rows, or a row assembled from several
  calls), ``near`` (sketch similarity at or above the threshold; resolved later, in a second
  pass over the ledger, by :class:`NearIndex`; only candidates within :data:`NEAR_MARGIN` of
  the best are kept), else ``none``.
- Every candidate of the deciding stage is kept (several entries can hold the same output);
  nothing weaker than the deciding stage is reported.
- Text is normalized by :func:`ledger.crypto.canonical.normalize_output` and folded by the
  functions of :mod:`ledger.crypto.fingerprint`, exactly as the recorder did.
- Short texts do not link by ``part`` or ``near``: segments shorter than
  ``MIN_SEGMENT_CHARS`` are never fingerprinted, and a sketch needs :data:`MIN_NEAR_WORDS`
  words, so a human row that shares a stock phrase with an output stays ``none``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple

from ledger.audit.index import (
    ANSWER,
    JOIN,
    KIND_NAMES,
    REASONING,
    SEGMENT,
    V1,
    FingerprintIndex,
    Hit,
    key64,
)
from ledger.crypto.canonical import normalize_output
from ledger.crypto.fingerprint import (
    MIN_SEGMENT_CHARS,
    SKETCH_SIZE,
    Fingerprinter,
    Sketch,
    decode_sketch,
    encode_sketch,
    segment_key,
    similarity,
    sketch_words,
)
from ledger.errors import InputError

__all__ = [
    "DEFAULT_NEAR_THRESHOLD",
    "DEFAULT_WRAPPERS",
    "MATCH_CLASSES",
    "MIN_NEAR_WORDS",
    "NEAR_MARGIN",
    "Link",
    "Matcher",
    "NearIndex",
    "TurnMatch",
    "compile_wrappers",
]

MATCH_CLASSES = ("id", "exact", "template", "part", "near", "none")
DEFAULT_NEAR_THRESHOLD = 0.6
MIN_NEAR_WORDS = 8
# Near candidates within this much of the best one are its equals (about one standard error
# of a 64-bin estimate near 0.8); those further below are dropped, not reported as ambiguity.
NEAR_MARGIN = 0.05
# A row assembled from outputs must have most of its text in linked pieces; short pieces
# (headings, "Yes.") are too common to count either way.
_COVER_SHARE = 0.75
_NEAR_BANDS = 16
_NEAR_ROWS = SKETCH_SIZE // _NEAR_BANDS

# Wrappers as datasets write them (research A6: OpenThoughts, s1, DeepSeek-R1 style think
# tags, "Answer:" prefixes). Each must match the whole normalized text; its named groups
# ``reasoning`` (optional) and ``answer`` are normalized and looked up.
DEFAULT_WRAPPERS: tuple[str, ...] = (
    r"<(?P<tag>think|thinking|thought|reasoning)>\s*(?P<reasoning>.*?)\s*</(?P=tag)>\s*"
    r"(?:<answer>\s*(?P<answer>.*?)\s*</answer>|(?P<answer2>.*))",
    r"<\|begin_of_thought\|>\s*(?P<reasoning>.*?)\s*<\|end_of_thought\|>\s*"
    r"<\|begin_of_solution\|>\s*(?P<answer>.*?)\s*<\|end_of_solution\|>",
    r"<\|im_start\|>think\s*(?P<reasoning>.*?)\s*<\|im_start\|>answer\s*"
    r"(?:(?:final answer|answer)\s*:\s*)?(?P<answer>.*?)\s*(?:<\|im_end\|>)?",
    r"(?:final answer|answer|response|output)\s*:\s*(?P<answer>.+)",
    r"<answer>\s*(?P<answer>.*?)\s*</answer>",
)
# Markers removed before segment and sketch matching (replaced by a paragraph break).
_MARKERS = re.compile(
    r"</?(?:think|thinking|thought|reasoning|answer)>|<\|(?:begin|end)_of_(?:thought|solution)\|>"
    r"|<\|im_start\|>(?:think|answer|assistant)?|<\|im_end\|>",
    re.IGNORECASE,
)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")

_WHOLE = frozenset({ANSWER, REASONING})
_ANY_OUTPUT = frozenset({ANSWER, REASONING, JOIN, SEGMENT})


def compile_wrappers(patterns: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    """Compile wrapper patterns (full-match, dot matches newline, case-insensitive).

    Raises:
        InputError: a pattern does not compile or has no ``answer`` group.
    """
    compiled = []
    for pattern in patterns:
        try:
            regex = re.compile(pattern, re.DOTALL | re.IGNORECASE)
        except re.error as exc:
            raise InputError(f"wrapper pattern {pattern!r} does not compile: {exc}") from exc
        if "answer" not in regex.groupindex:
            raise InputError(f"wrapper pattern {pattern!r} has no (?P<answer>...) group")
        compiled.append(regex)
    return tuple(compiled)


class Link(NamedTuple):
    """One candidate entry for a turn: where it is, how it matched (a tuple: one per link)."""

    leaf_index: int
    match: str  # one of MATCH_CLASSES but "none"
    output: int  # choice / candidate index within the entry
    kind: str  # which fingerprint matched: answer, reasoning, join, segment, v1, sketch
    similarity: float | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "leaf_index": self.leaf_index,
            "match": self.match,
            "output": self.output,
            "kind": self.kind,
        }
        if self.similarity is not None:
            out["similarity"] = round(self.similarity, 4)
        return out


class TurnMatch(NamedTuple):
    """The deciding stage of one turn and all its candidates (a tuple: one per turn)."""

    match: str
    links: tuple[Link, ...] = ()
    id_problem: str | None = None  # the row named an entry that does not hold this text
    # Several entries are alternatives for the same text (a row assembled from several calls
    # has several entries without being ambiguous: each piece has its own).
    ambiguous: bool = False

    @property
    def leaves(self) -> frozenset[int]:
        return frozenset(link.leaf_index for link in self.links)


_NONE = TurnMatch("none")


def _several(hits: list[Hit]) -> bool:
    return len({hit.leaf_index for hit in hits}) > 1


def _links(hits: list[Hit], match: str, similarity: float | None = None) -> tuple[Link, ...]:
    if len(hits) == 1:
        hit = hits[0]
        return (Link(hit.leaf_index, match, hit.output, KIND_NAMES[hit.kind], similarity),)
    seen: dict[tuple[int, int], Link] = {}
    for hit in hits:
        seen.setdefault(
            (hit.leaf_index, hit.output),
            Link(hit.leaf_index, match, hit.output, KIND_NAMES[hit.kind], similarity),
        )
    return tuple(sorted(seen.values(), key=lambda link: (link.leaf_index, link.output)))


class Matcher:
    """Runs the ``id`` .. ``part`` stages for turns; collects what ``near`` must look at.

    ``keys`` maps each dataset slot of the index to that dataset's fingerprint key; slots
    without a key (datasets whose key the auditor was not given) can only link through
    version 1 hashes.
    """

    def __init__(
        self,
        index: FingerprintIndex,
        keys: Mapping[int, bytes],
        *,
        wrappers: Sequence[str] = DEFAULT_WRAPPERS,
    ) -> None:
        self._index = index
        self._fingerprinters = [(slot, Fingerprinter(key)) for slot, key in sorted(keys.items())]
        self._wrappers = compile_wrappers(wrappers)

    @property
    def slots(self) -> list[tuple[int, Fingerprinter]]:
        return list(self._fingerprinters)

    # -- lookups ------------------------------------------------------------------------------

    def _keyed(self, text: str, kinds: frozenset[int]) -> list[Hit]:
        found: list[Hit] = []
        lookup = self._index.lookup
        for slot, fingerprinter in self._fingerprinters:
            for hit in lookup(fingerprinter.prefix64(text)):
                if hit.dataset_slot == slot and hit.kind in kinds:
                    found.append(hit)
        return found

    def _v1(self, text: str) -> list[Hit]:
        if not self._index.has_v1:
            return []
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        return [hit for hit in self._index.lookup(key64(digest)) if hit.kind == V1]

    def _whole(self, text: str) -> list[Hit]:
        return self._keyed(text, _WHOLE) + self._v1(text)

    def _piece(self, text: str) -> list[Hit]:
        """Hits for a folded piece of a turn: any recorded output, join or segment."""
        return self._keyed(text, _ANY_OUTPUT) + self._v1(text)

    # -- stages -------------------------------------------------------------------------------

    def match(self, text: str, id_leaves: frozenset[int] = frozenset()) -> TurnMatch:
        """The deciding stage among ``id``, ``exact``, ``template`` and ``part`` (or ``none``;
        the caller may still try ``near``)."""
        norm = normalize_output(text)
        if not norm:
            return _NONE
        if id_leaves:
            found = self._stages(norm, lambda hit: hit.leaf_index in id_leaves)
            if found is not None:
                links = tuple(Link(x.leaf_index, "id", x.output, x.kind) for x in found.links)
                return TurnMatch("id", links, ambiguous=found.ambiguous)
        found = self._stages(norm, None)
        problem = "the named entry does not hold this text" if id_leaves else None
        if found is None:
            return TurnMatch("none", (), problem)
        return TurnMatch(found.match, found.links, problem, found.ambiguous)

    def _stages(self, norm: str, keep: Callable[[Hit], bool] | None) -> TurnMatch | None:
        def kept(hits: list[Hit]) -> list[Hit]:
            return hits if keep is None else [h for h in hits if keep(h)]

        hits = kept(self._whole(norm))
        if hits:
            return TurnMatch("exact", _links(hits, "exact"), ambiguous=_several(hits))
        hits = kept(self._template(norm))
        if hits:
            return TurnMatch("template", _links(hits, "template"), ambiguous=_several(hits))
        pieces = [kept(piece) for piece in self._part(norm)]
        if pieces and all(pieces):
            hits = [hit for piece in pieces for hit in piece]
            ambiguous = any(_several(piece) for piece in pieces)
            return TurnMatch("part", _links(hits, "part"), ambiguous=ambiguous)
        return None

    def _unwrap(self, norm: str) -> Iterable[tuple[str | None, str]]:
        for regex in self._wrappers:
            found = regex.fullmatch(norm)
            if found is None:
                continue
            groups = found.groupdict()
            answer = groups.get("answer") or groups.get("answer2") or ""
            reasoning = groups.get("reasoning")
            yield (
                normalize_output(reasoning) if reasoning else None,
                normalize_output(answer),
            )

    def _template(self, norm: str) -> list[Hit]:
        hits = self._keyed(norm, frozenset({JOIN}))
        if hits:
            return hits
        for reasoning, answer in self._unwrap(norm):
            if not answer:
                continue
            answers = [h for h in self._whole(answer) if h.kind != REASONING]
            if not answers:
                continue
            if reasoning is None:
                return answers
            reasoned = {(h.leaf_index, h.output) for h in self._keyed(reasoning, _WHOLE)}
            both = [h for h in answers if (h.leaf_index, h.output) in reasoned]
            if both:
                return both
        return []

    def _part(self, norm: str) -> list[list[Hit]]:
        """The hits of each piece the text is made of (empty when it is not made of pieces)."""
        text = _MARKERS.sub("\n\n", norm)
        whole = segment_key(text)
        if len(whole) >= MIN_SEGMENT_CHARS:
            hits = self._piece(whole)
            if hits:
                return [hits]
        # Cover: every substantial paragraph (or, failing that, each of its lines) linked.
        total = covered = 0
        found: list[list[Hit]] = []
        for paragraph in _PARAGRAPH_BREAK.split(text):
            folded = segment_key(paragraph)
            if not folded:
                continue
            total += len(folded)
            if len(folded) < MIN_SEGMENT_CHARS:
                continue
            hits = self._piece(folded) or self._piece(normalize_output(paragraph))
            if hits:
                covered += len(folded)
                found.append(hits)
                continue
            lines = [line for line in paragraph.split("\n") if line.strip()]
            if len(lines) < 2:
                return []
            for line in lines:
                piece = segment_key(line)
                if len(piece) < MIN_SEGMENT_CHARS:
                    continue
                hits = self._piece(piece)
                if not hits:
                    return []
                covered += len(piece)
                found.append(hits)
        if not found or covered < _COVER_SHARE * total:
            return []
        return found

    # -- near ---------------------------------------------------------------------------------

    def near_text(self, text: str) -> str | None:
        """The text a turn's sketch is taken of (the answer of a recognized wrapper, else the
        text without markers), or None when it is too short to link by similarity."""
        norm = normalize_output(text)
        for _, answer in self._unwrap(norm):
            if answer:
                norm = answer
                break
        norm = _MARKERS.sub("\n\n", norm)
        if len(sketch_words(norm)) < MIN_NEAR_WORDS:
            return None
        return norm


class NearIndex:
    """LSH over the sketches of the turns still unlinked (the dataset side: the smaller one).

    Sketches are cut into :data:`_NEAR_BANDS` bands of :data:`_NEAR_ROWS` bins; a turn is a
    candidate for an entry output when one band agrees exactly. With 16 bands of 4, a pair at
    similarity 0.6 becomes a candidate with probability 1 - (1 - 0.6**4)**16 = 0.89, at 0.7
    with 0.99, at 0.3 with 0.12 (and is then rejected by the threshold). Candidates are
    confirmed by :func:`ledger.crypto.fingerprint.similarity` against the threshold. Bands are
    keyed by slices of the sketch's stored bytes, so probing an entry needs no decoding.
    """

    def __init__(self, threshold: float = DEFAULT_NEAR_THRESHOLD) -> None:
        if not 0.0 < threshold <= 1.0:
            raise InputError(f"the near threshold must lie in (0, 1], not {threshold}")
        self.threshold = threshold
        self._bands: dict[bytes, list[int]] = {}
        self._sketches: list[tuple[int, Sketch]] = []  # (slot, sketch) per registered turn
        self.turns: list[object] = []  # caller's reference per registered turn

    def __len__(self) -> int:
        return len(self._sketches)

    @staticmethod
    def _band_keys(slot: int, raw: bytes) -> list[bytes]:
        width = 4 * _NEAR_ROWS
        prefix = slot.to_bytes(2, "big")
        return [
            prefix + bytes((band,)) + raw[band * width : (band + 1) * width]
            for band in range(_NEAR_BANDS)
        ]

    def add(self, ref: object, slot: int, value: Sketch) -> None:
        number = len(self._sketches)
        self._sketches.append((slot, value))
        self.turns.append(ref)
        raw = base64.b64decode(encode_sketch(value))
        for key in self._band_keys(slot, raw):
            self._bands.setdefault(key, []).append(number)

    def probe(self, slot: int, encoded: str) -> list[tuple[int, float]]:
        """``(turn number, similarity)`` for every registered turn at or above the threshold,
        for one entry output's stored (base64) sketch; a malformed sketch matches nothing."""
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return []
        if len(raw) != 4 * SKETCH_SIZE:
            return []
        candidates: set[int] = set()
        bands = self._bands
        for key in self._band_keys(slot, raw):
            found = bands.get(key)
            if found:
                candidates.update(found)
        if not candidates:
            return []
        value = decode_sketch(encoded)
        out = []
        for number in candidates:
            turn_slot, turn_sketch = self._sketches[number]
            if turn_slot != slot:
                continue
            score = similarity(turn_sketch, value)
            if score >= self.threshold:
                out.append((number, score))
        return out
