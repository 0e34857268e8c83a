"""The inverted file: postings, tf-idf ranking, and the searcher built on it."""

from __future__ import annotations

import numpy as np
import pytest

from bench.demo_photos import load_gray, rotate, tilt
from opencrs.index import inverted
from opencrs.index.bundle import Bundle
from opencrs.index.inverted import InvertedIndex, _rows_of, best_per_key
from opencrs.index.search import Searcher
from opencrs.vision.features import extract_features, make_features


def _index(per_target: list[list[int]], n_words: int = 10) -> InvertedIndex:
    words = np.concatenate([np.array(w, dtype=np.int64) for w in per_target])
    offsets = np.concatenate([[0], np.cumsum([len(w) for w in per_target])])
    return InvertedIndex(words, offsets, n_words)


def test_postings_list_owning_targets_in_order() -> None:
    idx = _index([[1, 2, 2], [2, 3], [], [1]])
    assert idx.postings(2).tolist() == [0, 0, 1]
    assert idx.postings(1).tolist() == [0, 3]
    assert idx.postings(0).tolist() == []
    assert idx.n_targets == 4


def test_rare_shared_words_rank_first() -> None:
    # Word 0 is in every target (uninformative); word 7 only in target 2.
    idx = _index([[0, 1, 2], [0, 3, 4], [0, 7, 5], [0, 6, 6]])
    s = idx.scores(np.array([0, 0, 7, 9]))
    assert int(np.argmax(s)) == 2
    assert s[0] == pytest.approx(s[1])  # same overlap, same length: same score
    assert s[2] > 2 * s[0]
    # No shared word, no score; an empty query scores nothing.
    assert idx.scores(np.array([8, 9])).tolist() == [0.0] * 4
    assert idx.scores(np.zeros(0, np.int64)).tolist() == [0.0] * 4


def test_single_target_and_featureless_targets_still_score() -> None:
    assert _index([[1, 2]]).scores(np.array([2]))[0] > 0  # smoothed idf
    s = _index([[], [3]]).scores(np.array([3]))
    assert s[0] == 0 and s[1] > 0


def test_duplicates_score_identically() -> None:
    idx = _index([[1, 4, 5], [2, 3], [1, 4, 5]])
    s = idx.scores(np.array([1, 4]))
    assert s[0] == s[2] > s[1]


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError):
        InvertedIndex(np.array([1, 2]), np.array([0, 3]), 10)
    with pytest.raises(ValueError):
        InvertedIndex(np.array([1, 12]), np.array([0, 2]), 10)


def test_target_found_among_many_distractors() -> None:
    """500 distractor targets (shuffled real descriptors at random places, so their words
    are realistic): the right photo is still shortlisted first and verified."""
    rng = np.random.default_rng(5)
    pool = np.concatenate(
        [extract_features(load_gray(n), "target").descriptors for n in ("moon", "brick", "clock")]
    )
    b = Bundle.from_targets(
        [
            (
                f"d{i:03d}",
                make_features(
                    rng.uniform(0, 640, (300, 2)),
                    rng.uniform(0, 360, 300),
                    pool[rng.choice(len(pool), 300, replace=False)],
                    640,
                    480,
                ),
            )
            for i in range(500)
        ]
        + [(name, extract_features(load_gray(name), "target")) for name in ("coffee", "rocket")]
    )
    s = Searcher(b)
    for name, img in (
        ("coffee", rotate(load_gray("coffee"), 40)),
        ("rocket", tilt(load_gray("rocket"), 35)),
    ):
        q = extract_features(img, "query")
        assert b.target_ids()[s.shortlist(q)[0]] == name
        hits = s.search(q)
        assert [h.target_id for h in hits] == [name]
    assert s.index_nbytes / len(b) < 8192 + 10**6 / len(b)  # postings + words + fixed tables


def test_hamming_embedding_drops_collisions_of_unrelated_features() -> None:
    rng = np.random.default_rng(11)
    gallery = rng.integers(0, 2**63, 4, dtype=np.uint64)
    words = np.array([5, 6, 5, 6])
    idx = InvertedIndex(words, np.array([0, 2, 4]), 10, gallery)  # both targets: 5 and 6
    near = gallery[[0, 1]] ^ np.uint64(0b111)  # 3 bits from target 0's, ~32 from target 1's
    plain, embedded = idx.scores_with_hamming(np.array([5, 6]), near, 8)
    assert embedded[0] > 0 and embedded[1] == 0
    assert plain[1] > 0 and np.allclose(plain, idx.scores(np.array([5, 6])))
    plain, embedded = idx.scores_with_hamming(np.array([7]), near[:1], 8)
    assert plain.tolist() == embedded.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        InvertedIndex(words, np.array([0, 2, 4]), 10, gallery[:3])


