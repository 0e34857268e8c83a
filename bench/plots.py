"""PNG plots of the benchmarks' results, for where a picture reads faster than a table:
real-photo recall against library size, overall and per phone, and the latency
distribution per size (``bench.speed --real``), and recall per transform family and
method (``bench.quality``). The benchmarks draw theirs beside their JSON in bench/out/;
``python -m bench.plots --to docs/plots`` redraws the docs' figures from the latest JSON.

Needs matplotlib (the ``bench`` extra: ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no screen
    import matplotlib.pyplot as plt

    return plt


def real_photo_recall(results: list[dict[str, Any]], path: Path) -> Path:
    """Top-1 against library size (log scale): all photos and each phone."""
    plt = _pyplot()
    sizes = [r["targets"] for r in results]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(sizes, [_rate(r["all"]) for r in results], "o-", lw=2.5, color="black", label="all")
    for phone in sorted({p for r in results for p in r["phones"]}):
        rates = [_rate(r["phones"][phone]) if phone in r["phones"] else None for r in results]
        ax.plot(sizes, rates, "o--", label=phone)
    ax.set_xscale("log")
    ax.set_xlabel("targets in the library")
    ax.set_ylabel("top-1 (first answer is the photo's cover)")
    lowest = min(_rate(p) for r in results for p in (r["all"], *r["phones"].values()))
    ax.set_ylim(max(0.0, lowest - 0.1), 1.01)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title("Real phone photos: recall against library size")
    return _save(fig, path)


def latency_distribution(results: list[dict[str, Any]], path: Path) -> Path:
    """Share of queries answered within t ms, one curve per library size."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for r in results:
        ms = sorted(rec["ms"] for rec in r["records"])
        share = [(i + 1) / len(ms) for i in range(len(ms))]
        label = f"{r['targets']:,} targets (p50 {r['all']['p50_ms']:.0f} ms)"
        ax.step(ms, share, where="post", label=label)
    ax.set_xlabel("query time, ms (one query at a time, one core)")
    ax.set_ylabel("share of queries answered")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Real phone photos: latency distribution")
    return _save(fig, path)


def quality_families(report: dict[str, Any], path: Path) -> Path:
    """Recall@1 per transform family, one bar per method."""
    plt = _pyplot()
    hits: dict[tuple[str, str], list[int]] = defaultdict(list)
    families: list[str] = []
    methods: list[str] = []
    for query in report["queries"]:
        if query.get("truth") is None:
            continue
        family = query["family"]
        if family not in families:
            families.append(family)
        for method, answers in query["results"].items():
            if method not in methods:
                methods.append(method)
            hits[(family, method)].append(int(answers[:1] == [query["truth"]]))
    fig, ax = plt.subplots(figsize=(max(7, 0.6 * len(families)), 4.5), dpi=110)
    width = 0.8 / max(len(methods), 1)
    for k, method in enumerate(methods):
        xs = [i + (k - (len(methods) - 1) / 2) * width for i in range(len(families))]
        values = [_mean(hits[(f, method)]) for f in families]
        ax.bar(xs, values, width, label=method)
    ax.set_xticks(range(len(families)), families, rotation=45, ha="right")
    ax.set_ylabel("recall@1")
    ax.set_ylim(0, 1.02)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("bench.quality: recall@1 per family")
    return _save(fig, path)


def _rate(counts: dict[str, Any]) -> float:
    return counts["top1"] / counts["photos"] if counts["photos"] else 0.0


def _mean(values: list[int]) -> float:
    return sum(values) / len(values) if values else 0.0


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    _pyplot().close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--to", type=Path, default=OUT, help="where the PNGs go")
    parser.add_argument("--quality", default="quality-g4-n4.json", help="bench.quality's JSON")
    args = parser.parse_args()
    real = OUT / "speed-real.json"
    if real.exists():
        results = json.loads(real.read_text())
        print(real_photo_recall(results, args.to / "real-photo-recall.png"))
        print(latency_distribution(results, args.to / "real-photo-latency.png"))
    quality = OUT / args.quality
    if quality.exists():
        print(quality_families(json.loads(quality.read_text()), args.to / "quality-families.png"))


if __name__ == "__main__":
    main()
