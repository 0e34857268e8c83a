"""Every tuned value of the recognition engine, as frozen dataclasses grouped by concern.

Code takes the group it needs (a parameter defaulting to the instance below, or held by
the ``Searcher``), so a variant is ``dataclasses.replace(DEFAULT, ...)`` passed in, never
a global changed. Why each value is what it is, with the measurements, is in
``docs/tuning-log.md``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["target", "query"]


@dataclass(frozen=True)
class ImageLimits:
    """What an uploaded image may be, checked before anything decodes it."""

    # EasyAR's own limit on an image.
    max_bytes: int = 2 * 1024 * 1024
    # Decompression-bomb guard on the header: more than any phone ships.
    max_pixels: int = 40_000_000
    # Keeps absurd aspect ratios (1 x 40M) out.
    max_side: int = 16_384

    @property
    def max_png_decoded_bytes(self) -> int:
        """Bytes a PNG may decode to, those of the largest 8-bit RGB image allowed: deflate
        packs ~1000:1, so the pixel limit alone does not bound the decoder's work."""
        return 3 * self.max_pixels


@dataclass(frozen=True)
class Extraction:
    """How ORB features are extracted for one role (targets when indexing, queries)."""

    # Small inputs are upscaled to this long side: ORB's patch and border need room.
    min_side: int = 640
    # Larger ones are shrunk to this: enough pixels for the feature budget, no more.
    max_side: int = 640
    # Feature budget: fewer, strongest features for targets, more for queries.
    features: int = 1000
    # Detect this many times the budget, then keep the best per grid cell.
    overdetect: int = 3
    # Cells per side of that grid, so one textured corner cannot eat the budget.
    grid: int = 8
    # Pyramid scale step (OpenCV's default): scale invariance at a bounded cost.
    scale_factor: float = 1.2
    # Pyramid levels (OpenCV's default): covers the scale range queries show.
    levels: int = 8
    # ORB patch size, also its border.
    patch: int = 31
    # FAST threshold, below OpenCV's 20 that starves low-contrast images.
    fast_threshold: int = 10
    # Lower thresholds tried in turn when too few corners are found (soft or hazy photos).
    fast_retry: tuple[int, ...] = (5, 3)
    # "Too few": under this fraction of the feature budget.
    few_features: float = 0.5
    # Dim or flat images (1st-99th percentile range below this) are smoothed and stretched.
    stretch_below: float = 128.0
    # Gaussian sigma of that smoothing, so amplified sensor noise does not become corners.
    stretch_sigma: float = 0.8
    # ...times gain ** this: a darker image's noise is amplified more, so smooth it more.
    stretch_sigma_gain_power: float = 0.25


@dataclass(frozen=True)
class Matching:
    """Geometric verification of one query against one target, and its acceptance."""

    # Lowe's ratio between best and second-best match distance.
    ratio: float = 0.8
    # Hamming bound on a kept match (random 256-bit pairs sit around 128).
    match_max_distance: int = 80
    # Orientation prefilter: histogram bins of keypoint angle differences...
    orient_bins: int = 36
    # ...and the tolerance around their mode, wide enough for strong perspective tilt.
    orient_tolerance_deg: float = 30.0
    # Both point sets are rescaled to this long side, so thresholds ignore resolution.
    verify_frame: float = 1000.0
    # RANSAC reprojection threshold, px in verify_frame units (~0.8 % of the long side).
    ransac_threshold: float = 8.0
    # Enough iterations for the outlier ratios the ratio test leaves.
    ransac_max_iters: int = 2000
    # cv2.findHomography method: the one without false positives in the bench.
    ransac_method: str = "USAC_MAGSAC"
    # Chance RANSAC finds the model if there is one.
    ransac_confidence: float = 0.999
    # Inliers a match needs: far above what wrong pairs reach, below the hardest true ones.
    min_inliers: int = 15
    # Verification with several probes (Search.verify_probes) first matches each query
    # feature within its nearest probe alone; fewer rotation-consistent matches than this
    # there and the candidate is rejected without the other probes (0: never). 30 loses
    # targets in clutter; 20 lost nothing measured (docs/tuning-log.md).
    first_probe_matches: int = 20
    # Cells per side of the grid laid on the target to measure the inliers' spread.
    spread_grid: int = 4
    # Cells the inliers must occupy, so one textured blob matching by chance cannot pass.
    min_cells: int = 3
    # Smallest projected outline, of the query frame: a target far away in clutter.
    min_quad_area_frac: float = 0.005
    # Largest: a tight crop; beyond either it is a degenerate homography.
    max_quad_area_frac: float = 30.0
    # No side shorter than this times its opposite side (a collapsing homography).
    min_quad_side_ratio: float = 0.1
    # No corner sharper than this.
    min_quad_angle_deg: float = 20.0


