"""A query's words made once (``words_for``) and carried to other searchers: they cross
bytes unchanged, damaged bytes are refused, a searcher uses them only when they were made
under its own vocabulary and tuning, and using them gives the hits it would find alone."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from bench.demo_photos import GALLERY, load_gray, rotate
from opencrs.index.bundle import Bundle
from opencrs.index.search import QueryWords, Searcher, words_for, words_key
from opencrs.index.vocabulary import shipped
from opencrs.vision.features import Features, extract_features
from opencrs.vision.params import DEFAULT


@pytest.fixture(scope="module")
def searcher() -> Searcher:
    return Searcher(
        Bundle.from_targets([(n, extract_features(load_gray(n), "target")) for n in GALLERY])
    )


@pytest.fixture(scope="module")
def query() -> Features:
    return extract_features(rotate(load_gray("coffee"), 20), "query")


@pytest.fixture(scope="module")
def words(query: Features) -> QueryWords:
    return words_for(query, shipped(), DEFAULT)


def _same(a: QueryWords, b: QueryWords) -> bool:
    def parts(w: QueryWords) -> list[np.ndarray | None]:
        return [w.leaves, *(w.voting or (None, None)), w.top_nodes]

    return a.key == b.key and all(
        x is y if x is None or y is None else np.array_equal(x, y)
        for x, y in zip(parts(a), parts(b), strict=True)
    )


def test_the_words_are_the_searchers_own(
    searcher: Searcher, query: Features, words: QueryWords
) -> None:
    assert _same(words, searcher.words_of(query))
    assert words.key == searcher.words_key == words_key(shipped(), DEFAULT)
    assert words.voting is not None and len(words.voting[0]) > len(words.leaves)  # 2nd leaves
    assert words.top_nodes is not None and words.top_nodes.shape == (len(query), 3)


@pytest.mark.parametrize(
    "tuning",
    [
        DEFAULT,
        DEFAULT.replace("search.rerank_candidates", 0),  # no votes
        DEFAULT.replace("search.verify_probes", 0),  # no top nodes
    ],
    ids=["default", "no-votes", "no-top-nodes"],
)
def test_words_cross_bytes_unchanged(query: Features, tuning: object) -> None:
    made = words_for(query, shipped(), tuning)  # type: ignore[arg-type]
    data = made.to_bytes()
    assert _same(QueryWords.from_bytes(data), made)
    # A leaf (4 B), at most one extra vote (8 B) and three top nodes (6 B) a feature.
    assert len(data) <= 18 * len(query) + 64


def test_the_words_of_a_query_without_features_cross_bytes(searcher: Searcher) -> None:
    blank = extract_features(np.full((300, 300), 128, np.uint8), "query")
    assert len(blank) == 0
    made = words_for(blank, shipped(), DEFAULT)
    back = QueryWords.from_bytes(made.to_bytes())
    assert _same(back, made) and back.fit(shipped(), searcher.words_key, 0)


def test_damaged_words_are_refused(words: QueryWords) -> None:
    data = bytearray(words.to_bytes())
    with pytest.raises(ValueError, match="truncated"):
        QueryWords.from_bytes(bytes(data[:10]))
    flipped = bytearray(data)
    flipped[40] ^= 1
    with pytest.raises(ValueError, match="checksum"):
        QueryWords.from_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="wrong length"):
        QueryWords.from_bytes(_resealed(bytes(data[:-4]) + b"\0\0"))
    with pytest.raises(ValueError, match="not query words"):
        QueryWords.from_bytes(_resealed(b"OCRSNOPE" + bytes(data[8:-4])))


def _resealed(body: bytes) -> bytes:
    """``body`` with a valid checksum: damage the checksum alone would not catch."""
    return body + zlib.crc32(body).to_bytes(4, "little")


def test_words_made_under_another_tuning_or_out_of_the_tree_do_not_fit(
    searcher: Searcher, query: Features, words: QueryWords
) -> None:
    vocab = searcher.vocabulary
    assert words.fit(vocab, searcher.words_key, len(query))
    other = Searcher(searcher.shards, tuning=DEFAULT.replace("search.verify_probes", 2))
    assert not words.fit(vocab, other.words_key, len(query))
    assert not words.fit(vocab, searcher.words_key, len(query) - 1)
    past = QueryWords(words.leaves + vocab.words, None, None, words.key)
    assert not past.fit(vocab, searcher.words_key, len(query))
    top = QueryWords(words.leaves, None, words.top_nodes + vocab.branching, words.key)
    assert not top.fit(vocab, searcher.words_key, len(query))


def test_a_searcher_given_its_words_finds_what_it_finds_alone_without_making_them(
    searcher: Searcher, query: Features, words: QueryWords, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = searcher.search(query)
    assert alone and alone[0].target_id == "coffee"
    made: list[Features] = []
    original = Searcher.words_of

    def counted(self: Searcher, q: Features) -> QueryWords:
        made.append(q)
        return original(self, q)

    monkeypatch.setattr(Searcher, "words_of", counted)
    given = searcher.search(query, words=QueryWords.from_bytes(words.to_bytes()))
    assert given == alone and made == []
    # Words of another tuning are made again, never used as they are.
    other = Searcher(searcher.shards, tuning=DEFAULT.replace("search.verify_probes", 2))
    other.search(query, words=words)
    assert len(made) == 1
