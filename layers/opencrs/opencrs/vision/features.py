"""Local features: ORB keypoints and 256-bit descriptors.

ORB rather than SIFT: several times faster per image, and binary 32-byte descriptors
(SIFT: 512 bytes as float) that make Hamming shortlisting and compact bundles possible,
at the recall the benchmarks need (``docs/tuning-log.md``). Every tuned value is an
:class:`~opencrs.vision.params.Extraction` profile, one per role.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from opencrs.vision.params import DEFAULT, QUERY, SEARCH, Extraction, Role, Search
from opencrs.vision.wholeimage import THUMB_BYTES, THUMB_SIDE, Thumbnail, thumbnail

_MAGIC = b"OCRSFEAT"
FORMAT_VERSION = 2  # of to_bytes; any other is refused
_HEADER = struct.Struct("<8sHHIII")  # magic, version, descriptor bytes, width, height, count
_CRC = struct.Struct("<I")
_HAS_THUMB = struct.Struct("<B")
_PHASH = struct.Struct("<Q")


class UnsupportedFormat(ValueError):
    """A stored blob (features, bundle) of a format version this code does not read: the
    only cure is indexing its targets again."""


@dataclass(frozen=True)
class Features:
    """Keypoints of one image in its original pixel frame, with their descriptors, and the
    image's whole-image thumbnail (``None`` when made without one)."""

    xy: np.ndarray
    angle: np.ndarray
    descriptors: np.ndarray
    width: int
    height: int
    thumbnail: Thumbnail | None = None

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    def to_bytes(self) -> bytes:
        """Compact versioned encoding (version 2): header, packed little-endian arrays, a u8
        flag and, when set, the thumbnail (u64 pHash, 32x32 u8 pixels, rounded), CRC32."""
        n = len(self)
        dlen = int(self.descriptors.shape[1]) if self.descriptors.ndim == 2 else 32
        thumb = self.thumbnail
        chunks = [
            _HEADER.pack(_MAGIC, FORMAT_VERSION, dlen, self.width, self.height, n),
            np.ascontiguousarray(self.xy, dtype="<f4").tobytes(),
            np.ascontiguousarray(self.angle, dtype="<f4").tobytes(),
            np.ascontiguousarray(self.descriptors, dtype=np.uint8).tobytes(),
            _HAS_THUMB.pack(thumb is not None),
        ]
        if thumb is not None:
            chunks += [_PHASH.pack(thumb.phash), thumb.stored().tobytes()]
        body = b"".join(chunks)
        return body + _CRC.pack(zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes) -> Features:
        """Inverse of :meth:`to_bytes`; ``UnsupportedFormat`` for another version,
        ``ValueError`` on any corruption or truncation."""
        data = bytes(data)
        if len(data) < _HEADER.size + _CRC.size:
            raise ValueError("features: data too short")
        magic, version, dlen, width, height, n = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError("features: bad magic")
        if version != FORMAT_VERSION:
            raise UnsupportedFormat(
                f"features: format version {version} is not read (only {FORMAT_VERSION}); "
                "index the target again"
            )
        arrays = n * (8 + 4 + dlen)
        if len(data) < _HEADER.size + arrays + _HAS_THUMB.size + _CRC.size:
            raise ValueError("features: wrong length (truncated or corrupt)")
        (has_thumb,) = _HAS_THUMB.unpack_from(data, _HEADER.size + arrays)
        if has_thumb > 1:
            raise ValueError("features: bad thumbnail flag")
        tail = _HAS_THUMB.size + (_PHASH.size + THUMB_BYTES) * has_thumb
        if len(data) != _HEADER.size + arrays + tail + _CRC.size:
            raise ValueError("features: wrong length (truncated or corrupt)")
        body = data[: -_CRC.size]
        (crc,) = _CRC.unpack_from(data, len(body))
        if zlib.crc32(body) != crc:
            raise ValueError("features: checksum mismatch")
        thumb = None
        if tail > _HAS_THUMB.size:
            at = _HEADER.size + arrays + _HAS_THUMB.size
            (phash,) = _PHASH.unpack_from(body, at)
            pixels = np.frombuffer(body, np.uint8, THUMB_BYTES, at + _PHASH.size)
            thumb = Thumbnail(phash=phash, pixels=pixels.reshape(THUMB_SIDE, THUMB_SIDE))
        buf = memoryview(body)[_HEADER.size :]
        xy = np.frombuffer(buf, dtype="<f4", count=2 * n).reshape(n, 2).astype(np.float32)
        angle = np.frombuffer(buf, dtype="<f4", count=n, offset=8 * n).astype(np.float32)
        desc = np.frombuffer(buf, dtype=np.uint8, count=n * dlen, offset=12 * n)
        return make_features(xy, angle, desc.reshape(n, dlen), width, height, thumb)


