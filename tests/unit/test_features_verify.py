"""ORB extraction, the Features encoding, and one-to-one geometric verification."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from bench.demo_photos import crop, load_gray, rotate, scale, tilt
from opencrs.vision.features import Features, extract_features, make_features, normalise_exposure
from opencrs.vision.params import MATCHING, QUERY, TARGET
from opencrs.vision.verify import TwoNearest, Verification, ratio_matches, verify


@pytest.fixture(scope="module")
def astronaut_target() -> Features:
    return extract_features(load_gray("astronaut"), "target")


def test_target_features_are_capped_spread_and_in_original_frame() -> None:
    gray = load_gray("hubble")  # 800x697: downscaled to 640 for extraction
    f = extract_features(gray, "target")
    assert len(f) == TARGET.features
    assert f.xy.dtype == np.float32 and f.xy.shape == (len(f), 2)
    assert f.angle.dtype == np.float32 and f.angle.shape == (len(f),)
    assert f.descriptors.dtype == np.uint8 and f.descriptors.shape == (len(f), 32)
    assert (f.width, f.height) == (800, 697)
    assert f.xy[:, 0].max() > 700 and f.xy[:, 1].max() > 600  # scaled back past 640
    assert f.xy.min() >= 0 and f.xy[:, 0].max() < 800 and f.xy[:, 1].max() < 697
    g = TARGET.grid
    cells = (f.xy[:, 1] * g // 697).astype(int) * g + (f.xy[:, 0] * g // 800).astype(int)
    assert len(np.unique(cells)) >= 0.8 * g * g


def test_query_role_keeps_more_features_than_target() -> None:
    gray = load_gray("motorcycle")
    assert len(extract_features(gray, "query")) > 2 * len(extract_features(gray, "target"))


def test_small_query_is_upscaled_but_reported_in_its_own_frame() -> None:
    small = scale(load_gray("coffee"), 0.3)  # 180x120
    f = extract_features(small, "query")
    assert len(f) > 300
    assert (f.width, f.height) == (180, 120)
    assert f.xy[:, 0].max() < 180 and f.xy[:, 1].max() < 120


def test_extraction_is_deterministic() -> None:
    gray = load_gray("rocket")
    a, b = extract_features(gray, "query"), extract_features(gray, "query")
    assert np.array_equal(a.descriptors, b.descriptors) and np.array_equal(a.xy, b.xy)


def test_blank_image_has_no_features_and_never_verifies(astronaut_target: Features) -> None:
    blank = extract_features(np.full((300, 300), 200, np.uint8), "query")
    assert len(blank) == 0 and blank.descriptors.shape == (0, 32)
    assert verify(blank, astronaut_target) is None
    assert verify(astronaut_target, blank) is None


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError):
        extract_features(load_gray("coins"), "gallery")
    with pytest.raises(ValueError):
        extract_features(np.zeros((10, 10, 3), np.uint8), "query")


def test_features_round_trip(astronaut_target: Features) -> None:
    data = astronaut_target.to_bytes()
    back = Features.from_bytes(data)
    assert np.array_equal(back.xy, astronaut_target.xy)
    assert np.array_equal(back.angle, astronaut_target.angle)
    assert np.array_equal(back.descriptors, astronaut_target.descriptors)
    assert (back.width, back.height) == (512, 512)
    assert len(data) < len(astronaut_target) * 46  # 8 + 4 + 32 bytes per feature + header


def test_features_from_corrupt_bytes_raise(astronaut_target: Features) -> None:
    data = astronaut_target.to_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    for bad in (b"", data[:10], data[:-1], bytes(flipped), b"XXXXXXXX" + data[8:]):
        with pytest.raises(ValueError):
            Features.from_bytes(bad)


def _project(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float64), h).reshape(-1, 2)


def test_verify_recovers_the_true_homography(astronaut_target: Features) -> None:
    """Rotating 90° CCW maps target (x, y) to query (y, W-1-x); scaling halves coordinates."""
    q = extract_features(rotate(load_gray("astronaut"), 90), "query")
    v = verify(q, astronaut_target)
    assert isinstance(v, Verification) and v.inliers >= 200
    pts = np.array([[100.0, 50.0], [400.0, 300.0], [256.0, 256.0]])
    expected = np.stack([pts[:, 1], 511 - pts[:, 0]], axis=1)
    assert np.abs(_project(v.homography, pts) - expected).max() < 3.0

    q = extract_features(scale(load_gray("astronaut"), 0.5), "query")
    v = verify(q, astronaut_target)
    assert v is not None
    assert np.abs(_project(v.homography, pts) - (pts + 0.5) * 0.5 - 0.5).max() < 2.0


@pytest.mark.parametrize(
    "transform",
    [
        lambda g: rotate(g, 30),
        lambda g: tilt(g, 40),
        lambda g: crop(g, 0.6),
    ],
    ids=["rotate30", "tilt40", "crop60"],
)
def test_verify_accepts_transformed_copies(astronaut_target: Features, transform) -> None:
    q = extract_features(transform(load_gray("astronaut")), "query")
    v = verify(q, astronaut_target)
    assert v is not None
    assert v.inliers >= 3 * MATCHING.min_inliers
    assert v.score > 0


@pytest.mark.parametrize("other", ["coffee", "chelsea", "brick", "text"])
def test_verify_rejects_unrelated_photos(astronaut_target: Features, other: str) -> None:
    assert verify(extract_features(load_gray(other), "query"), astronaut_target) is None


def test_verify_rejects_a_mirror_image(astronaut_target: Features) -> None:
    """A mirrored print is not the same picture: the outline would flip its winding."""
    mirrored = np.ascontiguousarray(load_gray("astronaut")[:, ::-1])
    assert verify(extract_features(mirrored, "query"), astronaut_target) is None


def test_score_prefers_the_cleaner_view(astronaut_target: Features) -> None:
    g = load_gray("astronaut")
    clean = verify(extract_features(g, "query"), astronaut_target)
    tilted = verify(extract_features(tilt(g, 40), "query"), astronaut_target)
    assert clean is not None and tilted is not None
    assert clean.score > tilted.score


def test_outline_sanity_check() -> None:
    """Pastec's rule on hand-made outlines in a 1000x750 query frame."""
    from opencrs.vision.verify import _quad_ok

    def ok(*pts: tuple[float, float]) -> bool:
        return _quad_ok(np.array(pts, dtype=np.float64), 1000.0, 750.0)

    assert ok((100, 100), (600, 120), (580, 500), (90, 480))  # a tilted poster
    assert ok((-500, -400), (1500, -400), (1500, 1100), (-500, 1100))  # tight crop
    assert not ok((100, 100), (600, 100), (100, 500), (600, 500))  # bow-tie
    assert not ok((100, 100), (90, 480), (580, 500), (600, 120))  # mirrored winding
    assert not ok((100, 100), (600, 100), (300, 130), (100, 500))  # concave
    assert not ok((500, 500), (510, 500), (510, 507), (500, 507))  # far too small
    assert not ok((0, 0), (1e5, 0), (1e5, 1e5), (0, 1e5))  # implausibly large
    assert ok((100, 100), (900, 100), (900, 130), (100, 130))  # a long thin banner
    assert not ok((100, 100), (900, 100), (502, 500), (498, 500))  # collapsing to a triangle
    assert not ok((0, 0), (np.nan, 0), (1, 1), (0, 1))


