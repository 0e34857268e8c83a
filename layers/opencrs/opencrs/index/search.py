"""Shortlist over a bundle with a vocabulary tree + inverted file, the re-ranking of its
best few hundred by a similarity consensus of their votes (:mod:`opencrs.index.rerank`),
then geometric verification of the shortlisted candidates.

Query cost: quantising the query's descriptors (``branching * depth`` Hamming distances
each), walking the posting lists of its words (a small fraction of the gallery), gathering
the re-ranked candidates' features, then verifying at most ``Search.shortlist``
candidates, each against its own ~1000 features only, rather than every query descriptor
against every gallery descriptor.
"""

from __future__ import annotations

import struct
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from opencrs.index.bundle import XY_STEPS, Bundle, coarse_angles
from opencrs.index.inverted import InvertedIndex, concatenated_ranges, merged_posting_order
from opencrs.index.rerank import CandidateFeatures, Consensus, QueryVotes, consensus_inliers
from opencrs.index.vocabulary import Vocabulary, shipped
from opencrs.vision.features import Features, extract_features, make_features, tilt_views
from opencrs.vision.params import DEFAULT, Tuning
from opencrs.vision.verify import frame_corners, outline, verify
from opencrs.vision.wholeimage import phash_distances, residual


@dataclass(frozen=True)
class QueryWords:
    """A query's words under one vocabulary and tuning (:func:`words_for`), made once for
    every searcher that searches the query, here or (``to_bytes``) in a partition search
    function. ``key``: :func:`words_key` of what they were made under; a searcher uses
    them only under its own key."""

    leaves: np.ndarray
    voting: tuple[np.ndarray, np.ndarray] | None
    top_nodes: np.ndarray | None
    key: int = 0

    def to_bytes(self) -> bytes:
        """Header, the leaves, the extra votes (multiple assignment's second leaves and the
        feature behind each: the voting words are the leaves followed by them), the top
        nodes as u16, CRC32 (~41 KB for 3,000 features)."""
        leaves = np.asarray(self.leaves, dtype=np.int64).reshape(-1)
        n = len(leaves)
        extra_words = extra_feature = np.zeros(0, dtype=np.int64)
        if self.voting is not None:
            words, feature = (np.asarray(a, dtype=np.int64).reshape(-1) for a in self.voting)
            if not (
                np.array_equal(words[:n], leaves) and np.array_equal(feature[:n], np.arange(n))
            ):
                raise ValueError("query words: the voting words do not start with the leaves")
            extra_words, extra_feature = words[n:], feature[n:]
        top = np.zeros((n, 0), dtype=np.int64) if self.top_nodes is None else self.top_nodes
        top = np.asarray(top, dtype=np.int64)
        if top.ndim != 2 or len(top) != n:
            raise ValueError("query words: not one row of top nodes a leaf")
        if top.size and int(top.max()) > 0xFFFF:
            raise ValueError("query words: a top node does not fit 16 bits")
        flags = _HAS_VOTING if self.voting is not None else 0
        flags |= _HAS_TOP if self.top_nodes is not None else 0
        body = b"".join(
            (
                _WORDS_HEADER.pack(
                    _WORDS_MAGIC, self.key, flags, n, len(extra_words), top.shape[1]
                ),
                leaves.astype("<u4").tobytes(),
                extra_words.astype("<u4").tobytes(),
                extra_feature.astype("<u4").tobytes(),
                top.astype("<u2").tobytes(),
            )
        )
        return body + _WORDS_CRC.pack(zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes) -> QueryWords:
        """Inverse of :meth:`to_bytes`; ValueError if the bytes are not whole, intact
        query words."""
        head, tail = _WORDS_HEADER.size, _WORDS_CRC.size
        if len(data) < head + tail:
            raise ValueError("query words: truncated")
        body = data[:-tail]
        if zlib.crc32(body) != _WORDS_CRC.unpack(data[-tail:])[0]:
            raise ValueError("query words: checksum mismatch")
        magic, key, flags, n, m, k = _WORDS_HEADER.unpack_from(body)
        if magic != _WORDS_MAGIC:
            raise ValueError("query words: not query words")
        if len(body) != head + 4 * (n + 2 * m) + 2 * n * k:
            raise ValueError("query words: wrong length")
        at = head

        def take(count: int, kind: str) -> np.ndarray:
            nonlocal at
            a = np.frombuffer(body, dtype=kind, count=count, offset=at).astype(np.int64)
            at += count * np.dtype(kind).itemsize
            return a

        leaves, extra_words, extra_feature = take(n, "<u4"), take(m, "<u4"), take(m, "<u4")
        top = take(n * k, "<u2").reshape(n, k)
        if m and int(extra_feature.max()) >= n:
            raise ValueError("query words: a vote names a feature past the query's")
        voting = None
        if flags & _HAS_VOTING:
            voting = (
                np.concatenate([leaves, extra_words]),
                np.concatenate([np.arange(n, dtype=np.int64), extra_feature]),
            )
        return cls(leaves, voting, top if flags & _HAS_TOP else None, key)

    def fit(self, vocabulary: Vocabulary, key: int, count: int) -> bool:
        """Whether a searcher of ``vocabulary`` and words key ``key`` can use these words
        for a query of ``count`` features as its own: made under the same key, one leaf a
        feature, every word and node inside the tree (words from a payload are checked,
        not trusted to index its arrays)."""
        if self.key != key or len(self.leaves) != count:
            return False
        words = self.leaves if self.voting is None else self.voting[0]
        if len(words) and not 0 <= int(words.min()) <= int(words.max()) < vocabulary.words:
            return False
        top = self.top_nodes
        return top is None or top.size == 0 or int(top.max()) < vocabulary.branching


