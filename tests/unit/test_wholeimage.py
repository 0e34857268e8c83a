"""The whole-image check: the same picture under blur, noise and exposure is accepted;
unrelated pictures, rotated borders, negatives, flat images and geometric changes are not;
and the Searcher uses it for what local features miss."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from bench.demo_photos import GALLERY, NEGATIVES, crop, load_gray, rotate, scale
from opencrs.index.bundle import Bundle
from opencrs.index.search import Searcher
from opencrs.vision.features import Features, UnsupportedFormat, extract_features, make_features
from opencrs.vision.params import DEFAULT, MATCHING, WHOLE_IMAGE
from opencrs.vision.wholeimage import (
    THUMB_SIDE,
    Thumbnail,
    phash_distances,
    residual,
    same_picture,
    thumbnail,
)


def _degrade(gray: np.ndarray, seed: int, *, sigma: float, gain: float, noise: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = (cv2.GaussianBlur(gray, (0, 0), sigma) if sigma else gray).astype(np.float32) * gain
    out += rng.normal(0, noise, out.shape).astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _jpeg(gray: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


PHOTOS = GALLERY + NEGATIVES


def test_thumbnail_is_small_deterministic_and_read_only() -> None:
    gray = load_gray("coffee")
    a, b = thumbnail(gray), thumbnail(gray.copy())
    assert a.pixels.shape == (THUMB_SIDE, THUMB_SIDE) and a.pixels.dtype == np.float32
    stored = a.rounded()
    assert stored.phash == a.phash and np.array_equal(stored.pixels, a.stored())
    assert a.stored().dtype == np.uint8 and np.abs(stored.pixels - a.pixels).max() <= 0.5
    assert a.phash == b.phash and np.array_equal(a.pixels, b.pixels)
    assert 0 <= a.phash < 2**64
    with pytest.raises(ValueError):
        a.pixels[0, 0] = 1
    with pytest.raises(ValueError):
        Thumbnail(phash=0, pixels=np.zeros((16, 16), np.uint8))
    # Any shape a decoder can produce, down to one pixel.
    for shape in ((1, 1), (1, 5000), (3000, 2), (40, 33)):
        assert thumbnail(np.zeros(shape, np.uint8)).pixels.shape == (THUMB_SIDE, THUMB_SIDE)


@pytest.mark.parametrize("name", PHOTOS)
def test_the_same_picture_under_global_degradations_is_accepted(name: str) -> None:
    """Strong blur, a quarter exposure with noise, heavy JPEG and half the size: what
    bench.quality's photometric families do to a photo. (Its scale 0.2 family is measured
    on the bench's larger photos, all accepted: a third of the 512 px brick wall, 170 px
    of aliased texture, has a residual of 0.29, beyond the threshold; local features find
    it.)"""
    gray = load_gray(name)
    target = thumbnail(gray)
    seed = sum(map(ord, name))
    views = {
        "strong blur": _degrade(gray, seed, sigma=3.0, gain=1.0, noise=3.0),
        "low light": _degrade(gray, seed, sigma=0.0, gain=0.25, noise=3.0),
        "dim, soft": _degrade(gray, seed, sigma=1.5, gain=0.6, noise=5.0),
        "JPEG q15": _jpeg(gray, 15),
        "scale 0.5": scale(gray, 0.5),
    }
    for label, view in views.items():
        q = thumbnail(view)
        r = residual(q, target)
        assert r <= WHOLE_IMAGE.max_residual, (label, r)
        assert same_picture(q, target), label


def test_unrelated_pictures_disagree_whatever_their_hashes() -> None:
    """Every pair of different demo photos: upright, with a wide margin; and both rotated
    by the same small or large angle, whose black corners agree while the pictures do not
    (measured: brick against gravel, two near-flat textures at 32 px, 0.35 at 5 degrees)."""
    thumbs = {n: thumbnail(load_gray(n)) for n in PHOTOS}
    upright = min(residual(thumbs[a], thumbs[b]) for a, b in itertools.permutations(PHOTOS, 2))
    assert upright > 4 * WHOLE_IMAGE.max_residual
    for angle in (5, 30):
        rotated = {n: thumbnail(rotate(load_gray(n), angle)) for n in PHOTOS}
        for a, b in itertools.permutations(PHOTOS, 2):
            assert not same_picture(rotated[a], rotated[b]), (angle, a, b)
            assert residual(rotated[a], rotated[b]) > 1.2 * WHOLE_IMAGE.max_residual


def test_flat_pictures_framed_by_the_same_padding_disagree() -> None:
    """Two different, nearly flat pictures rotated by the same small angle and JPEG-encoded
    (their padding is then not exactly black): all they share is the padding's outline.
    Found by bench.speed --negatives at 10k targets (a flat inverted star field against a
    flat rotated crop, residual 0.25); measured 0.20 and accepted before the centre's
    contrast was required."""
    light = np.full((600, 600), 240, np.uint8)
    for i in range(0, 600, 60):
        cv2.line(light, (i, 0), (600 - i, 600), 225, 1)
    grey = np.tile(np.linspace(120, 135, 600), (600, 1)).astype(np.uint8)
    for angle in range(2, 45, 3):
        q = thumbnail(_jpeg(rotate(light, angle), 85))
        t = thumbnail(_jpeg(rotate(grey, angle), 85)).rounded()
        assert not same_picture(q, t), angle
        assert residual(q, t) > 2 * WHOLE_IMAGE.max_residual


def test_geometric_changes_are_left_to_local_features() -> None:
    gray = load_gray("astronaut")
    target = thumbnail(gray)
    for view in (rotate(gray, 90), rotate(gray, 20), crop(gray, 0.6), gray[:, ::-1]):
        assert not same_picture(thumbnail(view), target)


def test_negatives_and_flat_pictures_never_compare() -> None:
    gray = load_gray("camera")
    assert residual(thumbnail(255 - gray), thumbnail(gray)) == float("inf")
    blank = thumbnail(np.full((300, 400), 128, np.uint8))
    assert residual(blank, blank) == float("inf")
    assert residual(thumbnail(gray), blank) == float("inf")
    assert not same_picture(blank, blank)


def test_phash_distances_count_differing_bits() -> None:
    q = Thumbnail(phash=0b1011, pixels=np.zeros((THUMB_SIDE, THUMB_SIDE), np.uint8))
    hashes = np.array([0b1011, 0b0011, 0, 2**64 - 1], dtype=np.uint64)
    assert phash_distances(q, hashes).tolist() == [0, 1, 3, 61]


def test_features_carry_the_thumbnail_through_their_bytes() -> None:
    gray = load_gray("hubble")
    f = extract_features(gray, "target")
    assert f.thumbnail is not None and f.thumbnail.phash == thumbnail(gray).phash
    back = Features.from_bytes(f.to_bytes())
    assert back.thumbnail is not None and back.thumbnail.phash == f.thumbnail.phash
    assert np.array_equal(back.thumbnail.pixels, f.thumbnail.pixels)
    # Without a thumbnail (stored before they existed) the flag says so.
    bare = make_features(f.xy, f.angle, f.descriptors, f.width, f.height)
    assert Features.from_bytes(bare.to_bytes()).thumbnail is None
    # A blank image has no corners but still has a thumbnail.
    assert extract_features(np.full((300, 300), 200, np.uint8), "query").thumbnail is not None


def test_features_of_an_older_version_or_a_bad_flag_are_refused() -> None:
    """Version 1 (stored before thumbnails, no flag) is no longer read; a flag other than
    0 or 1 is corruption."""
    import struct
    import zlib

    f = extract_features(load_gray("coins"), "target")
    body = b"".join(
        (
            struct.pack("<8sHHIII", b"OCRSFEAT", 1, 32, f.width, f.height, len(f)),
            f.xy.astype("<f4").tobytes(),
            f.angle.astype("<f4").tobytes(),
            f.descriptors.tobytes(),
        )
    )
    with pytest.raises(UnsupportedFormat, match="version 1 is not read"):
        Features.from_bytes(body + struct.pack("<I", zlib.crc32(body)))
    flagged = bytearray(f.to_bytes()[:-4])
    flagged[24 + len(f) * 44] = 2
    with pytest.raises(ValueError):
        Features.from_bytes(bytes(flagged) + struct.pack("<I", zlib.crc32(bytes(flagged))))


# -- in the Searcher ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def soft_gallery() -> tuple[Bundle, np.ndarray]:
    """Demo targets plus a soft one: the retina photo blurred until a further blur, a
    darker exposure and noise leave local features nothing to match (as the bench's
    stormy sky under its photometric families)."""
    soft = cv2.GaussianBlur(load_gray("retina"), (0, 0), 6.0)
    parts = [(n, extract_features(load_gray(n), "target")) for n in ("coffee", "page", "coins")]
    parts.append(("soft", extract_features(soft, "target")))
    return Bundle.from_targets(parts), soft


def test_a_soft_target_under_blur_and_noise_is_found_whole(
    soft_gallery: tuple[Bundle, np.ndarray],
) -> None:
    bundle, soft = soft_gallery
    query = extract_features(_degrade(soft, 1, sigma=3.0, gain=0.3, noise=4.0), "query")
    hits = Searcher(bundle).search(query)
    assert [h.target_id for h in hits] == ["soft"]
    assert hits[0].whole_image and hits[0].inliers == 0
    # Local features alone miss it: with the whole-image check off, nothing is found.
    assert Searcher(bundle, tuning=DEFAULT.replace("whole.max_residual", -1.0)).search(query) == []


def test_a_query_without_corners_still_gets_the_whole_image_check() -> None:
    soft = cv2.GaussianBlur(load_gray("retina"), (0, 0), 16.0)
    bundle = Bundle.from_targets([("soft", extract_features(soft, "target"))])
    query = extract_features(_degrade(soft, 2, sigma=2.0, gain=0.8, noise=0.0), "query")
    assert len(query) == 0
    assert [h.target_id for h in Searcher(bundle).search(query)] == ["soft"]


def test_local_hits_come_first_and_are_not_repeated(
    soft_gallery: tuple[Bundle, np.ndarray],
) -> None:
    bundle, _ = soft_gallery
    hits = Searcher(bundle).search(extract_features(load_gray("coffee"), "query"))
    assert [h.target_id for h in hits] == ["coffee"]
    assert not hits[0].whole_image and hits[0].inliers >= MATCHING.min_inliers


def test_targets_without_thumbnails_are_skipped(soft_gallery: tuple[Bundle, np.ndarray]) -> None:
    bundle, soft = soft_gallery
    f = bundle.features_of("soft")
    bare = bundle.with_target(
        "soft", make_features(f.xy, f.angle, f.descriptors, f.width, f.height)
    )
    query = extract_features(_degrade(soft, 1, sigma=3.0, gain=0.3, noise=4.0), "query")
    assert Searcher(bare).search(query) == []
