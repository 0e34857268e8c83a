"""Recognition quality benchmark: >= 100 real photographs, the production code path, and two
baselines in the same run.

The gallery (``bench/photos/gallery``, built by ``bench.fetch_photos`` from Debian packages
and ``demo/photos``) is indexed exactly as the index Lambda does it: JPEG bytes ->
``check_and_decode`` -> ``extract_features(.., "target")`` -> ``Bundle.with_target``. Every
query is a transformed photo *encoded as JPEG bytes* and goes through ``check_and_decode``
-> ``Searcher.search_image`` (features, and the tilt views if they find nothing), as the
query Lambda does.

* moderate families (random parameters per query, seeded): any in-plane rotation, scale
  0.35-1, perspective tilt 20-45 deg about a random axis, crop keeping 60 %, JPEG q40,
  brightness and contrast +-40 %, mild blur + noise, and all of them combined;
* hard families: scale 0.2, tilt 60 deg, 50 % occluded, strong blur, low light, the target
  at 30 % of the frame in a cluttered photo;
* real photos (SMVS DVD, 4 phones): where the data set is (``bench.real``:
  ``<repo>/../shared/data/smvs-dvd-dev`` or ``$OPENCRS_REAL_PHOTOS``), its 50 reference covers
  join the gallery and its 200 phone photos are queries, each as a client sends it (long side
  <= 1024, JPEG q85), one row of their own; absent, the family is left out with a note;
* negatives: every photo of ``bench/photos/negatives`` (other photos of the same kinds of
  scenes, text pages, tiles of large wallpapers) as-is and under 6 transforms: >= 1,000
  queries, none of which may return a target;
* same landmark: the negatives that show the very landmark a gallery photo shows (another
  photograph of the same tower or statue, ``SAME_LANDMARK``): neither unrelated nor a photo
  of the target. They stay negative queries for every other target; returning their
  landmark's own gallery photo is reported on a row of its own and not scored.

Baselines, on the same decoded queries: whole-image SSIM on 256x256 grey (the open Vuforia
mock's duplicate test; its threshold is the one giving it the best F1 over this run's
queries) and ``imagehash.phash`` with Hamming distance <= 10. Each method ranks the targets
it accepts; recall@k counts a query whose target is among the first k accepted.

    python -m bench.quality                  # full run (~15 min on 2 cores)
    python -m bench.quality --quick          # a quarter of the gallery and negatives
    python -m bench.quality --set verify.ratio=0.75  # try a tuned-value override
                                                     # (repeatable; see bench.tuning)
    python -m bench.quality --no-baselines   # engine only, while tuning
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bench import real
from bench.demo_photos import embed, rotate, scale, tilt
from bench.tuning import overridden
from opencrs.index.bundle import Bundle
from opencrs.index.search import Searcher
from opencrs.vision.features import extract_features
from opencrs.vision.image import check_and_decode
from opencrs.vision.params import DEFAULT, Tuning

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "bench" / "photos"
OUT = ROOT / "bench" / "out"


def save(name: str, results: object) -> Path:
    """Write a benchmark's results as ``bench/out/<name>`` (JSON, never committed)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    path.write_text(json.dumps(results, indent=1))
    return path


SSIM_SIZE = 256
PHASH_MAX_DISTANCE = 10
TOP_K = 5
# Negatives picturing a landmark that a gallery photo pictures too: GCompris'
# categorization photos of monuments that its explore_monuments photos also show. Decided
# by what the photos show (their names), never by what a method answers. The Brandenburg
# Gate's is the same photograph as the gallery's and is dropped as a positive first.
SAME_LANDMARK = {
    "gc-categorization-monuments-brandenburggate": "gc-explore-monuments-germany-brandenburggate",
    "gc-categorization-monuments-greatwall": "gc-explore-monuments-wonders-greatwallofchina",
    "gc-categorization-monuments-kutubminar": "gc-explore-monuments-india-qutubminar",
    "gc-categorization-monuments-mountrushmore": "gc-explore-monuments-usa-mountrushmore",
    "gc-categorization-monuments-statueofliberty": "gc-explore-monuments-usa-statueofliberty",
    "gc-categorization-monuments-victoriamemorial": "gc-explore-monuments-india-victoriamemorial",
}


