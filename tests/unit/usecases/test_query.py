"""usecases.query.SimilarityEngine: only searchable records are answered, and the warm
searcher is rebuilt exactly when the manifest names other shard objects."""

from __future__ import annotations

import pytest

from bench.demo_photos import load_gray
from opencrs.bootstrap import Services
from opencrs.domain.errors import BlobMissing
from opencrs.domain.target import FAILED, PENDING, TargetRecord
from opencrs.usecases.query import SimilarityEngine
from tests.fakes import FakeBundleStore, FakeManifest, FakeShards, FakeStores, fakes_of
from tests.unit.usecases.conftest import GALLERY


def found(app: Services, name: str) -> list[str]:
    return [m.record.target_id for m in app.engine.find(GALLERY, load_gray(name))]


def rewrite(fakes: FakeStores, target_id: str, **changes: object) -> TargetRecord:
    return fakes.targets.overwrite(fakes.targets.get(GALLERY, target_id).evolve(**changes))


def test_finds_the_target_an_image_depicts(app: Services, ids: dict[str, str]) -> None:
    matches = app.engine.find(GALLERY, load_gray("coffee"))
    assert [m.record.target_id for m in matches] == [ids["coffee"]]
    assert matches[0].record.name == "coffee" and matches[0].hit.target_id == ids["coffee"]
    assert found(app, "hubble") == []


def test_a_gallery_without_bundle_answers_nothing(app: Services) -> None:
    assert app.engine.searcher("empty") is None
    assert app.engine.find("empty", load_gray("coffee")) == []


@pytest.mark.parametrize("changes", [{"active": "0"}, {"state": PENDING}, {"state": FAILED}, None])
def test_only_searchable_records_are_answered(
    app: Services, ids: dict[str, str], changes: dict[str, str] | None
) -> None:
    """The bundle still holds coffee; the record decides (None: the record is gone)."""
    fakes = fakes_of(app)
    if changes is None:
        del fakes.targets.records[(GALLERY, ids["coffee"])]
    else:
        rewrite(fakes, ids["coffee"], **changes)
    assert ids["coffee"] in fakes.bundles.target_ids(GALLERY)
    assert found(app, "coffee") == []
    assert found(app, "rocket") == [ids["rocket"]]


def test_searcher_is_kept_while_the_shard_keys_stay(app: Services, ids: dict[str, str]) -> None:
    fakes = fakes_of(app)
    first = app.engine.searcher(GALLERY)
    fakes.bundles.commit(GALLERY, ids["coffee"], lambda b: b)  # new version, same shards
    assert app.engine.searcher(GALLERY) is first


def test_searcher_is_rebuilt_when_a_shard_changes(app: Services, ids: dict[str, str]) -> None:
    fakes = fakes_of(app)
    first = app.engine.searcher(GALLERY)
    assert found(app, "coffee") == [ids["coffee"]]
    fakes.bundles.commit(GALLERY, ids["coffee"], lambda b: b.without_target(ids["coffee"]))
    assert app.engine.searcher(GALLERY) is not first
    assert found(app, "coffee") == []


class MissingOnce(FakeBundleStore):
    """A shard superseded twice between reading the manifest and loading it, ``misses``
    times in a row."""

    def __init__(self, inner: FakeBundleStore, misses: int) -> None:
        super().__init__(inner.shards)
        self.manifests, self.objects = inner.manifests, inner.objects
        self.misses = misses

    def load(self, manifest: FakeManifest) -> FakeShards:
        if self.misses > 0:
            self.misses -= 1
            raise BlobMissing("bundles/superseded")
        return super().load(manifest)


def test_a_superseded_shard_is_looked_up_again(app: Services, ids: dict[str, str]) -> None:
    fakes = fakes_of(app)
    stores = FakeStores(fakes.targets, fakes.blobs, MissingOnce(fakes.bundles, 2))
    assert [
        m.record.target_id for m in SimilarityEngine(stores).find(GALLERY, load_gray("coffee"))
    ] == [ids["coffee"]]


def test_a_bundle_that_keeps_changing_is_an_error(app: Services) -> None:
    fakes = fakes_of(app)
    stores = FakeStores(fakes.targets, fakes.blobs, MissingOnce(fakes.bundles, 3))
    with pytest.raises(RuntimeError, match="kept changing"):
        SimilarityEngine(stores).searcher(GALLERY)