def test_consistent_scores_count_only_votes_agreeing_on_one_rotation() -> None:
    # Two targets share the same four words with the query, signatures identical. Target
    # 0's features are the query's turned by one angle; target 1's by four different ones.
    words = np.array([1, 2, 3, 4, 1, 2, 3, 4])
    sig = np.zeros(8, dtype=np.uint64)
    angles = np.array([40, 40, 40, 40, 0, 64, 128, 192], dtype=np.uint8)
    idx = InvertedIndex(words, np.array([0, 4, 8]), 10, sig, angles)
    q = np.array([1, 2, 3, 4])
    plain, consistent = idx.scores_consistent(
        q, np.zeros(4, np.uint64), np.zeros(4, np.uint8), 8, 8.0, 12
    )
    assert np.isclose(plain[0], plain[1])
    assert consistent[0] > 2 * consistent[1] > 0


def test_consistent_scores_give_a_repeated_feature_one_vote_per_target() -> None:
    # Target 0 repeats word 1 ten times (text, texture); target 1 has words 1 and 2 once.
    words = np.array([1] * 10 + [1, 2])
    offsets = np.array([0, 10, 12])
    idx = InvertedIndex(words, offsets, 10, np.zeros(12, np.uint64), np.zeros(12, np.uint8))
    q = np.array([1, 1, 1, 2])  # the query's own repeats: each votes once per target
    plain, consistent = idx.scores_consistent(
        q, np.zeros(4, np.uint64), np.zeros(4, np.uint8), 8, 8.0, 12
    )
    assert plain[0] > plain[1]
    assert consistent[1] > consistent[0]


def test_consistent_scores_weigh_votes_by_signature_distance() -> None:
    words = np.array([1, 1])
    sig = np.array([0, 0b1111111111], dtype=np.uint64)  # 0 and 10 bits from the query's
    idx = InvertedIndex(words, np.array([0, 1, 2]), 10, sig, np.zeros(2, np.uint8))
    _, consistent = idx.scores_consistent(
        np.array([1]), np.zeros(1, np.uint64), np.zeros(1, np.uint8), 12, 8.0, 12
    )
    assert consistent[0] > consistent[1] > 0
    _, strict = idx.scores_consistent(
        np.array([1]), np.zeros(1, np.uint64), np.zeros(1, np.uint8), 8, 8.0, 12
    )
    assert strict[1] == 0
    with pytest.raises(ValueError):
        InvertedIndex(words, np.array([0, 1, 2]), 10, sig, np.zeros(3, np.uint8))


def test_a_feature_assigned_to_two_words_votes_once_per_target() -> None:
    words = np.array([1, 2])  # one target holding both words
    idx = InvertedIndex(words, np.array([0, 2]), 10, np.zeros(2, np.uint64), np.zeros(2, np.uint8))
    q, sig, ang = np.array([1, 2]), np.zeros(2, np.uint64), np.zeros(2, np.uint8)
    _, two_features = idx.scores_consistent(q, sig, ang, 8, 8.0, 12)
    _, one_feature = idx.scores_consistent(q, sig, ang, 8, 8.0, 12, np.array([0, 0]))
    assert two_features[0] > one_feature[0] > 0


def test_uncommon_words_are_those_with_lists_near_the_mean_length() -> None:
    # 10 words, 20 postings: mean list length 2. Word 0 is in every target, 10 times.
    idx = _index([[0, 1], [0, 2], [0, 3], [0, 4], [0, 5], [0, 6], [0, 7], [0, 8], [0, 9], [0, 1]])
    words = np.array([0, 1, 2, 9])
    assert idx.uncommon(words, 3.2).tolist() == [False, True, True, True]
    assert idx.uncommon(words, 4.9).tolist() == [False, True, True, True]
    assert idx.uncommon(words, 5.0).tolist() == [True, True, True, True]
    assert idx.uncommon(words, 0).all()  # 0: no stop list
    assert idx.uncommon(words, 3.2, floor=10).all()  # never below the floor
    assert _index([[], []]).uncommon(words, 3.2).all()  # nothing listed, nothing dropped


def test_best_per_key_keeps_the_heaviest_and_of_ties_the_first() -> None:
    keys = np.array([7, 3, 7, 3, 9, 7])
    weight = np.array([1.0, 2.0, 5.0, 2.0, 0.5, 5.0])
    # Key 3: positions 1 and 3 tie, 1 kept; key 7: 2 and 5 tie at 5.0, 2 kept; in key order.
    assert best_per_key(keys, weight).tolist() == [1, 2, 4]
    assert best_per_key(np.zeros(0, np.int64), np.zeros(0)).tolist() == []


def test_rows_of_names_the_word_behind_each_posting() -> None:
    lens = np.array([2, 0, 3, 1])  # postings 0-1: row 0; 2-4: row 2; 5: row 3
    assert _rows_of(np.array([0, 1, 2, 4, 5]), lens).tolist() == [0, 0, 2, 2, 3]


