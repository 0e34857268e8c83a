"""Speed and scale benchmark of the search index: galleries of N targets through the
production code path (JPEG bytes -> ``check_and_decode`` -> ``extract_features`` ->
``Bundle`` -> ``Searcher``), one table row per size.

Gallery of N: the real photos of ``bench/photos/gallery`` (``python -m bench.fetch_photos``;
127 photos, 10 of them the demo gallery) plus N - 127 generated distractors made from
``bench/photos/negatives`` only (never from a target, so no distractor is a legitimate
answer): random crops (25-60 % of the area) rotated, rescaled, mirrored and re-exposed,
2x2 mosaics of crops of four photos, and perspective-warped crops, each JPEG-encoded and
indexed like an upload. Distractor features are cached by chunks of 500 under
``bench/out/speed-cache-<CRC>/`` (deterministic per chunk), the CRC of the target
extraction profile and of the formats the cache holds, so a second run or a larger size
reuses them and a change of extraction profile or of format makes them again.

Queries: every gallery photo once under a moderate and once under a hard family of
``bench.quality`` (rotating through the families, seeded), as JPEG bytes; recall@1 counts
the query's own photo as the first hit. Clutter backgrounds and occluders are negatives
turned upside down with inverted grey levels (ORB descriptors then match nothing in the
distractors, which are made from the same negatives). ``--negatives`` also queries those
upside-down, inverted negatives under bench.quality's negative transforms: none may
return anything (false positives at gallery size N, with their latency: such queries
pay for every tilt view).

Columns: build = bundle assembly (vocabulary quantisation of every gallery feature, done
once as targets enter and stored in the bundle) + Searcher construction (inverted file
from the stored words), single process; index/s/core = targets indexed per second per
core (decode + ORB + bundle/searcher build share, measured single-threaded); index
B/target = Searcher structures beyond the bundle (bundle format 3: 42 B per feature including
its word and 1,032 B of thumbnail per target, ~41 KB/target); cold = fresh interpreter: import +
``Bundle.from_bytes`` + ``Searcher`` (median of 3), which reads the stored words and
quantises nothing; warm query p50/p95 and the median of each stage.

``--real DIR`` queries real phone photos instead (``bench.real``): the gallery is the covers
of ``DIR/Reference`` plus the same distractors, every ``DIR/<phone>/NNN.jpg`` is one query as
a client sends it, and each size reports top-1, found, wrong-first and none, overall and per
phone, with how many photos had their target in the shortlist (shortlist misses against
verification misses) and its median rank in the plain tf-idf scores.

    python -m bench.speed --sizes 1000,10000           # ~10 min on 2 cores, cache empty
    python -m bench.speed --sizes 200 --queries 40      # a quick smoke run (~1 min)
    python -m bench.speed --sizes 100000 --workers 2    # ~100k: distractor extraction is
                                                        # ~40 CPU-min the first time
    python -m bench.speed --real ../shared/data/smvs-dvd-dev --sizes 1000,10000
    python -m bench.speed --real DIR --phones E63 --limit 20 --sizes 1000   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from functools import partial
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

from bench import real
from bench.demo_photos import rotate
from bench.quality import (
    HARD,
    MODERATE,
    NEGATIVE,
    OUT,
    PHOTOS,
    Context,
    encode,
    load_manifest,
    read_gray,
    save,
)
from bench.tuning import overridden
from opencrs.config import DEFAULT_BUNDLE_SHARDS
from opencrs.index.bundle import Bundle
from opencrs.index.search import Searcher
from opencrs.store.bundles import shard_of
from opencrs.vision.features import FORMAT_VERSION, Features, extract_features, make_features
from opencrs.vision.image import check_and_decode
from opencrs.vision.params import DEFAULT, Tuning
from opencrs.vision.wholeimage import THUMB_SIDE, Thumbnail

# The layout of a cache chunk (the arrays _chunk saves); bump it when they change.
_CACHE_LAYOUT = 2


def cache_dir(tuning: Tuning = DEFAULT) -> Path:
    """Where distractor features are cached: named by the CRC of everything that shapes
    them (the target profile) or their stored form, so a stale cache is never reused."""
    key = repr((tuning.target, FORMAT_VERSION, THUMB_SIDE, _CACHE_LAYOUT))
    return OUT / f"speed-cache-{zlib.crc32(key.encode()):08x}"


CHUNK = 500
_SOURCES: list[np.ndarray] = []


# -- distractors ---------------------------------------------------------------------------
def _init_sources(files: list[str]) -> None:
    _SOURCES[:] = [read_gray(f) for f in files]


def _crop(rng: np.random.Generator, area: tuple[float, float]) -> np.ndarray:
    g = _SOURCES[int(rng.integers(len(_SOURCES)))]
    h, w = g.shape
    k = float(np.sqrt(rng.uniform(*area)))
    ch, cw = max(64, round(h * k)), max(64, round(w * k))
    y0, x0 = int(rng.integers(0, max(1, h - ch + 1))), int(rng.integers(0, max(1, w - cw + 1)))
    return g[y0 : y0 + ch, x0 : x0 + cw]


def distractor(index: int) -> np.ndarray:
    """Deterministic distractor picture number ``index`` (grey uint8)."""
    rng = np.random.default_rng([0x5EED, index])
    kind = index % 3
    if kind == 0:  # transformed crop
        img = _crop(rng, (0.25, 0.6))
        img = rotate(img, float(rng.uniform(0, 360)))
        if rng.random() < 0.5:
            img = np.ascontiguousarray(img[:, ::-1])
    elif kind == 1:  # 2x2 mosaic of four photos
        cells = [cv2.resize(_crop(rng, (0.2, 0.5)), (320, 240)) for _ in range(4)]
        img = np.vstack([np.hstack(cells[:2]), np.hstack(cells[2:])])
    else:  # perspective-warped crop
        img = _crop(rng, (0.3, 0.6))
        h, w = img.shape
        jitter = rng.uniform(0, 0.2, (4, 2)) * [w, h]
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = np.float32(src + jitter * [[1, 1], [-1, 1], [-1, -1], [1, -1]])
        img = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (w, h))
    side = float(rng.uniform(480, 900))
    s = side / max(img.shape)
    img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    gain = float(rng.uniform(0.7, 1.3))
    return np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def distractors(files: list[str], count: int) -> list[np.ndarray]:
    """Distractor pictures 0..count-1 made from ``files`` (paths under bench/photos, or
    absolute) instead of the negatives, in this process: for a gallery of another size or
    from other sources (the tests use the demo photos)."""
    _init_sources(files)
    return [distractor(i) for i in range(count)]


def _index_one(index: int, tuning: Tuning = DEFAULT) -> tuple[Features, float]:
    data = encode(distractor(index), 85)
    t = time.perf_counter()
    f = extract_features(check_and_decode(data, tuning.image).gray, "target", tuning.target)
    return f, time.perf_counter() - t


def _chunk(
    k: int, sources: list[str], workers: int, tuning: Tuning
) -> tuple[list[Features], np.ndarray]:
    """Features of distractors [k*CHUNK, (k+1)*CHUNK) and their per-target index seconds."""
    path = cache_dir(tuning) / f"chunk-{k:04d}.npz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        ids = range(k * CHUNK, (k + 1) * CHUNK)
        with Pool(workers, _init_sources, (sources,)) as pool:
            res = pool.map(partial(_index_one, tuning=tuning), ids, chunksize=16)
        feats = [r[0] for r in res]
        np.savez(
            path,
            counts=np.array([len(f) for f in feats]),
            sizes=np.array([[f.width, f.height] for f in feats]),
            xy=np.concatenate([f.xy for f in feats]),
            angle=np.concatenate([f.angle for f in feats]),
            desc=np.concatenate([f.descriptors for f in feats]),
            phash=np.array([f.thumbnail.phash for f in feats], dtype=np.uint64),
            thumbs=np.stack([f.thumbnail.stored() for f in feats]),
            seconds=np.array([r[1] for r in res]),
        )
    with np.load(path) as z:  # each z[key] reads the whole array again: read once
        counts, sizes, seconds = z["counts"], z["sizes"], z["seconds"]
        xy, angle, desc = z["xy"], z["angle"], z["desc"]
        phash, thumbs = z["phash"], z["thumbs"]
    ends = np.cumsum(counts)
    feats = [
        make_features(xy[a:b], angle[a:b], desc[a:b], w, h, Thumbnail(int(ph), px))
        for a, b, (w, h), ph, px in zip(ends - counts, ends, sizes, phash, thumbs, strict=True)
    ]
    return feats, seconds


# -- the run -------------------------------------------------------------------------------
def _cold_start(paths: list[Path], runs: int) -> dict[str, float]:
    code = (
        "import time,sys,json;t0=time.perf_counter()\n"
        "from opencrs.index.bundle import Bundle\nfrom opencrs.index.search import Searcher\n"
        "from opencrs.index.vocabulary import shipped\nshipped()\nt1=time.perf_counter()\n"
        "b=[Bundle.from_bytes(open(p,'rb').read()) for p in sys.argv[1:]]\n"
        "t2=time.perf_counter()\nSearcher(b);t3=time.perf_counter()\n"
        "print(json.dumps({'import':t1-t0,'load':t2-t1,'build':t3-t2,'total':t3-t0}))"
    )
    out = []
    for _ in range(runs):
        r = subprocess.run(
            [sys.executable, "-c", code, *map(str, paths)],
            capture_output=True,
            text=True,
            check=True,
        )
        out.append(json.loads(r.stdout))
    return {k: float(np.median([o[k] for o in out])) for k in out[0]}


@dataclass
class Gallery:
    """A built gallery: its searcher and shards, and the build measures the tables report."""

    searcher: Searcher
    shards: list[Bundle]
    stats: dict[str, float]
    sources: list[str]


def build_gallery(
    n: int, args: argparse.Namespace, gallery: dict[str, bytes], tuning: Tuning = DEFAULT
) -> Gallery:
    """``gallery`` indexed from its JPEG bytes plus n - len(gallery) cached distractors,
    interleaved at random and laid out in shards as the store does."""
    sources = sorted(r["file"] for r in load_manifest() if r["role"] == "negatives")
    real: list[tuple[str, Features]] = []
    real_s = []
    for tid, data in gallery.items():
        t = time.perf_counter()
        gray = check_and_decode(data, tuning.image).gray
        real.append((tid, extract_features(gray, "target", tuning.target)))
        real_s.append(time.perf_counter() - t)
    n_dis = max(0, n - len(real))
    parts = list(real)
    seconds = list(real_s)
    for k in range((n_dis + CHUNK - 1) // CHUNK):
        feats, secs = _chunk(k, sources, args.workers, tuning)
        take = min(CHUNK, n_dis - k * CHUNK)
        parts += [(f"distractor-{k * CHUNK + j:06d}", feats[j]) for j in range(take)]
        seconds += list(secs[:take])
    # Interleave real targets among the distractors (position must not matter).
    rng = np.random.default_rng(n)
    parts = [parts[i] for i in rng.permutation(len(parts))]
    # Shards as the store lays them out (opencrs.store.bundles.shard_of).
    by_shard: list[list[tuple[str, Features]]] = [[] for _ in range(args.shards)]
    for tid, f in parts:
        by_shard[shard_of(tid, args.shards)].append((tid, f))
    del parts
    t = time.perf_counter()
    shards = [Bundle.from_targets(p) for p in by_shard]
    del by_shard
    t_bundle = time.perf_counter() - t
    t = time.perf_counter()
    searcher = Searcher(shards, tuning=tuning)
    t_searcher = time.perf_counter() - t
    n_targets = sum(len(b) for b in shards)
    extract_s = float(np.mean(seconds))
    per_target = extract_s + (t_bundle + t_searcher) / n_targets
    stats = {
        "targets": n_targets,
        "shards": len(shards),
        "features": sum(int(b.descriptors.shape[0]) for b in shards),
        "build_s": t_bundle + t_searcher,
        "searcher_s": t_searcher,
        "extract_ms": extract_s * 1000,
        "targets_per_s_core": 1.0 / per_target,
        "index_bytes_per_target": searcher.index_nbytes / n_targets,
    }
    return Gallery(searcher, shards, stats, sources)


def run_size(
    n: int, args: argparse.Namespace, gallery: dict[str, bytes], tuning: Tuning = DEFAULT
) -> dict:
    built = build_gallery(n, args, gallery, tuning)
    searcher, shards, sources = built.searcher, built.shards, built.sources
    n_targets = int(built.stats["targets"])
    paths = []
    bundle_bytes = 0
    for k, b in enumerate(shards):
        paths.append(OUT / f"speed-{n}-{os.getpid()}-{k:03d}.bundle")
        data = b.to_bytes()
        bundle_bytes += len(data)
        paths[-1].write_bytes(data)
        del data
    cold = _cold_start(paths, args.cold_runs)
    for p in paths:
        p.unlink()

    # Clutter and occluders come from the same negatives as the distractors; inverted and
    # flipped so that a query never legitimately shows a distractor's content.
    flipped = {f: np.ascontiguousarray(255 - read_gray(f)[::-1]) for f in sources}
    ctx = Context(backgrounds=[g for g in flipped.values() if min(g.shape) >= 400])
    names = list(gallery)[:: max(1, len(gallery) // args.queries)][: args.queries]
    stages: dict[str, list[float]] = {"decode": [], "features": [], "shortlist": [], "verify": []}
    total, ok = [], {"moderate": [0, 0], "hard": [0, 0]}
    for qi, name in enumerate(names):
        truth_gray = check_and_decode(gallery[name]).gray
        for kind, fams in (("moderate", MODERATE), ("hard", HARD)):
            fam = list(fams)[qi % len(fams)]
            r = np.random.default_rng([zlib.crc32(fam.encode()), zlib.crc32(name.encode())])
            img, quality = fams[fam](truth_gray, r, ctx)
            data = encode(img, quality)
            t0 = time.perf_counter()
            gray = check_and_decode(data, tuning.image).gray
            t1 = time.perf_counter()
            tm: dict[str, float] = {}
            hits = searcher.search_image(gray, timings=tm)
            t3 = time.perf_counter()
            stages["decode"].append(t1 - t0)
            stages["features"].append(tm.get("features", 0.0))
            stages["shortlist"].append(tm.get("shortlist", 0.0))
            stages["verify"].append(tm.get("verify", 0.0))
            total.append(t3 - t0)
            ok[kind][0] += bool(hits) and hits[0].target_id == name
            ok[kind][1] += 1
    ms = np.array(total) * 1000
    neg_ms, false_hits = [], []
    if args.negatives:
        for fam, fn in NEGATIVE.items():
            for f, g in flipped.items():
                r = np.random.default_rng([zlib.crc32(fam.encode()), zlib.crc32(f.encode())])
                img, quality = fn(g, r, ctx)
                data = encode(img, quality)
                t0 = time.perf_counter()
                tm = {}
                hits = searcher.search_image(check_and_decode(data, tuning.image).gray, timings=tm)
                neg_ms.append((time.perf_counter() - t0) * 1000)
                if hits:
                    h = hits[0]
                    found = "whole image" if h.whole_image else f"{h.inliers} inliers"
                    view = f"view {tm['views']:.0f}"
                    false_hits.append(f"{fam} {Path(f).stem} -> {h.target_id} ({found}, {view})")
    extra = {}
    if neg_ms:
        extra = {
            "negatives": len(neg_ms),
            "false_positives": len(false_hits),
            "false_positive_queries": false_hits,
            "negative_p50_ms": float(np.percentile(neg_ms, 50)),
            "negative_p95_ms": float(np.percentile(neg_ms, 95)),
        }
    return {
        **extra,
        **built.stats,
        "bundle_bytes_per_target": bundle_bytes / n_targets,
        "cold": cold,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "stage_p50_ms": {k: float(np.median(v) * 1000) for k, v in stages.items()},
        "recall_moderate": ok["moderate"][0] / max(ok["moderate"][1], 1),
        "recall_hard": ok["hard"][0] / max(ok["hard"][1], 1),
        "queries": ok["moderate"][1] + ok["hard"][1],
    }


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| targets | build | index/s/core | index B/target | cold start (import+load+build) "
        "| warm p50 | warm p95 | decode · features · shortlist · verify (p50) "
        "| R@1 moderate | R@1 hard | queries |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c, s = r["cold"], r["stage_p50_ms"]
        lines.append(
            f"| {r['targets']:,} | {r['build_s']:.1f} s | {r['targets_per_s_core']:.0f} "
            f"| {r['index_bytes_per_target']:,.0f} "
            f"| {c['total']:.2f} s ({c['import']:.2f}+{c['load']:.2f}+{c['build']:.2f}) "
            f"| {r['p50_ms']:.0f} ms | {r['p95_ms']:.0f} ms "
            f"| {s['decode']:.0f} · {s['features']:.0f} · {s['shortlist']:.0f} · "
            f"{s['verify']:.0f} ms | {r['recall_moderate']:.3f} | {r['recall_hard']:.3f} "
            f"| {r['queries']} |"
        )
    return lines


# -- real photos (--real) ------------------------------------------------------------------
# Shortlist lengths the real-photo table reports the target's shortlist-score rank against.
RANK_CUTS = (20, 50, 100, 300)
# ...and its rank after re-ranking against.
RERANK_CUTS = (1, 5, 17)


def _shortlist_diagnosis(searcher: Searcher, query: Features, truth: int) -> dict:
    """From one scoring of ``query``: whether target ``truth`` is shortlisted, and its rank
    (1 = best) in the plain tf-idf, in the shortlist scores and after re-ranking (past
    the re-ranked candidates: their count + 1)."""
    plain, ranked = searcher.shortlist_scores(query)
    reranked = searcher.reranked(ranked, query)
    return {
        "in_shortlist": truth in searcher.shortlist_of(plain, ranked, query),
        "tfidf_rank": 1 + int(np.count_nonzero(plain > plain[truth])),
        "shortlist_rank": (
            1 + int(np.count_nonzero(ranked > ranked[truth])) if ranked[truth] > 0 else len(ranked)
        ),
        "reranked_rank": (1 + reranked.index(truth) if truth in reranked else len(reranked) + 1),
    }


def real_summary(records: list[dict]) -> dict:
    """The real-photo table's columns over ``records`` (one per photo)."""
    ms = [r["ms"] for r in records] or [0.0]
    ranks = [r["tfidf_rank"] for r in records]
    ranked = np.array([r["shortlist_rank"] for r in records])
    reranked = np.array([r["reranked_rank"] for r in records])
    first = [r["hits"][0] if r["hits"] else None for r in records]
    return {
        "photos": len(records),
        "top1": sum(f == r["target"] for f, r in zip(first, records, strict=True)),
        "found": sum(r["found"] for r in records),
        "wrong_first": sum(
            f is not None and f != r["target"] for f, r in zip(first, records, strict=True)
        ),
        "none": sum(f is None for f in first),
        "in_shortlist": sum(r["in_shortlist"] for r in records),
        # Verification (or ranking) misses: the target was a candidate and did not come first.
        "shortlisted_not_first": sum(
            r["in_shortlist"] and f != r["target"] for f, r in zip(first, records, strict=True)
        ),
        "median_tfidf_rank": float(np.median(ranks)) if ranks else None,
        # Where the shortlist score puts the target: how long a shortlist would hold it.
        "shortlist_rank_within": {str(k): int(np.count_nonzero(ranked <= k)) for k in RANK_CUTS},
        # ...and where re-ranking puts it (the first shortlist - shortlist_plain are verified).
        "reranked_within": {str(k): int(np.count_nonzero(reranked <= k)) for k in RERANK_CUTS},
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
    }


