"""EasyAR-style quality grades for a target image.

EasyAR does not publish its formulas, so ours are defined from measurable properties of the
image and of the ORB features we actually index. Each field is a grade 0-4, LOWER IS BETTER
(0-1 excellent, 2 good, 3 fair, 4 poor); every field is -1 when the image is unusable
(near-blank, or fewer than ``Quality.min_features`` features). All measurements run on the
target working image (640 px long side), so grades do not depend on upload resolution.

Raw measurements (:func:`measure`) and their grades (thresholds in ``Quality.cuts_*``,
each a 4-tuple of cut points between grades 0|1|2|3|4):

* ``detectableFeatureCount``: number of indexed ORB features (max 1000). More features,
  more chances to be found in a cluttered photo.
* ``trackableFeatureCount``: FAST corners (threshold ``fast_threshold``) on the
  working image: the corners a frame-to-frame tracker could lock onto.
* ``trackableFeatureDistribution``: fraction of the ``grid``² cells holding at least
  two indexed features: a target found by one corner is lost as soon as it leaves the view.
* ``detectableDistinctiveness``: fraction of features whose nearest descriptor elsewhere in
  the same image (>= ``local_radius`` of the long side away, so the same corner at
  another pyramid level does not count) is farther than ``distinct_hamming`` bits.
* ``trackablePatchAmbiguity``: fraction of features with a near-duplicate descriptor
  elsewhere (<= ``duplicate_hamming`` bits): repeated patterns (tiles, text, bricks)
  make matches ambiguous. Graded so that a higher fraction is worse.
* ``trackableDistinctiveness``: the same idea on raw 11x11 intensity patches around the
  strongest FAST corners: fraction whose best normalised cross-correlation with a distant
  patch stays below ``patch_ncc``.
* ``trackablePatchContrast``: median standard deviation of the 32x32 blocks of the working
  image (grey levels): flat, washed-out pictures give trackers nothing to hold.
* ``detectableRate`` combines detectableFeatureCount, detectableDistinctiveness,
  trackableFeatureDistribution and trackablePatchAmbiguity; ``trackableRate`` combines the
  five trackable fields. Combination = max(half-up rounded mean, worst - 1): the mean rewards
  overall richness, the floor keeps one fatal flaw (a tiled pattern, a blank half) from
  being averaged away.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from opencrs.vision.features import Features, keypoint_arrays, to_working
from opencrs.vision.params import QUALITY, TARGET, Extraction, Quality

QUALITY_FIELDS = (
    "trackableRate",
    "detectableRate",
    "detectableDistinctiveness",
    "detectableFeatureCount",
    "trackableDistinctiveness",
    "trackableFeatureCount",
    "trackableFeatureDistribution",
    "trackablePatchContrast",
    "trackablePatchAmbiguity",
)


def _grade_high(value: float, cuts: tuple[float, float, float, float]) -> int:
    """Grade where a higher value is better: cuts are descending thresholds for 0..3."""
    for g, cut in enumerate(cuts):
        if value >= cut:
            return g
    return 4


def _grade_low(value: float, cuts: tuple[float, float, float, float]) -> int:
    """Grade where a lower value is better: cuts are ascending thresholds for 0..3."""
    for g, cut in enumerate(cuts):
        if value <= cut:
            return g
    return 4


def _nonlocal_nearest(
    desc: np.ndarray, xy: np.ndarray, radius: float, neighbours: int
) -> np.ndarray:
    """Hamming distance from each descriptor to its nearest one at least ``radius`` away
    (256 when none of its nearest neighbours qualifies)."""
    n = len(desc)
    k = min(neighbours + 1, n)
    dist, idx = cv2.batchDistance(desc, desc, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=k)
    idx = np.where(idx < 0, np.arange(n)[:, None], idx)
    far = _distances(xy[idx], xy[:, None, :]) >= radius
    d = np.where(far, dist, 256)
    return d.min(axis=1)


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the points of ``a`` and ``b`` (..., 2), broadcast:
    ``np.linalg.norm(a - b, axis=-1)``'s values (the same differences, sum of two squares
    and square root), a coordinate at a time: ~5x faster on 300x300 pairs."""
    dx = (a[..., 0] - b[..., 0]).astype(np.float64)
    dy = (a[..., 1] - b[..., 1]).astype(np.float64)
    return np.sqrt(dx * dx + dy * dy)


def _block_std(image: np.ndarray, b: int) -> np.ndarray:
    """Standard deviation of each ``b`` x ``b`` block of ``image`` (whole blocks only),
    each block's pixels laid out contiguously first: numpy reduces a contiguous last axis
    several times faster than the strided axes of the (rows, b, cols, b) view."""
    hb, wb = image.shape[0] // b, image.shape[1] // b
    whole = image[: hb * b, : wb * b].astype(np.float32)
    blocks = whole.reshape(hb, b, wb, b).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(blocks).reshape(hb, wb, b * b).std(axis=-1)


def _strongest_first(keypoints: Sequence[cv2.KeyPoint]) -> np.ndarray:
    """Positions of ``keypoints``, strongest response first (ties by x, then y, then
    detection order): one numpy sort instead of a Python key per corner."""
    if not keypoints:
        return np.zeros((0, 2), dtype=np.float64)
    pts, response = keypoint_arrays(keypoints)
    return pts[np.lexsort((pts[:, 1], pts[:, 0], -response))]


