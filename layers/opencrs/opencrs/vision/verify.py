"""Geometric verification of one query against one target.

Descriptor matches alone cannot tell "same picture" from "same kind of texture"; a single
homography explaining many well-spread matches, whose projected outline is a plausible
quadrilateral, can (the Pastec rule). Every threshold is a field of
:class:`~opencrs.vision.params.Matching`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from opencrs.vision.features import Features
from opencrs.vision.params import MATCHING, Matching


@dataclass(frozen=True)
class Verification:
    """An accepted match: inlier count, target→query homography and a ranking score."""

    inliers: int
    homography: np.ndarray
    score: float


def frame_corners(width: float, height: float) -> tuple[tuple[float, float], ...]:
    """An image's corners, top left first, clockwise (x right, y down)."""
    return ((0.0, 0.0), (float(width), 0.0), (float(width), float(height)), (0.0, float(height)))


def outline(homography: np.ndarray, width: float, height: float) -> tuple[tuple[float, float], ...]:
    """A ``width`` x ``height`` target's corners carried into the query by ``homography``
    (target pixels to query pixels), rounded to 0.1 px."""
    corners = np.array(frame_corners(width, height), dtype=np.float64).reshape(-1, 1, 2)
    projected = cv2.perspectiveTransform(corners, np.asarray(homography, dtype=np.float64))
    # + 0.0: no "-0.0" in an answer for a corner a hair left of or above the edge.
    return tuple(
        (round(float(x), 1) + 0.0, round(float(y), 1) + 0.0) for x, y in projected.reshape(4, 2)
    )


def ratio_matches(
    query: Features,
    target: Features,
    query_buckets: np.ndarray | None = None,
    target_buckets: np.ndarray | None = None,
    cfg: Matching = MATCHING,
) -> tuple[np.ndarray, np.ndarray]:
    """Query→target matches passing Lowe's ratio test and an absolute distance bound.

    With buckets (``query_buckets``: (queries, probes) labels, ``target_buckets``: one label
    per target feature), a query feature is compared only with the target features of its
    own buckets, and best and second-best are taken over those: a few times fewer Hamming
    distances than all pairs (the caller picks labels that true matches share, see
    ``Search.verify_probes``). Returns index arrays (query_idx, target_idx).
    """
    empty = np.zeros(0, dtype=np.int64)
    if len(query) == 0 or len(target) < 2:
        return empty, empty
    if query_buckets is None or target_buckets is None:
        dist, idx = cv2.batchDistance(
            np.asarray(query.descriptors),
            np.asarray(target.descriptors),
            cv2.CV_32S,
            normType=cv2.NORM_HAMMING,
            K=2,
        )
        return _passing(dist[:, 0], dist[:, 1], idx[:, 0], cfg)
    nearest = TwoNearest(query.descriptors, target.descriptors, target_buckets)
    nearest.add(query_buckets)
    return nearest.matches(cfg)


def _passing(
    best: np.ndarray, second: np.ndarray, best_idx: np.ndarray, cfg: Matching
) -> tuple[np.ndarray, np.ndarray]:
    """The matches among nearest neighbours that pass the ratio test and distance bound."""
    keep = (best <= cfg.match_max_distance) & (best < cfg.ratio * second) & (best_idx >= 0)
    qi = np.nonzero(keep)[0]
    return qi.astype(np.int64), best_idx[qi].astype(np.int64)


_FAR = 1 << 16  # farther than any 256-bit Hamming distance