def run_real_size(
    n: int, args: argparse.Namespace, photos: real.PhotoSet, sent: list[bytes], tuning: Tuning
) -> dict:
    """Gallery of the references plus distractors up to n targets; every photo queried as a
    client sent it (``sent``), with whether its target made the shortlist of the photo's own
    view, to tell shortlist misses from verification misses."""
    built = build_gallery(n, args, photos.references, tuning)
    searcher = built.searcher
    position = {tid: i for i, tid in enumerate(searcher.target_ids())}
    records = []
    for photo, data in zip(photos.photos, sent, strict=True):
        t0 = time.perf_counter()
        gray = check_and_decode(data, tuning.image).gray
        tm: dict[str, float] = {}
        query = extract_features(gray, "query", tuning.query)
        hits = searcher.search_image(gray, timings=tm, features=query)
        ms = (time.perf_counter() - t0) * 1000
        # Diagnosis, untimed: the shortlist of the photo itself (not of its tilt views).
        diagnosis = _shortlist_diagnosis(searcher, query, position[photo.target])
        ids = [h.target_id for h in hits]
        records.append(
            {
                "phone": photo.phone,
                "target": photo.target,
                "hits": ids[:3],
                "inliers": [h.inliers for h in hits[:3]],
                "found": photo.target in ids,
                "views": tm.get("views", 0.0),
                "ms": ms,
                **diagnosis,
            }
        )
    phones = sorted({r["phone"] for r in records})
    return {
        **built.stats,
        "skipped_photos": photos.skipped,
        "all": real_summary(records),
        "phones": {p: real_summary([r for r in records if r["phone"] == p]) for p in phones},
        "records": records,
    }