def _patch_distinct_fraction(
    work: np.ndarray, corners: np.ndarray, radius: float, cfg: Quality
) -> float:
    """Fraction of corner patches whose best NCC with a distant patch is below the limit."""
    half = cfg.patch // 2
    h, w = work.shape
    inside = (
        (corners[:, 0] >= half)
        & (corners[:, 1] >= half)
        & (corners[:, 0] < w - half)
        & (corners[:, 1] < h - half)
    )
    pts = corners[inside].astype(int)
    if len(pts) < 2:
        return 0.0
    img = cv2.GaussianBlur(work, (3, 3), 0).astype(np.float32)
    offs = np.arange(-half, half + 1)
    rows = pts[:, 1, None, None] + offs[None, :, None]
    cols = pts[:, 0, None, None] + offs[None, None, :]
    patches = img[rows, cols].reshape(len(pts), -1)
    patches -= patches.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(patches, axis=1, keepdims=True)
    valid = norms[:, 0] > 1e-3
    patches = patches[valid] / norms[valid]
    pts = pts[valid]
    if len(pts) < 2:
        return 0.0
    ncc = patches @ patches.T
    near = _distances(pts[:, None, :], pts[None, :, :]) < radius
    ncc[near] = -1.0
    return float(np.mean(ncc.max(axis=1) < cfg.patch_ncc))


def measure(
    gray: np.ndarray, features: Features, cfg: Quality = QUALITY, target: Extraction = TARGET
) -> dict[str, float] | None:
    """Raw measurements behind the grades, or ``None`` for an unusable image; ``target`` is
    the profile the features were extracted with (its working size is measured)."""
    work, s = to_working(gray, target)
    if float(work.std()) < cfg.min_std or len(features) < cfg.min_features:
        return None
    wh, ww = work.shape
    long_side = max(ww, wh)
    radius = cfg.local_radius * long_side

    xy = features.xy.astype(np.float64) * s  # into the working frame
    desc = np.ascontiguousarray(features.descriptors)
    nearest = _nonlocal_nearest(desc, xy, radius, cfg.neighbours)

    g = cfg.grid
    cx = np.clip((xy[:, 0] * g / ww).astype(int), 0, g - 1)
    cy = np.clip((xy[:, 1] * g / wh).astype(int), 0, g - 1)
    per_cell = np.bincount(cy * g + cx, minlength=g * g)

    fast = cv2.FastFeatureDetector_create(threshold=cfg.fast_threshold)
    kps = fast.detect(work, None)
    corners = _strongest_first(kps)[: cfg.patches]

    b = cfg.block
    whole_blocks = wh >= b and ww >= b
    contrast = float(np.median(_block_std(work, b))) if whole_blocks else float(work.std())
    return {
        "detectableFeatureCount": float(len(features)),
        "trackableFeatureCount": float(len(kps)),
        "trackableFeatureDistribution": float(np.mean(per_cell >= 2)),
        "detectableDistinctiveness": float(np.mean(nearest > cfg.distinct_hamming)),
        "trackablePatchAmbiguity": float(np.mean(nearest <= cfg.duplicate_hamming)),
        "trackableDistinctiveness": (
            _patch_distinct_fraction(work, corners, radius, cfg) if len(corners) else 0.0
        ),
        "trackablePatchContrast": contrast,
    }


def _combine(values: list[int]) -> int:
    mean = math.floor(sum(values) / len(values) + 0.5)
    return max(mean, max(values) - 1)


def grade(
    gray: np.ndarray, features: Features, cfg: Quality = QUALITY, target: Extraction = TARGET
) -> dict[str, int]:
    """Grades 0-4 (lower is better) for every field of QUALITY_FIELDS; all -1 if unusable."""
    m = measure(gray, features, cfg, target)
    if m is None:
        return dict.fromkeys(QUALITY_FIELDS, -1)
    out = {
        "detectableFeatureCount": _grade_high(m["detectableFeatureCount"], cfg.cuts_feature_count),
        "trackableFeatureCount": _grade_high(m["trackableFeatureCount"], cfg.cuts_corner_count),
        "trackableFeatureDistribution": _grade_high(
            m["trackableFeatureDistribution"], cfg.cuts_distribution
        ),
        "detectableDistinctiveness": _grade_high(m["detectableDistinctiveness"], cfg.cuts_distinct),
        "trackablePatchAmbiguity": _grade_low(m["trackablePatchAmbiguity"], cfg.cuts_ambiguity),
        "trackableDistinctiveness": _grade_high(
            m["trackableDistinctiveness"], cfg.cuts_patch_distinct
        ),
        "trackablePatchContrast": _grade_high(m["trackablePatchContrast"], cfg.cuts_contrast),
    }
    out["detectableRate"] = _combine(
        [
            out["detectableFeatureCount"],
            out["detectableDistinctiveness"],
            out["trackableFeatureDistribution"],
            out["trackablePatchAmbiguity"],
        ]
    )
    out["trackableRate"] = _combine(
        [
            out["trackableFeatureCount"],
            out["trackableFeatureDistribution"],
            out["trackableDistinctiveness"],
            out["trackablePatchContrast"],
            out["trackablePatchAmbiguity"],
        ]
    )
    return {k: out[k] for k in QUALITY_FIELDS}