def test_orientation_filter_keeps_the_dominant_rotation() -> None:
    from opencrs.vision.verify import orientation_filter

    rng = np.random.default_rng(3)
    true = np.mod(355.0 + rng.normal(0, 8, 200), 360.0)  # wraps around 0°
    noise = rng.uniform(0, 360, 100)
    keep = orientation_filter(np.concatenate([true, noise]))
    assert keep[:200].mean() > 0.97
    assert keep[200:].mean() < 0.35


@pytest.mark.parametrize("shape", [(1, 1), (2, 50), (10, 16384), (16384, 10), (3, 3000)])
def test_degenerate_shapes_give_no_features_instead_of_crashing(shape: tuple[int, int]) -> None:
    g = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    for role in ("target", "query"):
        f = extract_features(g, role)
        assert len(f) == 0 and (f.height, f.width) == shape


def test_bucketed_matching_equals_brute_force_within_one_bucket_and_respects_buckets() -> None:
    rng = np.random.default_rng(5)
    target_desc = rng.integers(0, 256, (40, 32), dtype=np.uint8)
    query_desc = target_desc[:20].copy()
    query_desc[:, 0] ^= 0b11  # 2 bits from their originals, ~128 from everything else

    def feats(desc: np.ndarray) -> Features:
        n = len(desc)
        return make_features(rng.uniform(0, 600, (n, 2)), np.zeros(n), desc, 640, 480)

    q, t = feats(query_desc), feats(target_desc)
    brute = ratio_matches(q, t)
    one_bucket = ratio_matches(q, t, np.zeros((20, 1), np.int64), np.zeros(40, np.int64))
    assert [a.tolist() for a in one_bucket] == [a.tolist() for a in brute]
    assert brute[0].tolist() == list(range(20)) and brute[1].tolist() == list(range(20))
    # Target features 0-9 in bucket 1, the rest in bucket 2; query rows probe bucket 2 only
    # except rows 0-4, which probe 1 then 2: rows 5-9 lose their true match.
    tb = np.where(np.arange(40) < 10, 1, 2)
    qb = np.full((20, 2), 2)
    qb[:5, 0] = 1
    qi, ti = ratio_matches(q, t, qb, tb)
    assert qi.tolist() == [*range(5), *range(10, 20)] and ti.tolist() == qi.tolist()


