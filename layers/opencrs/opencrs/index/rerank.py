"""Cheap geometric re-ranking of the shortlist's best few hundred candidates.

At 100k targets a phone photo's cover is ranked within the best 20 by the shortlist score
for ~88 % of photos but within the best 300 for ~96 % (docs/benchmarks.md): the votes
cannot tell a weakly matched cover from chance collisions, and full verification costs
~6 ms a candidate, too much for 300. Pastec's answer is a cheap geometric check of its
top 300; this is ours. Each candidate's correspondences are the shortlist's own votes
(query and target features sharing a word, signatures within the Hamming bound, one vote
per feature, in the candidate's dominant rotation), and its re-ranking score is the
largest set of them one similarity transform explains, found by 2-point RANSAC evaluated
for every candidate at once. No descriptor is matched and no homography fitted: a few
tens of milliseconds for 300 candidates, against ~1.8 s to verify them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opencrs.index.inverted import best_per_key, concatenated_ranges


@dataclass(frozen=True)
class CandidateFeatures:
    """Every feature of the candidates being re-ranked, candidate after candidate: which
    candidate (position in the candidate list) it belongs to, its leaf word, the 64-bit
    signature of its descriptor, its orientation in 256 steps a turn, and its position in
    a frame whose long side is 1000 units (so thresholds ignore image size)."""

    candidate: np.ndarray
    words: np.ndarray
    signatures: np.ndarray
    angles: np.ndarray
    xy: np.ndarray


@dataclass(frozen=True)
class QueryVotes:
    """The query side: the words it votes through (leaves and second leaves), the query
    feature behind each word, and per feature its signature, orientation (256 steps a
    turn) and position in the same 1000-unit frame."""

    words: np.ndarray
    feature: np.ndarray
    signatures: np.ndarray
    angles: np.ndarray
    xy: np.ndarray


@dataclass(frozen=True)
class Consensus:
    """How a similarity consensus is sought: signature bits a vote may differ by,
    rotation bins of the dominant-rotation filter, inlier distance (frame units),
    hypotheses per candidate, the most votes kept per candidate (closest signatures
    first) and the fewest a candidate needs to be tried at all."""

    max_hamming: int
    angle_bins: int
    threshold: float
    hypotheses: int
    max_points: int
    min_votes: int


def consensus_inliers(
    query: QueryVotes, targets: CandidateFeatures, n_candidates: int, cfg: Consensus
) -> np.ndarray:
    """Per candidate, the largest number of its votes one similarity transform (target
    frame to query frame) brings within ``cfg.threshold``; 0 for a candidate with fewer
    than ``cfg.min_votes`` votes. Deterministic: the hypotheses are drawn from a fixed
    seed."""
    inliers = np.zeros(n_candidates, dtype=np.int64)
    if n_candidates == 0:
        return inliers
    qf, tf = _shared_word_pairs(query, targets)
    if not len(qf):
        return inliers
    distance = np.bitwise_count(query.signatures[qf] ^ targets.signatures[tf]).astype(np.int64)
    near = distance <= cfg.max_hamming
    qf, tf, distance = qf[near], tf[near], distance[near]
    cand = targets.candidate[tf]
    # One vote per query feature and candidate, one per target feature: the closest.
    closeness = -distance.astype(np.float64)
    keep = best_per_key(qf * n_candidates + cand, closeness)
    keep = keep[best_per_key(tf[keep], closeness[keep])]
    qf, tf, cand, distance = qf[keep], tf[keep], cand[keep], distance[keep]
    # The candidate's dominant rotation (best pair of adjacent bins), as the shortlist.
    bins = cfg.angle_bins
    rotation = ((query.angles[qf].astype(np.int64) - targets.angles[tf]) % 256) * bins // 256
    grid = np.bincount(cand * bins + rotation, minlength=n_candidates * bins).reshape(-1, bins)
    dominant = (grid + np.roll(grid, 1, axis=1)).argmax(axis=1)[cand]
    agree = (rotation == dominant) | (rotation == (dominant - 1) % bins)
    qf, tf, cand, distance = qf[agree], tf[agree], cand[agree], distance[agree]
    return _similarity_consensus(
        cand, targets.xy[tf], query.xy[qf], distance, n_candidates, cfg, inliers
    )


def _shared_word_pairs(query: QueryVotes, targets: CandidateFeatures) -> tuple[np.ndarray, ...]:
    """(query feature, target row) for every query word and target feature sharing it."""
    if not len(query.words) or not len(targets.words):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # Most target features share no word with the query: drop them before the search.
    shared = np.zeros(int(max(query.words.max(), targets.words.max())) + 1, dtype=bool)
    shared[query.words] = True
    rows = np.flatnonzero(shared[targets.words])
    qorder = np.argsort(query.words, kind="stable")
    qwords = query.words[qorder]
    lo = np.searchsorted(qwords, targets.words[rows], "left")
    lens = np.searchsorted(qwords, targets.words[rows], "right") - lo
    at = concatenated_ranges(lo, lens)
    return query.feature[qorder[at]].astype(np.int64), np.repeat(rows, lens)


def _similarity_consensus(
    cand: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    distance: np.ndarray,
    n_candidates: int,
    cfg: Consensus,
    inliers: np.ndarray,
) -> np.ndarray:
    """2-point RANSAC for a similarity (z -> a z + b over complex points) per candidate,
    all candidates in one array: (candidates, hypotheses, points)."""
    order = np.lexsort((distance, cand))
    cand, src, dst = cand[order], src[order], dst[order]
    start = np.searchsorted(cand, np.arange(n_candidates + 1))
    count = np.diff(start)
    slot = np.arange(len(cand)) - start[cand]
    tried = np.flatnonzero(count >= max(cfg.min_votes, 2))
    if not len(tried):
        return inliers
    keep = slot < cfg.max_points
    where = np.full(n_candidates, -1, dtype=np.int64)
    where[tried] = np.arange(len(tried))
    row = where[cand]
    keep &= row >= 0
    width = int(min(cfg.max_points, count[tried].max()))
    shape = (len(tried), width)
    s = np.zeros(shape, np.complex128)
    d = np.zeros(shape, np.complex128)
    valid = np.zeros(shape, bool)
    r, c = row[keep], slot[keep]
    s[r, c] = src[keep, 0] + 1j * src[keep, 1]
    d[r, c] = dst[keep, 0] + 1j * dst[keep, 1]
    valid[r, c] = True
    n = np.minimum(count[tried], width)[:, None]
    rng = np.random.default_rng(0)
    i = (rng.random((len(tried), cfg.hypotheses)) * n).astype(np.int64)
    j = (i + 1 + (rng.random((len(tried), cfg.hypotheses)) * (n - 1)).astype(np.int64)) % n
    rows = np.arange(len(tried))[:, None]
    span = s[rows, j] - s[rows, i]
    degenerate = np.abs(span) < 1e-6
    a = np.where(degenerate, 0, (d[rows, j] - d[rows, i]) / np.where(degenerate, 1, span))
    b = d[rows, i] - a * s[rows, i]
    residual = np.abs(a[:, :, None] * s[:, None, :] + b[:, :, None] - d[:, None, :])
    votes = ((residual <= cfg.threshold) & valid[:, None, :]).sum(axis=2)
    votes[degenerate] = 0
    inliers[tried] = votes.max(axis=1)
    return inliers
