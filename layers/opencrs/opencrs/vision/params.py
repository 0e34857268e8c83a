"""Every tuned value of the recognition engine, in one place.

"Measured" below means: OpenCV 5.0.0, numpy 2.4, a 2-core x86 machine, and either the
18 CC0 demo photos in ``demo/photos`` (10 gallery targets, 8 negatives; see
``tests/photos.py``) with the ``python -m bench.quality`` families plus harder stress
variants, or (comments that say "bench.quality's gallery" / "bench.speed") the 127 real
photographs and 157 negative photos of ``bench/photos`` (README "bench/quality"), with
distractor galleries of up to 100k targets for the search values. The base recipe (ORB,
~3000 query features <= 1024 px, ratio test, top-10 shortlist, MAGSAC, >= 15 inliers) is
DESIGN.md's, measured there on 400 real phone photos of DVD covers (~97 % top-1). Values
no measurement could discriminate are marked "not tuned" and keep the DESIGN.md/OpenCV
defaults.
"""

from __future__ import annotations

# --- Input limits (EasyAR: image <= 2 MB) ------------------------------------------------
MAX_IMAGE_BYTES = 2 * 1024 * 1024
# Decompression-bomb guard, checked on the header before decoding: 40 MP is a 7300x5500
# photo (more than any phone ships) and costs 40 MB as grey uint8.
MAX_PIXELS = 40_000_000
# Longest side accepted; also keeps absurd aspect ratios (1 x 40M) out.
MAX_SIDE = 16_384

# --- Working sizes ------------------------------------------------------------------------
# Images are resized so their long side is clamped to [MIN, MAX] before ORB. Targets are
# indexed at 640 px (DESIGN.md: ~640 working size; 1000 features cover it). Queries keep up
# to 1024 px because DESIGN.md measured 480 px queries losing ~10 points of top-1. Small
# inputs are *upscaled* to the minimum: ORB's 31 px patch and border leave little of a small
# query. Measured: scale-0.3 queries 6/10 top-1 without upscaling, 10/10 with; scale-0.5 kept
# 10/10 but its weakest own-target vote count rose from 25 to 858.
TARGET_MAX_SIDE = 640
TARGET_MIN_SIDE = 640
QUERY_MAX_SIDE = 1024
QUERY_MIN_SIDE = 640

# --- ORB ----------------------------------------------------------------------------------
# Targets: fewer, strongest, spread. We detect TARGET_OVERDETECT x more and keep the best
# per cell of a TARGET_GRID x TARGET_GRID grid (round-robin over cells), so one textured
# corner cannot eat the budget. Queries use the same grid.
TARGET_FEATURES = 1000
TARGET_OVERDETECT = 3
TARGET_GRID = 8
# Queries: DESIGN.md measured ~3000 features at <= 1024 px for 97 % top-1.
QUERY_FEATURES = 3000
# Queries are spread the same way over 8x over-detection: otherwise a strongly textured
# background (grass, gravel, brick) takes the whole budget. Measured on the 10 targets
# pasted at half size into grass, gravel and brick (the bench's "clutter-tex" family uses
# gravel): top-1 26/30 at 2x, 30/30 at 8x and at 16x (at 40 % size: 24, 25, 26 of 30).
# Extraction costs +5-20 ms on ordinary photos vs 2x, +25 ms worst case (grass).
QUERY_OVERDETECT = 8
ORB_SCALE_FACTOR = 1.2
ORB_LEVELS = 8
ORB_PATCH = 31
# FAST threshold 20 (OpenCV's default) starves low-contrast images. Measured at 10 vs 20:
# -40 % contrast queries' weakest own-target vote count 833 vs 182; target at 30 % size in
# clutter 10/10 vs 9/10; no family got worse.
ORB_FAST_THRESHOLD = 10
# A soft, hazy or motion-blurred photo that is well exposed (so not stretched below) still
# starves FAST at 10: when detection finds fewer than ORB_FEW_FEATURES x the feature
# budget, it runs again at each ORB_FAST_RETRY threshold in turn until it does (queries and
# targets alike). Measured on bench.quality's full run (127 targets, 1,099 negatives):
# a stormy sky that had 2 features has 424 and is found in 7 of 8 moderate families (was
# 0); moderate recall@1 0.985 -> 0.994 with ORB_FEW_FEATURES 0.25 and 0.995 with 0.5
# (scale 0.2 0.976 -> 1.000, crop 0.969 -> 0.984), hard 0.925 -> 0.929; no new false
# positive; p50 latency 96 -> 106 ms in back-to-back runs (more features on soft queries).
# Retrying down to 2 ((5, 3, 2), (7, 5, 3, 2)) found nothing more on the hardest photos.
ORB_FAST_RETRY: tuple[int, ...] = (5, 3)
ORB_FEW_FEATURES = 0.5
# Dim or flat images, queries and targets alike (grey levels between the 1st and 99th
# percentile spanning less than STRETCH_BELOW), are smoothed (Gaussian, STRETCH_SIGMA px)
# and stretched to the full range before ORB: FAST's fixed threshold then sees the
# contrast a well-exposed photo has, and the smoothing keeps the amplified sensor noise
# from becoming corners. ORB's descriptors compare intensities, so the stretch keeps them
# matchable. Measured on bench.quality's 127 gallery photos, "low light" family (25 %
# exposure, contrast 0.8, noise 3): recall@1 112/127 as is, 117 stretched, 125
# smoothed+stretched (CLAHE: 116); light ±40 %, combined, blur+noise and strong blur
# unchanged (124, 124, 125, 123 of 127); no new false positive on the 158 negatives as-is
# and dark+noise. Targets too: the full bench run with queries-only normalisation lost a
# dim target (range 118) in every family, 0 inliers even at JPEG q40 vs 130 with the
# target normalised as well.
STRETCH_BELOW = 128.0
STRETCH_SIGMA = 0.8
# ...times gain ** STRETCH_SIGMA_GAIN_POWER, gain = 255 / (grey range): the stretch
# multiplies sensor noise by the gain, so a dark photo needs more smoothing than a merely
# flat one (gain 2: sigma 0.95; a quarter exposure, gain ~20: sigma 1.7). Gain >= 2
# whenever the stretch runs, so this never smooths less than the fixed sigma did.
# Measured on bench.quality's "low light" family (127 gallery photos, quarter exposure,
# noise 3): 124 / 125 / 126 / 127 found at power 0 / 0.25 / 0.35 / 0.5; on the demo
# photos at 15 % exposure soft images gain (retina under a sigma-3 blur: no match at power
# 0, 60 inliers at 0.25) but sharp ones lose fine detail as the power grows (rocket 169 /
# 114 / 39 inliers at 0 / 0.25 / 0.5; at 6 % exposure rocket and coins are lost at 0.5).
# 0.25 keeps both; 0.5 would reach pHash's 127/127 on the bench at the sharp photos' cost.
STRETCH_SIGMA_GAIN_POWER = 0.25