def test_consistent_scores_are_the_same_with_the_dense_grid_or_the_sorted_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(5)
    n_targets, per = 40, 30
    words = rng.integers(0, 50, n_targets * per)
    offsets = np.arange(0, n_targets * per + 1, per)
    sig = rng.integers(0, 2**8, n_targets * per).astype(np.uint64)  # within 8 bits of 0
    angles = rng.integers(0, 256, n_targets * per).astype(np.uint8)
    idx = InvertedIndex(words, offsets, 50, sig, angles)
    q = rng.integers(0, 50, 60)
    args = (q, np.zeros(60, np.uint64), rng.integers(0, 256, 60).astype(np.uint8), 8, 8.0, 12)
    monkeypatch.setattr(inverted, "_grid_is_dense", lambda cells, votes: True)
    dense = idx.scores_consistent(*args)
    monkeypatch.setattr(inverted, "_grid_is_dense", lambda cells, votes: False)
    voted = idx.scores_consistent(*args)
    assert (dense[1] > 0).sum() > 10
    assert np.array_equal(dense[0], voted[0]) and np.array_equal(dense[1], voted[1])


def test_merged_posting_orders_equal_one_sort_of_the_parts_laid_end_to_end() -> None:
    rng = np.random.default_rng(7)
    parts = [rng.integers(0, 50, n) for n in (300, 0, 1, 120, 77)]
    orders = [inverted.posting_order(p) for p in parts]
    whole = np.concatenate(parts)
    expected = np.argsort(whole, kind="stable")
    # Both ways of merging: by counting words (large parts) and by merging runs (small).
    assert np.array_equal(inverted._merge_by_counts(parts, orders, 50), expected)
    assert np.array_equal(inverted._merge_runs(parts, orders), expected)
    merged = inverted.merged_posting_order(parts, orders)
    assert np.array_equal(merged, expected)
    big = [rng.integers(0, 50, 2_000) for _ in range(3)]  # 8 features a word a part
    assert np.array_equal(
        inverted.merged_posting_order(big, [inverted.posting_order(p) for p in big]),
        np.argsort(np.concatenate(big), kind="stable"),
    )
    assert inverted.is_posting_order(whole, merged)
    assert not inverted.is_posting_order(whole, merged[::-1])
    assert inverted.merged_posting_order([], []).tolist() == []
    with pytest.raises(ValueError):
        inverted.merged_posting_order(parts, orders[:-1])


def test_an_index_built_on_a_given_order_equals_one_that_sorts() -> None:
    rng = np.random.default_rng(3)
    words = rng.integers(0, 40, 500)
    offsets = np.array([0, 100, 100, 350, 500])
    sig = rng.integers(0, 2**63, 500, dtype=np.uint64)
    angles = rng.integers(0, 256, 500).astype(np.uint8)
    given = InvertedIndex(words, offsets, 40, sig, angles, inverted.posting_order(words))
    sorted_here = InvertedIndex(words, offsets, 40, sig, angles)
    for a, b in zip(given._arrays(), sorted_here._arrays(), strict=True):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError):
        InvertedIndex(words, offsets, 40, sig, angles, inverted.posting_order(words)[:-1])


def test_postings_of_a_small_gallery_name_their_targets_in_16_bits() -> None:
    words = np.arange(20) % 7
    small = InvertedIndex(words, np.array([0, 5, 20]), 10)
    assert small.postings(3).dtype == np.uint16 and small.postings(3).tolist() == [0, 1, 1]
    offsets = np.concatenate([[0], np.full(70_000, 0), [20]])  # 70,001 targets
    large = InvertedIndex(words, offsets, 10)
    assert large.postings(3).dtype == np.uint32 and large.postings(3).tolist() == [70_000] * 3
    # 2 more bytes a posting, and 8 a target for the extra targets' norms
    assert large.nbytes - small.nbytes == 2 * len(words) + 8 * (70_001 - 2)


@pytest.mark.parametrize("bits,nbytes", [(64, 8), (40, 5), (32, 4), (20, 4)])
def test_signatures_keep_their_low_bits_in_as_few_bytes_as_they_need(
    bits: int, nbytes: int
) -> None:
    rng = np.random.default_rng(11)
    words = rng.integers(0, 5, 300)
    offsets = np.array([0, 120, 300])
    sig = rng.integers(0, 2**63, 300, dtype=np.uint64) * np.uint64(2)
    idx = InvertedIndex(words, offsets, 5, sig, np.zeros(300, np.uint8), signature_bits=bits)
    full = InvertedIndex(words, offsets, 5, sig, np.zeros(300, np.uint8))
    assert full.nbytes - idx.nbytes == (8 - nbytes) * 300
    query = rng.integers(0, 2**63, 5, dtype=np.uint64)
    lens = np.diff(idx._word_ptr)
    walked = np.arange(300)
    mask = np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(2**64 - 1)
    posted = np.take(sig, inverted.posting_order(words)) & mask
    expected = np.bitwise_count((np.repeat(query, lens) & mask) ^ posted)
    assert np.array_equal(idx._signature_distances(query, lens, walked), expected)
    with pytest.raises(ValueError):
        InvertedIndex(words, offsets, 5, sig, signature_bits=65)