# -- photos --------------------------------------------------------------------------------
def load_manifest() -> list[dict[str, str]]:
    manifest = PHOTOS / "MANIFEST.tsv"
    if not manifest.exists():
        from bench import fetch_photos

        fetch_photos.build()
    with manifest.open() as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def read_gray(rel: str) -> np.ndarray:
    img = cv2.imread(str(PHOTOS / rel), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise FileNotFoundError(PHOTOS / rel)
    return img


def encode(img: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


# -- transforms (grey in, (grey out, JPEG quality) out) ------------------------------------
Transform = Callable[[np.ndarray, np.random.Generator, "Context"], tuple[np.ndarray, int]]


@dataclass
class Context:
    """What a transform may need besides its photo: cluttered backgrounds and occluders
    (always negatives, so the only gallery picture in view is the query's own)."""

    backgrounds: list[np.ndarray]


def gain_contrast(img: np.ndarray, gain: float, contrast: float) -> np.ndarray:
    """Contrast about the mean, then brightness as a multiplicative gain (a camera's
    exposure), clipped to uint8."""
    f = img.astype(np.float32)
    f = (f - f.mean()) * contrast + f.mean()
    return np.clip(f * gain + 0.5, 0, 255).astype(np.uint8)


def noisy(img: np.ndarray, sigma: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    out = cv2.GaussianBlur(img, (0, 0), sigma) if sigma > 0 else img
    out = out.astype(np.float32) + rng.normal(0.0, noise, size=img.shape).astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def tilt_any(img: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """Perspective tilt about a random one of the four edges."""
    k = int(rng.integers(4))
    return np.ascontiguousarray(np.rot90(tilt(np.rot90(img, k), degrees), -k))


def crop_any(img: np.ndarray, keep: float, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    k = float(np.sqrt(keep))
    ch, cw = round(h * k), round(w * k)
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return np.ascontiguousarray(img[y0 : y0 + ch, x0 : x0 + cw])


def occlude(img: np.ndarray, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Cover half of the picture (a random side) with part of an unrelated photo."""
    h, w = img.shape[:2]
    bg = ctx.backgrounds[int(rng.integers(len(ctx.backgrounds)))]
    patch = cv2.resize(bg, (w, h), interpolation=cv2.INTER_AREA)
    out = img.copy()
    side = int(rng.integers(4))
    if side == 0:
        out[:, : w // 2] = patch[:, : w // 2]
    elif side == 1:
        out[:, w // 2 :] = patch[:, w // 2 :]
    elif side == 2:
        out[: h // 2] = patch[: h // 2]
    else:
        out[h // 2 :] = patch[h // 2 :]
    return out


def in_clutter(img: np.ndarray, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """The target, slightly rotated, at 30 % of the long side of a cluttered photo."""
    bg = ctx.backgrounds[int(rng.integers(len(ctx.backgrounds)))]
    bg = scale(bg, 1024 / max(bg.shape[:2]))
    return embed(rotate(img, float(rng.uniform(-15, 15))), bg, 0.3)


def _combined(g: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    g = scale(g, float(rng.uniform(0.5, 0.8)))
    g = tilt_any(rotate(g, float(rng.uniform(0, 360))), float(rng.uniform(15, 35)), rng)
    g = gain_contrast(g, float(rng.uniform(0.7, 1.3)), float(rng.uniform(0.7, 1.3)))
    return noisy(g, 1.0, 3.0, rng)


MODERATE: dict[str, Transform] = {
    "rotate 0-360°": lambda g, r, c: (rotate(g, float(r.uniform(0, 360))), 90),
    "scale 0.35-1": lambda g, r, c: (scale(g, float(r.uniform(0.35, 1.0))), 90),
    "tilt 20-45°": lambda g, r, c: (tilt_any(g, float(r.uniform(20, 45)), r), 90),
    "crop 60 %": lambda g, r, c: (crop_any(g, 0.6, r), 90),
    "JPEG q40": lambda g, r, c: (g, 40),
    "light ±40 %": lambda g, r, c: (
        gain_contrast(g, float(r.choice([0.6, 1.4])), float(r.choice([0.6, 1.4]))),
        90,
    ),
    "blur+noise": lambda g, r, c: (noisy(g, float(r.uniform(1.0, 1.5)), 5.0, r), 90),
    "combined": lambda g, r, c: (_combined(g, r), 60),
}
HARD: dict[str, Transform] = {
    "scale 0.2": lambda g, r, c: (scale(g, 0.2), 90),
    "tilt 60°": lambda g, r, c: (tilt_any(g, 60.0, r), 90),
    "occluded 50 %": lambda g, r, c: (occlude(g, r, c), 90),
    "strong blur": lambda g, r, c: (noisy(g, 3.0, 3.0, r), 90),
    "low light": lambda g, r, c: (noisy(gain_contrast(g, 0.25, 0.8), 0.0, 3.0, r), 80),
    "in clutter 30 %": lambda g, r, c: (in_clutter(g, r, c), 90),
}


def _as_sent(g: np.ndarray, r: np.random.Generator, c: Context) -> tuple[np.ndarray, int]:
    """A real photo unchanged, at the JPEG quality a client sends (bench.real)."""
    return g, real.CLIENT_QUALITY


NEGATIVE: dict[str, Transform] = {
    "as-is": lambda g, r, c: (g, 90),
    "rotate": lambda g, r, c: (rotate(g, float(r.uniform(0, 360))), 90),
    "tilt 35°": lambda g, r, c: (tilt_any(g, 35.0, r), 90),
    "scale 0.5": lambda g, r, c: (scale(g, 0.5), 90),
    "crop 60 %": lambda g, r, c: (crop_any(g, 0.6, r), 90),
    "JPEG q40": lambda g, r, c: (g, 40),
    "dark+noise": lambda g, r, c: (noisy(gain_contrast(g, 0.5, 0.8), 0.0, 3.0, r), 80),
}


# -- methods -------------------------------------------------------------------------------
class Method:
    name = ""

    def rank(self, gray: np.ndarray) -> list[str]:
        """Accepted target ids, best first."""
        raise NotImplementedError


class Engine(Method):
    name = "opencrs"

    def __init__(self, gallery: dict[str, bytes], tuning: Tuning = DEFAULT) -> None:
        bundle = Bundle.empty()
        for tid, data in gallery.items():
            gray = check_and_decode(data, tuning.image).gray
            bundle = bundle.with_target(tid, extract_features(gray, "target", tuning.target))
        self.bundle = bundle
        self.searcher = Searcher(bundle, tuning=tuning)
        self.last_inliers: list[int] = []

    def rank(self, gray: np.ndarray) -> list[str]:
        hits = self.searcher.search_image(gray)
        self.last_inliers = [h.inliers for h in hits]
        return [h.target_id for h in hits]


def _ssim_prep(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = cv2.resize(gray, (SSIM_SIZE, SSIM_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
    mu = cv2.blur(x, (7, 7), borderType=cv2.BORDER_REFLECT)
    var = cv2.blur(x * x, (7, 7), borderType=cv2.BORDER_REFLECT) - mu * mu
    return x, mu, var


class SSIM(Method):
    """scikit-image's ``structural_similarity`` defaults (7x7 uniform window, K1 0.01,
    K2 0.03, sample covariance, data range 255, mean over the image), on 256x256 grey
    resized without keeping the aspect ratio, as the Vuforia mock does. ``scores`` is
    kept so the threshold can be chosen after the run."""

    name = "SSIM 256²"

    def __init__(self, gallery: dict[str, np.ndarray]) -> None:
        self.ids = list(gallery)
        prepped = [_ssim_prep(g) for g in gallery.values()]
        self.x = np.stack([p[0] for p in prepped])
        self.mu = np.stack([p[1] for p in prepped])
        self.var = np.stack([p[2] for p in prepped])
        self.threshold = 0.0

    def scores(self, gray: np.ndarray) -> np.ndarray:
        x, mu, var = _ssim_prep(gray)
        n = 49.0
        cov_norm = n / (n - 1)
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        out = np.empty(len(self.ids))
        for i in range(len(self.ids)):
            exy = cv2.blur(x * self.x[i], (7, 7), borderType=cv2.BORDER_REFLECT)
            cov = (exy - mu * self.mu[i]) * cov_norm
            num = (2 * mu * self.mu[i] + c1) * (2 * cov + c2)
            den = (mu**2 + self.mu[i] ** 2 + c1) * ((var + self.var[i]) * cov_norm + c2)
            out[i] = float((num / den)[3:-3, 3:-3].mean())
        return out

    def rank_scores(self, s: np.ndarray, threshold: float) -> list[str]:
        order = np.argsort(-s, kind="stable")
        return [self.ids[i] for i in order if s[i] >= threshold]


class PHash(Method):
    name = "pHash ≤10"

    def __init__(self, gallery: dict[str, np.ndarray]) -> None:
        self.ids = list(gallery)
        self.h = np.array([self.hash_of(g) for g in gallery.values()], dtype=np.uint64)

    @staticmethod
    def hash_of(gray: np.ndarray) -> int:
        """imagehash's pHash of a grey image as a 64-bit integer."""
        import imagehash
        from PIL import Image

        bits = imagehash.phash(Image.fromarray(gray)).hash.flatten()
        return int("".join("1" if b else "0" for b in bits), 2)

    def rank(self, gray: np.ndarray) -> list[str]:
        d = np.bitwise_count(self.h ^ np.uint64(self.hash_of(gray)))
        order = np.argsort(d, kind="stable")
        return [self.ids[i] for i in order if d[i] <= PHASH_MAX_DISTANCE]


def near_duplicates(
    photos: dict[str, np.ndarray], gallery: dict[str, np.ndarray]
) -> dict[str, str]:
    """Photos whose pHash is within ``PHASH_MAX_DISTANCE`` of a gallery photo's, mapped to
    that gallery photo."""
    hashes = PHash(gallery)
    out = {}
    for name, gray in photos.items():
        ranked = hashes.rank(gray)
        if ranked:
            out[name] = ranked[0]
    return out


# -- the run -------------------------------------------------------------------------------
@dataclass
class Query:
    family: str
    kind: str  # "moderate", "hard", "real", "negative" or "same landmark"
    photo: str
    truth: str | None
    landmark: str | None = None  # "same landmark": the gallery photo of that landmark
    results: dict[str, list[str]] = field(default_factory=dict)
    ssim: np.ndarray | None = None
    ms: dict[str, float] = field(default_factory=dict)
    inliers: list[int] = field(default_factory=list)


def run(
    gallery_step: int,
    negative_step: int,
    baselines: bool,
    log: Callable[[str], None],
    tuning: Tuning = DEFAULT,
) -> tuple[list[Query], dict]:
    rows = load_manifest()
    gallery_rows = [r for r in rows if r["role"] == "gallery"]
    negative_rows = [r for r in rows if r["role"] == "negatives"]
    gallery_rows, negative_rows = gallery_rows[::gallery_step], negative_rows[::negative_step]
    gallery_bytes = {Path(r["file"]).stem: (PHOTOS / r["file"]).read_bytes() for r in gallery_rows}
    synthetic = list(gallery_bytes)  # the transformed families query these only
    photo_dir = real.default_dir()
    real_set = real.load(photo_dir) if photo_dir.is_dir() else None
    if real_set is None:
        log(f"family {real.FAMILY!r} left out: no {photo_dir} (set ${real.ENV})")
    else:
        gallery_bytes.update(real_set.references)
    t0 = time.perf_counter()
    engine = Engine(gallery_bytes, tuning)
    index_ms = (time.perf_counter() - t0) * 1000 / len(gallery_bytes)
    gallery_gray = {k: check_and_decode(v).gray for k, v in gallery_bytes.items()}
    ssim = SSIM(gallery_gray) if baselines else None
    phash = PHash(gallery_gray) if baselines else None
    negatives = {Path(r["file"]).stem: read_gray(r["file"]) for r in negative_rows}
    # A "negative" that is the same photograph as a gallery photo (the packages ship a few
    # twice) is a positive: judged by pHash, not by the engine under test.
    for name, tid in near_duplicates(negatives, gallery_gray).items():
        log(f"negative {name} dropped: pHash <= {PHASH_MAX_DISTANCE} from gallery photo {tid}")
        del negatives[name]
    big = [g for g in negatives.values() if min(g.shape) >= 400]
    ctx = Context(backgrounds=big)
    landmarks = {
        name: negatives.pop(name)
        for name in SAME_LANDMARK
        if name in negatives and SAME_LANDMARK[name] in gallery_gray
    }
    log(
        f"gallery {len(gallery_bytes)} photos ({engine.bundle.descriptors.shape[0]} features, "
        f"index {index_ms:.0f} ms/target); {len(negatives)} negative photos; "
        f"{len(landmarks)} photos of gallery landmarks"
    )

    plan: list[tuple[str, str, str, str | None, np.ndarray, Transform]] = []
    for kind, fams in (("moderate", MODERATE), ("hard", HARD)):
        for fam, fn in fams.items():
            for tid in synthetic:
                plan.append((fam, kind, tid, tid, gallery_gray[tid], fn))
    if real_set is not None:
        # Each photo once, as a client sends it (the transform only sets its JPEG quality).
        for p in real_set.photos[::gallery_step]:
            img = real.client_image(p.path)
            name = f"{p.phone}/{p.path.stem}"
            plan.append((real.FAMILY, "real", name, p.target, img, _as_sent))
    for kind, photos in (("negative", negatives), ("same landmark", landmarks)):
        for fam, fn in NEGATIVE.items():
            for name, g in photos.items():
                plan.append((fam, kind, name, None, g, fn))

    queries: list[Query] = []
    t_start = time.perf_counter()
    for n, (fam, kind, photo, truth, g, fn) in enumerate(plan):
        rng = np.random.default_rng([zlib_crc(fam), zlib_crc(photo)])
        img, quality = fn(g, rng, ctx)
        data = encode(img, quality)
        q = Query(fam, kind, photo, truth, SAME_LANDMARK.get(photo) if photo in landmarks else None)
        t = time.perf_counter()
        gray = check_and_decode(data, tuning.image).gray
        decode_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        q.results[engine.name] = engine.rank(gray)
        q.ms[engine.name] = decode_ms + (time.perf_counter() - t) * 1000
        q.inliers = engine.last_inliers
        if ssim is not None and phash is not None:
            t = time.perf_counter()
            q.ssim = ssim.scores(gray)
            q.ms[ssim.name] = decode_ms + (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            q.results[phash.name] = phash.rank(gray)
            q.ms[phash.name] = decode_ms + (time.perf_counter() - t) * 1000
        queries.append(q)
        if (n + 1) % 250 == 0:
            el = time.perf_counter() - t_start
            log(f"  {n + 1}/{len(plan)} queries, {el:.0f} s")
    meta = {
        "gallery": len(gallery_bytes),
        "real_photos": sum(q.kind == "real" for q in queries),
        "real_photo_dir": str(photo_dir) if real_set is not None else None,
        "negative_photos": len(negatives),
        "same_landmark_photos": len(landmarks),
        "features": int(engine.bundle.descriptors.shape[0]),
        "index_ms": index_ms,
        "seconds": time.perf_counter() - t_start,
    }
    if ssim is not None:
        meta["ssim_threshold"] = choose_ssim_threshold(ssim, queries)
        for q in queries:
            assert q.ssim is not None
            q.results[ssim.name] = ssim.rank_scores(q.ssim, meta["ssim_threshold"])
    return queries, meta


def zlib_crc(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode())


def choose_ssim_threshold(ssim: SSIM, queries: list[Query]) -> float:
    """The threshold maximising F1 over this run: a positive query is a true positive when
    its target is the best accepted one; any other accepted answer is a false positive."""
    best = (-1.0, 0.0)
    for t in np.round(np.arange(0.05, 1.0, 0.01), 2):
        tp = fp = 0
        n_pos = 0
        for q in queries:
            assert q.ssim is not None
            top = int(np.argmax(q.ssim))
            accepted = q.ssim[top] >= t
            if q.kind == "same landmark" and ssim.ids[top] == q.landmark:
                continue  # not scored (see table)
            if q.truth is not None:
                n_pos += 1
                if accepted and ssim.ids[top] == q.truth:
                    tp += 1
                elif accepted:
                    fp += 1
            elif accepted:
                fp += 1
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / n_pos if n_pos else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        if f1 > best[0]:
            best = (f1, float(t))
    return best[1]


# -- the table -----------------------------------------------------------------------------
def _recall(qs: list[Query], method: str, k: int) -> float:
    return sum(q.truth in q.results[method][:k] for q in qs) / max(len(qs), 1)


def table(queries: list[Query], meta: dict) -> list[str]:
    order = [Engine.name, SSIM.name, PHash.name]
    methods = [m for m in order if m in queries[0].results]
    head = "| family | queries | " + " | ".join(f"{m} R@1 | {m} R@5" for m in methods) + " |"
    sep = "|" + "---|" * (2 + 2 * len(methods))
    lines = [head, sep]

    def row(label: str, qs: list[Query]) -> str:
        cells = [f"{_recall(qs, m, 1):.3f} | {_recall(qs, m, TOP_K):.3f}" for m in methods]
        return f"| {label} | {len(qs)} | " + " | ".join(cells) + " |"

    for kind, fams in (("moderate", MODERATE), ("hard", HARD)):
        for fam in fams:
            lines.append(row(fam, [q for q in queries if q.family == fam and q.kind == kind]))
        lines.append(row(f"**all {kind}**", [q for q in queries if q.kind == kind]))
    real_qs = [q for q in queries if q.kind == "real"]
    if real_qs:
        lines.append(row(real.FAMILY, real_qs))
    # Every negative query is scored against every target but, for a photo of a gallery
    # landmark, that landmark's own gallery photo.
    negs = [q for q in queries if q.kind in ("negative", "same landmark")]
    fp = {m: sum(bool(set(q.results[m]) - {q.landmark}) for q in negs) for m in methods}
    cells = [f"{fp[m]}/{len(negs)} = {fp[m] / len(negs):.3f} | " for m in methods]
    lines.append(f"| **negatives: false-positive rate** | {len(negs)} | " + " | ".join(cells))
    same = [q for q in queries if q.kind == "same landmark"]
    if same:
        cells = []
        for m in methods:
            own = sum(q.results[m][:1] == [q.landmark] for q in same)
            other = sum(bool(set(q.results[m]) - {q.landmark}) for q in same)
            cells.append(f"{own}/{len(same)} its landmark, {other} other | ")
        lines.append(
            f"| same landmark, another photograph (not scored) | {len(same)} | " + " | ".join(cells)
        )
    # Queries answering nothing pay for the tilt views too: shown apart.
    for label, qs in (("**latency per query**", queries), ("latency, negative queries", negs)):
        lat = []
        for m in methods:
            ms = np.array([q.ms[m] for q in qs])
            lat.append(f"p50 {np.percentile(ms, 50):.0f} ms | p95 {np.percentile(ms, 95):.0f} ms")
        lines.append(f"| {label} | {len(qs)} | " + " | ".join(lat) + " |")
    return lines


def details(queries: list[Query], meta: dict) -> list[str]:
    eng = Engine.name
    out = []
    miss = [q for q in queries if q.truth is not None and q.results[eng][:1] != [q.truth]]
    out.append(f"{eng} misses at rank 1: {len(miss)}")
    for q in miss[:60]:
        out.append(f"  {q.kind:8} {q.family:16} {q.photo:45} -> {q.results[eng][:3]}")
    wrong = [q for q in queries if q.truth is not None and set(q.results[eng]) - {q.truth}]
    out.append(f"{eng} positive queries with an extra wrong hit: {len(wrong)}")
    for q in wrong[:20]:
        out.append(f"  {q.family:16} {q.photo:45} -> {q.results[eng][:3]} {q.inliers[:3]}")
    for kind in ("negative", "same landmark"):
        fps = [q for q in queries if q.kind == kind and q.results[eng]]
        out.append(f"{eng} {kind} queries with a hit: {len(fps)}")
        for q in fps[:40]:
            out.append(f"  {q.family:16} {q.photo:45} -> {q.results[eng][:3]} {q.inliers[:3]}")
    if "ssim_threshold" in meta:
        out.append(f"SSIM threshold (best F1 over this run): {meta['ssim_threshold']:.2f}")
    correct = [q for q in queries if q.truth is not None and q.results[eng][:1] == [q.truth]]
    whole = [q for q in correct if q.inliers[0] == 0]  # local hits have >= MIN_INLIERS
    out.append(f"{eng} correct rank-1 hits by the whole-image check: {len(whole)}")
    for q in whole[:40]:
        out.append(f"  {q.kind:8} {q.family:16} {q.photo}")
    ok_inl = [q.inliers[0] for q in correct if q.inliers[0] > 0]
    if ok_inl:
        out.append(
            f"{eng} inliers of correct rank-1 local hits: min {min(ok_inl)}, "
            f"p5 {np.percentile(ok_inl, 5):.0f}, median {np.median(ok_inl):.0f}"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1/4 of gallery and negatives")
    parser.add_argument("--gallery-step", type=int, default=1, help="every n-th gallery photo")
    parser.add_argument("--negative-step", type=int, default=1, help="every n-th negative")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="see bench.tuning"
    )
    args = parser.parse_args()
    tuning = overridden(args.set)

    def log(msg: str) -> None:
        print(msg, flush=True)

    t0 = time.perf_counter()
    if args.quick:
        args.gallery_step, args.negative_step = 4, 4
    queries, meta = run(args.gallery_step, args.negative_step, not args.no_baselines, log, tuning)
    lines = table(queries, meta)
    extra = details(queries, meta)
    print("\n".join(["", *lines, "", *extra]))
    print(
        f"\n{platform.python_version()}, OpenCV {cv2.__version__}, numpy {np.__version__}; "
        f"{len(queries)} queries, total {time.perf_counter() - t0:.0f} s"
    )
    OUT.mkdir(parents=True, exist_ok=True)
    report_path = OUT / f"quality-g{args.gallery_step}-n{args.negative_step}.json"
    report_path.write_text(
        json.dumps(
            {
                "meta": meta,
                "overrides": args.set,
                "table": lines,
                "queries": [
                    {
                        "family": q.family,
                        "kind": q.kind,
                        "photo": q.photo,
                        "truth": q.truth,
                        "results": {m: r[:TOP_K] for m, r in q.results.items()},
                        "inliers": q.inliers[:TOP_K],
                        "ms": q.ms,
                    }
                    for q in queries
                ],
            },
            indent=1,
        )
    )
    from bench import plots  # the bench extra's matplotlib, only once results exist

    report = json.loads(report_path.read_text())
    print(plots.quality_families(report, report_path.with_suffix(".png")))


if __name__ == "__main__":
    main()
