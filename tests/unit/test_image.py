"""Input checking and decoding: every EasyAR error code path, and odd-but-valid files."""

from __future__ import annotations

import base64
import struct
import zlib

import cv2
import numpy as np
import pytest

from bench.demo_photos import load_bgr
from opencrs.vision import image as image_mod
from opencrs.vision.image import (
    DecodedImage,
    ImageError,
    check_and_decode,
    decode_base64_image,
)
from opencrs.vision.params import IMAGE_LIMITS


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def _jpeg(img: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def _chunk(ctype: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + ctype
        + payload
        + struct.pack(">I", zlib.crc32(ctype + payload))
    )


def _fake_png(width: int, height: int) -> bytes:
    """A structurally complete PNG whose IHDR claims ``width`` x ``height`` (no pixels)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b"")


def _fake_jpeg(width: int, height: int) -> bytes:
    """SOI, SOF0 claiming the size, SOS, a few scan bytes, EOI: structure only, no tables."""
    sof = struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"
    sos = b"\x01\x01\x00\x00\x3f\x00"
    return (
        b"\xff\xd8"
        + b"\xff\xc0"
        + struct.pack(">H", len(sof) + 2)
        + sof
        + b"\xff\xda"
        + struct.pack(">H", len(sos) + 2)
        + sos
        + b"\x12\x34\x56"
        + b"\xff\xd9"
    )


@pytest.fixture
def no_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything reaches cv2.imdecode."""

    def boom(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("cv2.imdecode must not be called")

    monkeypatch.setattr(image_mod.cv2, "imdecode", boom)


# -- base64 -----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [None, 12, b"abcd", "", "   ", "data:image/png;base64,"])
def test_base64_missing_or_wrong_type_is_414(value: object) -> None:
    with pytest.raises(ImageError) as err:
        decode_base64_image(value)
    assert err.value.code == 414
    assert str(err.value)


@pytest.mark.parametrize("value", ["not base64!!", "abc", "ab$d", "YWJj\x00ZA=="])
def test_base64_junk_is_414(value: str) -> None:
    with pytest.raises(ImageError) as err:
        decode_base64_image(value)
    assert err.value.code == 414


def test_base64_accepts_data_url_and_line_breaks() -> None:
    raw = bytes(range(256)) * 3
    text = base64.encodebytes(raw).decode()  # MIME style: a newline every 76 chars
    assert "\n" in text
    assert decode_base64_image(text) == raw
    assert decode_base64_image("data:image/jpeg;base64," + text) == raw
    assert decode_base64_image(base64.b64encode(raw).decode()) == raw


# -- container checks -------------------------------------------------------------------------
def test_valid_jpeg_and_png_decode_to_gray() -> None:
    bgr = load_bgr("chelsea")
    for data, fmt in ((_jpeg(bgr), "jpeg"), (_png(bgr), "png")):
        img = check_and_decode(data)
        assert isinstance(img, DecodedImage)
        assert img.format == fmt
        assert (img.width, img.height) == (451, 300)
        assert img.gray.shape == (300, 451) and img.gray.dtype == np.uint8
        expected = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(int)
        assert np.abs(img.gray.astype(int) - expected).mean() < 3


def test_over_two_megabytes_is_422(no_decode: None) -> None:
    data = _fake_png(10, 10)
    data = data + b"\0" * (IMAGE_LIMITS.max_bytes + 1 - len(data))
    with pytest.raises(ImageError) as err:
        check_and_decode(data)
    assert err.value.code == 422


@pytest.mark.parametrize(
    "data",
    [
        b"GIF89a" + b"\0" * 64,
        b"BM" + b"\0" * 64,
        b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 32,
        b"hello world",
        b"",
    ],
    ids=["gif", "bmp", "webp", "text", "empty"],
)
def test_other_formats_are_427(data: bytes, no_decode: None) -> None:
    with pytest.raises(ImageError) as err:
        check_and_decode(data)
    assert err.value.code == 427


@pytest.mark.parametrize("width,height", [(30000, 30000), (8000, 8000), (20000, 10)])
def test_png_bomb_rejected_from_header_alone(width: int, height: int, no_decode: None) -> None:
    with pytest.raises(ImageError) as err:
        check_and_decode(_fake_png(width, height))
    assert err.value.code == 422
    assert str(width) in str(err.value)


def test_jpeg_bomb_rejected_from_header_alone(no_decode: None) -> None:
    with pytest.raises(ImageError) as err:
        check_and_decode(_fake_jpeg(30000, 30000))
    assert err.value.code == 422


@pytest.mark.parametrize("maker", [_fake_png, _fake_jpeg], ids=["png", "jpeg"])
def test_zero_size_is_427(maker: object, no_decode: None) -> None:
    with pytest.raises(ImageError) as err:
        check_and_decode(maker(0, 100))  # type: ignore[operator]
    assert err.value.code == 427


def test_truncated_jpeg_is_427(no_decode: None) -> None:
    data = _jpeg(load_bgr("coffee"))
    for cut in (len(data) - 2, len(data) // 2, 400, 3):
        with pytest.raises(ImageError) as err:
            check_and_decode(data[:cut])
        assert err.value.code == 427, cut


def test_truncated_png_is_427(no_decode: None) -> None:
    data = _png(load_bgr("coins"))
    for cut in (len(data) - 1, len(data) - 12, len(data) // 2, 20):
        with pytest.raises(ImageError) as err:
            check_and_decode(data[:cut])
        assert err.value.code == 427, cut


def test_png_with_corrupt_chunk_length_is_427(no_decode: None) -> None:
    data = bytearray(_png(load_bgr("coins")))
    data[33:37] = struct.pack(">I", 0x7FFFFFF0)  # length of the chunk after IHDR
    with pytest.raises(ImageError) as err:
        check_and_decode(bytes(data))
    assert err.value.code == 427


def test_structurally_valid_but_undecodable_jpeg_is_427() -> None:
    with pytest.raises(ImageError) as err:
        check_and_decode(_fake_jpeg(16, 16))  # no quantisation or Huffman tables
    assert err.value.code == 427


# -- odd but valid files -----------------------------------------------------------------------
def test_16_bit_png() -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1))
    img = check_and_decode(_png(ramp))
    assert img.gray.dtype == np.uint8 and img.gray.shape == (64, 256)
    assert img.gray[0, 0] == 0 and img.gray[0, -1] == 255
    assert np.all(np.diff(img.gray[0].astype(int)) >= 0)


def test_grey_png_and_jpeg() -> None:
    gray = cv2.cvtColor(load_bgr("camera"), cv2.COLOR_BGR2GRAY)
    assert np.array_equal(check_and_decode(_png(gray)).gray, gray)
    assert np.abs(check_and_decode(_jpeg(gray)).gray.astype(int) - gray).mean() < 3


def test_alpha_png_is_composited_on_white() -> None:
    bgra = np.zeros((50, 80, 4), np.uint8)  # fully transparent black...
    bgra[:, 40:] = (0, 0, 0, 255)  # ...except an opaque black right half
    img = check_and_decode(_png(bgra))
    assert img.gray[:, :40].min() == 255
    assert img.gray[:, 40:].max() == 0


def test_palette_png() -> None:
    """Hand-built colour-type-3 PNG (cv2 cannot write palettes): red/green stripes."""
    w, h = 8, 4
    rows = b"".join(b"\x00" + bytes([x % 2 for x in range(w)]) for _ in range(h))
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
        + _chunk(b"PLTE", bytes([255, 0, 0, 0, 255, 0]))
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )
    img = check_and_decode(data)
    assert img.format == "png" and img.gray.shape == (h, w)
    red, green = int(img.gray[0, 0]), int(img.gray[0, 1])
    assert abs(red - 76) <= 2 and abs(green - 150) <= 2  # BT.601 luma of pure red / green


def test_exif_orientation_is_applied() -> None:
    """A JPEG stored 300x100 with EXIF orientation 6 (rotate 90° CW) decodes as 100x300."""
    stored = np.zeros((100, 300), np.uint8)
    stored[:, :30] = 255  # bright band on the stored left edge
    data = _jpeg(stored)
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
    tiff += struct.pack("<HHII", 0x0112, 3, 1, 6) + struct.pack("<I", 0)
    app1 = b"Exif\x00\x00" + tiff
    data = data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:]
    img = check_and_decode(data)
    assert (img.width, img.height) == (300, 100)  # as stored
    assert img.gray.shape == (300, 100)  # as displayed
    assert img.gray[:30].mean() > 200 and img.gray[60:].mean() < 30  # left edge now on top


def test_image_error_carries_code() -> None:
    err = ImageError(422, "too big")
    assert err.code == 422 and str(err) == "too big"