class TwoNearest:
    """Each query feature's nearest and second-nearest target feature among the buckets
    added so far, merged bucket by bucket: verification can look at a query's first probe
    alone, then add the others without comparing any pair twice."""

    def __init__(self, qdesc: np.ndarray, tdesc: np.ndarray, tbuckets: np.ndarray) -> None:
        self._qdesc, self._tdesc = qdesc, tdesc
        n = len(qdesc)
        self.best = np.full(n, _FAR, dtype=np.int64)
        self.second = np.full(n, _FAR, dtype=np.int64)
        self.best_idx = np.full(n, -1, dtype=np.int64)
        tbuckets = np.asarray(tbuckets).reshape(-1)
        self._order = np.argsort(tbuckets, kind="stable")
        self._labels, starts = np.unique(tbuckets[self._order], return_index=True)
        self._starts = starts.tolist()
        self._ends = np.append(starts[1:], len(self._order)).tolist()

    def add(self, qbuckets: np.ndarray, first: int = 0, stop: int | None = None) -> None:
        """Merge in probe columns ``first``..``stop`` of ``qbuckets`` ((queries, probes)
        labels); a label a row already probed in an earlier column is not compared again."""
        qbuckets = np.asarray(qbuckets).reshape(len(self._qdesc), -1)
        columns = qbuckets[:, first:stop]
        q_row = np.repeat(np.arange(len(columns)), columns.shape[1])
        q_label = columns.reshape(-1)
        if first:
            seen = (columns[:, :, None] == qbuckets[:, None, :first]).any(axis=2).reshape(-1)
            q_row, q_label = q_row[~seen], q_label[~seen]
        # Every bucket's query rows at once, ascending, each once: one sort instead of a
        # scan of every row's probes per bucket.
        by_label = np.lexsort((q_row, q_label))
        q_row, q_label = q_row[by_label], q_label[by_label]
        fresh = np.ones(len(q_row), dtype=bool)
        fresh[1:] = (q_label[1:] != q_label[:-1]) | (q_row[1:] != q_row[:-1])
        q_row, q_label = q_row[fresh], q_label[fresh]
        lows = np.searchsorted(q_label, self._labels, side="left").tolist()
        highs = np.searchsorted(q_label, self._labels, side="right").tolist()
        for a, b, lo, hi in zip(self._starts, self._ends, lows, highs, strict=True):
            if lo < hi:
                self._merge(q_row[lo:hi], self._order[a:b])

    def _merge(self, rows: np.ndarray, cols: np.ndarray) -> None:
        k = 2 if len(cols) >= 2 else 1
        dist, idx = cv2.batchDistance(
            self._qdesc[rows], self._tdesc[cols], cv2.CV_32S, normType=cv2.NORM_HAMMING, K=k
        )
        d1 = dist[:, 0].astype(np.int64)
        d2 = dist[:, 1].astype(np.int64) if k == 2 else np.full(len(rows), _FAR)
        # A row appears once per bucket, so this merge of (best, second) is conflict-free.
        cur_best, cur_second = self.best[rows], self.second[rows]
        better = d1 < cur_best
        self.second[rows] = np.where(better, np.minimum(cur_best, d2), np.minimum(cur_second, d1))
        self.best[rows] = np.where(better, d1, cur_best)
        self.best_idx[rows] = np.where(better, cols[idx[:, 0]], self.best_idx[rows])

    def matches(self, cfg: Matching = MATCHING) -> tuple[np.ndarray, np.ndarray]:
        """The ratio test and distance bound over what has been added: (query_idx,
        target_idx)."""
        return _passing(self.best, self.second, self.best_idx, cfg)


def orientation_filter(dangle: np.ndarray, cfg: Matching = MATCHING) -> np.ndarray:
    """Mask of matches whose keypoint rotation agrees with the dominant one (circular mode)."""
    if len(dangle) == 0:
        return np.zeros(0, dtype=bool)
    nb = cfg.orient_bins
    width = 360.0 / nb
    bins = (np.mod(dangle, 360.0) // width).astype(int) % nb
    hist = np.bincount(bins, minlength=nb).astype(np.float64)
    smooth = hist + np.roll(hist, 1) + np.roll(hist, -1)
    mode = (int(np.argmax(smooth)) + 0.5) * width
    diff = np.abs((dangle - mode + 180.0) % 360.0 - 180.0)
    return diff <= cfg.orient_tolerance_deg + width


def _normaliser(width: int, height: int, cfg: Matching) -> np.ndarray:
    s = cfg.verify_frame / max(width, height, 1)
    return np.diag([s, s, 1.0])


def _quad_ok(quad: np.ndarray, frame_w: float, frame_h: float, cfg: Matching = MATCHING) -> bool:
    """Pastec's sanity check on the target outline projected into the query."""
    if not np.all(np.isfinite(quad)):
        return False
    edges = np.roll(quad, -1, axis=0) - quad
    cross = (
        edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1]
        - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    )
    # Convex and same winding as the target's own corners (image y-down: positive cross).
    if not np.all(cross > 0):
        return False
    x, y = quad[:, 0], quad[:, 1]
    area = 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    frame_area = frame_w * frame_h
    if not (cfg.min_quad_area_frac * frame_area <= area <= cfg.max_quad_area_frac * frame_area):
        return False
    sides = np.hypot(edges[:, 0], edges[:, 1])
    # Opposite sides, not all four: perspective shortens a side relative to its opposite,
    # and a homography collapsing towards a triangle shrinks one to ~0, while a legitimately
    # long, thin target (a banner) has very unequal adjacent sides.
    if min(sides[0], sides[2]) < cfg.min_quad_side_ratio * max(sides[0], sides[2]):
        return False
    if min(sides[1], sides[3]) < cfg.min_quad_side_ratio * max(sides[1], sides[3]):
        return False
    prev = -np.roll(edges, 1, axis=0)
    cosang = np.sum(prev * edges, axis=1) / (sides * np.roll(sides, 1) + 1e-12)
    angles = np.degrees(np.arccos(np.clip(cosang, -1.0, 1.0)))
    return bool(angles.min() >= cfg.min_quad_angle_deg)


