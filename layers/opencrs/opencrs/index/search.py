"""Shortlist over a bundle with a vocabulary tree + inverted file, then geometric
verification of the shortlisted candidates.

Query cost: quantising the query's descriptors (``branching * depth`` Hamming distances
each), walking the posting lists of its words (a small fraction of the gallery), then
verifying at most ``params.SHORTLIST`` candidates, each against its own ~1000 features
only. v1 compared every query descriptor with every gallery descriptor (brute-force
``cv2.batchDistance``), ~1 s per query at 32 targets; see README "bench/speed".
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import numpy as np

from opencrs.index.bundle import Bundle
from opencrs.index.inverted import InvertedIndex
from opencrs.index.vocabulary import Vocabulary, shipped
from opencrs.vision import params
from opencrs.vision.features import Features, make_features
from opencrs.vision.verify import verify


@dataclass(frozen=True)
class Hit:
    """A verified target: its id, the homography inlier count and the ranking score."""

    target_id: str
    inliers: int
    score: float


# Words of recently indexed targets, keyed by (vocabulary, target id) and checked against a
# CRC of the target's descriptors: a warm Lambda rebuilding its Searcher for a new bundle
# version (one target added or removed) quantises only the new target instead of the whole
# gallery (~4 us per descriptor, i.e. ~4 s per 1000 targets). Bounded by _CACHE_FEATURES.
_WORDS_CACHE: dict[tuple[int, str], tuple[int, np.ndarray]] = {}
_CACHE_FEATURES = 50_000_000


def _gallery_words(bundle: Bundle, vocab: Vocabulary) -> np.ndarray:
    """Leaf word of every gallery descriptor, reusing cached per-target words."""
    fp = vocab.fingerprint()
    desc, offsets = bundle.descriptors, bundle.offsets
    ids = bundle.target_ids()
    parts: list[np.ndarray | None] = []
    keys: list[tuple[tuple[int, str], int]] = []
    missing: list[int] = []
    for i, tid in enumerate(ids):
        block = desc[int(offsets[i]) : int(offsets[i + 1])]
        crc = zlib.crc32(block)
        cached = _WORDS_CACHE.get((fp, tid))
        keys.append(((fp, tid), crc))
        if cached is not None and cached[0] == crc:
            parts.append(cached[1])
        else:
            parts.append(None)
            missing.append(i)
    if missing:
        fresh = vocab.quantise_many(
            np.concatenate([desc[int(offsets[i]) : int(offsets[i + 1])] for i in missing])
        ).astype(np.uint32)
        counts = np.diff(offsets)[missing]
        for i, w in zip(missing, np.split(fresh, np.cumsum(counts)[:-1]), strict=True):
            parts[i] = w
    words = [p for p in parts if p is not None]
    if sum(len(w) for w in _WORDS_CACHE.values()) + len(desc) > _CACHE_FEATURES:
        _WORDS_CACHE.clear()
    for (key, crc), w in zip(keys, words, strict=True):
        w.flags.writeable = False
        _WORDS_CACHE[key] = (crc, w)
    if not words:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(words).astype(np.int64)


class Searcher:
    """Built once per bundle version and cached by the caller across warm Lambda
    invocations: construction quantises every gallery descriptor and builds the inverted
    file (the only per-gallery cost; queries never touch the whole gallery)."""

    def __init__(self, bundle: Bundle, vocabulary: Vocabulary | None = None) -> None:
        self._bundle = bundle
        self._vocab = vocabulary if vocabulary is not None else shipped()
        self._ids = bundle.target_ids()
        self._offsets = np.asarray(bundle.offsets, dtype=np.int64)
        words = _gallery_words(bundle, self._vocab)
        self._words = words.astype(np.uint32)
        self._words.flags.writeable = False
        self._index = InvertedIndex(words, self._offsets, self._vocab.words)
        # Verification keeps the query features whose word at VERIFY_WORD_LEVEL is shared
        # with the candidate: the ancestor of a leaf is leaf // branching^(levels below).
        self._verify_div = self._vocab.branching ** (
            self._vocab.depth - min(params.VERIFY_WORD_LEVEL, self._vocab.depth)
        )

    @property
    def bundle(self) -> Bundle:
        return self._bundle

    @property
    def index_nbytes(self) -> int:
        """Memory of the search structures beyond the bundle itself."""
        return self._index.nbytes + self._words.nbytes

    def query_words(self, query: Features) -> np.ndarray:
        """Leaf word of each query descriptor."""
        return self._vocab.quantise(query.descriptors)

    def _shortlist(self, qwords: np.ndarray, query: Features) -> list[int]:
        if params.SHORTLIST_MAX_HAMMING > 0:
            scores = self._index.hamming_scores(
                qwords, query.descriptors, self._bundle.descriptors, params.SHORTLIST_MAX_HAMMING
            )
        else:
            scores = self._index.scores(qwords)
        if len(scores) == 0:
            return []
        k = min(params.SHORTLIST, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(k)
        top = top[scores[top] > 0]
        order = np.lexsort((top, -scores[top]))  # best first, ties by gallery position
        return [int(i) for i in top[order]]

    def shortlist(self, query: Features) -> list[int]:
        """Indices of the best tf-idf-scored targets worth verifying, best first."""
        return self._shortlist(self.query_words(query), query)

    def _voters(self, qwords: np.ndarray, i: int) -> np.ndarray:
        """Query rows sharing a word (at VERIFY_WORD_LEVEL) with target ``i``."""
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        tw = np.unique(self._words[a:b] // self._verify_div)
        return np.flatnonzero(np.isin(qwords // self._verify_div, tw, assume_unique=False))

    def search(
        self,
        query: Features,
        *,
        max_results: int = 10,
        timings: dict[str, float] | None = None,
    ) -> list[Hit]:
        """Every verified target among the shortlist, best score first (ties: inliers, id).

        Each candidate is verified with the query features that share a vocabulary node
        with it (the ratio test still runs against the whole target), which keeps the
        per-candidate matching small without losing true matches (see params).
        ``timings``, if given, receives the seconds spent in "shortlist" and "verify".
        """
        if max_results <= 0 or len(query) == 0 or len(self._ids) == 0:
            return []
        t0 = time.perf_counter()
        qwords = self.query_words(query)
        candidates = self._shortlist(qwords, query)
        t1 = time.perf_counter()
        hits: list[Hit] = []
        for i in candidates:
            sel = self._voters(qwords, i)
            if len(sel) < params.MIN_VOTES:
                continue
            q = make_features(
                query.xy[sel], query.angle[sel], query.descriptors[sel], query.width, query.height
            )
            v = verify(q, self._bundle.features_of(self._ids[i]))
            if v is not None:
                hits.append(Hit(target_id=self._ids[i], inliers=v.inliers, score=v.score))
        hits.sort(key=lambda h: (-h.score, -h.inliers, h.target_id))
        if timings is not None:
            timings["shortlist"] = t1 - t0
            timings["verify"] = time.perf_counter() - t1
        return hits[:max_results]
