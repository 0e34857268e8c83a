"""bench.speed --real's bookkeeping: the per-photo diagnosis and the table built from it
(the benchmark is run by hand; this keeps it working as the Searcher's API moves)."""

from __future__ import annotations

from bench.demo_photos import GALLERY, load_gray, rotate
from bench.speed import RANK_CUTS, RERANK_CUTS, _shortlist_diagnosis, real_summary, real_table
from opencrs.index.bundle import Bundle
from opencrs.index.search import Searcher
from opencrs.vision.features import extract_features


def test_diagnosis_of_a_photo_of_a_target_ranks_it_first_after_reranking() -> None:
    names = GALLERY[:4]
    searcher = Searcher(
        Bundle.from_targets([(n, extract_features(load_gray(n), "target")) for n in names])
    )
    truth = 2
    query = extract_features(rotate(load_gray(names[truth]), 30), "query")
    d = _shortlist_diagnosis(searcher, query, truth)
    assert d["in_shortlist"] and d["reranked_rank"] == 1 and d["shortlist_rank"] >= 1
    assert d["tfidf_rank"] >= 1


def _record(phone: str, target: str, hits: list[str], reranked_rank: int) -> dict:
    return {
        "phone": phone,
        "target": target,
        "hits": hits,
        "found": target in hits,
        "in_shortlist": reranked_rank <= 17,
        "tfidf_rank": 3,
        "shortlist_rank": 40,
        "reranked_rank": reranked_rank,
        "ms": 100.0,
    }


def test_summary_and_table_count_top1_misses_and_reranked_ranks() -> None:
    records = [
        _record("A", "t1", ["t1"], 1),
        _record("A", "t2", [], 301),  # never re-ranked: past the candidates
        _record("B", "t3", ["t9", "t3"], 4),
    ]
    s = real_summary(records)
    assert (s["top1"], s["found"], s["wrong_first"], s["none"]) == (1, 2, 1, 1)
    assert s["reranked_within"] == {"1": 1, "5": 2, "17": 2}
    assert s["shortlist_rank_within"] == {"20": 0, "50": 3, "100": 3, "300": 3}
    assert set(s["reranked_within"]) == {str(k) for k in RERANK_CUTS}
    assert set(s["shortlist_rank_within"]) == {str(k) for k in RANK_CUTS}
    row = {
        "targets": 1000,
        "build_s": 1.0,
        "index_bytes_per_target": 12000.0,
        "all": s,
        "phones": {"A": real_summary(records[:2]), "B": real_summary(records[2:])},
    }
    lines = real_table([row])
    assert len(lines) == 2 + 3
    cells = {line.count("|") for line in lines}
    assert len(cells) == 1  # every row has the header's columns


def test_summary_of_no_photos_counts_nothing_within_any_rank() -> None:
    s = real_summary([])
    assert set(s["shortlist_rank_within"].values()) == set(s["reranked_within"].values()) == {0}