@dataclass(frozen=True)
class WholeImage:
    """The whole-image check: the same picture under a global photometric change."""

    # pHash distance that shortlists a target for the thumbnail comparison.
    max_phash: int = 12
    # The thumbnails must agree in every cell of a cells x cells grid (must divide 32).
    cells: int = 4
    # Worst-cell RMS residual, over the query's contrast, that still counts as the same.
    max_residual: float = 0.25
    # Thumbnails flatter than this (grey levels of std) are never compared.
    min_std: float = 1.0
    # Nor pairs with less than this fraction of pixels left once padding and clipping go.
    min_valid: float = 0.7


@dataclass(frozen=True)
class Search:
    """Shortlisting over the inverted file, and the query views searched."""

    # Candidates verified per query (SMVS dev photos, 1k targets: top-1 92.5 % at 10,
    # 96.5 % at 20, 96.5 % at 30).
    shortlist: int = 20
    # Signature bits that may differ for a shared word to count (0: plain tf-idf only);
    # 12 with the weighting below ranks the true cover first 1-2 points more often than 8.
    shortlist_max_hamming: int = 12
    # A vote's weight falls as exp(-d^2 / sigma^2) with its signature distance d.
    shortlist_hamming_sigma: float = 8.0
    # Bits of each descriptor's signature (its first bits) the index keeps and compares:
    # the index holds 8 bytes a posting for them above 40, 5 up to 40, 4 up to 32.
    shortlist_signature_bits: int = 64
    # Rotation bins of the shortlist's consistency check (0: Hamming-embedded tf-idf);
    # SMVS dev photos, 10k targets: true cover in the top 10 for 52.5 % -> 88.5 %.
    shortlist_angle_bins: int = 12
    # A query feature also votes through its second-nearest leaf when that is at most this
    # many bits farther (multiple assignment; -1: off). SMVS dev photos, 10k targets: cover
    # in the top 17 for 89.0 % -> 93.0 %, ~15 ms more scoring.
    shortlist_second_leaf_bits: int = 3
    # Query words whose posting list is longer than this many times the mean list length
    # are skipped by the shortlist (0: none): those lists are mostly chance collisions and
    # most of the walk. Chosen by the sweep in docs/benchmarks.md (query-time stop list).
    shortlist_common_word_ratio: float = 3.2
    # ...but never below this many postings: in a small gallery the mean is a fraction of one.
    shortlist_common_word_floor: int = 32
    # Shortlist places kept for plain tf-idf: steep tilts drift past the embedding.
    shortlist_plain: int = 3
    # The best this many by the shortlist score are re-ranked by how many of their votes
    # one similarity transform explains before the shortlist is taken (0: off). Pastec
    # re-ranks 300; SMVS dev photos, 100k targets: cover in the top 17 88.5 % -> 95.5 %.
    rerank_candidates: int = 300
    # Inlier distance of that transform, in verify_frame units: looser than verification's,
    # since a similarity only approximates a tilted photo's homography.
    rerank_threshold: float = 20.0
    # 2-point hypotheses tried per candidate.
    rerank_hypotheses: int = 32
    # Votes kept per candidate (closest signatures first): bounds the cost of the consensus.
    rerank_max_points: int = 128
    # Fewer votes than this: not worth a hypothesis (its consensus is 0).
    rerank_min_votes: int = 6
    # Re-ranked candidates whose consensus is below this are not verified (0: all are).
    rerank_min_inliers: int = 0
    # Vocabulary level where a query feature must share a node with a candidate to vote.
    verify_word_level: int = 3
    # Nearest top-level nodes whose features a query feature is matched with (0: all).
    verify_probes: int = 3
    # Stretches of a query that found nothing (a steep tilt seen face-on); empty: none.
    tilt_retry_stretch: tuple[float, ...] = (2.0,)


