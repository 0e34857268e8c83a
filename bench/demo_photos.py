"""Real demo photos and the perturbations a phone camera applies to them.

Shared by ``bench.quality`` and the tests (imported from here): every perturbation is
deterministic (seeded RNG) so a failing recall number is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import cv2
import numpy as np

PHOTO_DIR = Path(__file__).resolve().parent.parent / "demo" / "photos"

# The gallery mixes portraits, objects, astronomy, microscopy and a text page; the
# negatives include look-alikes (text vs page, textures, another microscopy image).
GALLERY = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "hubble",
    "motorcycle",
    "ihc",
    "coins",
    "page",
)
NEGATIVES = ("moon", "text", "brick", "gravel", "grass", "retina", "cell", "clock")


@cache
def _load(name: str) -> np.ndarray:
    img = cv2.imread(str(PHOTO_DIR / f"{name}.jpg"), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(PHOTO_DIR / f"{name}.jpg")
    img.flags.writeable = False
    return img


def photo(name: str) -> bytes:
    """The demo photo's file bytes, as a client would upload them."""
    return (PHOTO_DIR / f"{name}.jpg").read_bytes()


def load_bgr(name: str) -> np.ndarray:
    """A demo photo as BGR uint8 (a fresh, writable copy)."""
    return _load(name).copy()


def load_gray(name: str) -> np.ndarray:
    """A demo photo as grey uint8."""
    return cv2.cvtColor(_load(name), cv2.COLOR_BGR2GRAY)


def rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    """In-plane rotation on an enlarged canvas (exact for multiples of 90°)."""
    if degrees % 90 == 0:
        return np.ascontiguousarray(np.rot90(img, k=int(degrees // 90) % 4))
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * s + w * c), int(h * c + w * s)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(img, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=0)


def scale(img: np.ndarray, factor: float) -> np.ndarray:
    h, w = img.shape[:2]
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return cv2.resize(img, (round(w * factor), round(h * factor)), interpolation=interp)


def tilt_corners(width: int, height: int, degrees: float) -> np.ndarray:
    """Where :func:`tilt` puts a ``width`` x ``height`` picture's corners (top left first,
    clockwise), in the tilted picture's pixels."""
    f = 1.2 * max(width, height)
    t = np.radians(degrees)
    x = np.array([0, width, width, 0], dtype=np.float64) - width / 2
    y = np.array([0, 0, height, height], dtype=np.float64) - height / 2
    depth = f + y * np.sin(t)
    proj = np.stack([f * x / depth, f * y * np.cos(t) / depth], axis=1)
    return proj - proj.min(axis=0)


def tilt(img: np.ndarray, degrees: float) -> np.ndarray:
    """The picture seen by a pinhole camera after rotating it ``degrees`` about its
    horizontal axis (top edge recedes), as when photographing a poster from below."""
    h, w = img.shape[:2]
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    proj = tilt_corners(w, h, degrees)
    size = np.ceil(proj.max(axis=0)).astype(int)
    hm = cv2.getPerspectiveTransform(corners.astype(np.float32), proj.astype(np.float32))
    return cv2.warpPerspective(img, hm, (int(size[0]), int(size[1])), flags=cv2.INTER_LINEAR)


def crop(img: np.ndarray, keep_area: float = 0.6) -> np.ndarray:
    """Off-centre crop keeping ``keep_area`` of the picture (each side x sqrt(keep_area))."""
    h, w = img.shape[:2]
    k = float(np.sqrt(keep_area))
    cw, ch = round(w * k), round(h * k)
    x0, y0 = (w - cw) * 2 // 3, (h - ch) // 3
    return np.ascontiguousarray(img[y0 : y0 + ch, x0 : x0 + cw])


def jpeg(img: np.ndarray, quality: int = 40) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def photometric(img: np.ndarray, contrast: float, brightness: float) -> np.ndarray:
    """``contrast`` and ``brightness`` as fractions (+0.4 = 40 % more), clipped to uint8."""
    out = (img.astype(np.float32) - 128.0) * (1.0 + contrast) + 128.0 + 255.0 * brightness
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def blur_noise(
    img: np.ndarray, sigma: float = 1.5, noise: float = 6.0, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = cv2.GaussianBlur(img, (0, 0), sigma).astype(np.float32)
    out += rng.normal(0.0, noise, size=out.shape).astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def embed(img: np.ndarray, background: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """Paste ``img`` shrunk to ``fraction`` of the background's long side into it (clutter)."""
    bh, bw = background.shape[:2]
    h, w = img.shape[:2]
    s = fraction * max(bw, bh) / max(w, h)
    small = scale(img, s)
    sh, sw = small.shape[:2]
    if sh > bh or sw > bw:
        small = scale(small, min(bh / sh, bw / sw))
        sh, sw = small.shape[:2]
    out = background.copy()
    y0, x0 = (bh - sh) // 4, (bw - sw) * 3 // 5
    out[y0 : y0 + sh, x0 : x0 + sw] = small
    return out


# Transform families: name -> function(gray photo, name of the photo) -> query image.
# Backgrounds for clutter are always negatives, so the only gallery image in view is ours.
FAMILIES: dict[str, Callable[[np.ndarray, str], np.ndarray]] = {
    "reencode": lambda g, n: jpeg(g, 90),
    "rotate30": lambda g, n: rotate(g, 30),
    "rotate90": lambda g, n: rotate(g, 90),
    "rotate180": lambda g, n: rotate(g, 180),
    "scale0.5": lambda g, n: scale(g, 0.5),
    "tilt40": lambda g, n: tilt(g, 40),
    "crop60": lambda g, n: crop(g, 0.6),
    "jpeg40": lambda g, n: jpeg(g, 40),
    "bright+40": lambda g, n: photometric(g, 0.4, 0.1),
    "dark-40": lambda g, n: photometric(g, -0.4, -0.1),
    "blur+noise": lambda g, n: blur_noise(g, 1.5, 6.0, seed=sum(map(ord, n))),
    "clutter": lambda g, n: embed(g, scale(load_gray("clock"), 2.0), 0.5),
    "clutter-tex": lambda g, n: embed(g, scale(load_gray("gravel"), 1.6), 0.5),
}

# Beyond the acceptance spec: where the engine's limits are (reported by bench.quality,
# not asserted by the unit tests).
STRESS: dict[str, Callable[[np.ndarray, str], np.ndarray]] = {
    "*tilt60": lambda g, n: tilt(g, 60),
    "*scale0.3": lambda g, n: scale(g, 0.3),
    "*crop30": lambda g, n: crop(g, 0.3),
    "*clutter0.3": lambda g, n: embed(g, scale(load_gray("clock"), 2.0), 0.3),
    "*tex0.4": lambda g, n: embed(g, scale(load_gray("grass"), 1.6), 0.4),
    "*combo": lambda g, n: photometric(
        blur_noise(tilt(rotate(g, 45), 30), 1.0, 5.0, seed=sum(map(ord, n))), -0.4, -0.1
    ),
}
