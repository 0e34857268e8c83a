"""Inverted file over visual words with tf-idf scoring (Nistér & Stewénius 2006).

For every word, the list of gallery features quantised to it, as their owning target
(4 bytes per gallery feature, grouped by word). A query touches only the posting lists of
its own words, so its cost grows with ``gallery features / words`` per query feature
rather than with the gallery; with ~10^5 words and ~10^3 features per target that is ~1 %
of the gallery per 100 query words.

Scoring is the cosine of tf-idf vectors: ``score(t) = sum_w q_w d_tw idf_w^2 / |d_t|``,
with ``idf_w = ln(1 + targets / df_w)`` (smoothed so a one-target gallery still scores).
Query normalisation is a constant per query, so it is left out.

:meth:`InvertedIndex.scores_consistent` is the ranking that survives real phone photos in
large galleries (measured in docs/benchmarks.md): Hamming embedding weighted by distance
(Jégou et al. 2008), one vote per query feature and target and per gallery feature and
rotation (burstiness, Jégou et al. 2009), and weak geometric consistency: a target scores
only the votes that agree on one rotation between query and target.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Galleries of at most this many targets number their postings' targets in 16 bits.
_SMALL_GALLERY = 1 << 16


class InvertedIndex:
    """Immutable inverted file of one gallery: built from each gallery feature's word and
    the per-target feature offsets (``Bundle.offsets``). Holds 11 bytes per gallery
    feature in a gallery of at most 65,536 targets, 13 in a larger one (each posting's
    owning target in 16 or 32 bits, a 64-bit signature of its descriptor and its
    orientation in 256 steps, for :meth:`scores_with_hamming` and
    :meth:`scores_consistent`) plus fixed per-word and per-target tables."""

    __slots__ = (
        "_idf",
        "_inv_norm",
        "_post_angle",
        "_post_signature",
        "_post_signature_high",
        "_post_target",
        "_signature_mask",
        "_word_ptr",
        "n_targets",
        "n_words",
    )

    def __init__(
        self,
        words: np.ndarray,
        offsets: np.ndarray,
        n_words: int,
        signatures: np.ndarray | None = None,
        angles: np.ndarray | None = None,
        order: np.ndarray | None = None,
        signature_bits: int = 64,
    ) -> None:
        """``signatures``: one uint64 per gallery feature (default: zeros), e.g. the first
        64 bits of its descriptor; ``angles``: its keypoint orientation as uint8, 256 steps
        a turn (default: zeros), for :meth:`scores_consistent`; ``order``: the features'
        :func:`posting_order` when it is known already (a stored shard's,
        :func:`merged_posting_order` of several), so the index is built without a sort;
        ``signature_bits``: how many low bits of each signature are kept and compared (up
        to 32 are stored in 4 bytes a posting, up to 40 in 5, more in 8)."""
        words = np.asarray(words).reshape(-1)
        offsets = np.asarray(offsets, dtype=np.int64).reshape(-1)
        self.n_targets = len(offsets) - 1
        self.n_words = int(n_words)
        if len(words) != (int(offsets[-1]) if len(offsets) else 0):
            raise ValueError("inverted index: words and offsets disagree")
        if len(words) and (int(words.min()) < 0 or int(words.max()) >= n_words):
            raise ValueError("inverted index: word out of range")
        rows = posting_order(words) if order is None else np.asarray(order).reshape(-1)
        if len(rows) != len(words):
            raise ValueError("inverted index: one posting per feature")
        per_word = np.bincount(words, minlength=n_words)
        self._word_ptr = np.concatenate([[0], np.cumsum(per_word)]).astype(np.int64)
        # 2 bytes a posting while the targets fit them (a partition of a large library).
        target_type = np.uint16 if self.n_targets <= _SMALL_GALLERY else np.uint32
        owner = np.repeat(np.arange(self.n_targets, dtype=target_type), np.diff(offsets))
        self._post_target = np.take(owner, rows)  # 4x faster than a searchsorted at 10^7
        del owner
        if not 1 <= signature_bits <= 64:
            raise ValueError("inverted index: 1 to 64 signature bits")
        self._signature_mask = np.uint64((1 << signature_bits) - 1)
        kept = _in_posting_order(signatures, rows, np.uint64, "signature") & self._signature_mask
        self._post_signature_high = np.zeros(0, dtype=np.uint8)
        if signature_bits <= 40:  # the low 32 bits in 4 bytes, the next 8 (if any) in 1
            if signature_bits > 32:
                self._post_signature_high = (kept >> np.uint64(32)).astype(np.uint8)
            kept = kept.astype(np.uint32)
        self._post_signature = kept
        self._post_angle = _in_posting_order(angles, rows, np.uint8, "angle")
        del rows
        post_word = np.repeat(np.arange(n_words, dtype=np.int32), per_word)
        # Runs of equal (word, target): term frequencies and document frequencies.
        if len(post_word):
            new_run = np.ones(len(post_word), dtype=bool)
            new_run[1:] = (post_word[1:] != post_word[:-1]) | (
                self._post_target[1:] != self._post_target[:-1]
            )
            run_start = np.flatnonzero(new_run)
            tf = np.diff(np.append(run_start, len(post_word))).astype(np.float64)
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
        for arr in self._arrays():
            arr.flags.writeable = False

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (
            self._post_target,
            self._post_signature,
            self._post_signature_high,
            self._post_angle,
            self._word_ptr,
            self._idf,
            self._inv_norm,
        )

    @property
    def nbytes(self) -> int:
        """Memory held by the index arrays."""
        return sum(a.nbytes for a in self._arrays())

    def uncommon(self, words: np.ndarray, ratio: float, floor: int = 0) -> np.ndarray:
        """Mask of ``words`` whose posting list is at most ``ratio`` times the mean list
        length, or ``floor`` postings if more (every word when ``ratio`` <= 0): a
        query-time stop list that scales with the gallery."""
        words = np.asarray(words, dtype=np.int64).reshape(-1)
        if ratio <= 0 or self.n_words == 0:
            return np.ones(len(words), dtype=bool)
        lengths = self._word_ptr[words + 1] - self._word_ptr[words]
        return lengths <= max(ratio * (int(self._word_ptr[-1]) / self.n_words), floor)

    def postings(self, word: int) -> np.ndarray:
        """Owning target of every gallery feature quantised to ``word`` (ascending)."""
        return self._post_target[self._word_ptr[word] : self._word_ptr[word + 1]]

    def _walk(
        self, query_words: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One walk of the posting lists of a query's words: the plain tf-idf score of every
        target, and for each posting visited its position, its owning target and its weight
        (the word's idf squared), with each word's posting count (``np.repeat`` of a
        per-word value by it gives that value per posting; :func:`_rows_of` names the word
        of a few postings)."""
        qw = np.asarray(query_words, dtype=np.int64).reshape(-1)
        starts = self._word_ptr[qw]
        lens = self._word_ptr[qw + 1] - starts
        idx = concatenated_ranges(starts, lens)
        target = np.take(self._post_target, idx)
        weight = np.repeat(self._idf[qw].astype(np.float64) ** 2, lens)
        plain = np.bincount(target, weight, minlength=self.n_targets) * self._inv_norm
        return plain, idx, lens, target, weight

    def _signature_distances(
        self, query_signatures: np.ndarray, lens: np.ndarray, idx: np.ndarray
    ) -> np.ndarray:
        """Hamming distance between each walked posting's signature and its query word's
        (``lens`` postings a query word), over the kept signature bits."""
        qsig = np.ascontiguousarray(query_signatures, dtype=np.uint64).reshape(-1)
        q = np.repeat(qsig & self._signature_mask, lens)
        if self._post_signature.dtype == np.uint64:
            return np.bitwise_count(q ^ np.take(self._post_signature, idx))
        distance = np.bitwise_count(q.astype(np.uint32) ^ np.take(self._post_signature, idx))
        if len(self._post_signature_high):
            high = (q >> np.uint64(32)).astype(np.uint8)
            distance += np.bitwise_count(high ^ np.take(self._post_signature_high, idx))
        return distance

    def scores(self, query_words: np.ndarray) -> np.ndarray:
        """tf-idf cosine score of every target for a query's words (float64, one per
        target; only relative values matter)."""
        return self._walk(query_words)[0]

    def scores_with_hamming(
        self, query_words: np.ndarray, query_signatures: np.ndarray, max_distance: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Plain tf-idf scores (as :meth:`scores`) and Hamming-embedded ones (Jégou et al.
        2008) from one walk of the posting lists: in the second, a query feature and a
        gallery feature sharing a word count only when their signatures are within
        ``max_distance`` bits. Collisions of unrelated features, which grow with the
        gallery and swamp a target that fills a small part of a cluttered query, then no
        longer count. The signatures are stored in posting order, so this reads memory
        sequentially instead of gathering descriptors."""
        plain, idx, lens, target, weight = self._walk(query_words)
        near = self._signature_distances(query_signatures, lens, idx) <= max_distance
        embedded = np.bincount(target[near], weight[near], minlength=self.n_targets)
        return plain, embedded * self._inv_norm

    def scores_consistent(
        self,
        query_words: np.ndarray,
        query_signatures: np.ndarray,
        query_angles: np.ndarray,
        max_distance: int,
        sigma: float,
        bins: int,
        query_features: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Plain tf-idf scores (as :meth:`scores`) and geometrically consistent ones, from
        one walk of the posting lists. ``query_features`` names the query feature behind
        each word (default: one word each); a feature quantised to several words (multiple
        assignment) still votes once per target.

        A query feature and a gallery feature sharing a word vote when their signatures
        are within ``max_distance`` bits, weighted ``idf^2 * exp(-d^2 / sigma^2)``. Each
        query feature votes once per target and each gallery feature once per rotation
        (its best vote): repeated texture and text, whose features land in the same words
        again and again, stop outvoting a target. Votes are binned by the rotation between
        the two keypoints (``bins`` per turn); a target scores its best pair of adjacent
        bins, so the votes of a real match, which agree on one rotation, count, and chance
        collisions, spread over every rotation, mostly do not."""
        plain, idx, lens, target, weight = self._walk(query_words)
        distance = self._signature_distances(query_signatures, lens, idx)
        near = np.flatnonzero(distance <= max_distance)
        consistent = np.zeros(self.n_targets, dtype=np.float64)
        if not len(near):
            return plain, consistent
        rows = _rows_of(near, lens)
        idx, target = idx[near], target[near].astype(np.int64)
        d = distance[near].astype(np.float64)
        weight = weight[near] * np.exp(-(d * d) / (sigma * sigma))
        qang = np.ascontiguousarray(query_angles, dtype=np.uint8).reshape(-1)
        turn = (np.take(qang, rows).astype(np.int64) - np.take(self._post_angle, idx)) % 256
        rotation = turn * bins // 256
        voter = rows if query_features is None else np.take(query_features, rows)
        keep = best_per_key(voter.astype(np.int64) * self.n_targets + target, weight)
        keep = keep[best_per_key(idx[keep] * bins + rotation[keep], weight[keep])]
        target, rotation, weight = target[keep], rotation[keep], weight[keep]
        if _grid_is_dense(self.n_targets * bins, len(keep)):
            voted, slot = np.arange(self.n_targets), target  # every target's row: no sort
        else:
            voted, slot = np.unique(target, return_inverse=True)
        grid = np.bincount(slot * bins + rotation, weight, minlength=len(voted) * bins).reshape(
            -1, bins
        )
        consistent[voted] = (grid + np.roll(grid, 1, axis=1)).max(axis=1)
        return plain, consistent * self._inv_norm


def posting_order(words: np.ndarray) -> np.ndarray:
    """Feature rows grouped by word, ascending within a word (a stable argsort of
    ``words``), uint32: the order of an inverted file's postings."""
    words = np.asarray(words).reshape(-1)
    # The keys are unique, so an unstable sort gives the stable order, ~3x faster than a
    # stable argsort at 10^7 features.
    keys = _posting_keys(words, np.arange(len(words)))
    keys.sort()
    return _key_rows(keys)


def _posting_keys(words: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``word << 32 | row`` of each feature: unique keys that sort into posting order."""
    word = np.asarray(words).astype(np.uint64)
    return (word << np.uint64(32)) | np.asarray(rows).astype(np.uint64)


def _key_rows(keys: np.ndarray) -> np.ndarray:
    """The feature rows of sorted :func:`_posting_keys`, uint32."""
    return (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def merged_posting_order(words: Sequence[np.ndarray], orders: Sequence[np.ndarray]) -> np.ndarray:
    """The :func:`posting_order` of parts laid end to end, from each part's own: every
    part's postings of a word placed after the earlier parts' postings of it, without
    sorting the features again. Large parts (a searcher's shards) are placed by counting
    each word's postings (linear, but a pass over the vocabulary a part); many small ones
    (a shard and its deltas) by one merge of their sorted runs."""
    if len(words) != len(orders) or any(
        len(w) != len(o) for w, o in zip(words, orders, strict=True)
    ):
        raise ValueError("posting order: one row per feature")
    total = sum(len(w) for w in words)
    n_words = 1 + max((int(np.max(w)) for w in words if len(w)), default=-1)
    if total >= _COUNTED_MERGE_FEATURES * len(words) * n_words:
        return _merge_by_counts(words, orders, n_words)
    return _merge_runs(words, orders)


# merged_posting_order counts words when the parts hold at least this many features per
# word a part (the counting's fixed cost); below, merging sorted runs is cheaper.
_COUNTED_MERGE_FEATURES = 8


def _merge_by_counts(
    words: Sequence[np.ndarray], orders: Sequence[np.ndarray], n_words: int
) -> np.ndarray:
    """merged_posting_order by placing each part's postings after the earlier parts' of
    the same word (~10x faster than sorting again at 10^6 features a part)."""
    counts = [np.bincount(np.asarray(w).reshape(-1), minlength=n_words) for w in words]
    per_word = np.sum(counts, axis=0)
    word_start = np.cumsum(per_word) - per_word
    merged = np.empty(sum(len(w) for w in words), dtype=np.uint32)
    earlier = np.zeros(n_words, dtype=np.int64)  # this word's postings in earlier parts
    first_row = 0
    for part_words, part_order, count in zip(words, orders, counts, strict=True):
        own_start = np.cumsum(count) - count
        place = np.repeat(word_start + earlier - own_start, count) + np.arange(len(part_words))
        merged[place] = np.asarray(part_order, dtype=np.int64) + first_row
        earlier += count
        first_row += len(part_words)
    return merged


def _merge_runs(words: Sequence[np.ndarray], orders: Sequence[np.ndarray]) -> np.ndarray:
    """merged_posting_order by one stable sort of the parts' (word, row) keys, already in
    sorted runs (timsort merges runs instead of sorting)."""
    keys = []
    first_row = 0
    for part_words, part_order in zip(words, orders, strict=True):
        rows = np.asarray(part_order, dtype=np.int64)
        word = np.take(np.asarray(part_words).reshape(-1), rows)
        keys.append(_posting_keys(word, rows + first_row))
        first_row += len(part_words)
    merged = np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64)
    merged.sort(kind="stable")
    return _key_rows(merged)


def is_posting_order(words: np.ndarray, order: np.ndarray) -> bool:
    """Whether ``order`` is exactly :func:`posting_order` of ``words`` (a stored order is
    checked before an index is built on it: a wrong one would mis-attribute postings)."""
    words = np.asarray(words).reshape(-1)
    order = np.asarray(order).reshape(-1)
    if len(order) != len(words):
        return False
    if not len(order):
        return True
    if int(order.min()) < 0 or int(order.max()) >= len(words):
        return False
    w = np.take(words, order)
    # (word, row) strictly ascending: grouped by word, ascending within it, no row twice.
    rising = w[1:] > w[:-1]
    rising |= (w[1:] == w[:-1]) & (order[1:] > order[:-1])
    return bool(rising.all())


def concatenated_ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """``start, start + 1, ..., start + len - 1`` for each (start, len), concatenated, as
    int64: the rows of many slices gathered at once, without a Python loop."""
    first = np.cumsum(lens) - lens
    return np.arange(int(lens.sum()), dtype=np.int64) + np.repeat(starts - first, lens)


def _rows_of(positions: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """The query row (word) behind each of ``positions`` (ascending) in a walk whose words
    have ``lens`` postings: a search over the rows' ends, cheaper than repeating every row
    number over every posting when only a few postings are kept."""
    return np.searchsorted(np.cumsum(lens), positions, side="right")


# The rotation grid of scores_consistent spans every target when it has at most this many
# cells (or 8 per vote): one bincount instead of sorting the voted targets.
_DENSE_GRID_CELLS = 1 << 21


def _grid_is_dense(cells: int, votes: int) -> bool:
    """Whether a rotation grid of ``cells`` (targets x bins) for ``votes`` votes is built
    over every target (cheap while it is small or the votes many) or the voted ones."""
    return cells <= max(8 * votes, _DENSE_GRID_CELLS)


def _in_posting_order(
    column: np.ndarray | None, rows: np.ndarray, dtype: type, name: str
) -> np.ndarray:
    """A per-feature column (zeros when absent) permuted into posting order."""
    if column is None:
        return np.zeros(len(rows), dtype=dtype)
    values = np.ascontiguousarray(column, dtype=dtype).reshape(-1)
    if len(values) != len(rows):
        raise ValueError(f"inverted index: one {name} per feature")
    return np.take(values, rows)


def best_per_key(keys: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Positions of the heaviest entry of each distinct key (one per key; of equally heavy
    ones, the first), in key order. One stable sort of the keys and a per-group maximum:
    ~2x faster than sorting on (key, weight) together."""
    order = np.argsort(keys, kind="stable")
    if not len(order):
        return order
    sorted_keys = keys[order]
    sorted_weight = weight[order]
    start = np.ones(len(order), dtype=bool)
    start[1:] = sorted_keys[1:] != sorted_keys[:-1]
    group = np.cumsum(start) - 1
    heaviest = np.maximum.reduceat(sorted_weight, np.flatnonzero(start))
    at_max = np.flatnonzero(sorted_weight == heaviest[group])
    first = np.ones(len(at_max), dtype=bool)
    first[1:] = group[at_max[1:]] != group[at_max[:-1]]
    return order[at_max[first]]
