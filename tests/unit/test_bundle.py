"""The gallery bundle: immutability, replacement, removal and its binary format."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from opencrs.index.bundle import Bundle
from opencrs.vision.features import Features, extract_features, make_features
from tests.photos import load_gray


@pytest.fixture(scope="module")
def feats() -> dict[str, Features]:
    return {n: extract_features(load_gray(n), "target") for n in ("coins", "page", "camera")}


def _same(a: Features, b: Features) -> bool:
    return (
        np.array_equal(a.xy, b.xy)
        and np.array_equal(a.angle, b.angle)
        and np.array_equal(a.descriptors, b.descriptors)
        and (a.width, a.height) == (b.width, b.height)
    )


def _gallery(feats: dict[str, Features]) -> Bundle:
    b = Bundle.empty()
    for name, f in feats.items():
        b = b.with_target(f"id-{name}", f)
    return b


def test_empty_bundle() -> None:
    b = Bundle.empty()
    assert len(b) == 0 and b.target_ids() == [] and "x" not in b
    assert b.descriptors.shape == (0, 32)
    back = Bundle.from_bytes(b.to_bytes())
    assert len(back) == 0


def test_with_target_adds_and_is_immutable(feats: dict[str, Features]) -> None:
    empty = Bundle.empty()
    one = empty.with_target("a", feats["coins"])
    assert len(empty) == 0 and len(one) == 1
    assert "a" in one and "b" not in one
    assert _same(one.features_of("a"), feats["coins"])
    b = _gallery(feats)
    assert b.target_ids() == ["id-coins", "id-page", "id-camera"]
    assert b.descriptors.shape == (sum(len(f) for f in feats.values()), 32)
    for name, f in feats.items():
        assert _same(b.features_of(f"id-{name}"), f)
    with pytest.raises(KeyError):
        b.features_of("nope")
    with pytest.raises(ValueError):
        b.descriptors[0, 0] = 1  # shared arrays are read-only


def test_with_target_replaces_existing_id(feats: dict[str, Features]) -> None:
    b = _gallery(feats)
    b2 = b.with_target("id-page", feats["coins"])
    assert len(b2) == 3
    assert _same(b2.features_of("id-page"), feats["coins"])
    assert _same(b.features_of("id-page"), feats["page"])  # original untouched


def test_without_target_removes(feats: dict[str, Features]) -> None:
    b = _gallery(feats)
    b2 = b.without_target("id-page")
    assert b2.target_ids() == ["id-coins", "id-camera"]
    assert "id-page" not in b2 and "id-page" in b
    assert b2.descriptors.shape[0] == len(feats["coins"]) + len(feats["camera"])
    assert _same(b2.features_of("id-camera"), feats["camera"])
    assert b2.without_target("absent").target_ids() == b2.target_ids()


def test_round_trip(feats: dict[str, Features]) -> None:
    b = _gallery(feats).with_target("ünïcode-id/ü", feats["page"])
    b = b.with_target(
        "empty", make_features(np.zeros((0, 2)), np.zeros(0), np.zeros((0, 32)), 5, 7)
    )
    data = b.to_bytes()
    back = Bundle.from_bytes(data)
    assert back.target_ids() == b.target_ids()
    for tid in b.target_ids():
        assert _same(back.features_of(tid), b.features_of(tid))
    assert len(back.features_of("empty")) == 0
    assert back.to_bytes() == data
    per_feature = len(data) / b.descriptors.shape[0]
    assert per_feature < 45  # 32 descriptor + 8 xy + 4 angle, plus a tiny header


def test_corrupt_or_truncated_bytes_raise(feats: dict[str, Features]) -> None:
    data = _gallery(feats).to_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0x40
    bad_magic = b"NOTABNDL" + data[8:]
    cases = [b"", b"OCRSBNDL", data[:-1], data[:100], data + b"\0", bytes(flipped), bad_magic]
    for bad in cases:
        with pytest.raises(ValueError):
            Bundle.from_bytes(bad)


def test_future_version_and_lying_counts_raise_even_with_valid_crc(
    feats: dict[str, Features],
) -> None:
    body = bytearray(_gallery(feats).to_bytes()[:-4])

    def resealed(b: bytearray) -> bytes:
        return bytes(b) + struct.pack("<I", zlib.crc32(bytes(b)))

    v2 = bytearray(body)
    v2[8:10] = struct.pack("<H", 2)
    lying = bytearray(body)
    lying[16:20] = struct.pack("<I", 5)  # total feature count
    many_targets = bytearray(body)
    many_targets[12:16] = struct.pack("<I", 10_000)
    huge = bytearray(body)
    huge[12:20] = struct.pack("<II", 0xFFFFFFFF, 0xFFFFFFFF)  # must not allocate 4G rows
    for bad in (v2, lying, many_targets, huge):
        with pytest.raises(ValueError):
            Bundle.from_bytes(resealed(bad))


def test_invalid_ids_rejected(feats: dict[str, Features]) -> None:
    with pytest.raises(ValueError):
        Bundle.empty().with_target("", feats["coins"])
    with pytest.raises(ValueError):
        Bundle.empty().with_target("x" * 70_000, feats["coins"])