# --- Verification (one query against one target) -----------------------------------------
# Lowe ratio between best and second-best target descriptor for each query descriptor.
# Measured 0.75 / 0.8 / 0.85: identical on every family except tilt 60° (7, 7, 8 of 10);
# Lowe's 0.8 kept, since a looser ratio only feeds RANSAC more outliers.
RATIO = 0.8
# Absolute Hamming bound on a kept match (256-bit ORB): random pairs sit around 128.
# Not tuned (the ratio test does the work; this only drops hopeless pairs).
MATCH_MAX_DISTANCE = 80
# Pastec-style orientation prefilter: keypoint angle differences of true matches cluster
# around the in-plane rotation; keep matches within +-(ORIENT_TOLERANCE_DEG + one bin) of
# the smoothed circular mode, i.e. +-40°, wide enough for 40° perspective tilt (all tilt40
# queries pass). Not tuned further.
ORIENT_BINS = 36
ORIENT_TOLERANCE_DEG = 30.0
# Both point sets are rescaled so their long side is VERIFY_FRAME before the homography, so
# the RANSAC threshold does not depend on the uploaded resolution.
VERIFY_FRAME = 1000.0
RANSAC_THRESHOLD = 8.0  # px in VERIFY_FRAME units (~0.8 % of the long side); not tuned
RANSAC_MAX_ITERS = 2000
# cv2.findHomography method. Measured on the full bench.quality run: USAC_ACCURATE
# (GC-RANSAC with local optimisation) finds 3 more true matches than USAC_MAGSAC
# (moderate 0.995 -> 0.996, hard 0.929 -> 0.932: a blurred text page MAGSAC fits a wrong
# model to, a crop, a tilt) but also one more false positive (the Qutub Minar look-alike
# under JPEG q40, 17 inliers): MAGSAC kept, since zero false positives is the stricter goal.
RANSAC_METHOD = "USAC_MAGSAC"
RANSAC_CONFIDENCE = 0.999
# Acceptance: all of these must hold. MIN_INLIERS is DESIGN.md's 15. Measured margin: over
# every wrong (query, target) pair of 6 families x 18 photos, the most inliers seen was 6-7
# with the spread, orientation and outline gates disabled, 5 with them on; true matches had
# a median of 105-975 inliers per family and the hardest passing stress query ~35.
MIN_INLIERS = 15
# Spread: the inliers must occupy at least MIN_CELLS cells of a SPREAD_GRID^2 grid laid on
# the target, so a single textured blob matching by chance cannot pass.
SPREAD_GRID = 4
MIN_CELLS = 3
# Outline sanity (Pastec): target corners projected into the query must form a convex,
# same-orientation quadrilateral whose area is a plausible fraction of the query frame
# (tiny: target far away in clutter; huge: query is a tight crop), no side shorter than
# MIN_QUAD_SIDE_RATIO x its opposite side, no corner sharper than MIN_QUAD_ANGLE_DEG.
# Not tuned: plausible bounds that every true match in the bench passes with room.
MIN_QUAD_AREA_FRAC = 0.005
MAX_QUAD_AREA_FRAC = 30.0
MIN_QUAD_SIDE_RATIO = 0.1
MIN_QUAD_ANGLE_DEG = 20.0

