"""Does a photometric second check separate a look-alike from weak true matches?

The only negatives bench.quality's engine ever accepted are a different photograph of the
same tower (the Qutub Minar), accepted with 16-24 inliers; bench.quality now reports them
as "same landmark" (see its docstring). This script replays, from the last full
``bench.quality`` run (``bench/out/quality-g1-n1.json``), every accepted match with fewer
than ``--below`` inliers, true or false, through the production extraction and
verification, then warps the query into a ``--thumb``-pixel thumbnail of the accepted
target with the verified homography and measures how much of the target's visible area
looks alike: per cell of a 4x4 grid (cells at least 80 % inside the query), the
normalised cross-correlation of the two lightly blurred patches. It prints, for the true
matches of each family, for same-landmark matches and for false ones, the fraction of
cells with NCC > 0.5 and the median NCC, so a threshold could be read off if one existed.
Whole-image hits (no homography, no inliers) are not replayed.

    python -m bench.lookalike [--thumb 64] [--below 40]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from bench import quality as q
from opencrs.vision.features import extract_features
from opencrs.vision.image import check_and_decode
from opencrs.vision.verify import verify

GRID = 4
AGREE_NCC = 0.5


def agreement(
    target: np.ndarray, query: np.ndarray, homography: np.ndarray, thumb: int
) -> tuple[float, float]:
    """(fraction of visible cells with NCC > AGREE_NCC, median NCC) of ``query`` warped
    onto a ``thumb``-pixel thumbnail of ``target``."""
    s = thumb / max(target.shape)
    small = cv2.resize(
        target,
        (max(1, round(target.shape[1] * s)), max(1, round(target.shape[0] * s))),
        interpolation=cv2.INTER_AREA,
    )
    th, tw = small.shape
    to_query = homography @ np.diag([1 / s, 1 / s, 1.0])
    # Shrink the query to about the thumbnail's scale first, so the warp does not alias.
    centre = np.array([tw / 2, th / 2, 1.0])
    pts = [to_query @ (centre + np.array([dx, dy, 0.0])) for dx, dy in ((0, 0), (1, 0), (0, 1))]
    pts = [p[:2] / p[2] for p in pts]
    factor = float(np.sqrt(abs(np.linalg.det(np.array([pts[1] - pts[0], pts[2] - pts[0]])))))
    if factor > 1.5:
        query = cv2.resize(
            query,
            (max(1, round(query.shape[1] / factor)), max(1, round(query.shape[0] / factor))),
            interpolation=cv2.INTER_AREA,
        )
        to_query = np.diag([1 / factor, 1 / factor, 1.0]) @ to_query
    flags = cv2.WARP_INVERSE_MAP
    warped = cv2.warpPerspective(query, to_query, (tw, th), flags=cv2.INTER_LINEAR | flags)
    inside = (
        cv2.warpPerspective(
            np.full(query.shape, 255, np.uint8), to_query, (tw, th), flags=cv2.INTER_NEAREST | flags
        )
        > 0
    )
    a_img = cv2.GaussianBlur(small, (0, 0), 1.0).astype(np.float64)
    b_img = cv2.GaussianBlur(warped, (0, 0), 1.0).astype(np.float64)
    nccs = []
    for i in range(GRID):
        for j in range(GRID):
            ys = slice(i * th // GRID, (i + 1) * th // GRID)
            xs = slice(j * tw // GRID, (j + 1) * tw // GRID)
            m = inside[ys, xs]
            if m.mean() < 0.8:
                continue
            a = a_img[ys, xs][m] - a_img[ys, xs][m].mean()
            b = b_img[ys, xs][m] - b_img[ys, xs][m].mean()
            den = float(np.sqrt((a * a).sum() * (b * b).sum()))
            nccs.append(float((a * b).sum()) / den if den > 1e-6 else 0.0)
    if not nccs:
        return 0.0, 0.0
    arr = np.array(nccs)
    return float((arr > AGREE_NCC).mean()), float(np.median(arr))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--thumb", type=int, default=64, help="thumbnail long side, px")
    parser.add_argument("--below", type=int, default=40, help="replay matches with fewer inliers")
    args = parser.parse_args()
    run = json.loads((q.OUT / "quality-g1-n1.json").read_text())
    rows = q.load_manifest()
    gallery = {Path(r["file"]).stem: q.read_gray(r["file"]) for r in rows if r["role"] == "gallery"}
    negatives = {
        Path(r["file"]).stem: q.read_gray(r["file"]) for r in rows if r["role"] == "negatives"
    }
    for name in q.near_duplicates(negatives, gallery):
        del negatives[name]
    ctx = q.Context(backgrounds=[g for g in negatives.values() if min(g.shape) >= 400])
    # Moderate and negative families share some names: pick by the query's kind.
    families = {
        "moderate": q.MODERATE,
        "hard": q.HARD,
        "negative": q.NEGATIVE,
        "same landmark": q.NEGATIVE,
    }
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for x in run["queries"]:
        hits = x["results"]["opencrs"]
        if not hits or not 0 < x["inliers"][0] < args.below:
            continue
        true = hits[0] == x["truth"]
        photo = negatives[x["photo"]] if x["truth"] is None else gallery[x["photo"]]
        rng = np.random.default_rng([q.zlib_crc(x["family"]), q.zlib_crc(x["photo"])])
        img, quality = families[x["kind"]][x["family"]](photo, rng, ctx)
        gray = check_and_decode(q.encode(img, quality)).gray
        target = gallery[hits[0]]
        v = verify(extract_features(gray, "query"), extract_features(target, "target"))
        if v is None:  # the search verifies against a bucketed subset; rare disagreement
            continue
        group = "same landmark" if x["kind"] == "same landmark" else "FALSE"
        groups[f"true: {x['family']}" if true else group].append(
            agreement(target, gray, v.homography, args.thumb)
        )
    print(
        f"| matches (< {args.below} inliers) | n | cells agreeing: min-max | median NCC: min-max |"
    )
    print("|---|---|---|---|")
    for name in sorted(groups):
        fr, med = np.array(groups[name]).T
        spread = f"{fr.min():.2f}-{fr.max():.2f} | {med.min():.2f}-{med.max():.2f}"
        print(f"| {name} | {len(fr)} | {spread} |")


if __name__ == "__main__":
    main()
