"""Quality grades: range, determinism, and ordering on images whose quality is obvious."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bench.demo_photos import load_gray
from opencrs.vision.features import extract_features
from opencrs.vision.quality import QUALITY_FIELDS, grade, measure


def _grades(gray: np.ndarray) -> dict[str, int]:
    return grade(gray, extract_features(gray, "target"))


@pytest.fixture(scope="module")
def astronaut() -> dict[str, int]:
    return _grades(load_gray("astronaut"))


def test_all_fields_present_and_in_range(astronaut: dict[str, int]) -> None:
    assert tuple(astronaut) == QUALITY_FIELDS
    assert all(isinstance(v, int) and 0 <= v <= 4 for v in astronaut.values())


def test_rich_photo_grades_well(astronaut: dict[str, int]) -> None:
    assert astronaut["detectableRate"] <= 1
    assert astronaut["trackableRate"] <= 1
    assert astronaut["detectableFeatureCount"] == 0


def test_deterministic() -> None:
    g = load_gray("coins")
    assert _grades(g) == _grades(g)


def test_heavy_blur_grades_worse(astronaut: dict[str, int]) -> None:
    blurred = _grades(cv2.GaussianBlur(load_gray("astronaut"), (0, 0), 6))
    assert blurred["detectableRate"] >= astronaut["detectableRate"] + 2
    assert blurred["trackableRate"] >= astronaut["trackableRate"] + 2
    assert blurred["trackableFeatureCount"] == 4


@pytest.mark.parametrize("value", [255, 0, 128])
def test_blank_image_is_unusable(value: int) -> None:
    blank = np.full((400, 300), value, np.uint8)
    assert _grades(blank) == dict.fromkeys(QUALITY_FIELDS, -1)
    assert measure(blank, extract_features(blank, "target")) is None


def test_nearly_blank_image_is_unusable() -> None:
    rng = np.random.default_rng(7)
    faint = np.clip(200 + rng.normal(0, 1, (300, 300)), 0, 255).astype(np.uint8)
    assert _grades(faint)["detectableRate"] == -1


def test_tiled_pattern_is_ambiguous(astronaut: dict[str, int]) -> None:
    tile = load_gray("coins")[100:164, 100:164]
    tiled = np.tile(tile, (8, 8))
    g = _grades(tiled)
    assert g["trackablePatchAmbiguity"] == 4 > astronaut["trackablePatchAmbiguity"]
    assert g["detectableDistinctiveness"] == 4 > astronaut["detectableDistinctiveness"]
    assert g["detectableRate"] >= 3 > astronaut["detectableRate"]
    m = measure(tiled, extract_features(tiled, "target"))
    assert m is not None and m["trackablePatchAmbiguity"] > 0.9


def test_brick_wall_is_more_ambiguous_than_a_photo(astronaut: dict[str, int]) -> None:
    brick = _grades(load_gray("brick"))
    assert brick["trackablePatchAmbiguity"] > astronaut["trackablePatchAmbiguity"]
    assert brick["detectableRate"] > astronaut["detectableRate"]


def test_low_contrast_grades_worse_on_contrast() -> None:
    g = load_gray("motorcycle")
    washed = (g.astype(np.float32) * 0.2 + 150).astype(np.uint8)
    assert _grades(washed)["trackablePatchContrast"] >= _grades(g)["trackablePatchContrast"] + 2


def test_feature_crowding_in_one_corner_grades_worse_distribution() -> None:
    g = load_gray("coffee")
    sparse = np.full_like(g, 128)
    h, w = g.shape
    sparse[: h // 3, : w // 3] = g[: h // 3, : w // 3]
    rich, poor = _grades(g), _grades(sparse)
    assert poor["trackableFeatureDistribution"] >= rich["trackableFeatureDistribution"] + 2
