"""The gallery bundle: immutability, replacement, removal, stored words and thumbnails,
and its binary format (only version 3 written and read)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

import opencrs.index.bundle as bundle_module
from bench.coldload import as_format_3
from bench.demo_photos import load_gray
from opencrs.index.bundle import Bundle
from opencrs.index.inverted import posting_order
from opencrs.index.search import Searcher
from opencrs.index.vocabulary import Vocabulary, shipped
from opencrs.vision.features import Features, UnsupportedFormat, extract_features, make_features


@pytest.fixture(scope="module")
def feats() -> dict[str, Features]:
    return {n: extract_features(load_gray(n), "target") for n in ("coins", "page", "camera")}


def _same_thumbnail(a: Features, b: Features) -> bool:
    if a.thumbnail is None or b.thumbnail is None:
        return a.thumbnail is b.thumbnail
    return a.thumbnail.phash == b.thumbnail.phash and np.array_equal(
        a.thumbnail.pixels, b.thumbnail.pixels
    )


def _same(a: Features, b: Features) -> bool:
    return (
        np.array_equal(a.xy, b.xy)
        and np.array_equal(a.angle, b.angle)
        and np.array_equal(a.descriptors, b.descriptors)
        and (a.width, a.height) == (b.width, b.height)
        and _same_thumbnail(a, b)
    )


def _close(stored: Features, original: Features) -> bool:
    """``stored`` is ``original`` up to the 16-bit quantisation of xy and angle."""
    half_xy = np.array([original.width, original.height]) / 65535 / 2 * 1.001
    d_angle = (stored.angle.astype(np.float64) - original.angle + 180) % 360 - 180
    return (
        np.array_equal(stored.descriptors, original.descriptors)
        and (stored.width, stored.height) == (original.width, original.height)
        and bool(np.all(np.abs(stored.xy.astype(np.float64) - original.xy) <= half_xy))
        and bool(np.all(np.abs(d_angle) <= 360 / 65536 / 2 * 1.001))
        and _same_thumbnail(stored, original)
    )


def _gallery(feats: dict[str, Features]) -> Bundle:
    b = Bundle.empty()
    for name, f in feats.items():
        b = b.with_target(f"id-{name}", f)
    return b


def _resealed(body: bytes | bytearray) -> bytes:
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))


def _table_end(b: Bundle) -> int:
    """Offset of the end of the target table in ``b.to_bytes()`` (documented layout, the
    same in formats 3 and 4)."""
    return 24 + sum(2 + len(t.encode("utf-8")) + 13 for t in b.target_ids())


def _arrays_start(b: Bundle) -> int:
    """Offset of the pHash array in ``b.to_bytes()``, from the documented layout."""
    return -(-_table_end(b) // 8) * 8


def _words_start(b: Bundle) -> int:
    """Offset of the words array: after 8 bytes of pHash and 1024 of thumbnail a target."""
    return _arrays_start(b) + len(b) * (8 + 1024)


def _words_of(b: Bundle) -> np.ndarray:
    return shipped().quantise(b.descriptors)


def test_empty_bundle() -> None:
    b = Bundle.empty()
    assert len(b) == 0 and b.target_ids() == [] and "x" not in b
    assert b.descriptors.shape == (0, 32) and b.words.shape == (0,)
    back = Bundle.from_bytes(b.to_bytes())
    assert len(back) == 0 and back.words.shape == (0,)


def test_with_target_adds_and_is_immutable(feats: dict[str, Features]) -> None:
    empty = Bundle.empty()
    one = empty.with_target("a", feats["coins"])
    assert len(empty) == 0 and len(one) == 1
    assert "a" in one and "b" not in one
    assert _close(one.features_of("a"), feats["coins"])
    b = _gallery(feats)
    assert b.target_ids() == ["id-coins", "id-page", "id-camera"]
    assert b.descriptors.shape == (sum(len(f) for f in feats.values()), 32)
    for name, f in feats.items():
        assert _close(b.features_of(f"id-{name}"), f)
    with pytest.raises(KeyError):
        b.features_of("nope")
    with pytest.raises(ValueError):
        b.descriptors[0, 0] = 1  # shared arrays are read-only
    with pytest.raises(ValueError):
        b.words[0] = 1


def test_with_target_replaces_existing_id(feats: dict[str, Features]) -> None:
    b = _gallery(feats)
    b2 = b.with_target("id-page", feats["coins"])
    assert len(b2) == 3
    assert _close(b2.features_of("id-page"), feats["coins"])
    assert _close(b.features_of("id-page"), feats["page"])  # original untouched


def test_without_target_removes(feats: dict[str, Features]) -> None:
    b = _gallery(feats)
    b2 = b.without_target("id-page")
    assert b2.target_ids() == ["id-coins", "id-camera"]
    assert "id-page" not in b2 and "id-page" in b
    assert b2.descriptors.shape[0] == len(feats["coins"]) + len(feats["camera"])
    assert _same(b2.features_of("id-camera"), b.features_of("id-camera"))
    assert b2.without_target("absent").target_ids() == b2.target_ids()


def test_many_removed_at_once_only_one_and_concatenation_agree_with_one_at_a_time(
    feats: dict[str, Features],
) -> None:
    """What the bundle store merges deltas with: the same bytes as with_target and
    without_target applied one by one."""
    b = _gallery(feats)
    one_by_one = b.without_target("id-coins").without_target("id-camera")
    at_once = b.without_targets(["id-camera", "id-coins", "absent"])
    assert at_once.to_bytes() == one_by_one.to_bytes()
    assert b.without_targets(["absent"]) is b
    alone = b.only("id-page")
    assert alone.target_ids() == ["id-page"] and _same(
        alone.features_of("id-page"), b.features_of("id-page")
    )
    parts = [b.only(t) for t in b.target_ids()]
    assert Bundle.concat(parts).to_bytes() == b.to_bytes()
    assert Bundle.concat([at_once, Bundle.empty(), b.only("id-camera")]).to_bytes() == (
        at_once.with_target("id-camera", b.features_of("id-camera")).to_bytes()
    )
    assert len(Bundle.concat([])) == 0
    with pytest.raises(ValueError, match="duplicate"):
        Bundle.concat([b, alone])
    with pytest.raises(KeyError):
        b.only("absent")


def test_words_are_the_shipped_vocabulary_leaves(feats: dict[str, Features]) -> None:
    parts = [(f"id-{n}", f) for n, f in feats.items()]
    built = Bundle.from_targets(parts)
    grown = _gallery(feats)
    changed = grown.with_target("id-coins", feats["page"]).without_target("id-page")
    for b in (built, grown, changed, Bundle.from_bytes(grown.to_bytes())):
        assert b.words.dtype == np.uint32 and b.words.shape == (b.descriptors.shape[0],)
        assert np.array_equal(b.words, _words_of(b))
        assert b.vocabulary_fingerprint == shipped().fingerprint()
    assert built.to_bytes() == grown.to_bytes()  # bulk and one-by-one agree bit for bit


def test_with_target_quantises_only_the_new_target(
    feats: dict[str, Features], monkeypatch: pytest.MonkeyPatch
) -> None:
    b = _gallery(feats)
    seen: list[int] = []
    original = Vocabulary.quantise

    def counting(self: Vocabulary, descriptors: np.ndarray, level: int | None = None) -> np.ndarray:
        seen.append(len(descriptors))
        return original(self, descriptors, level)

    def refuse(self: Vocabulary, descriptors: np.ndarray) -> np.ndarray:
        raise AssertionError("the whole gallery was quantised")

    monkeypatch.setattr(Vocabulary, "quantise", counting)
    monkeypatch.setattr(Vocabulary, "quantise_many", refuse)
    b2 = b.with_target("new", feats["coins"]).without_target("id-page")
    assert seen == [len(feats["coins"])]
    monkeypatch.undo()
    assert np.array_equal(b2.words, _words_of(b2))


def test_from_targets_picks_the_faster_quantiser_by_size(
    feats: dict[str, Features], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Few descriptors: the vectorised path; from BULK_QUANTISE_FROM on: the grouped one.
    # Either way the words are the same.
    parts = sorted(feats.items())
    total = sum(len(f) for _, f in parts)
    used: list[str] = []
    quantise, quantise_many = Vocabulary.quantise, Vocabulary.quantise_many

    def one(self: Vocabulary, d: np.ndarray, level: int | None = None) -> np.ndarray:
        used.append("quantise")
        return quantise(self, d, level)

    def grouped(self: Vocabulary, d: np.ndarray) -> np.ndarray:
        used.append("quantise_many")
        return quantise_many(self, d)

    monkeypatch.setattr(Vocabulary, "quantise", one)
    monkeypatch.setattr(Vocabulary, "quantise_many", grouped)
    monkeypatch.setattr(bundle_module, "BULK_QUANTISE_FROM", total + 1)
    small = Bundle.from_targets(parts)
    monkeypatch.setattr(bundle_module, "BULK_QUANTISE_FROM", total)
    large = Bundle.from_targets(parts)
    assert used == ["quantise", "quantise_many"]
    monkeypatch.undo()
    assert np.array_equal(small.words, large.words)
    assert np.array_equal(small.words, _words_of(small))


def test_load_and_searcher_build_do_not_quantise(
    feats: dict[str, Features], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _gallery(feats).to_bytes()

    def refuse(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("the gallery was quantised on a cold start")

    monkeypatch.setattr(Vocabulary, "quantise", refuse)
    monkeypatch.setattr(Vocabulary, "quantise_many", refuse)
    b = Bundle.from_bytes(data)
    Searcher(b)
    assert b.to_bytes() == data


def test_geometry_is_quantised_on_entry_and_stable(feats: dict[str, Features]) -> None:
    # Re-entering a target's stored features stores exactly the same values (a warm writer
    # and a cold reader see the same bundle), for many image sizes and the whole range.
    rng = np.random.default_rng(3)
    b = Bundle.empty()
    for i, (w, h) in enumerate([(1, 1), (5, 7), (640, 480), (4000, 3000), (16384, 9), (0, 0)]):
        n = 20_000
        xy = rng.uniform(-0.1, 1.1, (n, 2)) * [max(w, 1), max(h, 1)]
        angle = rng.uniform(-400, 400, n)
        xy[:4] = [[np.nan, 0], [np.inf, -np.inf], [0, 0], [max(w, 1), max(h, 1)]]
        angle[:3] = [np.nan, 359.999, -1e-9]
        desc = rng.integers(0, 256, (n, 32), dtype=np.uint8)
        b = b.with_target(f"t{i}", make_features(xy, angle, desc, w, h))
        stored = b.features_of(f"t{i}")
        assert np.all(stored.xy >= 0) and np.all(stored.xy <= [max(w, 1), max(h, 1)])
        assert np.all((stored.angle >= 0) & (stored.angle < 360))
        assert stored.xy[0].tolist() == [0, 0] and stored.angle[:3].tolist() == [0, 0, 0]
    again = Bundle.empty()
    for tid in b.target_ids():
        again = again.with_target(tid, b.features_of(tid))
    assert again.to_bytes() == b.to_bytes()
    assert Bundle.from_targets((t, b.features_of(t)) for t in b.target_ids()).to_bytes() == (
        b.to_bytes()
    )


def test_round_trip_is_bit_identical(feats: dict[str, Features]) -> None:
    b = _gallery(feats).with_target("ünïcode-id/ü", feats["page"])
    b = b.with_target(
        "empty", make_features(np.zeros((0, 2)), np.zeros(0), np.zeros((0, 32)), 5, 7)
    )
    data = b.to_bytes()
    assert struct.unpack_from("<H", data, 8) == (4,)
    assert struct.unpack_from("<I", data, 20) == (shipped().fingerprint(),)
    assert b.has_thumbnail.tolist() == [True, True, True, True, False]
    assert b.thumbnail_of("empty") is None and b.phashes[-1] == 0
    back = Bundle.from_bytes(data)
    assert back.target_ids() == b.target_ids()
    for tid in b.target_ids():
        assert _same(back.features_of(tid), b.features_of(tid))
    assert np.array_equal(back.words, b.words)
    assert np.array_equal(back.offsets, b.offsets)
    assert len(back.features_of("empty")) == 0
    assert back.to_bytes() == data
    assert Bundle.from_bytes(bytearray(data)).to_bytes() == data
    per_feature = (len(data) - len(b) * (8 + 1024)) / b.descriptors.shape[0]
    assert per_feature < 47  # 4 word + 4 order + 4 xy + 2 angle + 32 descriptor, + header


def test_other_vocabulary_fingerprint_is_requantised(feats: dict[str, Features]) -> None:
    b = _gallery(feats)
    data = b.to_bytes()
    start = _words_start(b)
    n = b.descriptors.shape[0]
    zeroed = bytearray(data[:-4])
    zeroed[start : start + 4 * n] = bytes(4 * n)  # every word 0
    zeroed[start + 4 * n : start + 8 * n] = np.arange(n, dtype="<u4").tobytes()  # their order
    trusted = Bundle.from_bytes(_resealed(zeroed))  # shipped fingerprint: words used as is
    assert not trusted.words.any()
    upgraded = bytearray(zeroed)
    upgraded[20:24] = struct.pack("<I", shipped().fingerprint() ^ 1)
    back = Bundle.from_bytes(_resealed(upgraded))
    assert np.array_equal(back.words, b.words)
    assert back.vocabulary_fingerprint == shipped().fingerprint()
    assert back.to_bytes() == data


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
    b = _gallery(feats)
    body = bytearray(b.to_bytes()[:-4])
    start = _arrays_start(b)
    assert start > _table_end(b)  # there is padding
    words = _words_start(b)

    v5 = bytearray(body)
    v5[8:10] = struct.pack("<H", 5)
    v0 = bytearray(body)
    v0[8:10] = struct.pack("<H", 0)
    lying = bytearray(body)
    lying[16:20] = struct.pack("<I", 5)  # total feature count
    many_targets = bytearray(body)
    many_targets[12:16] = struct.pack("<I", 10_000)
    huge = bytearray(body)
    huge[12:20] = struct.pack("<II", 0xFFFFFFFF, 0xFFFFFFFF)  # must not allocate 4G rows
    padding = bytearray(body)
    padding[start - 1] = 1
    word = bytearray(body)
    word[words : words + 4] = struct.pack("<I", shipped().words)  # one past the last leaf
    flag = bytearray(body)
    flag[24 + 2 + len("id-coins") + 12] = 2  # the first target's thumbnail flag
    short_header = bytearray(body[:22])
    for bad in (v5, v0, lying, many_targets, huge, padding, word, flag, short_header):
        with pytest.raises(ValueError):
            Bundle.from_bytes(_resealed(bad))


@pytest.mark.parametrize("version", [1, 2])
def test_older_format_versions_are_refused_by_name(
    feats: dict[str, Features], version: int
) -> None:
    body = bytearray(_gallery(feats).to_bytes()[:-4])
    body[8:10] = struct.pack("<H", version)
    with pytest.raises(UnsupportedFormat, match=f"version {version} is not read"):
        Bundle.from_bytes(_resealed(body))


def test_invalid_ids_rejected(feats: dict[str, Features]) -> None:
    with pytest.raises(ValueError):
        Bundle.empty().with_target("", feats["coins"])
    with pytest.raises(ValueError):
        Bundle.empty().with_target("x" * 70_000, feats["coins"])
    with pytest.raises(ValueError):
        Bundle.from_targets([("a", feats["coins"]), ("a", feats["page"])])


def test_format_3_is_still_read_and_written_again_as_4(feats: dict[str, Features]) -> None:
    b = _gallery(feats)
    old = Bundle.from_bytes(as_format_3(b))
    assert old.target_ids() == b.target_ids()
    assert np.array_equal(old.posting_order, b.posting_order)
    for tid in b.target_ids():
        assert _same(old.features_of(tid), b.features_of(tid))
    assert old.to_bytes() == b.to_bytes()


def test_posting_order_groups_words_and_survives_every_change(feats: dict[str, Features]) -> None:
    def check(b: Bundle) -> None:
        assert np.array_equal(b.posting_order, posting_order(b.words))
        assert np.array_equal(b.posting_order, np.argsort(b.words, kind="stable"))

    b = _gallery(feats)
    check(b)
    check(b.without_target("id-coins"))
    check(b.without_targets(["id-coins", "id-page"]))
    check(b.with_target("again", feats["coins"]))
    check(Bundle.concat([b.without_target("id-page"), b.only("id-page")]))
    check(Bundle.from_bytes(b.to_bytes()))


def test_a_stored_posting_order_that_does_not_match_is_refused(
    feats: dict[str, Features],
) -> None:
    b = _gallery(feats)
    body = bytearray(b.to_bytes()[:-4])
    at = _words_start(b) + 4 * b.descriptors.shape[0]  # the posting order's first row
    swapped = bytearray(body)
    swapped[at : at + 8] = body[at + 4 : at + 8] + body[at : at + 4]
    out_of_range = bytearray(body)
    out_of_range[at : at + 4] = struct.pack("<I", b.descriptors.shape[0])
    for bad in (swapped, out_of_range):
        with pytest.raises(ValueError, match="posting order"):
            Bundle.from_bytes(_resealed(bad))


def test_layered_changes_equal_eager_ones_and_copy_nothing_until_read(
    feats: dict[str, Features],
) -> None:
    """A writer's with_target / without_targets on a shard are layered (its arrays are not
    copied); read, the result is byte for byte what cutting and concatenating gives."""
    rng = np.random.default_rng(5)
    names = list(feats)
    layered = eager = _gallery(feats)
    eager = Bundle.concat([eager._cut([])])
    for step in range(40):
        tid = f"t{int(rng.integers(0, 6))}"
        if rng.random() < 0.6:
            f = feats[names[int(rng.integers(0, len(names)))]]
            layered = layered.with_target(tid, f)
            eager = Bundle.concat([eager._cut([tid]), Bundle.from_targets([(tid, f)])])
        else:
            layered = layered.without_targets([tid, "absent"])
            eager = eager._cut([tid])
        assert layered.target_ids() == eager.target_ids() and len(layered) == len(eager)
        if tid in eager:
            assert layered.only(tid).to_bytes() == eager.only(tid).to_bytes()
        if step % 10 == 9:
            assert layered.to_bytes() == eager.to_bytes()
    big = _gallery(feats)
    changed = big.with_target("new", feats["coins"]).without_target("id-page")
    assert changed._layers is not None  # nothing made yet
    assert changed.only("new").target_ids() == ["new"] and changed._layers is not None
    assert "id-page" not in changed and len(changed) == len(big)
    assert changed.descriptors.shape[0] == big.descriptors.shape[0] - len(feats["page"]) + len(
        feats["coins"]
    )
    assert changed._layers is None  # made on the first read of an array, then an ordinary bundle
    with pytest.raises(KeyError):
        changed.only("id-page")
    with pytest.raises(ValueError, match="two of the bundles"):
        Bundle.layered(big, [], [big.only("id-coins")])


def test_threads_reading_one_layered_bundle_make_it_once_and_alike(
    feats: dict[str, Features], monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    changed = _gallery(feats).with_target("new", feats["coins"])
    concat = Bundle.concat
    made: list[int] = []

    def slow_concat(bundles: list[Bundle]) -> Bundle:  # holds the making open a while
        made.append(1)
        time.sleep(0.05)
        return concat(bundles)

    monkeypatch.setattr(Bundle, "concat", staticmethod(slow_concat))
    go = threading.Barrier(4)
    seen: list[int] = []

    def read() -> None:
        go.wait()
        seen.append(int(changed.descriptors.shape[0]) + int(changed.words.shape[0]))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == [1] and len(seen) == 4 and len(set(seen)) == 1
