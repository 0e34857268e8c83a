"""EasyAR-style quality grades for a target image.

EasyAR does not publish its formulas, so ours are defined from measurable properties of the
image and of the ORB features we actually index. Each field is a grade 0-4, LOWER IS BETTER
(0-1 excellent, 2 good, 3 fair, 4 poor); every field is -1 when the image is unusable
(near-blank, or fewer than ``QUALITY_MIN_FEATURES`` features). All measurements run on the
target working image (640 px long side), so grades do not depend on upload resolution.

Raw measurements (:func:`measure`) and their grades (thresholds in ``params.QUALITY_*``,
each a 4-tuple of cut points between grades 0|1|2|3|4):

* ``detectableFeatureCount``: number of indexed ORB features (max 1000). More features,
  more chances to be found in a cluttered photo.
* ``trackableFeatureCount``: FAST corners (threshold ``QUALITY_FAST_THRESHOLD``) on the
  working image: the corners a frame-to-frame tracker could lock onto.
* ``trackableFeatureDistribution``: fraction of the ``QUALITY_GRID``² cells holding at least
  two indexed features: a target found by one corner is lost as soon as it leaves the view.
* ``detectableDistinctiveness``: fraction of features whose nearest descriptor elsewhere in
  the same image (>= ``QUALITY_LOCAL_RADIUS`` of the long side away, so the same corner at
  another pyramid level does not count) is farther than ``QUALITY_DISTINCT_HAMMING`` bits.
* ``trackablePatchAmbiguity``: fraction of features with a near-duplicate descriptor
  elsewhere (<= ``QUALITY_DUPLICATE_HAMMING`` bits): repeated patterns (tiles, text, bricks)
  make matches ambiguous. Graded so that a higher fraction is worse.
* ``trackableDistinctiveness``: the same idea on raw 11x11 intensity patches around the
  strongest FAST corners: fraction whose best normalised cross-correlation with a distant
  patch stays below ``QUALITY_PATCH_NCC``.
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

import cv2
import numpy as np

from opencrs.vision import params
from opencrs.vision.features import Features, to_working

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


def _nonlocal_nearest(desc: np.ndarray, xy: np.ndarray, radius: float) -> np.ndarray:
    """Hamming distance from each descriptor to its nearest one at least ``radius`` away
    (256 when none of its nearest neighbours qualifies)."""
    n = len(desc)
    k = min(params.QUALITY_NEIGHBOURS + 1, n)
    dist, idx = cv2.batchDistance(desc, desc, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=k)
    idx = np.where(idx < 0, np.arange(n)[:, None], idx)
    far = np.linalg.norm(xy[idx] - xy[:, None, :], axis=2) >= radius
    d = np.where(far, dist, 256)
    return d.min(axis=1)


def _patch_distinct_fraction(work: np.ndarray, corners: np.ndarray, radius: float) -> float:
    """Fraction of corner patches whose best NCC with a distant patch is below the limit."""
    half = params.QUALITY_PATCH // 2
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
    near = np.linalg.norm(pts[:, None, :] - pts[None, :, :], axis=2) < radius
    ncc[near] = -1.0
    return float(np.mean(ncc.max(axis=1) < params.QUALITY_PATCH_NCC))


def measure(gray: np.ndarray, features: Features) -> dict[str, float] | None:
    """Raw measurements behind the grades, or ``None`` for an unusable image."""
    work, s = to_working(gray, "target")
    if float(work.std()) < params.QUALITY_MIN_STD or len(features) < params.QUALITY_MIN_FEATURES:
        return None
    wh, ww = work.shape
    long_side = max(ww, wh)
    radius = params.QUALITY_LOCAL_RADIUS * long_side

    xy = features.xy.astype(np.float64) * s  # into the working frame
    desc = np.ascontiguousarray(features.descriptors)
    nearest = _nonlocal_nearest(desc, xy, radius)

    g = params.QUALITY_GRID
    cx = np.clip((xy[:, 0] * g / ww).astype(int), 0, g - 1)
    cy = np.clip((xy[:, 1] * g / wh).astype(int), 0, g - 1)
    per_cell = np.bincount(cy * g + cx, minlength=g * g)

    fast = cv2.FastFeatureDetector_create(threshold=params.QUALITY_FAST_THRESHOLD)
    kps = sorted(fast.detect(work, None), key=lambda k: (-k.response, k.pt))
    corners = np.array([k.pt for k in kps[: params.QUALITY_PATCHES]], dtype=np.float64)

    b = params.QUALITY_BLOCK
    hb, wb = wh // b, ww // b
    if hb and wb:
        blocks = work[: hb * b, : wb * b].astype(np.float32).reshape(hb, b, wb, b)
        contrast = float(np.median(blocks.std(axis=(1, 3))))
    else:
        contrast = float(work.std())
    return {
        "detectableFeatureCount": float(len(features)),
        "trackableFeatureCount": float(len(kps)),
        "trackableFeatureDistribution": float(np.mean(per_cell >= 2)),
        "detectableDistinctiveness": float(np.mean(nearest > params.QUALITY_DISTINCT_HAMMING)),
        "trackablePatchAmbiguity": float(np.mean(nearest <= params.QUALITY_DUPLICATE_HAMMING)),
        "trackableDistinctiveness": (
            _patch_distinct_fraction(work, corners, radius) if len(corners) else 0.0
        ),
        "trackablePatchContrast": contrast,
    }


def _combine(values: list[int]) -> int:
    mean = math.floor(sum(values) / len(values) + 0.5)
    return max(mean, max(values) - 1)


def grade(gray: np.ndarray, features: Features) -> dict[str, int]:
    """Grades 0-4 (lower is better) for every field of QUALITY_FIELDS; all -1 if unusable."""
    m = measure(gray, features)
    if m is None:
        return dict.fromkeys(QUALITY_FIELDS, -1)
    out = {
        "detectableFeatureCount": _grade_high(
            m["detectableFeatureCount"], params.QUALITY_CUTS_FEATURE_COUNT
        ),
        "trackableFeatureCount": _grade_high(
            m["trackableFeatureCount"], params.QUALITY_CUTS_CORNER_COUNT
        ),
        "trackableFeatureDistribution": _grade_high(
            m["trackableFeatureDistribution"], params.QUALITY_CUTS_DISTRIBUTION
        ),
        "detectableDistinctiveness": _grade_high(
            m["detectableDistinctiveness"], params.QUALITY_CUTS_DISTINCT
        ),
        "trackablePatchAmbiguity": _grade_low(
            m["trackablePatchAmbiguity"], params.QUALITY_CUTS_AMBIGUITY
        ),
        "trackableDistinctiveness": _grade_high(
            m["trackableDistinctiveness"], params.QUALITY_CUTS_PATCH_DISTINCT
        ),
        "trackablePatchContrast": _grade_high(
            m["trackablePatchContrast"], params.QUALITY_CUTS_CONTRAST
        ),
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
