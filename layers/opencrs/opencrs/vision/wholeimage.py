"""Whole-image check: the same picture under a global photometric change.

Local features need corners. A soft, featureless target (a stormy sky, a hazy lake) or a
photo that blur, noise or a quarter exposure has stripped of corners leaves geometric
verification nothing to work with, while the picture as a whole is plainly the same: that
is the one case where a perceptual hash (the bench's pHash baseline) beats local features.
A hash alone is no proof, though: its false positives grow with the gallery (README
"bench/quality"). So a hash only shortlists, and a second, independent test decides: the
query's ``THUMB_SIDE``-pixel thumbnail must equal the target's under one gain and offset
(least squares), in every cell of a grid, to within a fraction of the query's contrast.
Unrelated pictures that share a hash, or a black rotated border, disagree somewhere.

This check covers only a picture seen whole and upright: rotations, crops, tilts and
clutter are local features' work (:mod:`opencrs.vision.verify`). Every tuned value is a
field of :class:`~opencrs.vision.params.WholeImage`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from opencrs.vision.params import WHOLE_IMAGE, WholeImage

# Stored in features and bundles: a format constant, not a tunable.
THUMB_SIDE = 32
THUMB_BYTES = THUMB_SIDE * THUMB_SIDE
_HASH_SIDE = 8
_RIM = np.ones((5, 5), np.uint8)
_STAGE_SIDE = 4 * THUMB_SIDE
_STAGE_SIGMA = 2.0  # px at the stage size: half a thumbnail pixel


@dataclass(frozen=True)
class Thumbnail:
    """A grey ``THUMB_SIDE`` x ``THUMB_SIDE`` picture of a whole image (aspect ratio not
    kept, float grey levels 0-255) and the 64-bit perceptual hash of it.

    Stored thumbnails (targets) are rounded to whole grey levels, 1 byte a pixel; a query's
    keeps its fractions, which matter for a dark photo: at a quarter exposure a thumbnail's
    contrast can be under 2 grey levels, where rounding alone would be a residual of ~0.2.
    """

    phash: int
    pixels: np.ndarray

    def __post_init__(self) -> None:
        pixels = np.ascontiguousarray(self.pixels, dtype=np.float32)
        if pixels.shape != (THUMB_SIDE, THUMB_SIDE):
            raise ValueError(f"thumbnail must be {THUMB_SIDE}x{THUMB_SIDE}")
        pixels.flags.writeable = False
        object.__setattr__(self, "pixels", pixels)
        object.__setattr__(self, "phash", int(self.phash) & 0xFFFF_FFFF_FFFF_FFFF)

    def stored(self) -> np.ndarray:
        """The pixels as stored: whole grey levels, uint8."""
        return np.clip(np.rint(self.pixels), 0, 255).astype(np.uint8)

    def rounded(self) -> Thumbnail:
        """This thumbnail as it reads back from storage."""
        return Thumbnail(phash=self.phash, pixels=self.stored())


def thumbnail(gray: np.ndarray) -> Thumbnail:
    """The thumbnail and perceptual hash of a grey uint8 image (pixels not rounded).

    The hash is pHash as ``imagehash.phash`` computes it (DCT of the 32x32 picture, the
    8x8 lowest frequencies against their median), written with ``cv2.dct`` because
    imagehash needs Pillow and SciPy, which do not fit in the Lambda layer beside OpenCV;
    the resampling differs a little from imagehash's, so hashes may differ by a few bits.
    """
    # Halving with pyrDown first: INTER_AREA straight from 12 MP costs ~37 ms, this ~3 ms.
    while min(gray.shape[:2]) >= 2 * _STAGE_SIDE:
        gray = cv2.pyrDown(gray)
    # A Gaussian at a fixed fraction of a thumbnail pixel, so that how the input got there
    # (a big target halved many times, a small query enlarged) no longer shows.
    stage = cv2.resize(
        gray.astype(np.float32), (_STAGE_SIDE, _STAGE_SIDE), interpolation=cv2.INTER_AREA
    )
    stage = cv2.GaussianBlur(stage, (0, 0), _STAGE_SIGMA, borderType=cv2.BORDER_REPLICATE)
    small = cv2.resize(stage, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:_HASH_SIDE, :_HASH_SIDE]
    bits = (low > np.median(low)).ravel()
    phash = int(np.packbits(bits).view(">u8")[0])
    return Thumbnail(phash=phash, pixels=small)


def phash_distances(query: Thumbnail, hashes: np.ndarray) -> np.ndarray:
    """Hamming distance between the query's hash and each of ``hashes`` (uint64)."""
    return np.bitwise_count(np.asarray(hashes, dtype=np.uint64) ^ np.uint64(query.phash))