_WORDS_MAGIC = b"OCRSQWD1"
_WORDS_HEADER = struct.Struct("<8sIBIIH")  # magic, key, flags, leaves, extra votes, top k
_WORDS_CRC = struct.Struct("<I")
_HAS_VOTING, _HAS_TOP = 1, 2


def words_key(vocabulary: Vocabulary, tuning: Tuning) -> int:
    """What a query's words depend on beside the query: the tree, and the tuned values
    that decide the votes and the top nodes."""
    cfg = tuning.search
    made = (vocabulary.fingerprint(), cfg.shortlist_second_leaf_bits, cfg.verify_probes)
    return zlib.crc32(struct.pack("<Iiiq", *made, _reranks(tuning)))


def words_for(query: Features, vocabulary: Vocabulary, tuning: Tuning) -> QueryWords:
    """The query's words as :meth:`Searcher.search` uses them: each feature's leaf, the
    words it votes through (with multiple assignment's second leaves) when the shortlist
    is re-ranked, and its nearest top-level nodes for verification (5-8 ms for 3,000
    features)."""
    leaves = vocabulary.quantise(query.descriptors)
    voting = _voting_words(vocabulary, tuning, leaves, query) if _reranks(tuning) else None
    probes = tuning.search.verify_probes
    top = vocabulary.nearest_top_nodes(query.descriptors, probes) if probes else None
    return QueryWords(leaves, voting, top, words_key(vocabulary, tuning))


def _voting_words(
    vocabulary: Vocabulary, tuning: Tuning, leaves: np.ndarray, query: Features
) -> tuple[np.ndarray, np.ndarray]:
    """The words a query votes through (its leaves, then the second leaves of multiple
    assignment) and the query feature behind each."""
    cfg = tuning.search
    words, feature = leaves, np.arange(len(leaves))
    if cfg.shortlist_second_leaf_bits >= 0 and len(query):
        second, gap = vocabulary.second_leaves(query.descriptors, leaves)
        extra = np.flatnonzero(gap <= cfg.shortlist_second_leaf_bits)
        words = np.concatenate([leaves, second[extra]])
        feature = np.concatenate([feature, extra])
    return words, feature


def _reranks(tuning: Tuning) -> bool:
    """Whether the shortlist is re-ranked: only the rotation-consistent score has the
    votes a consensus is built from."""
    cfg = tuning.search
    return (
        cfg.shortlist_max_hamming > 0 and cfg.shortlist_angle_bins > 0 and cfg.rerank_candidates > 0
    )


@dataclass(frozen=True)
class Hit:
    """A verified target: its id, the homography inlier count and the ranking score, or
    (``whole_image``) a target the query shows whole under a global photometric change,
    accepted by :mod:`opencrs.vision.wholeimage` (no inliers; ``score`` is minus its
    residual). ``corners``: where the target image's corners (top left, top right,
    bottom right, bottom left) lie in the query image, in its pixels; a whole-image hit's
    are the query's own."""

    target_id: str
    inliers: int
    score: float
    whole_image: bool = False
    corners: tuple[tuple[float, float], ...] = ()

    def scaled(self, sx: float, sy: float) -> Hit:
        """The hit with its corners in a frame ``sx`` by ``sy`` times the one searched (a
        tilt view's hits, in the photo as taken)."""
        corners = tuple((x * sx, y * sy) for x, y in self.corners)
        return replace(self, corners=corners)


