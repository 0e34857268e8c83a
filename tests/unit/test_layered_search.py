"""A searcher layered over a built one: the deltas written since its build answered beside
it, exactly what a rebuild finds, and a rebuild whenever layering cannot stand in."""

from __future__ import annotations

import time

import pytest

from bench.demo_photos import GALLERY, load_gray, rotate
from opencrs.index.bundle import Bundle
from opencrs.index.search import AnySearcher, LayeredSearcher, Searcher, layered_searcher
from opencrs.store.bundles import shard_of
from opencrs.vision.features import Features, extract_features

SHARDS = 3


@pytest.fixture(scope="module")
def feats() -> dict[str, Features]:
    return {name: extract_features(load_gray(name), "target") for name in GALLERY}


@pytest.fixture(scope="module")
def queries() -> dict[str, Features]:
    return {name: extract_features(rotate(load_gray(name), 20), "query") for name in GALLERY}


def _shards(parts: dict[str, Features]) -> list[Bundle]:
    by_shard: list[list[tuple[str, Features]]] = [[] for _ in range(SHARDS)]
    for tid, f in parts.items():
        by_shard[shard_of(tid, SHARDS)].append((tid, f))
    return [Bundle.from_targets(p) for p in by_shard]


def _first(searcher: AnySearcher, query: Features) -> list[str]:
    return [h.target_id for h in searcher.search(query)]


def test_deltas_are_answered_beside_the_built_searcher_as_a_rebuild_answers_them(
    feats: dict[str, Features], queries: dict[str, Features]
) -> None:
    names = list(GALLERY)
    kept, added, removed, replaced = names[:-3], names[-3], names[-2], names[-1]
    base = {n: feats[n] for n in (*kept, removed, replaced)}
    shards = _shards(base)
    built = Searcher(shards)
    # As the bundle store applies deltas: each shard layered over the one searched.
    changed = []
    for shard in shards:
        if added and shard_of(added, SHARDS) == shards.index(shard):
            shard = shard.with_target(added, feats[added])
        if removed in shard:
            shard = shard.without_target(removed)
        if replaced in shard:
            shard = shard.with_target(replaced, feats[kept[0]])  # now shows another image
        changed.append(shard)
    layered = layered_searcher(built, changed)
    assert isinstance(layered, LayeredSearcher) and layered.built is built
    assert layered.hidden == {removed, replaced}
    assert sorted(layered.target_ids()) == sorted([*kept, added, replaced])
    final = {n: feats[n] for n in (*kept, added)} | {replaced: feats[kept[0]]}
    rebuilt = Searcher(_shards(final))  # what a rebuild searches
    for name in names:
        assert sorted(_first(layered, queries[name])) == sorted(_first(rebuilt, queries[name]))
    assert _first(layered, queries[added]) == [added]
    assert _first(layered, queries[removed]) == []
    assert replaced not in _first(layered, queries[replaced])
    assert sorted(_first(layered, queries[kept[0]])) == sorted([kept[0], replaced])
    hits = layered.search_image(rotate(load_gray(added), 20))
    assert [h.target_id for h in hits] == [added]
    # A later delta layers over the same build, not over the layered searcher.
    again = layered_searcher(layered, [s.without_target(added) for s in changed])
    assert isinstance(again, LayeredSearcher) and again.built is built
    assert _first(again, queries[added]) == []


def test_a_rebuild_is_asked_for_whenever_layering_cannot_stand_in(
    feats: dict[str, Features],
) -> None:
    names = list(GALLERY)
    shards = _shards({n: feats[n] for n in names[:-1]})
    built = Searcher(shards)
    new = names[-1]
    k = shard_of(new, SHARDS)
    one_more = [s.with_target(new, feats[new]) if i == k else s for i, s in enumerate(shards)]
    assert layered_searcher(None, shards) is None
    assert layered_searcher(built, shards) is built  # nothing changed
    assert layered_searcher(built, one_more, max_recent=0) is None  # too many changes
    assert layered_searcher(built, shards[:-1]) is None  # another shard count
    layered = layered_searcher(built, one_more)
    assert isinstance(layered, LayeredSearcher)
    # A shard downloaded afresh (a fold), or one whose arrays something read, is no layer.
    downloaded = [Bundle.from_bytes(s.to_bytes()) for s in shards]
    assert layered_searcher(built, downloaded) is None
    made = [s.with_target(new, feats[new]) if i == k else s for i, s in enumerate(shards)]
    assert made[k].descriptors.shape[0] > 0
    assert layered_searcher(built, made) is None
    undone = [s.without_target(new) if i == k else s for i, s in enumerate(one_more)]
    assert layered_searcher(layered, undone) is built  # back to what was built
    later = [s.without_target(names[0]) for s in one_more]
    time.sleep(0.01)
    assert layered_searcher(layered, later, max_age_s=0.0) is None  # layered for too long
    assert isinstance(layered_searcher(layered, later), LayeredSearcher)


def test_hidden_targets_take_no_shortlist_place_and_are_never_answered(
    feats: dict[str, Features], queries: dict[str, Features]
) -> None:
    names = list(GALLERY)
    built = Searcher(_shards({n: feats[n] for n in names}))
    target, other = names[0], names[1]
    assert _first(built, queries[target]) == [target]
    hidden = frozenset([target])
    assert built.search(queries[target], hidden=hidden) == []
    assert [h.target_id for h in built.search(queries[other], hidden=hidden)] == [other]
    whole = extract_features(load_gray(target), "query")  # the image itself: also seen whole
    assert target in [h.target_id for h in built.search(whole)]
    assert built.search(whole, hidden=hidden) == []
    qwords = built.query_words(queries[target])
    assert built._rows_of(hidden).tolist() == [built.target_ids().index(target)]
    assert built.target_ids().index(target) not in built._shortlist(qwords, queries[target], hidden)