def make_features(
    xy: np.ndarray,
    angle: np.ndarray,
    descriptors: np.ndarray,
    width: int,
    height: int,
    thumbnail: Thumbnail | None = None,
) -> Features:
    """Build a Features with contiguous, read-only arrays (it is shared across requests)."""
    xy = np.ascontiguousarray(xy, dtype=np.float32).reshape(-1, 2)
    angle = np.ascontiguousarray(angle, dtype=np.float32).reshape(-1)
    descriptors = np.ascontiguousarray(descriptors, dtype=np.uint8)
    if descriptors.ndim != 2 or not (len(descriptors) == len(xy) == len(angle)):
        raise ValueError("features: array lengths disagree")
    for arr in (xy, angle, descriptors):
        arr.flags.writeable = False
    return Features(
        xy=xy,
        angle=angle,
        descriptors=descriptors,
        width=int(width),
        height=int(height),
        thumbnail=thumbnail,
    )


def working_scale(width: int, height: int, profile: Extraction) -> float:
    """Factor from the original frame to ``profile``'s working frame."""
    side = max(width, height)
    return min(max(side, profile.min_side), profile.max_side) / side


def to_working(gray: np.ndarray, profile: Extraction) -> tuple[np.ndarray, float]:
    """Resize ``gray`` to ``profile``'s working size; returns the image and the factor."""
    h, w = gray.shape[:2]
    s = working_scale(w, h, profile)
    if abs(s - 1.0) < 1e-6:
        return gray, 1.0
    size = (max(1, round(w * s)), max(1, round(h * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.resize(gray, size, interpolation=interp), s


def normalise_exposure(gray: np.ndarray, profile: Extraction = QUERY) -> np.ndarray:
    """Smooth and stretch a dim or flat image to the full grey range (see
    ``Extraction.stretch_below``); well-exposed images are returned unchanged."""
    lo, hi = (float(v) for v in np.percentile(gray[::4, ::4], (1, 99)))
    if hi - lo >= profile.stretch_below:
        return gray
    gain = 255.0 / max(hi - lo, 1.0)
    # The stretch amplifies sensor noise by ``gain``: the darker, the more smoothing.
    sigma = profile.stretch_sigma * gain**profile.stretch_sigma_gain_power
    smooth = cv2.GaussianBlur(gray, (0, 0), sigma)
    return cv2.convertScaleAbs(smooth, alpha=gain, beta=-lo * gain)


def tilt_views(
    gray: np.ndarray, search: Search = SEARCH, query: Extraction = QUERY
) -> list[np.ndarray]:
    """The query as if seen face-on after a strong tilt about a horizontal, then a
    vertical axis: stretched by each ``search.tilt_retry_stretch`` factor along y, then
    x, no larger than the query working size (shrunk first, so a 12 MP photo is never
    stretched at full size)."""
    h, w = gray.shape[:2]
    views = []
    for t in search.tilt_retry_stretch:
        for sx, sy in ((1.0, t), (t, 1.0)):
            f = min(1.0, query.max_side / max(w * sx, h * sy))
            small = gray
            if f < 1.0:
                size = (max(1, round(w * f)), max(1, round(h * f)))
                small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
            size = (max(1, round(small.shape[1] * sx)), max(1, round(small.shape[0] * sy)))
            views.append(cv2.resize(small, size, interpolation=cv2.INTER_LINEAR))
    return views


def _orb(profile: Extraction, nfeatures: int, fast_threshold: int | None = None) -> cv2.ORB:
    return cv2.ORB_create(
        nfeatures=nfeatures,
        scaleFactor=profile.scale_factor,
        nlevels=profile.levels,
        edgeThreshold=profile.patch,
        patchSize=profile.patch,
        fastThreshold=profile.fast_threshold if fast_threshold is None else fast_threshold,
    )


def keypoint_arrays(keypoints: Sequence[cv2.KeyPoint]) -> tuple[np.ndarray, np.ndarray]:
    """Positions (n, 2) and responses (n,) of ``keypoints`` as float64: OpenCV converts the
    positions in one call, ~35x faster than a Python list of ``k.pt``."""
    pts = cv2.KeyPoint_convert(keypoints).astype(np.float64).reshape(-1, 2)
    return pts, np.array([k.response for k in keypoints], dtype=np.float64)


def _spread(keypoints: list, width: int, height: int, limit: int, grid: int) -> list:
    """Keep ``limit`` keypoints, taking the strongest of every grid cell in turn, so the
    budget covers the whole image rather than its busiest corner."""
    if len(keypoints) <= limit:
        return keypoints
    g = grid
    pts, resp = keypoint_arrays(keypoints)
    cx = np.clip((pts[:, 0] * g / max(width, 1)).astype(int), 0, g - 1)
    cy = np.clip((pts[:, 1] * g / max(height, 1)).astype(int), 0, g - 1)
    cell = cy * g + cx
    order = np.lexsort((-resp, cell))  # by cell, strongest first within a cell
    sorted_cells = cell[order]
    starts = np.searchsorted(sorted_cells, sorted_cells, side="left")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - starts
    chosen = np.lexsort((-resp, rank))[:limit]  # round-robin over cells, strongest first
    return [keypoints[i] for i in np.sort(chosen)]


def _detect(work: np.ndarray, profile: Extraction) -> list:
    """Spread ORB keypoints; an image too smooth for FAST's threshold (fewer than
    ``few_features`` of the budget) is detected again at the lower thresholds of
    ``fast_retry``, so a soft-focus or hazy photo still gets corners."""
    h, w = work.shape
    limit = profile.features
    kps: list = []
    for threshold in (profile.fast_threshold, *profile.fast_retry):
        kps = list(_orb(profile, limit * profile.overdetect, threshold).detect(work, None))
        if len(kps) >= profile.few_features * limit:
            break
    return _spread(kps, w, h, limit, profile.grid)


def extract_features(gray: np.ndarray, role: Role, profile: Extraction | None = None) -> Features:
    """ORB features of a grey uint8 image, returned in the original image's frame.

    ``role="target"`` (indexing) keeps ~1000 strong features spread over a grid at 640 px;
    ``role="query"`` keeps up to 3000 at <= 1024 px. ``profile`` defaults to the role's.
    """
    profile = DEFAULT.extraction(role) if profile is None else profile
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError("extract_features expects a 2-D uint8 image")
    h, w = gray.shape
    # Of the image as given: the whole-image check fits exposure itself. A target's is
    # rounded now, as storage will, so an indexed target and its stored copy agree.
    thumb = thumbnail(gray) if role == "query" else thumbnail(gray).rounded()
    none = (np.zeros((0, 2)), np.zeros(0), np.zeros((0, 32), np.uint8), w, h, thumb)
    gray = normalise_exposure(gray, profile)
    work, s = to_working(gray, profile)
    wh, ww = work.shape
    if min(wh, ww) <= 2 * profile.patch:
        # No room for a single ORB patch inside the border (also keeps sliver-shaped images
        # out of ORB's pyramid, which asserts on a 1-px side).
        return make_features(*none)
    kps = _detect(work, profile)
    desc = None
    if kps:
        kps, desc = _orb(profile, len(kps)).compute(work, kps)
    if not kps or desc is None:
        return make_features(*none)
    xy = cv2.KeyPoint_convert(kps).reshape(-1, 2) / np.float32(s)
    angle = np.array([k.angle for k in kps], dtype=np.float32)
    return make_features(xy, angle, desc, w, h, thumb)
