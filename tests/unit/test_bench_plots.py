"""bench.plots draws each of its plots from a benchmark's result as written (a few
records here): a PNG per plot, so a drifted result shape fails here, not after a run."""

from __future__ import annotations

from pathlib import Path

from bench import plots

PNG = b"\x89PNG\r\n\x1a\n"


def counts(top1: int, photos: int = 4) -> dict:
    return {"photos": photos, "top1": top1, "p50_ms": 120.0}


def test_real_photo_plots(tmp_path: Path) -> None:
    results = [
        {
            "targets": n,
            "all": counts(top1),
            "phones": {"Canon": counts(2, 2), "E63": counts(top1 - 2, 2)},
            "records": [{"ms": ms} for ms in (90.0, 120.0, 130.0, 400.0)],
        }
        for n, top1 in ((1000, 4), (10000, 3))
    ]
    for draw, name in (
        (plots.real_photo_recall, "recall.png"),
        (plots.latency_distribution, "latency.png"),
    ):
        path = draw(results, tmp_path / name)
        assert path.read_bytes().startswith(PNG) and path.stat().st_size > 5_000


def test_quality_family_plot(tmp_path: Path) -> None:
    queries = [
        {"family": family, "truth": "t", "results": {"opencrs": answer, "pHash": []}}
        for family, answer in (("rotate", ["t"]), ("rotate", ["u"]), ("blur", ["t"]))
    ]
    queries.append({"family": "blur", "truth": None, "results": {"opencrs": []}})
    path = plots.quality_families({"queries": queries}, tmp_path / "families.png")
    assert path.read_bytes().startswith(PNG)