# --- Whole-image check (opencrs.vision.wholeimage) ---------------------------------------
# A target is also accepted when the query is the same picture seen whole under a global
# photometric change (blur, noise, exposure), which local features miss on soft images:
# pHash within WHOLE_MAX_PHASH bits shortlists, and the 32x32 thumbnails must agree under
# one gain and offset in every cell of a WHOLE_CELLS x WHOLE_CELLS grid (WHOLE_CELLS must
# divide 32) to a worst-cell RMS residual of WHOLE_MAX_RESIDUAL x the query's std.
# Measured on bench.quality's 127 gallery photos, every family: the families without
# geometry (scale 0.35-1 and 0.2, JPEG q40, blur + noise, strong blur, low light) all pass,
# true pHash distance at most 6, true residual at most 0.198 (strong blur; scale 0.35-1
# 0.167, scale 0.2 0.155, low light 0.083); light +-40 % passes for 105 of 127 (clipping).
# Unrelated pairs, whatever their hashes: every query of a gallery photo against the other
# 126 targets, smallest residual 0.77 (224k pairs); the 1,099 negative queries against
# every target, 0.87 (140k pairs); bench.phash_scale's 100k distractors within 12 bits
# of any query of the 14 families: none accepted, smallest 0.99. 0.25 is 1.3x the largest
# true residual and a quarter of the smallest unrelated one at 100k. It took
# bench.quality's blur + noise, strong blur and low light families from 0.992, 0.984,
# 0.984 to 1.000 with no false positive. The residual is over the smaller of the query's
# overall and central contrast: bench.speed --negatives found two flat pictures with the
# same rotated, JPEG-blurred padding agreeing at 0.25 on the padding's outline alone
# (with it, unrelated gallery pairs' smallest residual rose from 0.64 to 0.77 and the 100k
# distractors' from 0.38 to 0.99; the true ones stayed under the bound, strong blur's
# largest rising from 0.113 to 0.198).
# Thumbnails flatter than WHOLE_MIN_STD grey levels (blank pages) are never compared, nor
# pairs with under WHOLE_MIN_VALID of their pixels left once padding and clipped pixels
# (0 or 255 in either, and a 2-pixel rim) are set aside: at 0.5, rotated queries with
# more padding reached 0.48 (combined) and 0.84 (tilt) against the 100k distractors; at
# 0.7, 0.91 and 1.14 (both before the centre-contrast change), and every gallery photo
# keeps at least 73 % of its pixels.
WHOLE_MAX_PHASH = 12
WHOLE_CELLS = 4
WHOLE_MAX_RESIDUAL = 0.25
WHOLE_MIN_STD = 1.0
WHOLE_MIN_VALID = 0.7

