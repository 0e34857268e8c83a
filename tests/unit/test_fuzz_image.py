"""Property-based tests of image checking: any bytes — random, or a real JPEG/PNG that is
truncated, bit-flipped, spliced or given a lying header — end as a decoded grey image or
an ImageError with a documented code (414/422/427), never another exception, and fast."""

from __future__ import annotations

import base64
import struct
import time
import zlib

import cv2
import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from opencrs.vision.image import DecodedImage, ImageError, check_and_decode, decode_base64_image

FUZZ = settings(
    max_examples=200,
    deadline=2000,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
IMAGE_CODES = {414, 422, 427}


def _sample(fmt: str) -> bytes:
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8), (5, 5), 0)
    ok, data = cv2.imencode(fmt, img)
    assert ok
    return data.tobytes()


JPEG = _sample(".jpg")
PNG = _sample(".png")


def check(data: bytes) -> DecodedImage | None:
    started = time.perf_counter()
    try:
        decoded = check_and_decode(data)
    except ImageError as error:
        assert error.code in IMAGE_CODES
        decoded = None
    else:
        assert decoded.gray.dtype == np.uint8 and decoded.gray.ndim == 2
        assert decoded.gray.size > 0
    assert time.perf_counter() - started < 1.5
    return decoded


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real image with one or more of: truncation, byte flips, inserted junk, a
    splice of the other format (polyglot)."""
    data = bytearray(draw(st.sampled_from([JPEG, PNG])))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "splice"]))
        at = draw(st.integers(0, len(data)))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and data:
            pos = min(at, len(data) - 1)
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            other = PNG if data[:1] == b"\xff" else JPEG
            data[at:] = other[draw(st.integers(0, len(other))) :]
    return bytes(data)


@FUZZ
@given(data=st.binary(max_size=2000))
@example(data=b"\x89PNG\r\n\x1a\n")
@example(data=b"\xff\xd8\xff")
@example(data=b"\xff\xd8\xff\xd9")
@example(data=b"\xff\xd8" + b"\xff" * 5000)
def test_random_bytes(data: bytes) -> None:
    check(data)


@FUZZ
@given(data=mutated())
@example(data=JPEG[: len(JPEG) // 2])
@example(data=PNG[:-12])
@example(data=JPEG + PNG)
@example(data=PNG + JPEG)
def test_mutated_images(data: bytes) -> None:
    check(data)


def _png_with_size(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` over a tiny (wrong) IDAT."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00\x00" * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _jpeg_with_size(width: int, height: int) -> bytes:
    """The sample JPEG with its SOF0 frame header rewritten to claim ``width`` x ``height``."""
    data = bytearray(JPEG)
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


@FUZZ
@given(
    width=st.integers(0, 2**32 - 1) | st.sampled_from([1, 16384, 16385, 30000]),
    height=st.integers(0, 2**32 - 1) | st.sampled_from([1, 16384, 16385, 30000]),
    fmt=st.sampled_from(["png", "jpeg"]),
)
@example(width=30000, height=30000, fmt="png")
@example(width=30000, height=30000, fmt="jpeg")
@example(width=1, height=1, fmt="png")
@example(width=6325, height=6325, fmt="png")  # 40 MP, under every limit
def test_lying_headers_are_refused_before_decoding(width: int, height: int, fmt: str) -> None:
    """Oversized claims are 422 without the decoder allocating them; small lies are 427
    or a decode of what is really there."""
    if fmt == "jpeg":
        width, height = width % 65536, height % 65536
        data = _jpeg_with_size(width, height)
    else:
        data = _png_with_size(width, height)
    decoded = check(data)
    if max(width, height) > 16384 or width * height > 40_000_000:
        assert decoded is None


@FUZZ
@given(text=st.text(st.characters(exclude_categories=()), max_size=200))
@example(text="data:image/png;base64,")
@example(text="////")
@example(text="=" * 8)
def test_any_image_parameter_text(text: str) -> None:
    try:
        data = decode_base64_image(text)
    except ImageError as error:
        assert error.code == 414
    else:
        assert data and base64.b64encode(data)