def test_probes_added_in_stages_give_the_matches_of_all_at_once() -> None:
    """Verification adds a query's first probe, then the others; a label a row probed
    already (here column 2 repeats column 0 for some rows) is never compared twice, which
    would make a feature its own second-nearest and fail the ratio test."""
    rng = np.random.default_rng(11)
    for trial in range(40):
        m, n, labels = int(rng.integers(2, 200)), int(rng.integers(1, 300)), 6
        target = rng.integers(0, 256, (m, 32), dtype=np.uint8)
        query = target[rng.integers(0, m, n)].copy()
        query[:, :2] ^= rng.integers(0, 256, (n, 2), dtype=np.uint8)
        qb = rng.integers(0, labels, (n, 3))
        qb[: n // 3, 2] = qb[: n // 3, 0]
        tb = rng.integers(0, labels, m)
        feats = [
            make_features(np.zeros((len(d), 2)), np.zeros(len(d)), d, 64, 64)
            for d in (query, target)
        ]
        at_once = ratio_matches(feats[0], feats[1], qb, tb)
        staged = TwoNearest(query, target, tb)
        staged.add(qb, 0, 1)
        staged.add(qb, 1)
        assert [a.tolist() for a in staged.matches()] == [a.tolist() for a in at_once], trial


def test_a_candidate_short_of_matches_in_its_first_probe_is_rejected_there(
    astronaut_target: Features,
) -> None:
    """With first_probe_matches set, only the first probe decides whether the others are
    compared: a true match whose first probe holds none of its features is rejected, and
    one whose first probe holds them all verifies exactly as without the stage."""
    query = extract_features(rotate(load_gray("astronaut"), 20), "query")
    target_buckets = np.ones(len(astronaut_target), dtype=np.int64)
    elsewhere_first = np.tile([0, 1], (len(query), 1))
    here_first = elsewhere_first[:, ::-1]
    staged = replace(MATCHING, first_probe_matches=MATCHING.min_inliers)
    unstaged = replace(MATCHING, first_probe_matches=0)
    plain = verify(query, astronaut_target, elsewhere_first, target_buckets, unstaged)
    assert plain is not None
    assert verify(query, astronaut_target, elsewhere_first, target_buckets, staged) is None
    kept = verify(query, astronaut_target, here_first, target_buckets, staged)
    assert kept is not None and kept.inliers == plain.inliers
    assert np.allclose(kept.homography, plain.homography)


def test_exposure_normalisation_only_touches_dim_images() -> None:
    photo = load_gray("astronaut")
    assert normalise_exposure(photo) is photo
    dim = (photo.astype(np.float32) * 0.2).astype(np.uint8)
    lo, hi = np.percentile(normalise_exposure(dim), (1, 99))
    assert hi - lo >= 200
    blank = np.full((300, 400), 7, np.uint8)
    assert len(extract_features(blank, "query")) == 0


@pytest.mark.parametrize("name", ["chelsea", "rocket", "ihc"])
def test_low_light_query_verifies(name: str) -> None:
    """15 % exposure, contrast 0.8, noise 3: 0 inliers for these three without the
    exposure normalisation, 169-531 with it."""
    target = extract_features(load_gray(name), "target")
    rng = np.random.default_rng(3)
    dark = load_gray(name).astype(np.float32) * 0.15 * 0.8
    dark = np.clip(dark + rng.normal(0, 3.0, dark.shape), 0, 255).astype(np.uint8)
    v = verify(extract_features(dark, "query"), target)
    assert v is not None and v.inliers >= 5 * MATCHING.min_inliers


def test_a_dim_target_is_normalised_like_its_queries() -> None:
    """A dim target indexed as is keeps few, weak corners that its stretched queries do
    not share: chelsea at 30 % exposure, queried as JPEG q40, verifies with ~108 inliers
    when only the query is normalised and ~577 when both are."""
    dim = (load_gray("chelsea").astype(np.float32) * 0.3).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", dim, [cv2.IMWRITE_JPEG_QUALITY, 40])
    query = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    v = verify(extract_features(query, "query"), extract_features(dim, "target"))
    assert ok and v is not None and v.inliers >= 400


def test_a_soft_focus_target_gets_corners_at_lower_fast_thresholds() -> None:
    """A well-exposed but soft photo (retina under a sigma-5.5 blur, like a hazy sky) gives
    FAST at its threshold a dozen corners and no match for its rotated, scaled copy;
    detecting again at the fast_retry thresholds finds hundreds and verifies it."""
    soft = cv2.GaussianBlur(load_gray("retina"), (0, 0), 5.5)
    query = rotate(scale(soft, 0.7), 40)

    def match(fast_retry: tuple[int, ...]) -> tuple[int, Verification | None]:
        target = extract_features(soft, "target", replace(TARGET, fast_retry=fast_retry))
        found = verify(
            extract_features(query, "query", replace(QUERY, fast_retry=fast_retry)), target
        )
        return len(target), found

    count, found = match(TARGET.fast_retry)
    assert count >= 200
    assert found is not None and found.inliers >= 5 * MATCHING.min_inliers
    count, found = match(())
    assert count < 50 and found is None


def test_darker_images_are_smoothed_more_before_the_stretch() -> None:
    """A soft photo (retina under a sigma-3 blur) at 15 % exposure with sensor noise: the
    stretch multiplies the noise ~25x, which a fixed sigma-0.8 smoothing leaves as corners
    that match nothing (no verification); smoothing by sigma x gain^0.25 finds ~60 inliers."""
    soft = cv2.GaussianBlur(load_gray("retina"), (0, 0), 3.0)
    rng = np.random.default_rng(3)
    dark = np.clip(soft * 0.15 * 0.8 + rng.normal(0, 3.0, soft.shape), 0, 255).astype(np.uint8)

    def match(power: float) -> Verification | None:
        query_profile = replace(QUERY, stretch_sigma_gain_power=power)
        target_profile = replace(TARGET, stretch_sigma_gain_power=power)
        return verify(
            extract_features(dark, "query", query_profile),
            extract_features(soft, "target", target_profile),
        )

    found = match(QUERY.stretch_sigma_gain_power)
    assert found is not None and found.inliers >= 3 * MATCHING.min_inliers
    assert match(0.0) is None
