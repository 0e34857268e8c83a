"""The similarity consensus that re-ranks the shortlist (opencrs.index.rerank)."""

from __future__ import annotations

import numpy as np

from opencrs.index.rerank import CandidateFeatures, Consensus, QueryVotes, consensus_inliers

_CFG = Consensus(
    max_hamming=12, angle_bins=12, threshold=20.0, hypotheses=32, max_points=128, min_votes=6
)


def _scene(n_true: int, n_chance: int, seed: int = 1) -> tuple[QueryVotes, CandidateFeatures]:
    """Candidate 0's features are seen in the query under one similarity (rotated 30
    degrees, scaled 0.7, shifted); candidate 1's share as many words and signatures but
    land at random places. Every query feature has its own word."""
    rng = np.random.default_rng(seed)
    n = n_true + n_chance
    t0 = rng.uniform(0, 1000, (n_true, 2))
    a = 0.7 * np.exp(1j * np.pi / 6)
    z = a * (t0[:, 0] + 1j * t0[:, 1]) + (150 + 80j)
    q_true = np.stack([z.real, z.imag], axis=1)
    t1 = rng.uniform(0, 1000, (n_chance, 2))
    q_chance = rng.uniform(0, 1000, (n_chance, 2))
    signatures = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    angles = np.full(n, 21, dtype=np.int64)  # 30 degrees in 256 steps a turn
    query = QueryVotes(
        words=np.arange(n, dtype=np.int64),
        feature=np.arange(n, dtype=np.int64),
        signatures=signatures,
        angles=angles,
        xy=np.concatenate([q_true, q_chance]),
    )
    targets = CandidateFeatures(
        candidate=np.repeat([0, 1], [n_true, n_chance]),
        words=np.arange(n, dtype=np.int64),
        signatures=signatures,
        angles=np.zeros(n, dtype=np.int64),
        xy=np.concatenate([t0, t1]),
    )
    return query, targets


def test_votes_one_similarity_explains_outrank_as_many_chance_votes() -> None:
    query, targets = _scene(40, 40)
    inliers = consensus_inliers(query, targets, 2, _CFG)
    assert inliers[0] == 40
    assert inliers[1] < 8


def test_a_candidate_with_too_few_votes_scores_zero_and_others_still_score() -> None:
    query, targets = _scene(5, 40)
    inliers = consensus_inliers(query, targets, 3, _CFG)
    assert inliers[0] == 0  # 5 votes < min_votes
    assert inliers[1] > 0  # chance votes still pair up somewhere
    assert inliers[2] == 0  # no features at all


def test_votes_need_a_shared_word_and_close_signatures() -> None:
    query, targets = _scene(40, 0)
    moved = CandidateFeatures(
        targets.candidate, targets.words + 10_000, targets.signatures, targets.angles, targets.xy
    )
    assert consensus_inliers(query, moved, 1, _CFG)[0] == 0
    flipped = CandidateFeatures(
        targets.candidate, targets.words, ~targets.signatures, targets.angles, targets.xy
    )
    assert consensus_inliers(query, flipped, 1, _CFG)[0] == 0


def test_votes_off_the_dominant_rotation_do_not_count() -> None:
    query, targets = _scene(40, 0)
    turned = targets.angles.copy()
    turned[:15] = 128  # half a turn away from the other 25
    rotated = CandidateFeatures(
        targets.candidate, targets.words, targets.signatures, turned, targets.xy
    )
    assert consensus_inliers(query, rotated, 1, _CFG)[0] == 25


def test_consensus_is_deterministic_and_bounded_by_max_points() -> None:
    query, targets = _scene(200, 50)
    first = consensus_inliers(query, targets, 2, _CFG)
    assert np.array_equal(first, consensus_inliers(query, targets, 2, _CFG))
    assert first[0] == _CFG.max_points


def test_empty_query_or_candidates() -> None:
    query, targets = _scene(40, 10)
    none = QueryVotes(
        *(np.zeros(0, dtype=np.int64) for _ in range(3)), query.angles[:0], query.xy[:0]
    )
    assert consensus_inliers(none, targets, 2, _CFG).tolist() == [0, 0]
    assert consensus_inliers(query, targets, 0, _CFG).tolist() == []
