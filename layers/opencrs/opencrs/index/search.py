"""Shortlist over a bundle by descriptor voting, then geometric verification.

v1 shortlists by exact brute-force Hamming k-NN over the whole bundle (OpenCV's SIMD
``batchDistance``): DESIGN.md measured FLANN-LSH and OpenCV's ANN as no faster on real ORB
data and lossy. A sub-linear index (vocabulary tree / inverted file) can replace
:meth:`Searcher._neighbours` without changing the interface.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from opencrs.index.bundle import Bundle
from opencrs.vision import params
from opencrs.vision.features import Features, make_features
from opencrs.vision.verify import verify


@dataclass(frozen=True)
class Hit:
    """A verified target: its id, the homography inlier count and the ranking score."""

    target_id: str
    inliers: int
    score: float


class Searcher:
    """Built once per bundle version and cached by the caller across warm Lambda
    invocations (the per-target Features and owner table are precomputed here)."""

    def __init__(self, bundle: Bundle) -> None:
        self._bundle = bundle
        self._ids = bundle.target_ids()
        self._targets = [bundle.features_of(tid) for tid in self._ids]
        self._descriptors = np.ascontiguousarray(bundle.descriptors)
        counts = np.diff(bundle.offsets)
        self._owner = np.repeat(np.arange(len(self._ids), dtype=np.int64), counts)

    @property
    def bundle(self) -> Bundle:
        return self._bundle

    def _neighbours(self, query: Features) -> tuple[np.ndarray, np.ndarray]:
        """(query row, owning target) of every gallery neighbour that may vote: the VOTE_K
        nearest gallery descriptors of each query descriptor within VOTE_MAX_DISTANCE, one
        entry per (row, target)."""
        n_targets = len(self._ids)
        empty = np.zeros(0, dtype=np.int64)
        if n_targets == 0 or len(query) == 0 or len(self._descriptors) == 0:
            return empty, empty
        k = min(params.VOTE_K, len(self._descriptors))
        dist, idx = cv2.batchDistance(
            np.asarray(query.descriptors),
            self._descriptors,
            cv2.CV_32S,
            normType=cv2.NORM_HAMMING,
            K=k,
        )
        ok = (dist <= params.VOTE_MAX_DISTANCE) & (idx >= 0)
        rows = np.nonzero(ok)[0]
        pairs = np.unique(rows * n_targets + self._owner[idx[ok]])
        return pairs // n_targets, pairs % n_targets

    def _shortlist(self, owners: np.ndarray) -> list[int]:
        votes = np.bincount(owners, minlength=len(self._ids))
        order = np.lexsort((np.arange(len(votes)), -votes))  # stable: ties by index
        return [int(i) for i in order[: params.SHORTLIST] if votes[i] >= params.MIN_VOTES]

    def shortlist(self, query: Features) -> list[int]:
        """Indices of the best-voted targets worth verifying, most votes first. Each query
        descriptor votes once per target among its neighbours: no ratio test here, so a
        target indexed twice gets both copies' votes."""
        return self._shortlist(self._neighbours(query)[1])

    def search(self, query: Features, *, max_results: int = 10) -> list[Hit]:
        """Every verified target among the shortlist, best score first (ties: inliers, id).

        With ``params.VERIFY_VOTERS_ONLY`` each candidate is verified with only the query
        descriptors that voted for it (the ratio test still runs against the whole target),
        which cuts verification cost ~5x without changing what is found (see params).
        """
        if max_results <= 0:
            return []
        rows, owners = self._neighbours(query)
        hits: list[Hit] = []
        for i in self._shortlist(owners):
            q = query
            if params.VERIFY_VOTERS_ONLY:
                sel = rows[owners == i]
                q = make_features(
                    query.xy[sel],
                    query.angle[sel],
                    query.descriptors[sel],
                    query.width,
                    query.height,
                )
            v = verify(q, self._targets[i])
            if v is not None:
                hits.append(Hit(target_id=self._ids[i], inliers=v.inliers, score=v.score))
        hits.sort(key=lambda h: (-h.score, -h.inliers, h.target_id))
        return hits[:max_results]
