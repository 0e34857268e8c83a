"""Inverted file over visual words with tf-idf scoring (Nistér & Stewénius 2006).

For every word, the list of gallery features quantised to it, as their owning target
(4 bytes per gallery feature, grouped by word). A query touches only the posting lists of
its own words, so its cost grows with ``gallery features / words`` per query feature
rather than with the gallery; with ~10^5 words and ~10^3 features per target that is ~1 %
of the gallery per 100 query words.

Scoring is the cosine of tf-idf vectors: ``score(t) = sum_w q_w d_tw idf_w^2 / |d_t|``,
with ``idf_w = ln(1 + targets / df_w)`` (smoothed so a one-target gallery still scores).
Query normalisation is a constant per query, so it is left out.
"""

from __future__ import annotations

import numpy as np


class InvertedIndex:
    """Immutable inverted file of one gallery: built from each gallery feature's word and
    the per-target feature offsets (``Bundle.offsets``)."""

    __slots__ = (
        "_idf",
        "_inv_norm",
        "_owner",
        "_post_feature",
        "_post_target",
        "_word_ptr",
        "n_targets",
        "n_words",
    )

    def __init__(self, words: np.ndarray, offsets: np.ndarray, n_words: int) -> None:
        words = np.asarray(words, dtype=np.int64).reshape(-1)
        offsets = np.asarray(offsets, dtype=np.int64).reshape(-1)
        self.n_targets = len(offsets) - 1
        self.n_words = int(n_words)
        if len(words) != (int(offsets[-1]) if len(offsets) else 0):
            raise ValueError("inverted index: words and offsets disagree")
        if len(words) and (words.min() < 0 or words.max() >= n_words):
            raise ValueError("inverted index: word out of range")
        counts = np.diff(offsets)
        owner = np.repeat(np.arange(self.n_targets, dtype=np.uint32), counts)
        # Stable sort: within a word, postings stay in target order (features are stored
        # target after target), so runs of one target are contiguous.
        order = np.argsort(words, kind="stable")
        post_word = words[order]
        self._post_target = owner[order]
        self._post_feature = order.astype(np.uint32)
        self._owner = owner
        per_word = np.bincount(words, minlength=n_words)
        self._word_ptr = np.concatenate([[0], np.cumsum(per_word)]).astype(np.int64)
        # Runs of equal (word, target): term frequencies and document frequencies.
        if len(order):
            new_run = np.ones(len(order), dtype=bool)
            new_run[1:] = (post_word[1:] != post_word[:-1]) | (
                self._post_target[1:] != self._post_target[:-1]
            )
            run_start = np.flatnonzero(new_run)
            tf = np.diff(np.append(run_start, len(order))).astype(np.float64)
            run_word = post_word[run_start]
            run_target = self._post_target[run_start]
            df = np.bincount(run_word, minlength=n_words)
        else:
            tf = run_word = run_target = np.zeros(0, dtype=np.int64)
            df = np.zeros(n_words, dtype=np.int64)
        idf = np.log1p(self.n_targets / np.maximum(df, 1))
        self._idf = idf.astype(np.float32)
        norm2 = np.bincount(run_target, (tf * idf[run_word]) ** 2, minlength=self.n_targets)
        self._inv_norm = np.where(norm2 > 0, 1.0 / np.sqrt(np.maximum(norm2, 1e-30)), 0.0)
        for arr in (self._post_target, self._word_ptr, self._idf, self._inv_norm):
            arr.flags.writeable = False

    @property
    def nbytes(self) -> int:
        """Memory held by the index arrays."""
        return sum(a.nbytes for a in (self._post_target, self._word_ptr, self._idf, self._inv_norm))

    def postings(self, word: int) -> np.ndarray:
        """Owning target of every gallery feature quantised to ``word`` (ascending)."""
        return self._owner[self._post_feature[self._word_ptr[word] : self._word_ptr[word + 1]]]

    def scores(self, query_words: np.ndarray) -> np.ndarray:
        """tf-idf cosine score of every target for a query's words (float64, one per
        target; only relative values matter)."""
        out = np.zeros(self.n_targets, dtype=np.float64)
        if self.n_targets == 0 or len(query_words) == 0:
            return out
        u, qtf = np.unique(np.asarray(query_words, dtype=np.int64), return_counts=True)
        starts = self._word_ptr[u]
        lens = self._word_ptr[u + 1] - starts
        keep = lens > 0
        u, qtf, starts, lens = u[keep], qtf[keep], starts[keep], lens[keep]
        total = int(lens.sum())
        if total == 0:
            return out
        # Concatenated posting ranges without a Python loop.
        first = np.cumsum(lens) - lens
        idx = np.arange(total, dtype=np.int64) + np.repeat(starts - first, lens)
        idf = self._idf[u].astype(np.float64)
        weight = np.repeat(qtf * idf * idf, lens)
        out = np.bincount(self._owner[self._post_feature[idx]], weight, minlength=self.n_targets)
        return out * self._inv_norm

    def hamming_scores(
        self,
        query_words: np.ndarray,
        query_descriptors: np.ndarray,
        gallery_descriptors: np.ndarray,
        max_distance: int,
    ) -> np.ndarray:
        """tf-idf scores counting only word collisions that are real matches (Hamming
        embedding, Jégou et al. 2008): a query feature and a gallery feature sharing a word
        vote only when their descriptors are within ``max_distance`` bits. Quantisation
        collisions of unrelated features, which dominate the plain score in a large
        gallery, then no longer count."""
        out = np.zeros(self.n_targets, dtype=np.float64)
        qw = np.asarray(query_words, dtype=np.int64)
        if self.n_targets == 0 or len(qw) == 0:
            return out
        starts = self._word_ptr[qw]
        lens = self._word_ptr[qw + 1] - starts
        total = int(lens.sum())
        if total == 0:
            return out
        first = np.cumsum(lens) - lens
        idx = np.arange(total, dtype=np.int64) + np.repeat(starts - first, lens)
        rows = np.repeat(np.arange(len(qw)), lens)
        feat = self._post_feature[idx]
        q64 = np.ascontiguousarray(query_descriptors, dtype=np.uint8).view(np.uint64)
        g64 = np.ascontiguousarray(gallery_descriptors, dtype=np.uint8).view(np.uint64)
        x = np.bitwise_count(q64[rows] ^ g64[feat])
        dist = x[:, 0] + x[:, 1] + x[:, 2] + x[:, 3]
        keep = dist <= max_distance
        idf = self._idf[qw[rows[keep]]].astype(np.float64)
        out = np.bincount(self._owner[feat[keep]], idf * idf, minlength=self.n_targets)
        return out * self._inv_norm
