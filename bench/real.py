"""Real phone photos of known targets (the SMVS DVD covers' development half, kept outside the
repository): where they are, which photo shows which cover, and the bytes a client would send.

A photo set is a directory holding ``Reference/NNN.jpg`` (the clean targets) and one folder per
phone with ``NNN.jpg`` = a photo of target ``NNN`` (same stem, same target). The photos are
never copied into the repository; only results computed from them are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# The development half of SMVS DVD covers, beside the checkout (see its SOURCES.md).
DEFAULT_DIR = ROOT.parent / "shared" / "data" / "smvs-dvd-dev"
ENV = "OPENCRS_REAL_PHOTOS"
FAMILY = "real photos (SMVS DVD, 4 phones)"
# What a client uploads: the long side capped and the JPEG re-encoded (EasyAR's SDKs and the
# CLI send phone pictures this way, not the camera's originals).
CLIENT_SIDE = 1024
CLIENT_QUALITY = 85
PREFIX = "smvs-dvd-"


@dataclass(frozen=True)
class Photo:
    """One phone photo: the phone (its folder), the target it shows and its file."""

    phone: str
    target: str
    path: Path


@dataclass(frozen=True)
class PhotoSet:
    """The references (target id -> JPEG bytes as stored), the photos of them, and how many
    photos were skipped because no reference has their stem."""

    references: dict[str, bytes]
    photos: list[Photo]
    skipped: int


def default_dir() -> Path:
    """``$OPENCRS_REAL_PHOTOS`` if set, else the shared data set beside the checkout."""
    env = os.environ.get(ENV)
    return Path(env) if env else DEFAULT_DIR


def target_id(stem: str) -> str:
    """The gallery id of reference ``stem``: prefixed so it can never collide with a bench
    photo's or a distractor's id."""
    return PREFIX + stem


def load(directory: Path, phones: list[str] | None = None, limit: int | None = None) -> PhotoSet:
    """References of ``directory/Reference`` (the first ``limit`` by name, if given) and every
    photo of them in the phone folders (those named in ``phones``, if given)."""
    refs = sorted((directory / "Reference").glob("*.jpg"))
    if limit is not None:
        refs = refs[:limit]
    references = {target_id(p.stem): p.read_bytes() for p in refs}
    folders = sorted(d for d in directory.iterdir() if d.is_dir() and d.name != "Reference")
    if phones is not None:
        unknown = set(phones) - {d.name for d in folders}
        if unknown:
            raise SystemExit(f"no phone folder {sorted(unknown)} in {directory}")
        folders = [d for d in folders if d.name in phones]
    photos, skipped = [], 0
    for folder in folders:
        for p in sorted(folder.glob("*.jpg")):
            if target_id(p.stem) in references:
                photos.append(Photo(folder.name, target_id(p.stem), p))
            else:
                skipped += 1
    return PhotoSet(references, photos, skipped)


def load_or_exit(
    directory: str | Path, phones: str | None = None, limit: int | None = None
) -> PhotoSet:
    """:func:`load` for a benchmark's ``--real``/``--phones`` (comma-separated)/``--limit``,
    ending it with a message when ``directory`` holds no reference."""
    photos = load(Path(directory), phones.split(",") if phones else None, limit)
    if not photos.references:
        raise SystemExit(f"no reference covers in {Path(directory) / 'Reference'}")
    return photos


def client_image(path: Path) -> np.ndarray:
    """The photo (colour) as a client sends it: long side <= ``CLIENT_SIDE``, area-downscaled
    if larger; encode it at ``CLIENT_QUALITY``."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    side = max(img.shape[:2])
    if side > CLIENT_SIDE:
        s = CLIENT_SIDE / side
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return img


def client_bytes(path: Path) -> bytes:
    """The JPEG bytes a client uploads for the photo at ``path`` (see :func:`client_image`)."""
    ok, buf = cv2.imencode(".jpg", client_image(path), [cv2.IMWRITE_JPEG_QUALITY, CLIENT_QUALITY])
    if not ok:
        raise ValueError(f"cannot encode {path}")
    return buf.tobytes()
