"""Input checking and decoding of user images.

Everything a user can send is checked *before* OpenCV sees it: size, magic bytes, the
header's dimensions (decompression bombs) and the file's structure (truncation), so each
failure maps to the EasyAR status code a client expects and cv2 only decodes sane files.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass

import cv2
import numpy as np

from opencrs.vision.params import IMAGE_LIMITS, ImageLimits

__all__ = [
    "DecodedImage",
    "ImageError",
    "check_and_decode",
    "decode_base64_image",
]

CODE_PARAMETER = 414  # parameter missing or not correct
CODE_TOO_LARGE = 422  # image exceeds its maximum size
CODE_NOT_IMAGE = 427  # image not correct

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8\xff"
# SOF0..SOF15 minus DHT (C4), JPG (C8) and DAC (CC): the frame header holding the size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
# Samples per pixel of each PNG colour type (grey, RGB, palette, grey+alpha, RGBA).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_DATA_URL = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


class ImageError(Exception):
    """Bad image input; ``code`` is the EasyAR statusCode (414, 422 or 427)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class DecodedImage:
    """A validated image: container format, stored size and full-resolution grey pixels."""

    format: str
    width: int
    height: int
    gray: np.ndarray


def decode_base64_image(value: object) -> bytes:
    """Strictly decode the base64 ``image`` parameter (a data-URL prefix and line breaks are
    tolerated because browsers and mail-style encoders add them)."""
    if value is None:
        raise ImageError(CODE_PARAMETER, "image is missing")
    if not isinstance(value, str):
        raise ImageError(CODE_PARAMETER, "image must be a base64 string")
    text = _WHITESPACE.sub("", _DATA_URL.sub("", value.strip(), count=1))
    if not text:
        raise ImageError(CODE_PARAMETER, "image is empty")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(CODE_PARAMETER, "image is not valid base64") from exc
    if not data:
        raise ImageError(CODE_PARAMETER, "image is empty")
    return data


def check_and_decode(data: bytes, limits: ImageLimits = IMAGE_LIMITS) -> DecodedImage:
    """Validate ``data`` as a JPEG or PNG within ``limits``, then decode it to grey uint8."""
    if len(data) > limits.max_bytes:
        raise ImageError(
            CODE_TOO_LARGE, f"image is {len(data)} bytes; the maximum is {limits.max_bytes} bytes"
        )
    if data.startswith(_PNG_SIGNATURE):
        fmt = "png"
        width, height = _png_size(data)
    elif data.startswith(_JPEG_SOI):
        fmt = "jpeg"
        width, height = _jpeg_size(data)
    else:
        raise ImageError(CODE_NOT_IMAGE, "image must be a JPEG or PNG file")
    if width <= 0 or height <= 0:
        raise ImageError(CODE_NOT_IMAGE, "image has zero width or height")
    if max(width, height) > limits.max_side:
        raise ImageError(
            CODE_TOO_LARGE,
            f"image is {width}x{height}; the longest side may be at most {limits.max_side} px",
        )
    if width * height > limits.max_pixels:
        raise ImageError(
            CODE_TOO_LARGE,
            f"image is {width}x{height} = {width * height} pixels; "
            f"the maximum is {limits.max_pixels} pixels",
        )
    decoded_bytes = _png_decoded_bytes(data, width, height) if fmt == "png" else 0
    if decoded_bytes > limits.max_png_decoded_bytes:
        raise ImageError(
            CODE_TOO_LARGE,
            f"image is {width}x{height} and decodes to {decoded_bytes} bytes; the maximum is "
            f"{limits.max_png_decoded_bytes} bytes ({limits.max_pixels} pixels of 8-bit RGB)",
        )
    gray = _decode_png(data) if fmt == "png" else _decode_jpeg(data)
    return DecodedImage(format=fmt, width=width, height=height, gray=gray)


