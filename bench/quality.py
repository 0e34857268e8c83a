"""Recognition quality benchmark over the demo photos.

Indexes the GALLERY photos of ``tests/photos.py`` as targets, queries every transform
family of each, and queries the NEGATIVES (as-is and in the same families, which a real
user's photos of unrelated posters would be). Prints one table: recall@1 per family,
false positives, and per-query latency (feature extraction + search). Families marked
``*`` are stress tests beyond the acceptance spec (where the engine's limits are); they
are excluded from the ALL row.

    python -m bench.quality                      # tuned params
    python -m bench.quality --set RATIO=0.75     # try an override (repeatable)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from opencrs.index.bundle import Bundle
from opencrs.index.search import Searcher
from opencrs.vision import params
from opencrs.vision.features import extract_features
from tests.photos import FAMILIES, GALLERY, NEGATIVES, STRESS, load_gray


def _override(assignments: list[str]) -> None:
    for item in assignments:
        name, _, value = item.partition("=")
        old = getattr(params, name)  # AttributeError on typos, on purpose
        setattr(params, name, type(old)(value))


def run() -> list[str]:
    bundle = Bundle.empty()
    t0 = time.perf_counter()
    for name in GALLERY:
        bundle = bundle.with_target(name, extract_features(load_gray(name), "target"))
    index_ms = (time.perf_counter() - t0) * 1000 / len(GALLERY)
    searcher = Searcher(bundle)
    latencies: list[float] = []

    def query(img: np.ndarray) -> list:
        t = time.perf_counter()
        hits = searcher.search(extract_features(img, "query"))
        latencies.append((time.perf_counter() - t) * 1000)
        return hits

    rows = []
    total_ok = total_n = wrong = total_fp = 0
    max_neg_inliers = 0
    for fam, fn in {**FAMILIES, **STRESS}.items():
        ok = 0
        misses = []
        inl = []
        for name in GALLERY:
            hits = query(fn(load_gray(name), name))
            if hits and hits[0].target_id == name:
                ok += 1
                inl.append(hits[0].inliers)
            else:
                misses.append(name)
            wrong += sum(h.target_id != name for h in hits)
        neg_fp = 0
        for name in NEGATIVES:
            hits = query(fn(load_gray(name), name))
            neg_fp += bool(hits)
            total_fp += bool(hits)
            max_neg_inliers = max([max_neg_inliers, *(h.inliers for h in hits)])
        if fam in FAMILIES:
            total_ok += ok
            total_n += len(GALLERY)
        med = int(np.median(inl)) if inl else 0
        rows.append(
            f"| {fam:<11} | {ok:>2}/{len(GALLERY):<2} | {ok / len(GALLERY):>6.0%} | {med:>7} "
            f"| {neg_fp:>2}/{len(NEGATIVES):<2} | {', '.join(misses) or '-'} |"
        )
    lat = np.array(latencies)
    out = [
        f"gallery {len(GALLERY)} targets ({bundle.descriptors.shape[0]} features, "
        f"{len(bundle.to_bytes()) / 1024:.0f} KiB bundle, index {index_ms:.0f} ms/target); "
        f"negatives {len(NEGATIVES)} photos x {len(FAMILIES) + len(STRESS)} families",
        "| family      | top-1 | recall | inliers | neg FP | misses |",
        "|-------------|-------|--------|---------|--------|--------|",
        *rows,
        f"| ALL (spec)  | {total_ok}/{total_n} | {total_ok / total_n:>6.1%} |         "
        f"|        | wrong extra hits on positives: {wrong} |",
        f"negative queries with any hit: {total_fp} of {len(NEGATIVES) * len(rows)}; "
        f"max inliers on a negative hit: {max_neg_inliers}",
        f"latency per query (extract+search): p50 {np.percentile(lat, 50):.0f} ms, "
        f"p95 {np.percentile(lat, 95):.0f} ms, max {lat.max():.0f} ms over {len(lat)} queries",
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    _override(args.set)
    print("\n".join(run()))


if __name__ == "__main__":
    main()