def real_table(rows: list[dict]) -> list[str]:
    """One markdown table for every size: all photos, then each phone."""
    lines = [
        "| targets | photos | top-1 | found | wrong-first | none | in shortlist "
        "| shortlisted, not first | tf-idf rank (median) | shortlist rank ≤ "
        + " / ".join(map(str, RANK_CUTS))
        + " | re-ranked ≤ "
        + " / ".join(map(str, RERANK_CUTS))
        + " | p50 | p95 | build | index B/target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for label, s in [("all", r["all"]), *r["phones"].items()]:
            n = max(s["photos"], 1)
            rank = "n/a" if s["median_tfidf_rank"] is None else f"{s['median_tfidf_rank']:g}"
            who = f"**{r['targets']:,}**" if label == "all" else f"{r['targets']:,} {label}"
            build = f"{r['build_s']:.1f} s" if label == "all" else ""
            index = f"{r['index_bytes_per_target']:,.0f}" if label == "all" else ""
            within = " / ".join(f"{s['shortlist_rank_within'][str(k)] / n:.3f}" for k in RANK_CUTS)
            re_within = " / ".join(f"{s['reranked_within'][str(k)] / n:.3f}" for k in RERANK_CUTS)
            lines.append(
                f"| {who} | {s['photos']} | {s['top1'] / n:.3f} | {s['found'] / n:.3f} "
                f"| {s['wrong_first']} | {s['none']} | {s['in_shortlist'] / n:.3f} "
                f"| {s['shortlisted_not_first']} | {rank} | {within} | {re_within} "
                f"| {s['p50_ms']:.0f} ms | {s['p95_ms']:.0f} ms | {build} | {index} |"
            )
    return lines


def main_real(args: argparse.Namespace, tuning: Tuning) -> None:
    """``--real``: the real photos of ``args.real`` against galleries of their references
    plus distractors, one result set per size."""
    photos = real.load_or_exit(args.real, args.phones, args.limit)
    print(
        f"{len(photos.references)} references, {len(photos.photos)} photos; "
        f"{photos.skipped} photos skipped (no reference with their stem)",
        flush=True,
    )
    sent = [real.client_bytes(p.path) for p in photos.photos]
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        t0 = time.perf_counter()
        res = run_real_size(n, args, photos, sent, tuning)
        res["seconds"] = time.perf_counter() - t0
        results.append(res)
        brief = {k: v for k, v in res.items() if k != "records"}
        print(f"size {n}: {json.dumps(brief)}", flush=True)
    print("\n".join(["", *real_table(results)]))
    print(machine())
    save("speed-real.json", results)
    from bench import plots  # the bench extra's matplotlib, only once results exist

    print(plots.real_photo_recall(results, plots.OUT / "speed-real-recall.png"))
    print(plots.latency_distribution(results, plots.OUT / "speed-real-latency.png"))


def machine() -> str:
    return (
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}; Python {platform.python_version()}, OpenCV "
        f"{cv2.__version__}, numpy {np.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated gallery sizes")
    parser.add_argument("--queries", type=int, default=127, help="gallery photos queried")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument(
        "--shards", type=int, default=DEFAULT_BUNDLE_SHARDS, help="bundle shards per gallery"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="see bench.tuning"
    )
    parser.add_argument(
        "--negatives", action="store_true", help="also query upside-down, inverted negatives"
    )
    parser.add_argument(
        "--real", metavar="DIR", help="query the phone photos of DIR/<phone>/ (see bench.real)"
    )
    parser.add_argument("--phones", help="with --real: comma-separated phone folders only")
    parser.add_argument("--limit", type=int, help="with --real: the first N references only")
    args = parser.parse_args()
    tuning = overridden(args.set)
    if args.real:
        main_real(args, tuning)
        return
    rows = [r for r in load_manifest() if r["role"] == "gallery"]
    gallery = {Path(r["file"]).stem: (PHOTOS / r["file"]).read_bytes() for r in rows}
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        t0 = time.perf_counter()
        res = run_size(n, args, gallery, tuning)
        res["seconds"] = time.perf_counter() - t0
        results.append(res)
        print(f"size {n}: {json.dumps(res)}", flush=True)
    print("\n".join(["", *table(results)]))
    for r in results:
        if "negatives" in r:
            print(
                f"{r['targets']:,} targets: {r['false_positives']} of {r['negatives']} "
                f"negative queries returned a target; their latency p50 "
                f"{r['negative_p50_ms']:.0f} ms, p95 {r['negative_p95_ms']:.0f} ms"
            )
            for line in r["false_positive_queries"]:
                print(f"  {line}")
    print(machine())
    save("speed.json", results)


if __name__ == "__main__":
    main()