# --- Search (opencrs.index: vocabulary tree + inverted file, issue #4) --------------------
# The vocabulary (branching x depth) is fixed by the shipped file opencrs/index/vocabulary-v1.bin
# (bench/train_vocabulary.py). Geometric verification only for the SHORTLIST best tf-idf
# scores, and only when at least MIN_VOTES query features share a word with the candidate
# (fewer cannot reach MIN_INLIERS).
SHORTLIST = 10
MIN_VOTES = MIN_INLIERS
# The shortlist is SHORTLIST - SHORTLIST_PLAIN targets ranked by Hamming-embedded tf-idf
# (a shared word counts only when the first 64 bits of the two descriptors differ in at
# most SHORTLIST_MAX_HAMMING bits; 0 turns it off), plus the SHORTLIST_PLAIN best by plain
# tf-idf not already in. Measured on bench.quality's gallery (127 photos, every 2nd photo
# queried): right target in the shortlist for in-clutter / tilt 60° / occluded 37, 56, 59
# of 64 with plain tf-idf; 60, 57, 64 with 64-bit signatures at 8 + 3 plain, the same as
# with all 256 bits at 32 (10: 54, 57, 64; 32-bit signatures at 4: 55, 54, 63, at half the
# memory); the embedded ranking alone loses tilt 60° queries, whose descriptors drift
# farther, hence the plain ones. Full descriptors gathered from the shards cost ~100 ms
# per query at 10k targets; signatures stored in posting order, a few ms.
SHORTLIST_MAX_HAMMING = 8
SHORTLIST_PLAIN = 3
# Query features kept for verifying a candidate: those whose vocabulary node at this level
# (1 = root's children .. depth = leaf) is also a node of one of the candidate's features;
# the ratio test still runs against all of the candidate's features. Measured on
# bench.quality --quick (32 targets, 192 hard queries): hard recall@1 0.917 at level 3
# (~28 ms per candidate) vs 0.807 at level 4 (~9 ms: true matches split across level-4
# nodes are lost); moderate 0.996 both.
VERIFY_WORD_LEVEL = 3
# ...and each kept query feature is compared only with the candidate's features under its
# VERIFY_PROBES nearest top-level vocabulary nodes (0: with all of them). Measured on the
# inliers of verified true matches (bench.speed queries, 1000 targets): query and target
# feature share the top-level node for 77 %, one of the query's 2 nearest for 92 %, 3: 97 %,
# 4: 99 %. Over 160 queries, 3 probes kept recall@1 (77/80 moderate, 61/80 hard vs 77, 60
# with all pairs) at 11.5 vs 18.7 ms per verified candidate; 2 probes lost one query.
VERIFY_PROBES = 3

# --- Tilt retry (ASIFT-style, on the query side) ------------------------------------------
# ORB is not affine invariant: a poster photographed ~60 degrees off its normal is
# foreshortened about 2:1, its descriptors drift to other visual words and the shortlist
# and the ratio test lose it (measured on bench.quality's tilt 60 family: 19 of its 24
# misses verify with 17-69 inliers against the right target, which ranked 4th-63rd by
# tf-idf). A query that finds nothing is searched again stretched by each factor of
# TILT_RETRY_STRETCH along its vertical, then its horizontal axis, as if seen face-on,
# until one view finds a target (Morel & Yu's ASIFT simulates such tilts on both images;
# here only the query's, and only the two axis directions). Measured with 2.0 on
# bench.quality's full run: tilt 60 0.811 -> 1.000 (hard 0.934 -> 0.966); occluded, in
# clutter and crop unchanged; no new false positive on the 1,099 negative queries; queries
# that find nothing pay two more extractions and searches (negative queries p50 163 ms,
# p95 264 ms; all queries p50 62 -> 85 ms). bench.speed at 10k targets: hard recall
# 0.756 -> 0.866, p50 / p95 72 / 99 -> 79 / 190 ms. Empty: no retry.
TILT_RETRY_STRETCH: tuple[float, ...] = (2.0,)

# --- Quality grades (see opencrs.vision.quality for the formulas) --------------------------
# Cut points were set on the 18 demo photos (rich photos grade 0-1; page/text/brick/gravel
# score worse on ambiguity; a sigma-6 blur drops to 3-4) plus synthetic blank and tiled
# images; they are a documented definition, not a reproduction of EasyAR's hidden formulas.
QUALITY_MIN_STD = 3.0  # grey-level std below which an image is "blank" (all grades -1)
QUALITY_MIN_FEATURES = 20
QUALITY_GRID = 8
QUALITY_LOCAL_RADIUS = 0.05  # of the long side: closer features are "the same corner"
QUALITY_NEIGHBOURS = 16
QUALITY_DISTINCT_HAMMING = 64
QUALITY_DUPLICATE_HAMMING = 40
QUALITY_FAST_THRESHOLD = 20
QUALITY_PATCHES = 300
QUALITY_PATCH = 11
QUALITY_PATCH_NCC = 0.9
QUALITY_BLOCK = 32
# (grade 0, grade 1, grade 2, grade 3) cut points; beyond the last one is grade 4.
QUALITY_CUTS_FEATURE_COUNT = (900.0, 600.0, 300.0, 100.0)
QUALITY_CUTS_CORNER_COUNT = (1500.0, 800.0, 400.0, 150.0)
QUALITY_CUTS_DISTRIBUTION = (0.85, 0.7, 0.5, 0.3)
QUALITY_CUTS_DISTINCT = (0.6, 0.45, 0.3, 0.15)
QUALITY_CUTS_AMBIGUITY = (0.02, 0.05, 0.12, 0.25)
QUALITY_CUTS_PATCH_DISTINCT = (0.9, 0.75, 0.55, 0.35)
QUALITY_CUTS_CONTRAST = (30.0, 20.0, 12.0, 6.0)