def residual(query: Thumbnail, target: Thumbnail, cfg: WholeImage = WHOLE_IMAGE) -> float:
    """How far the query's thumbnail is from the target's under the best gain and offset:
    the RMS residual of the worst cell of a ``cfg.cells`` grid, over the query's
    standard deviation (0: identical up to exposure) — over the smaller of its whole and
    its central half's, so that a picture whose structure is all at its border (padding,
    a frame) around a flat middle cannot agree on the border alone.

    Pixels that round to 0 or 255 in either thumbnail are left out, with a rim around
    them: padding (the black corners of a rotated copy) and clipped highlights say nothing
    about the picture. ``inf`` when fewer than ``cfg.min_valid`` of the pixels (or
    half of the central ones) are left, when what is left, or its centre, is too flat to
    compare, or when the fit needs a negative gain (a negative is not the same picture).
    """
    q = query.pixels.astype(np.float64)
    t = target.pixels.astype(np.float64)
    valid = (q >= 0.5) & (q <= 254.5) & (t >= 0.5) & (t <= 254.5)
    # ...and their blurred rims: a pixel beside the padding is partly padding.
    valid = cv2.erode(valid.astype(np.uint8), _RIM, borderType=cv2.BORDER_REPLICATE) > 0
    n = int(valid.sum())
    centre = slice(THUMB_SIDE // 4, THUMB_SIDE - THUMB_SIDE // 4)
    inner = valid[centre, centre]
    if n < cfg.min_valid * valid.size or inner.sum() < inner.size / 2:
        return float("inf")
    qc = np.where(valid, q - q[valid].mean(), 0.0)
    tc = np.where(valid, t - t[valid].mean(), 0.0)
    q_var, t_var = float((qc * qc).sum()) / n, float((tc * tc).sum()) / n
    q_inner_var = float(q[centre, centre][inner].var())
    if min(q_var, t_var, q_inner_var) < cfg.min_std**2:
        return float("inf")
    gain = float((qc * tc).sum()) / n / t_var
    if gain <= 0:
        return float("inf")
    r = qc - gain * tc  # 0 where not valid
    c = cfg.cells
    s = THUMB_SIDE // c
    sums = (r * r).reshape(c, s, c, s).sum(axis=(1, 3))
    counts = valid.reshape(c, s, c, s).sum(axis=(1, 3))
    # A cell counts when at least half of it is left.
    cells = counts >= s * s / 2
    worst = float((sums[cells] / counts[cells]).max())
    return float(np.sqrt(worst / min(q_var, q_inner_var)))


def same_picture(query: Thumbnail, target: Thumbnail, cfg: WholeImage = WHOLE_IMAGE) -> bool:
    """Both tests: hashes within ``cfg.max_phash`` bits and a residual within
    ``cfg.max_residual`` (the Searcher applies them to a whole gallery at once)."""
    distance = int(phash_distances(query, np.array([target.phash], dtype=np.uint64))[0])
    return distance <= cfg.max_phash and residual(query, target, cfg) <= cfg.max_residual
