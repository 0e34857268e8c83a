"""usecases.images.ImagePreparer: what an image must pass to become a target, and the
grades the grade routes report."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bench.demo_photos import load_gray, photo
from opencrs.bootstrap import Services
from opencrs.domain.errors import SimilarTargetsExist
from opencrs.usecases.images import PreparedImage
from opencrs.vision.image import ImageError
from opencrs.vision.params import IMAGE_LIMITS
from opencrs.vision.quality import QUALITY_FIELDS
from tests.fakes import FakeStores, clone, fake_services
from tests.unit.usecases.conftest import GALLERY


@pytest.fixture(scope="module")
def hubble(seeded: tuple[FakeStores, dict[str, str]]) -> PreparedImage:
    """hubble prepared once (not in the seeded gallery, so it passes the similarity check)."""
    return fake_services(stores=clone(seeded[0])).images.prepare(GALLERY, photo("hubble"), "0")


def flat_png() -> bytes:
    ok, buf = cv2.imencode(".png", np.full((240, 320), 128, dtype=np.uint8))
    assert ok
    return buf.tobytes()


def test_prepare_derives_size_features_and_grades(hubble: PreparedImage) -> None:
    height, width = load_gray("hubble").shape
    assert (hubble.format, hubble.width, hubble.height) == ("jpeg", width, height)
    assert hubble.data == photo("hubble")
    assert len(hubble.features) > 100
    assert set(hubble.grades) == set(QUALITY_FIELDS)
    assert all(0 <= g <= 4 for g in hubble.grades.values())


def test_grades_ignore_every_gallery(app: Services, hubble: PreparedImage) -> None:
    """The grade routes grade an image already in the gallery instead of refusing it."""
    assert app.images.grades(photo("hubble")) == hubble.grades
    assert set(app.images.grades(photo("coffee"))) == set(QUALITY_FIELDS)


def test_an_image_without_texture_grades_unusable(app: Services) -> None:
    assert set(app.images.grades(flat_png()).values()) == {-1}


def test_a_similar_image_is_refused(app: Services, ids: dict[str, str]) -> None:
    with pytest.raises(SimilarTargetsExist) as refused:
        app.images.prepare(GALLERY, photo("coffee"), "0")
    assert refused.value.code == 419
    assert ids["coffee"] in str(refused.value)


def test_allow_similar_and_exclude_skip_the_refusal(app: Services, ids: dict[str, str]) -> None:
    assert app.images.prepare(GALLERY, photo("coffee"), "1").width > 0
    assert app.images.prepare(GALLERY, photo("coffee"), "0", exclude=ids["coffee"]).width > 0


def test_another_gallery_holds_nothing_similar(app: Services) -> None:
    assert app.images.prepare("elsewhere", photo("coffee"), "0").format == "jpeg"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"plain text, not a picture", 427),
        (b"\xff\xd8\xff" + bytes(IMAGE_LIMITS.max_bytes), 422),
        (b"\x89PNG\r\n\x1a\n" + b"broken", 427),
    ],
    ids=["not-an-image", "too-large", "broken-png"],
)
def test_images_that_cannot_be_targets(app: Services, data: bytes, code: int) -> None:
    with pytest.raises(ImageError) as refused:
        app.images.prepare(GALLERY, data, "1")
    assert refused.value.code == code
