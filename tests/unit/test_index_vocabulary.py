"""The vocabulary tree: training, quantisation, its file format and the shipped file."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from opencrs.index.vocabulary import SHIPPED, Vocabulary, shipped, train


def _flip(d: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    """Copies of ``d`` with ``bits`` random bits flipped in each row."""
    out = np.unpackbits(d, axis=1)
    for row in out:
        row[rng.choice(256, bits, replace=False)] ^= 1
    return np.packbits(out, axis=1)


@pytest.fixture(scope="module")
def clusters() -> tuple[np.ndarray, np.ndarray]:
    """16 random 256-bit centres and 40 noisy copies (12 bits flipped) of each."""
    rng = np.random.default_rng(7)
    centres = rng.integers(0, 256, (16, 32), dtype=np.uint8)
    members = np.concatenate(
        [_flip(np.repeat(centres[i : i + 1], 40, 0), 12, rng) for i in range(16)]
    )
    return centres, members


@pytest.fixture(scope="module")
def vocab(clusters: tuple[np.ndarray, np.ndarray]) -> Vocabulary:
    return train(clusters[1], 4, 2, iterations=6, seed=1)


def test_training_is_deterministic(
    clusters: tuple[np.ndarray, np.ndarray], vocab: Vocabulary
) -> None:
    again = train(clusters[1], 4, 2, iterations=6, seed=1)
    assert again.to_bytes() == vocab.to_bytes()
    assert vocab.words == 16 and vocab.branching == 4 and vocab.depth == 2


def test_noisy_copies_share_their_centres_word(
    clusters: tuple[np.ndarray, np.ndarray], vocab: Vocabulary
) -> None:
    centres, members = clusters
    words = vocab.quantise(members).reshape(16, 40)
    # Each cluster is (almost) one word, and different clusters get different words.
    majority = [np.bincount(w).argmax() for w in words]
    purity = np.mean([np.mean(w == m) for w, m in zip(words, majority, strict=True)])
    assert purity >= 0.95
    assert len(set(majority)) >= 14
    # A fresh noisy copy of a centre lands where its cluster did.
    fresh = _flip(centres, 12, np.random.default_rng(99))
    assert np.mean(vocab.quantise(fresh) == np.array(majority)) >= 0.9


def test_levels_are_ancestors_of_leaves(
    clusters: tuple[np.ndarray, np.ndarray], vocab: Vocabulary
) -> None:
    leaves = vocab.quantise(clusters[1])
    assert np.array_equal(vocab.quantise(clusters[1], level=1), leaves // vocab.branching)
    with pytest.raises(ValueError):
        vocab.quantise(clusters[1], level=3)


def test_bulk_quantiser_agrees(clusters: tuple[np.ndarray, np.ndarray], vocab: Vocabulary) -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([clusters[1], rng.integers(0, 256, (500, 32), dtype=np.uint8)])
    assert np.array_equal(vocab.quantise_many(x), vocab.quantise(x))
    assert vocab.quantise_many(np.zeros((0, 32), np.uint8)).shape == (0,)


def test_round_trip_and_corruption(vocab: Vocabulary) -> None:
    data = vocab.to_bytes()
    assert Vocabulary.from_bytes(data).to_bytes() == data
    body = bytearray(data[:-4])
    body[10:12] = struct.pack("<H", 5)  # branching that disagrees with the length
    resealed = bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    for bad in (b"", data[:-1], data + b"\0", bytes(flipped), b"X" + data[1:], resealed):
        with pytest.raises(ValueError):
            Vocabulary.from_bytes(bad)


def test_shipped_vocabulary() -> None:
    v = shipped()
    assert SHIPPED.stat().st_size < 4_000_000  # small enough for the Lambda layer
    assert v.branching >= 8 and v.words >= 50_000
    # Real ORB descriptors spread over many words (a degenerate tree would not).
    from bench.demo_photos import load_gray
    from opencrs.vision.features import extract_features

    d = extract_features(load_gray("astronaut"), "query").descriptors
    words = v.quantise(d)
    assert len(np.unique(words)) >= 0.5 * len(d)
    assert np.array_equal(v.quantise_many(d), words)


def test_nearest_top_nodes_start_with_the_leafs_ancestor(
    clusters: tuple[np.ndarray, np.ndarray], vocab: Vocabulary
) -> None:
    members = clusters[1]
    near = vocab.nearest_top_nodes(members, 3)
    assert near.shape == (len(members), 3)
    assert np.array_equal(near[:, 0], vocab.quantise(members, level=1))
    assert np.array_equal(
        near[:, 0], vocab.quantise(members) // vocab.branching ** (vocab.depth - 1)
    )
    assert all(len(set(row)) == 3 for row in near.tolist())  # distinct nodes, nearest first
    assert vocab.nearest_top_nodes(members, 99).shape == (len(members), vocab.branching)
    assert vocab.nearest_top_nodes(members[:0], 2).shape == (0, 2)


def test_second_leaf_is_the_nearest_sibling(
    clusters: tuple[np.ndarray, np.ndarray], vocab: Vocabulary
) -> None:
    descriptors = clusters[1][:200]
    best = vocab.quantise(descriptors)
    second, gap = vocab.second_leaves(descriptors, best)
    assert (second != best).all() and (second // vocab.branching == best // vocab.branching).all()
    leaves = vocab.levels[-1]
    d = descriptors.view(np.uint64)
    for i in range(0, 200, 37):  # the gap is the distance to the sibling minus the leaf's
        dist = [int(np.bitwise_count(d[i] ^ leaves[w]).sum()) for w in (best[i], second[i])]
        assert gap[i] == dist[1] - dist[0] >= 0


def test_fingerprints_tell_trees_apart(
    clusters: tuple[np.ndarray, np.ndarray], vocab: Vocabulary
) -> None:
    other = train(clusters[0], 4, 2, seed=1)
    assert other.to_bytes() != vocab.to_bytes()
    assert other.fingerprint() != vocab.fingerprint()
    # The fingerprint is the file's own checksum.
    assert struct.unpack("<I", vocab.to_bytes()[-4:]) == (vocab.fingerprint(),)
    assert vocab.made_words(vocab.fingerprint())
    assert not vocab.made_words(other.fingerprint())


def test_bundles_from_before_the_fingerprint_fix_are_v1_words() -> None:
    # CRC32 over data that ends with its own CRC32 is one constant, whatever the data: that is
    # what every vocabulary's fingerprint was before the fix, so old bundles all carry it.
    residue = zlib.crc32(shipped().to_bytes())
    assert residue == zlib.crc32(b"any" + struct.pack("<I", zlib.crc32(b"any")))
    assert shipped().made_words(residue)
    assert not train(np.zeros((64, 32), np.uint8), 2, 1).made_words(residue)
