"""Real phone photos as a regression slice: a few SMVS DVD-cover photos (``bench.real``; the
data set lives outside the repository) must find their cover first in a gallery of the 50
references plus 200 bench.speed distractors, and unrelated photos must find nothing.

The photos were chosen on 2026-12-06 among those the engine found first at this gallery, two
per phone, with mid-range inlier counts (103-141; the weakest hits found have ~20): a loss
of recall on real photos shows here before the benchmark is run. Skipped where the data set
is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import real
from bench.demo_photos import GALLERY, NEGATIVES, PHOTO_DIR, photo
from bench.quality import encode
from bench.speed import distractors
from opencrs.index.bundle import Bundle
from opencrs.index.search import Searcher
from opencrs.vision.features import Features, extract_features
from opencrs.vision.image import check_and_decode

PHOTOS = {
    "Canon": ("010", "029"),
    "Droid": ("002", "041"),
    "E63": ("004", "023"),
    "Palm": ("009", "040"),
}
DISTRACTORS = 200
CASES = [(phone, stem) for phone, stems in PHOTOS.items() for stem in stems]


def _features(data: bytes) -> Features:
    return extract_features(check_and_decode(data).gray, "target")


@pytest.fixture(scope="module")
def photo_dir() -> Path:
    directory = real.default_dir()
    if not (directory / "Reference").is_dir():
        pytest.skip(f"real photos not found: looked for {directory} (set ${real.ENV})")
    return directory


@pytest.fixture(scope="module")
def searcher(photo_dir: Path) -> Searcher:
    """The 50 references plus distractors made from the demo gallery photos (none of which
    is queried here, so no distractor is a legitimate answer)."""
    refs = real.load(photo_dir).references
    assert len(refs) == 50, f"expected the 50 dev covers in {photo_dir / 'Reference'}"
    parts = [(tid, _features(data)) for tid, data in refs.items()]
    sources = [str(PHOTO_DIR / f"{name}.jpg") for name in GALLERY]
    for i, img in enumerate(distractors(sources, DISTRACTORS)):
        parts.append((f"distractor-{i:06d}", _features(encode(img, 85))))
    return Searcher(Bundle.from_targets(parts))


@pytest.mark.parametrize(("phone", "stem"), CASES)
def test_a_phone_photo_finds_its_cover_first(
    photo_dir: Path, searcher: Searcher, phone: str, stem: str
) -> None:
    data = real.client_bytes(photo_dir / phone / f"{stem}.jpg")
    hits = searcher.search_image(check_and_decode(data).gray)
    assert [h.target_id for h in hits][:1] == [real.target_id(stem)], hits[:3]


@pytest.mark.parametrize("name", NEGATIVES)
def test_an_unrelated_photo_finds_nothing(searcher: Searcher, name: str) -> None:
    assert searcher.search_image(check_and_decode(photo(name)).gray) == []