class _ImageSearch(ABC):
    """What both searchers share: searching a query image view by view through their own
    :meth:`search` (a built index, or one with the targets written since beside it)."""

    tuning: Tuning

    @abstractmethod
    def search(
        self,
        query: Features,
        *,
        max_results: int = 10,
        timings: dict[str, float] | None = None,
        whole_image: bool = True,
        words: QueryWords | None = None,
    ) -> list[Hit]: ...

    @abstractmethod
    def __len__(self) -> int: ...

    def search_image(
        self,
        gray: np.ndarray,
        *,
        max_results: int = 10,
        timings: dict[str, float] | None = None,
        features: Features | None = None,
    ) -> list[Hit]:
        """:meth:`search` for a query image, the production query path: its features,
        then, if nothing is found, its tilt views (``Search.tilt_retry_stretch``) in turn
        until one finds a target. A tilt view is searched by local features only: it is
        a geometric guess, not the picture as taken, and a whole-image match of a
        stretched copy would be a chance one.
        ``timings``, if given, receives the seconds spent in "features", "shortlist" and
        "verify" over every view searched, and "views". ``features``: the image's own
        query features, if the caller has already extracted them (a benchmark that also
        diagnoses them); the tilt views are extracted here as ever."""
        spent = dict.fromkeys(("shortlist", "verify"), 0.0)

        def search_view(query: Features, whole_image: bool) -> list[Hit]:
            step: dict[str, float] = {}
            hits = self.search(
                query, max_results=max_results, timings=step, whole_image=whole_image
            )
            spent["shortlist"] += step.get("shortlist", 0.0)
            spent["verify"] += step.get("verify", 0.0)
            return hits

        searchable = max_results > 0 and len(self) > 0
        hits = search_views(
            gray, self.tuning, search_view, features=features, timings=timings, more=searchable
        )
        if timings is not None:
            timings.update(spent)
        return hits