def _png_size(data: bytes) -> tuple[int, int]:
    """Read IHDR and walk every chunk to IEND, so truncated uploads are refused up front."""
    pos = len(_PNG_SIGNATURE)
    size: tuple[int, int] | None = None
    first = True
    while True:
        if pos + 8 > len(data):
            raise ImageError(CODE_NOT_IMAGE, "PNG is truncated (no IEND chunk)")
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length + 4  # header + payload + CRC
        if length > 0x7FFFFFFF or end > len(data):
            raise ImageError(CODE_NOT_IMAGE, "PNG is truncated or has a corrupt chunk length")
        if first:
            if ctype != b"IHDR" or length != 13:
                raise ImageError(CODE_NOT_IMAGE, "PNG does not start with an IHDR chunk")
            width, height = struct.unpack(">II", data[pos + 8 : pos + 16])
            size = (width, height)
            first = False
        if ctype == b"IEND":
            assert size is not None
            return size
        pos = end


def _png_decoded_bytes(data: bytes, width: int, height: int) -> int:
    """Bytes of samples the IHDR (already checked by _png_size) says the PNG decodes to."""
    bit_depth, colour_type = data[24], data[25]
    channels = _PNG_CHANNELS.get(colour_type, 4)
    if colour_type == 3:  # palette indices expand to RGB(A)
        channels, bit_depth = 4, 8
    return width * height * channels * max(bit_depth, 8) // 8


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Walk JPEG markers to the frame header (SOFn) and the first scan (SOS); require an EOI
    after the scan so truncated uploads are refused up front."""
    pos = 2
    size: tuple[int, int] | None = None
    n = len(data)
    while True:
        if pos >= n or data[pos] != 0xFF:
            raise ImageError(CODE_NOT_IMAGE, "JPEG is truncated or has a corrupt marker")
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            raise ImageError(CODE_NOT_IMAGE, "JPEG is truncated")
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE or marker == 0xD8:
            continue
        if marker == 0xD9:
            raise ImageError(CODE_NOT_IMAGE, "JPEG ends before any image data")
        if pos + 2 > n:
            raise ImageError(CODE_NOT_IMAGE, "JPEG is truncated")
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        if length < 2 or pos + length > n:
            raise ImageError(CODE_NOT_IMAGE, "JPEG is truncated or has a corrupt segment")
        if marker in _JPEG_SOF:
            if length < 8:
                raise ImageError(CODE_NOT_IMAGE, "JPEG has a corrupt frame header")
            height, width = struct.unpack(">HH", data[pos + 3 : pos + 7])
            size = (width, height)
        elif marker == 0xDA:
            if size is None:
                raise ImageError(CODE_NOT_IMAGE, "JPEG has image data before its frame header")
            if data.rfind(b"\xff\xd9", pos + length) < 0:
                raise ImageError(CODE_NOT_IMAGE, "JPEG is truncated (no end-of-image marker)")
            return size
        pos += length


def _decode_jpeg(data: bytes) -> np.ndarray:
    """Decode straight to grey; IMREAD_GRAYSCALE honours the EXIF orientation."""
    gray = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    return _checked(gray)


def _decode_png(data: bytes) -> np.ndarray:
    """Decode unchanged so transparency can be composited on white (transparent pixels often
    hold black or junk colour), then reduce any depth/channel layout to grey uint8."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    img = _checked(img)
    if img.dtype == np.uint16:
        img = cv2.convertScaleAbs(img, alpha=1 / 257)  # 16 → 8 bits in one SIMD pass
    elif img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2:
        return img
    channels = img.shape[2]
    if channels == 1:
        return img[:, :, 0].copy()
    if channels == 4:
        return _on_white(cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY), img[:, :, 3])
    if channels == 2:  # grey + alpha (OpenCV normally expands these, but be safe)
        return _on_white(np.ascontiguousarray(img[:, :, 0]), img[:, :, 1])
    return cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2GRAY)


def _on_white(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``gray`` composited on white by ``alpha``: 255 - (255 - g) * a / 255, in uint8 with
    OpenCV's rounding (grey is linear in the channels, so compositing after the grey
    conversion equals compositing the colours first). No float copies of a large image."""
    ink = cv2.multiply(cv2.subtract(255, gray), np.ascontiguousarray(alpha), scale=1 / 255)
    return cv2.subtract(255, ink)


def _checked(img: np.ndarray | None) -> np.ndarray:
    if img is None or img.size == 0:
        raise ImageError(CODE_NOT_IMAGE, "image could not be decoded")
    return img