Cuts = tuple[float, float, float, float]


@dataclass(frozen=True)
class Quality:
    """The quality grades' definition (see :mod:`opencrs.vision.quality`)."""

    # Grey-level std below which an image is blank (every grade -1).
    min_std: float = 3.0
    # Fewer features than this: unusable (every grade -1).
    min_features: int = 20
    # Cells per side for the feature distribution.
    grid: int = 8
    # Of the long side: closer features are the same corner at another pyramid level.
    local_radius: float = 0.05
    # Nearest neighbours searched for each feature's distinctiveness.
    neighbours: int = 16
    # Farther than this (bits) from any other feature: distinctive.
    distinct_hamming: int = 64
    # Within this (bits) of another feature: a near-duplicate (repeated pattern).
    duplicate_hamming: int = 40
    # FAST threshold for the trackable corners (OpenCV's default).
    fast_threshold: int = 20
    # Strongest corners whose patches are compared.
    patches: int = 300
    # Side (px) of those patches.
    patch: int = 11
    # A patch correlating below this with every distant one is distinctive.
    patch_ncc: float = 0.9
    # Side (px) of the blocks whose median std is the contrast.
    block: int = 32
    # Cut points (grades 0, 1, 2, 3; beyond the last is 4) of detectableFeatureCount,
    cuts_feature_count: Cuts = (900.0, 600.0, 300.0, 100.0)
    # ...of trackableFeatureCount,
    cuts_corner_count: Cuts = (1500.0, 800.0, 400.0, 150.0)
    # ...of trackableFeatureDistribution,
    cuts_distribution: Cuts = (0.85, 0.7, 0.5, 0.3)
    # ...of detectableDistinctiveness,
    cuts_distinct: Cuts = (0.6, 0.45, 0.3, 0.15)
    # ...of trackablePatchAmbiguity (ascending: more is worse),
    cuts_ambiguity: Cuts = (0.02, 0.05, 0.12, 0.25)
    # ...of trackableDistinctiveness,
    cuts_patch_distinct: Cuts = (0.9, 0.75, 0.55, 0.35)
    # ...and of trackablePatchContrast.
    cuts_contrast: Cuts = (30.0, 20.0, 12.0, 6.0)


IMAGE_LIMITS = ImageLimits()
TARGET = Extraction()
# Queries: more features at a larger size, spread over more over-detection so a textured
# background cannot take the whole budget.
QUERY = Extraction(max_side=1024, features=3000, overdetect=8)
MATCHING = Matching()
WHOLE_IMAGE = WholeImage()
SEARCH = Search()
QUALITY = Quality()


@dataclass(frozen=True)
class Tuning:
    """Every group at once: what a ``Searcher`` or a benchmark run is configured with."""

    image: ImageLimits = IMAGE_LIMITS
    target: Extraction = TARGET
    query: Extraction = QUERY
    verify: Matching = MATCHING
    whole: WholeImage = WHOLE_IMAGE
    search: Search = SEARCH
    quality: Quality = QUALITY

    def extraction(self, role: Role) -> Extraction:
        """The extraction profile of ``role``."""
        if role == "target":
            return self.target
        if role == "query":
            return self.query
        raise ValueError(f"role must be 'target' or 'query', not {role!r}")

    def replace(self, path: str, value: Any) -> Tuning:
        """A copy with ``group.field`` (e.g. ``"verify.min_inliers"``) set to ``value``;
        ``AttributeError`` for a name that is not a field."""
        group_name, _, name = path.partition(".")
        group = getattr(self, group_name)
        if not dataclasses.is_dataclass(group) or name not in {
            f.name for f in dataclasses.fields(group)
        }:
            raise AttributeError(f"no tuned value {path!r}")
        return dataclasses.replace(
            self, **{group_name: dataclasses.replace(group, **{name: value})}
        )


DEFAULT = Tuning()