class Searcher(_ImageSearch):
    """Built once per gallery version and cached by the caller across warm Lambda
    invocations: construction builds the inverted file from the words the bundles carry
    (the only per-gallery cost; queries never touch the whole gallery).

    A sharded gallery (``opencrs.store.bundles``) is searched as one: its shards' feature
    offsets and target ids are concatenated in shard order (their words only while the
    inverted file is built), and a target's global index maps back to its shard for
    verification; descriptors and geometry are never copied. Results equal a single
    bundle's holding the same targets in the same order.

    ``tuning`` sets every value the search uses (shortlist, verification, whole-image
    check, query extraction and its tilt views)."""

    def __init__(
        self,
        bundles: Bundle | Sequence[Bundle],
        vocabulary: Vocabulary | None = None,
        tuning: Tuning = DEFAULT,
    ) -> None:
        self.tuning = tuning
        shards = (bundles,) if isinstance(bundles, Bundle) else tuple(bundles)
        self._shards = shards or (Bundle.empty(),)
        self._vocab = vocabulary if vocabulary is not None else shipped()
        self._ids = [tid for shard in self._shards for tid in shard.target_ids()]
        self._row_of: dict[str, int] | None = None  # made when first needed (_rows_of)
        self._words_key: int | None = None
        self._phashes = np.concatenate([s.phashes for s in self._shards])
        self._has_thumbnail = np.concatenate([s.has_thumbnail for s in self._shards])
        # Global target i lives in shard _shard_of[i].
        self._shard_of = np.repeat(
            np.arange(len(self._shards), dtype=np.int32), [len(s) for s in self._shards]
        )
        self._sizes = np.concatenate([s.sizes for s in self._shards]).reshape(-1, 2)
        self._shard_words = [self._words_of(shard) for shard in self._shards]
        # First global feature row of each shard (and the total at the end).
        self._feature_start = np.cumsum([0] + [len(w) for w in self._shard_words])
        if len(self._shards) == 1:  # one bundle: use its arrays in place
            self._offsets = np.asarray(self._shards[0].offsets, dtype=np.int64)
            words = self._shard_words[0]
        else:
            ends = [
                s.offsets[1:] + start
                for s, start in zip(self._shards, self._feature_start[:-1], strict=True)
            ]
            self._offsets = np.concatenate([np.zeros(1, np.int64), *ends]).astype(np.int64)
            words = np.concatenate(self._shard_words)  # only while the index is built
        self._index = InvertedIndex(
            words,
            self._offsets,
            self._vocab.words,
            np.concatenate([signature(shard.descriptors) for shard in self._shards]),
            np.concatenate([shard.coarse_angles for shard in self._shards]),
            self._stored_order(),
            tuning.search.shortlist_signature_bits,
        )
        del words
        # Verification keeps the query features whose word at verify_word_level is shared
        # with the candidate: the ancestor of a leaf is leaf // branching^(levels below).
        self._verify_div = self._vocab.branching ** (
            self._vocab.depth - min(tuning.search.verify_word_level, self._vocab.depth)
        )
        cfg = tuning.search
        self._consensus = Consensus(
            max_hamming=cfg.shortlist_max_hamming,
            angle_bins=max(cfg.shortlist_angle_bins, 1),
            threshold=cfg.rerank_threshold,
            hypotheses=cfg.rerank_hypotheses,
            max_points=cfg.rerank_max_points,
            min_votes=cfg.rerank_min_votes,
        )

    def _stored_order(self) -> np.ndarray | None:
        """The shards' own posting orders merged (no sort), when their stored words are the
        ones searched; None (the index sorts) when another vocabulary re-quantised them."""
        if any(w is not s.words for s, w in zip(self._shards, self._shard_words, strict=True)):
            return None
        stored = [shard.posting_order for shard in self._shards]
        if len(stored) == 1:
            return stored[0]
        return merged_posting_order(self._shard_words, stored)

    def _words_of(self, bundle: Bundle) -> np.ndarray:
        if self._vocab.made_words(bundle.vocabulary_fingerprint):
            return bundle.words
        # Another vocabulary than the shipped one (experiments): quantise here.
        words = self._vocab.quantise_many(bundle.descriptors).astype(np.uint32)
        words.flags.writeable = False
        return words

    @property
    def shards(self) -> tuple[Bundle, ...]:
        """The bundles searched, in the order their targets are numbered."""
        return self._shards

    @property
    def vocabulary(self) -> Vocabulary:
        return self._vocab

    def __len__(self) -> int:
        """Targets searched."""
        return len(self._ids)

    def target_ids(self) -> list[str]:
        """Every target, in the order :meth:`shortlist` indices refer to."""
        return list(self._ids)

    def _features_of(self, i: int) -> Features:
        """Features of global target ``i``, read from its shard."""
        return self._shards[int(self._shard_of[i])].features_of(self._ids[i])

    def _target_words(self, i: int) -> np.ndarray:
        """Words of global target ``i``'s features, read from its shard."""
        k = int(self._shard_of[i])
        start = int(self._feature_start[k])
        return self._shard_words[k][
            int(self._offsets[i]) - start : int(self._offsets[i + 1]) - start
        ]

    @property
    def index_nbytes(self) -> int:
        """Memory of the shortlist index (the inverted file: 11 B per gallery feature up to
        65,536 targets, 13 B past them). The words it is built from stay in the bundles,
        which store them."""
        return self._index.nbytes

    def query_words(self, query: Features) -> np.ndarray:
        """Leaf word of each query descriptor."""
        return self._vocab.quantise(query.descriptors)

    def _voting_words(self, qwords: np.ndarray, query: Features) -> tuple[np.ndarray, np.ndarray]:
        return _voting_words(self._vocab, self.tuning, qwords, query)

    def _scores(
        self,
        qwords: np.ndarray,
        query: Features,
        voting: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Plain tf-idf and shortlist scores of every target: rotation-consistent, or (with
        ``shortlist_angle_bins`` 0) Hamming-embedded tf-idf, or (``shortlist_max_hamming``
        0) plain tf-idf again. ``voting``: :meth:`_voting_words`, if already computed."""
        cfg = self.tuning.search
        if cfg.shortlist_max_hamming <= 0:
            plain = self._index.scores(qwords)
            return plain, plain
        if cfg.shortlist_angle_bins <= 0:
            return self._index.scores_with_hamming(
                qwords, signature(query.descriptors), cfg.shortlist_max_hamming
            )
        words, feature = voting if voting is not None else self._voting_words(qwords, query)
        keep = np.flatnonzero(
            self._index.uncommon(
                words, cfg.shortlist_common_word_ratio, cfg.shortlist_common_word_floor
            )
        )
        words, feature = words[keep], feature[keep]
        return self._index.scores_consistent(
            words,
            np.take(signature(query.descriptors), feature),
            np.take(coarse_angles(query.angle), feature),
            cfg.shortlist_max_hamming,
            cfg.shortlist_hamming_sigma,
            cfg.shortlist_angle_bins,
            feature,
        )

    def words_of(self, query: Features) -> QueryWords:
        """:func:`words_for` the query under this searcher's vocabulary and tuning."""
        return words_for(query, self._vocab, self.tuning)

    def own_words(self, query: Features, words: QueryWords | None) -> QueryWords:
        """``words`` when they fit this searcher (``QueryWords.fit``), else its own
        :meth:`words_of` the query."""
        if words is not None and words.fit(self._vocab, self.words_key, len(query)):
            return words
        return self.words_of(query)

    @property
    def words_key(self) -> int:
        """:func:`words_key` of this searcher's vocabulary and tuning."""
        if self._words_key is None:
            self._words_key = words_key(self._vocab, self.tuning)
        return self._words_key

    def _shortlist(
        self,
        qwords: np.ndarray,
        query: Features,
        hidden: frozenset[str] = frozenset(),
        voting: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[int]:
        if voting is None and self._reranks():
            voting = self._voting_words(qwords, query)
        plain, ranked = self._scores(qwords, query, voting)
        if hidden:  # this query's own scores (one array twice for plain tf-idf): in place
            rows = self._rows_of(hidden)
            plain[rows] = 0.0
            ranked[rows] = 0.0
        return self._shortlist_from(plain, ranked, query, voting)

    def _rows_of(self, target_ids: Iterable[str]) -> np.ndarray:
        """Global indices of those of ``target_ids`` searched here."""
        if self._row_of is None:
            self._row_of = {tid: i for i, tid in enumerate(self._ids)}
        rows = [self._row_of[t] for t in target_ids if t in self._row_of]
        return np.array(rows, dtype=np.int64)

    def _reranks(self) -> bool:
        return _reranks(self.tuning)

    def shortlist_of(
        self, plain: np.ndarray, ranked: np.ndarray, query: Features | None = None
    ) -> list[int]:
        """From :meth:`shortlist_scores`: the shortlist - shortlist_plain best targets by the
        shortlist score (re-ranked as :meth:`search` does when ``query`` is given), then the
        shortlist_plain best of plain tf-idf not already in (see ``Search``)."""
        return self._shortlist_from(plain, ranked, query, None)

    def _shortlist_from(
        self,
        plain: np.ndarray,
        ranked: np.ndarray,
        query: Features | None,
        voting: tuple[np.ndarray, np.ndarray] | None,
    ) -> list[int]:
        cfg = self.tuning.search
        if cfg.shortlist_max_hamming <= 0:
            return _best(plain, cfg.shortlist, [])
        room = max(cfg.shortlist - cfg.shortlist_plain, 0)
        if query is not None and self._reranks():
            chosen = self.reranked(ranked, query, voting)[:room]
        else:
            chosen = _best(ranked, room, [])
        return chosen + _best(plain, cfg.shortlist_plain, chosen)

    def reranked(
        self,
        ranked: np.ndarray,
        query: Features,
        voting: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[int]:
        """The best ``rerank_candidates`` targets by the shortlist score ``ranked``, in the
        order of their similarity consensus (:meth:`consensus_of`; most inliers first, ties
        in shortlist order), without those under ``rerank_min_inliers``."""
        cfg = self.tuning.search
        pool = _best(ranked, cfg.rerank_candidates, [])
        inliers = self.consensus_of(query, pool, voting)
        order = np.lexsort((np.arange(len(pool)), -inliers)).tolist()
        return [pool[k] for k in order if inliers[k] >= cfg.rerank_min_inliers]

    def consensus_of(
        self,
        query: Features,
        candidates: Sequence[int],
        voting: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Each candidate's re-ranking score: how many of its votes one similarity
        transform explains (:func:`~opencrs.index.rerank.consensus_inliers`)."""
        if voting is None:
            voting = self._voting_words(self.query_words(query), query)
        words, feature = voting
        frame = self.tuning.verify.verify_frame / max(query.width, query.height, 1)
        votes = QueryVotes(
            words=np.asarray(words, dtype=np.int64),
            feature=np.asarray(feature, dtype=np.int64),
            signatures=signature(query.descriptors),
            angles=coarse_angles(query.angle).astype(np.int64),
            xy=np.asarray(query.xy, dtype=np.float64).reshape(-1, 2) * frame,
        )
        return consensus_inliers(
            votes, self._candidate_features(candidates), len(candidates), self._consensus
        )

    def _candidate_features(self, candidates: Sequence[int]) -> CandidateFeatures:
        """Every feature of global targets ``candidates``, gathered shard by shard (the
        candidates grouped by shard, so each shard's rows are one slice), its position in
        the 1000-unit frame of :class:`~opencrs.index.rerank.CandidateFeatures`."""
        cands = np.asarray(candidates, dtype=np.int64).reshape(-1)
        by_shard = np.argsort(self._shard_of[cands], kind="stable")
        grouped = cands[by_shard]
        starts = self._offsets[grouped]
        lens = self._offsets[grouped + 1] - starts
        rows = concatenated_ranges(starts, lens)
        owner = np.repeat(by_shard, lens)  # position in ``candidates``
        # Shard k's rows are one slice: from its first candidate's to its last's.
        first_of_shard = np.searchsorted(self._shard_of[grouped], np.arange(len(self._shards) + 1))
        shard_rows = np.concatenate([[0], np.cumsum(lens)])[first_of_shard]
        words = np.empty(len(rows), dtype=np.int64)
        signatures = np.empty(len(rows), dtype=np.uint64)
        angles = np.empty(len(rows), dtype=np.int64)
        xy = np.empty((len(rows), 2), dtype=np.float64)
        for k, shard in enumerate(self._shards):
            a, b = int(shard_rows[k]), int(shard_rows[k + 1])
            if a == b:
                continue
            local = rows[a:b] - int(self._feature_start[k])
            words[a:b] = np.take(self._shard_words[k], local)
            # Fancy indexing, not np.take: take would copy the whole strided column first.
            signatures[a:b] = shard.descriptors.view(np.uint64)[local, 0]
            angles[a:b] = np.take(shard.angle_steps, local) >> 8
            xy[a:b] = np.take(shard.xy_steps, local, axis=0)
        size = self._sizes[cands].astype(np.float64)
        frame = self.tuning.verify.verify_frame / np.maximum(size.max(axis=1, keepdims=True), 1)
        xy *= (np.maximum(size, 1) / XY_STEPS * frame)[owner]
        return CandidateFeatures(owner, words, signatures, angles, xy)

    def shortlist_scores(self, query: Features) -> tuple[np.ndarray, np.ndarray]:
        """Plain tf-idf and shortlist scores of every target for ``query`` (diagnosis: the
        rank of a target in each, and :meth:`shortlist_of` them)."""
        return self._scores(self.query_words(query), query)

    def shortlist(self, query: Features) -> list[int]:
        """Indices of the best tf-idf-scored targets worth verifying, best first."""
        return self._shortlist(self.query_words(query), query)

    def _voters(self, qwords: np.ndarray, target_words: np.ndarray) -> np.ndarray:
        """Query rows sharing a word (at verify_word_level) with a target's words."""
        tw = np.unique(target_words // self._verify_div)
        return np.flatnonzero(np.isin(qwords // self._verify_div, tw, assume_unique=False))

    def search(
        self,
        query: Features,
        *,
        max_results: int = 10,
        timings: dict[str, float] | None = None,
        whole_image: bool = True,
        hidden: frozenset[str] = frozenset(),
        words: QueryWords | None = None,
    ) -> list[Hit]:
        """Every verified target among the shortlist, best score first (ties: inliers, id),
        then (``whole_image``) every other target the whole-image check accepts, smallest
        residual first. ``hidden``: targets never shortlisted nor answered (a layered
        searcher's targets since removed or replaced), so they take no verification slot.
        ``words``: :meth:`words_of` the query, if made already (here, or by a coordinator
        for its partitions; 5-8 ms a query of 3,000 features): used when they fit this
        searcher (``QueryWords.fit``), made again otherwise.

        Each candidate is verified with the query features that share a vocabulary node
        with it, and each of those is compared only with the candidate's features under
        its verify_probes nearest top-level nodes: a few times fewer Hamming distances
        than all pairs, without losing true matches (see ``Search``). The whole-image
        check compares the query's pHash with every target's (one XOR and popcount each)
        and the thumbnails of those within ``WholeImage.max_phash`` bits.
        ``timings``, if given, receives the seconds spent in "shortlist" and "verify".
        """
        if max_results <= 0 or len(self._ids) == 0:
            return []
        t0 = time.perf_counter()
        words = self.own_words(query, words)
        qwords, query_top = words.leaves, words.top_nodes
        # A query without corners can still be a target seen whole.
        candidates = self._shortlist(qwords, query, hidden, words.voting) if len(query) else []
        t1 = time.perf_counter()
        hits: list[Hit] = []
        top_div = self._vocab.branching ** (self._vocab.depth - 1)
        for i in candidates:
            target_words = self._target_words(i)
            sel = self._voters(qwords, target_words)
            # Fewer voters than the inliers acceptance needs cannot be verified.
            if len(sel) < self.tuning.verify.min_inliers:
                continue
            q = make_features(
                query.xy[sel], query.angle[sel], query.descriptors[sel], query.width, query.height
            )
            target = self._features_of(i)
            v = verify(
                q,
                target,
                query_top[sel] if query_top is not None else None,
                target_words // top_div if query_top is not None else None,
                self.tuning.verify,
            )
            if v is not None:
                corners = outline(v.homography, target.width, target.height)
                hits.append(Hit(self._ids[i], v.inliers, v.score, corners=corners))
        if whole_image:
            hits += self._whole_image_hits(query, {h.target_id for h in hits} | hidden)
        if timings is not None:
            timings["shortlist"] = t1 - t0
            timings["verify"] = time.perf_counter() - t1
        return ranked(hits, max_results)

    def _whole_image_hits(self, query: Features, found: set[str]) -> list[Hit]:
        """Targets not in ``found`` that the query shows whole (see :mod:`wholeimage`)."""
        if query.thumbnail is None:
            return []
        cfg = self.tuning.whole
        near = phash_distances(query.thumbnail, self._phashes) <= cfg.max_phash
        hits = []
        for i in np.flatnonzero(near & self._has_thumbnail).tolist():
            tid = self._ids[i]
            if tid in found:
                continue
            thumb = self._shards[int(self._shard_of[i])].thumbnail_of(tid)
            r = residual(query.thumbnail, thumb, cfg) if thumb is not None else float("inf")
            if r <= cfg.max_residual:
                frame = frame_corners(query.width, query.height)
                hits.append(Hit(tid, 0, -r, whole_image=True, corners=frame))
        return hits


class LayeredSearcher(_ImageSearch):
    """A searcher built for some shards, answering for layered versions of them
    (``Bundle.layered``, how the bundle store applies the deltas written since): the built
    searcher's hits without the targets since removed or replaced, merged with the hits of
    a small searcher over the targets since written, as a fanned-out query merges its
    partitions'. A write then costs the next query a search of the targets written, not a
    rebuild of the whole inverted file (~1 s at 10k targets, ~0.5 s a 6,250-target
    partition)."""

    def __init__(
        self,
        built: Searcher,
        shards: Sequence[Bundle],
        recent: Searcher | None,
        hidden: frozenset[str],
        since: float,
    ) -> None:
        self.built = built
        self.recent = recent
        self.hidden = hidden
        self.since = since  # when the first layer over ``built`` came (time.monotonic)
        self.tuning = built.tuning
        self._shards = tuple(shards)

    @property
    def shards(self) -> tuple[Bundle, ...]:
        """The bundles answered for (layered over the built searcher's), in shard order."""
        return self._shards

    def target_ids(self) -> list[str]:
        return [tid for shard in self._shards for tid in shard.target_ids()]

    def __len__(self) -> int:
        """Targets answered for."""
        return sum(len(shard) for shard in self._shards)

    @property
    def index_nbytes(self) -> int:
        recent = self.recent.index_nbytes if self.recent is not None else 0
        return self.built.index_nbytes + recent

    def search(
        self,
        query: Features,
        *,
        max_results: int = 10,
        timings: dict[str, float] | None = None,
        whole_image: bool = True,
        words: QueryWords | None = None,
    ) -> list[Hit]:
        """:meth:`Searcher.search` over the layered shards (the two searchers' hits), with
        the query's words made once for both (one vocabulary and tuning) unless given."""
        built: dict[str, float] = {}
        recent: dict[str, float] = {}
        t = time.perf_counter()
        words = self.built.own_words(query, words)
        quantising = time.perf_counter() - t
        hits = self.built.search(
            query,
            max_results=max_results,
            timings=built,
            whole_image=whole_image,
            hidden=self.hidden,
            words=words,
        )
        if self.recent is not None:
            hits += self.recent.search(
                query,
                max_results=max_results,
                timings=recent,
                whole_image=whole_image,
                words=words,
            )
        if timings is not None:
            for key in ("shortlist", "verify"):
                timings[key] = built.get(key, 0.0) + recent.get(key, 0.0)
            timings["shortlist"] += quantising
        return ranked(hits, max_results)


# Either searcher: what an engine holds for a library or a partition.
AnySearcher = Searcher | LayeredSearcher

# A layered searcher stands in for a rebuild while the targets written since the build are
# at most this many and the first of them at most this old; past either, the next load
# rebuilds: each query verifies the recent targets' shortlist too (measured at 10k targets,
# docs/benchmarks.md: p50 +13-16 ms with 1 written, +36-76 ms with 16, +96-133 ms with 50).
MAX_RECENT_TARGETS = 64
MAX_LAYERED_SECONDS = 30.0


def layered_searcher(
    previous: AnySearcher | None,
    shards: Sequence[Bundle],
    *,
    max_recent: int = MAX_RECENT_TARGETS,
    max_age_s: float = MAX_LAYERED_SECONDS,
) -> AnySearcher | None:
    """A searcher for ``shards`` made from ``previous`` without rebuilding its index: the
    built searcher itself when nothing changed, a :class:`LayeredSearcher` when every shard
    is the built one's layered (deltas applied by the bundle store) within the limits
    above; None when the shards must be searched by a new :class:`Searcher` (a shard
    folded or downloaded afresh, another shard count, too many or too old changes)."""
    if previous is None:
        return None
    if isinstance(previous, LayeredSearcher):
        built, since = previous.built, previous.since
        if time.monotonic() - since > max_age_s:
            return None
    else:
        built, since = previous, time.monotonic()
    if len(shards) != len(built.shards):
        return None
    gone: set[str] = set()
    added: list[Bundle] = []
    for old, new in zip(built.shards, shards, strict=True):
        changes = new.changes_since(old)
        if changes is None:
            return None
        gone |= changes[0]
        added += changes[1]
    if not gone and not added:
        return built
    if sum(len(b) for b in added) > max_recent:
        return None
    recent = Searcher(added, built.vocabulary, built.tuning) if added else None
    return LayeredSearcher(built, shards, recent, frozenset(gone), since)


def search_views(
    gray: np.ndarray,
    tuning: Tuning,
    search_view: Callable[[Features, bool], list[Hit]],
    *,
    features: Features | None = None,
    timings: dict[str, float] | None = None,
    more: bool = True,
) -> list[Hit]:
    """The tilt retry, wherever the views are searched (one searcher, or every partition of
    a library at once): ``search_view(query, whole_image)`` on the query's own features,
    then, while nothing is found and ``more``, on each tilt view in turn (made only once
    the views before found nothing; searched by local features only). ``features``: view
    0's, if already extracted. ``timings`` receives "features" (every view's extraction)
    and "views" (how many were searched)."""
    extracting = 0.0
    hits: list[Hit] = []
    views = 0
    for n, view in enumerate(_views(gray, tuning)):
        t = time.perf_counter()
        if n == 0 and features is not None:
            query = features
        else:
            query = extract_features(view, "query", tuning.query)
        extracting += time.perf_counter() - t
        hits = search_view(query, n == 0)
        if n:  # a tilt view is the photo stretched: its corners back in the photo's pixels
            sx, sy = gray.shape[1] / view.shape[1], gray.shape[0] / view.shape[0]
            hits = [hit.scaled(sx, sy) for hit in hits]
        views = n + 1
        if hits or not more:
            break
    if timings is not None:
        timings.update(features=extracting, views=views)
    return hits


def ranked(hits: Iterable[Hit], max_results: int) -> list[Hit]:
    """The ``max_results`` best of ``hits``: verified targets by score (ties: inliers,
    id), then whole-image ones by score (smallest residual first). The one order of an
    answer, whether the hits come from one searcher or from every partition of a library
    (target ids are disjoint across partitions, so their top lists merge exactly)."""
    return sorted(hits, key=lambda h: (h.whole_image, -h.score, -h.inliers, h.target_id))[
        : max(max_results, 0)
    ]


def _views(gray: np.ndarray, tuning: Tuning) -> Iterator[np.ndarray]:
    """The query itself, then its tilt views (made only once the query itself found
    nothing)."""
    yield gray
    yield from tilt_views(gray, tuning.search, tuning.query)


def signature(descriptors: np.ndarray) -> np.ndarray:
    """The Hamming-embedding signature of each descriptor: its first 64 bits (ORB orders
    its tests by decreasing discriminative power), as good as all 256 bits for the
    shortlist (``Search.shortlist_max_hamming``)."""
    d = np.ascontiguousarray(descriptors, dtype=np.uint8).reshape(-1, 32)
    return np.ascontiguousarray(d[:, :8]).view(np.uint64).reshape(-1)


def _best(scores: np.ndarray, k: int, exclude: list[int]) -> list[int]:
    """Indices of the ``k`` highest positive ``scores`` not in ``exclude``, best first
    (ties by gallery position)."""
    if k <= 0 or len(scores) == 0:
        return []
    scores = scores.copy()
    scores[exclude] = 0.0
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(k)
    top = top[scores[top] > 0]
    order = np.lexsort((top, -scores[top]))
    return [int(i) for i in top[order]]
