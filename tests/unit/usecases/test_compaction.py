"""usecases.compaction.Compaction and the request it reads: a fold is asked for one
shard or a whole gallery, and a request that names neither properly is refused with a
message saying what is wrong."""

from __future__ import annotations

import pytest

from opencrs.bootstrap import Services
from opencrs.domain.compaction import CompactionRequest, MalformedCompactionRequest
from opencrs.store.bundles import shard_of
from tests.fakes import fakes_of
from tests.unit.usecases.conftest import GALLERY


@pytest.mark.parametrize(
    "request_",
    [CompactionRequest("g"), CompactionRequest("g", 0), CompactionRequest("a/b", 1023)],
)
def test_a_request_survives_its_json(request_: CompactionRequest) -> None:
    assert CompactionRequest.from_json(request_.to_json()) == request_


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{", "must be JSON"),
        ("[1]", "must be a JSON object"),
        ("{}", "names its gallery"),
        ('{"gallery": 7}', "names its gallery"),
        ('{"gallery": "g", "shard": -1}', "is a number >= 0"),
        ('{"gallery": "g", "shard": "3"}', "is a number >= 0"),
        ('{"gallery": "g", "shard": true}', "is a number >= 0"),
        ('{"gallery": "g", "shard": 1.5}', "is a number >= 0"),
    ],
)
def test_a_malformed_request_says_what_is_wrong(body: str, message: str) -> None:
    with pytest.raises(MalformedCompactionRequest, match=message):
        CompactionRequest.from_json(body)


def test_folds_the_shard_asked_for_once(app: Services, ids: dict[str, str]) -> None:
    shard = shard_of(ids["coffee"], fakes_of(app).bundles.shards)
    assert app.compaction.fold(CompactionRequest(GALLERY, shard)) == [shard]
    assert app.compaction.fold(CompactionRequest(GALLERY, shard)) == []  # a duplicate


def test_folds_every_shard_written_since_its_last_fold(app: Services, ids: dict[str, str]) -> None:
    count = fakes_of(app).bundles.shards
    written = sorted({shard_of(t, count) for t in ids.values()})
    assert app.compaction.fold(CompactionRequest(GALLERY)) == written
    assert app.compaction.fold(CompactionRequest(GALLERY)) == []


def test_an_unknown_gallery_or_shard_is_nothing_to_fold(app: Services) -> None:
    assert app.compaction.fold(CompactionRequest("nobody")) == []
    assert app.compaction.fold(CompactionRequest(GALLERY, 99)) == []