def _spread_cells(points: np.ndarray, width: int, height: int, grid: int) -> int:
    g = grid
    cx = np.clip((points[:, 0] * g / max(width, 1)).astype(int), 0, g - 1)
    cy = np.clip((points[:, 1] * g / max(height, 1)).astype(int), 0, g - 1)
    return len(np.unique(cy * g + cx))


def _consistent_matches(
    query: Features,
    target: Features,
    query_buckets: np.ndarray | None,
    target_buckets: np.ndarray | None,
    cfg: Matching,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Ratio-test matches in the dominant rotation, or None when fewer than min_inliers.
    With several probes and ``first_probe_matches`` set, a candidate whose first probe
    alone gives fewer rotation-consistent matches than that is rejected before the other
    probes are compared (most wrong candidates, at a third of the distances)."""
    staged = (
        cfg.first_probe_matches > 0
        and query_buckets is not None
        and target_buckets is not None
        and len(query) > 0
        and len(target) >= 2
        and np.asarray(query_buckets).size > len(query)  # more than one probe a feature
    )
    if staged:
        nearest = TwoNearest(query.descriptors, target.descriptors, target_buckets)
        nearest.add(query_buckets, 0, 1)
        qi, ti = nearest.matches(cfg)
        agreeing = orientation_filter(query.angle[qi] - target.angle[ti], cfg)
        if int(agreeing.sum()) < cfg.first_probe_matches:
            return None
        nearest.add(query_buckets, 1)
        qi, ti = nearest.matches(cfg)
    else:
        qi, ti = ratio_matches(query, target, query_buckets, target_buckets, cfg)
    if len(qi) < cfg.min_inliers:
        return None
    keep = orientation_filter(query.angle[qi] - target.angle[ti], cfg)
    qi, ti = qi[keep], ti[keep]
    if len(qi) < cfg.min_inliers:
        return None
    return qi, ti


def verify(
    query: Features,
    target: Features,
    query_buckets: np.ndarray | None = None,
    target_buckets: np.ndarray | None = None,
    cfg: Matching = MATCHING,
) -> Verification | None:
    """Accept ``target`` as depicted in ``query`` or return ``None``.

    Ratio-test matches (within shared buckets if given, see :func:`ratio_matches`),
    orientation-consistency prefilter, MAGSAC homography in a resolution-independent
    frame, then accept on inlier count AND spread over the target AND a convex, plausible
    projected outline.
    """
    matched = _consistent_matches(query, target, query_buckets, target_buckets, cfg)
    if matched is None:
        return None
    qi, ti = matched
    nt = _normaliser(target.width, target.height, cfg)
    nq = _normaliser(query.width, query.height, cfg)
    src = target.xy[ti].astype(np.float64) * nt[0, 0]
    dst = query.xy[qi].astype(np.float64) * nq[0, 0]
    h_norm, mask = cv2.findHomography(
        src.reshape(-1, 1, 2),
        dst.reshape(-1, 1, 2),
        getattr(cv2, cfg.ransac_method),
        cfg.ransac_threshold,
        maxIters=cfg.ransac_max_iters,
        confidence=cfg.ransac_confidence,
    )
    if h_norm is None or mask is None:
        return None
    inl = mask.ravel().astype(bool)
    # One target feature matched by several query features counts once.
    inliers = len(np.unique(ti[inl]))
    if inliers < cfg.min_inliers:
        return None
    cells = _spread_cells(target.xy[ti[inl]], target.width, target.height, cfg.spread_grid)
    if cells < cfg.min_cells:
        return None
    corners = np.array(frame_corners(target.width, target.height), dtype=np.float64)
    quad = cv2.perspectiveTransform((corners * nt[0, 0]).reshape(-1, 1, 2), h_norm)
    fw, fh = query.width * nq[0, 0], query.height * nq[0, 0]
    if not _quad_ok(quad.reshape(4, 2), fw, fh, cfg):
        return None
    homography = np.linalg.inv(nq) @ h_norm @ nt
    homography = homography / homography[2, 2]
    coverage = cells / float(cfg.spread_grid**2)
    score = float(inliers * (0.5 + 0.5 * coverage))
    return Verification(inliers=inliers, homography=homography, score=score)
