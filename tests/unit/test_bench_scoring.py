"""How bench.quality scores its queries: the table the README carries is computed here,
so its rules are pinned on hand-made results (no photos needed)."""

from __future__ import annotations

from bench.quality import SAME_LANDMARK, Query, table


def _q(kind: str, photo: str, truth: str | None, hits: list[str], landmark: str | None = None):
    q = Query("as-is", kind, photo, truth, landmark)
    q.results = {"opencrs": hits}
    q.ms = {"opencrs": 10.0}
    return q


def _row(lines: list[str], label: str) -> str:
    [row] = [line for line in lines if line.startswith(f"| {label}")]
    return row


def test_a_landmark_photo_may_return_its_landmark_and_nothing_else() -> None:
    tower = "gc-explore-monuments-india-qutubminar"
    queries = [
        _q("moderate", "a", "a", ["a"]),
        _q("hard", "a", "a", []),
        _q("negative", "n1", None, []),
        _q("negative", "n2", None, ["a"]),  # a false positive
        _q("negative", "n3", None, []),
        _q("same landmark", "kutub", None, [tower], tower),  # its own landmark: not scored
        _q("same landmark", "kutub", None, [], tower),
        _q("same landmark", "kutub", None, ["a"], tower),  # another target: wrong
    ]
    lines = table(queries, {})
    # 6 negative queries: n2's hit and the third landmark query's other target are wrong.
    assert "| 6 | 2/6 = 0.333 |" in _row(lines, "**negatives: false-positive rate**")
    assert "| 3 | 1/3 its landmark, 1 other |" in _row(lines, "same landmark")


def test_the_table_has_no_landmark_row_without_such_queries() -> None:
    lines = table([_q("moderate", "a", "a", ["a"]), _q("negative", "n", None, [])], {})
    assert not [line for line in lines if line.startswith("| same landmark")]


def test_landmark_pairs_name_a_categorization_photo_and_a_gallery_photo() -> None:
    for negative, gallery in SAME_LANDMARK.items():
        assert negative.startswith("gc-categorization-monuments-")
        assert gallery.startswith("gc-explore-monuments-")
