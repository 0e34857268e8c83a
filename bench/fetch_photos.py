"""Build the ``bench/photos/`` cache of real photographs for ``bench.quality``.

Nothing is committed and nothing is downloaded from anywhere but Debian's archive: the
photos come from Debian packages (installed with ``apt-get`` when missing and we are root)
and from ``demo/photos``. Each one is decoded, downscaled to at most ``MAX_SIDE`` px and
written as JPEG into ``bench/photos/{gallery,negatives}/``, with ``MANIFEST.tsv`` naming
for every file its package, its source path and the licence Debian's
``/usr/share/doc/<package>/copyright`` gives for it. The cache is git-ignored because the
licences (GPL, CC-BY(-SA), PD, OpenCV's BSD/Apache) differ per file and several require
attribution we would otherwise have to carry; rebuilding it takes ~30 s after the install.

    python -m bench.fetch_photos            # install missing packages, (re)build the cache
    python -m bench.fetch_photos --no-apt   # only use what is installed

GCompris keeps its pictures inside Qt resource files (``*.rcc``); :func:`rcc_files` reads
that documented format (header, tree, names, data) without Qt.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np

from bench.demo_photos import GALLERY, NEGATIVES

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / "photos"
DEMO = ROOT / "demo" / "photos"
MAX_SIDE = 1024
JPEG_QUALITY = 92

PACKAGES = (
    "gcompris-qt-data",  # Wikimedia Commons photos of monuments, animals, tools, fish...
    "mate-backgrounds",  # nature photographs
    "lomiri-wallpapers-16.04",  # Ubuntu Touch community photographs
    "lomiri-wallpapers-20.04",
    "plasma-workspace-wallpapers",  # KDE wallpapers: photographs and renders
    "opencv-doc",  # OpenCV sample data: photos, text pages, calibration boards
)

_BG = "/usr/share/backgrounds"
_KDE = "/usr/share/wallpapers"
_CV = "/usr/share/doc/opencv-doc/examples"
_GC = "/usr/share/gcompris-qt/rcc"

# -- what is a target ----------------------------------------------------------------------
# Every gallery entry is a distinct photograph of a distinct scene.
# The demo photos split as the unit tests split them (one list, in bench/demo_photos.py).
DEMO_GALLERY = GALLERY
FILE_GALLERY = (
    *(
        f"{_BG}/{n}.jpg"
        for n in (
            "Bridge_by_Sander_Klootwijk",
            "Dragonfly_by_Bolly",
            "Kleiber_by_Lukas_Baubkus",
            "Picture_0B_by_freespace",
            "Picture_1A_by_freespace",
            "Wine_by_Jakkub_Mede",
            "aitzgorri_by_Aitzol_Berasategi",
            "free_by_Peter_Nerlich",
            "friends_by_Aitzol_Berasategi",
            "life_by_Aitzol_Berasategi",
            "picosdeeuropa_by_Aitzol_Berasategi",
            "seeding_by_Clements_Engelhardt",
            "sunset_by_Aitzol_Berasategi",
        )
    ),
    *(
        f"{_BG}/mate/nature/{n}.jpg"
        for n in (
            "Aqua",
            "Blinds",
            "Dune",
            "FreshFlower",
            "Garden",
            "GreenMeadow",
            "LadyBird",
            "RainDrops",
            "Storm",
            "TwoWings",
            "Wood",
            "YellowFlower",
        )
    ),
    *(
        f"{_KDE}/{n}/contents/images/1920x1080.jpg"
        for n in (
            "BytheWater",
            "ColdRipple",
            "DarkestHour",
            "EveningGlow",
            "FallenLeaf",
            "Grey",
            "Kite",
            "OneStandsOut",
            "Path",
        )
    ),
    f"{_KDE}/ColorfulCups/contents/images/2560x1600.jpg",
)
# GCompris activities whose every picture is a photograph and a gallery target.
RCC_GALLERY = ("explore_monuments", "erase")

# -- what is a negative --------------------------------------------------------------------
DEMO_NEGATIVES = NEGATIVES
# OpenCV sample data: one image of each stereo / sequence pair only (the other view shows
# the same scene and might legitimately match it); text pages, a music sheet, a sudoku
# and a calibration board are the text-heavy / repetitive look-alikes.
FILE_NEGATIVES = (
    *(
        f"{_CV}/data/{n}"
        for n in (
            "aero1.jpg",
            "aloeL.jpg",
            "apple.jpg",
            "baboon.jpg",
            "basketball1.png",
            "board.jpg",
            "box.png",
            "building.jpg",
            "butterfly.jpg",
            "chicky_512.png",
            "ela_original.jpg",
            "fruits.jpg",
            "graf1.png",
            "home.jpg",
            "imageTextN.png",
            "left.jpg",
            "left01.jpg",
            "leuvenA.jpg",
            "licenseplate_motion.jpg",
            "messi5.jpg",
            "notes.png",
            "orange.jpg",
            "pca_test1.jpg",
            "rubberwhale1.png",
            "smarties.png",
            "squirrel_cls.jpg",
            "starry_night.jpg",
            "stuff.jpg",
            "sudoku.png",
            "text_defocus.jpg",
            "text_motion.jpg",
        )
    ),
    *(f"{_CV}/hfs/data/{n:03d}.jpg" for n in range(3)),
    *(f"{_CV}/text/scenetext{n:02d}.jpg" for n in range(1, 7)),
    f"{_CV}/alphamat/input_images/plant.jpg",
    f"{_CV}/reg/home.png",
    f"{_CV}/dnn_superres/butterfly.png",
    f"{_BG}/analogpattern_by_Peter_Nerlich.jpg",
    f"{_BG}/greentock_by_Peter_Nerlich.jpg",
)
# Same-kind-of-scene look-alikes: other photos of landmarks (some the same landmark as a
# gallery target, from another viewpoint), windmills, dams, solar panels, tools, fish.
RCC_NEGATIVES = {"categorization": re.compile(r"/images/(?!alphabets|numbers)[^/]+/")}
# Large renders/photos cut into non-overlapping tiles: each tile is a distinct negative
# (tiles of one wallpaper may match *each other*, never a gallery target).
TILED_NEGATIVES = (
    (f"{_KDE}/Altai/contents/images/5120x2880.png", 2),
    (f"{_KDE}/Canopee/contents/images/3840x2160.png", 2),
    (f"{_KDE}/MilkyWay/contents/images/5120x2880.png", 2),
    (f"{_KDE}/Volna/contents/images/5120x2880.jpg", 2),
    (f"{_BG}/mate/abstract/Elephants_5640x3172.jpg", 2),
    (f"{_KDE}/Autumn/contents/images/1920x1080.jpg", 1),
    (f"{_KDE}/PastelHills/contents/images/1920x1080.jpg", 1),
)


def rcc_files(path: Path) -> dict[str, bytes]:
    """Every file in a Qt binary resource (``.rcc``, format 1-3), by its resource path."""
    d = path.read_bytes()
    if d[:4] != b"qres":
        raise ValueError(f"{path}: not a Qt resource file")
    version, tree, data, names = struct.unpack(">IIII", d[4:20])
    esize = 14 if version == 1 else 22

    def name(off: int) -> str:
        (n,) = struct.unpack(">H", d[names + off : names + off + 2])
        return d[names + off + 6 : names + off + 6 + 2 * n].decode("utf-16-be")

    out: dict[str, bytes] = {}
    stack = [(0, "")]
    while stack:
        i, prefix = stack.pop()
        e = tree + i * esize
        noff, flags = struct.unpack(">IH", d[e : e + 6])
        here = prefix + (name(noff) if i else "")
        if flags & 2:  # directory
            count, first = struct.unpack(">II", d[e + 6 : e + 14])
            stack.extend((c, here + "/") for c in range(first, first + count))
            continue
        (doff,) = struct.unpack(">I", d[e + 10 : e + 14])
        (size,) = struct.unpack(">I", d[data + doff : data + doff + 4])
        blob = d[data + doff + 4 : data + doff + 4 + size]
        if flags & 1:  # zlib, after a 4-byte uncompressed length
            blob = zlib.decompress(blob[4:])
        elif flags & 4:
            continue  # zstd: not used by these packages
        out[here] = blob
    return out


# -- licences ------------------------------------------------------------------------------
def _dep5(package: str) -> list[tuple[list[str], str]]:
    """(file globs, licence) stanzas of a machine-readable debian/copyright."""
    path = Path("/usr/share/doc") / package / "copyright"
    if not path.exists():
        return []
    stanzas: list[tuple[list[str], str]] = []
    files: list[str] = []
    in_files = False
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("Files:"):
            files, in_files = line[6:].split(), True
        elif in_files and line.startswith((" ", "\t")) and files:
            files += line.split()
        elif line.startswith("License:") and files:
            stanzas.append((files, line[8:].strip()))
            files, in_files = [], False
        elif line and not line.startswith((" ", "\t")):
            in_files = False
    return stanzas


def licence_of(package: str, source: str) -> str:
    """The licence of the last DEP-5 stanza naming ``source`` (later stanzas win), matched
    by path suffix or, failing that, by file name; GCompris' stanzas name the original
    .jpg/.png of what its .rcc holds as .webp, so extensions are ignored. A file no stanza
    names gets the ``Files: *`` licence, marked as such."""

    def stem(p: str) -> str:
        return re.sub(r"\.[A-Za-z0-9]+$", "", p.lstrip("/"))

    src = stem(source)
    default = specific = None
    for globs, lic in _dep5(package):
        for g in globs:
            if g == "*":
                default = lic
            elif fnmatch.fnmatch(src, "*" + stem(g).lstrip("*")) or (
                "/" in g and Path(src).name == Path(stem(g)).name
            ):
                specific = lic
    if specific:
        return specific
    if default:
        return f"{default} (package default: not named in debian/copyright)"
    return f"see /usr/share/doc/{package}/copyright"


def package_of(path: str) -> str:
    out = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True, check=False)
    return out.stdout.split(":", 1)[0].strip() if out.returncode == 0 else "?"


# -- building ------------------------------------------------------------------------------
def _ensure_packages(use_apt: bool) -> None:
    missing = [
        p
        for p in PACKAGES
        if subprocess.run(["dpkg", "-s", p], capture_output=True, text=True, check=False).returncode
        != 0
    ]
    if not missing:
        return
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if not use_apt or os.geteuid() != 0:
        sys.exit(f"missing packages; run as root: {' '.join(cmd)}")
    print("installing", " ".join(missing), flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def _fit(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3 and img.shape[2] == 4:  # alpha over white
        a = img[:, :, 3:4].astype(np.float32) / 255.0
        img = (img[:, :, :3] * a + 255.0 * (1 - a)).astype(np.uint8)
    elif img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    h, w = img.shape[:2]
    s = MAX_SIDE / max(h, w)
    if s < 1:
        img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return img


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


class _Writer:
    def __init__(self) -> None:
        self.rows: list[dict[str, str]] = []
        self.names: set[str] = set()

    def add(self, role: str, name: str, img: np.ndarray | None, pkg: str, src: str, lic: str):
        if img is None:
            print(f"  skipped (undecodable): {src}", file=sys.stderr)
            return
        name = _slug(name)
        assert name not in self.names, name
        self.names.add(name)
        out = CACHE / role / f"{name}.jpg"
        ok = cv2.imwrite(str(out), _fit(img), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        assert ok, out
        self.rows.append(
            {"file": f"{role}/{name}.jpg", "role": role, "package": pkg, "source": src,
             "licence": lic}
        )  # fmt: skip


def build(use_apt: bool = True) -> Path:
    _ensure_packages(use_apt)
    if CACHE.exists():
        shutil.rmtree(CACHE)
    for role in ("gallery", "negatives"):
        (CACHE / role).mkdir(parents=True)
    w = _Writer()
    demo_lic = "CC0 / public domain (demo/photos/SOURCES.md)"
    for role, names in (("gallery", DEMO_GALLERY), ("negatives", DEMO_NEGATIVES)):
        for n in names:
            img = cv2.imread(str(DEMO / f"{n}.jpg"), cv2.IMREAD_COLOR)
            w.add(role, f"demo-{n}", img, "demo/photos", f"demo/photos/{n}.jpg", demo_lic)
    for role, paths in (("gallery", FILE_GALLERY), ("negatives", FILE_NEGATIVES)):
        for p in paths:
            pkg = package_of(p)
            img = cv2.imread(p, cv2.IMREAD_UNCHANGED)
            if img is not None and img.dtype != np.uint8:
                img = (img / 257).astype(np.uint8)
            stem = Path(p).parent.parent.parent.name if "/contents/" in p else Path(p).stem
            if p.startswith(_CV) and Path(p).parent.name != "data":
                stem = f"{Path(p).parent.name}-{stem}"
            w.add(role, f"{pkg.split('-')[0]}-{stem}", img, pkg, p, licence_of(pkg, p))
    rcc_pkg = "gcompris-qt-data"
    for role, acts in (("gallery", dict.fromkeys(RCC_GALLERY)), ("negatives", RCC_NEGATIVES)):
        for act, pattern in acts.items():
            files = rcc_files(Path(_GC) / f"{act}.rcc")
            for path in sorted(files):
                if not path.endswith((".webp", ".jpg", ".png")):
                    continue
                if pattern is not None and not pattern.search(path):
                    continue
                img = cv2.imdecode(np.frombuffer(files[path], np.uint8), cv2.IMREAD_COLOR)
                if img is None or min(img.shape[:2]) < 240:
                    continue  # icons and thumbnails
                src = path.removeprefix("/gcompris/")
                name = f"gc-{act}-{Path(path).parent.name}-{Path(path).stem}"
                w.add(role, name, img, rcc_pkg, f"{_GC}/{act}.rcc:{path}",
                      licence_of(rcc_pkg, src))  # fmt: skip
    for p, n in TILED_NEGATIVES:
        img = cv2.imread(p, cv2.IMREAD_COLOR)
        pkg = package_of(p)
        stem = Path(p).parent.parent.parent.name if "/contents/" in p else Path(p).stem
        h, wd = img.shape[:2]
        th, tw = h // n, wd // (2 * n)
        for r in range(n):
            for c in range(2 * n):
                tile = img[r * th : (r + 1) * th, c * tw : (c + 1) * tw]
                w.add("negatives", f"{pkg.split('-')[0]}-{stem}-tile{r}{c}", tile, pkg,
                      f"{p} (tile {r},{c} of {n}x{2 * n})", licence_of(pkg, p))  # fmt: skip
    with (CACHE / "MANIFEST.tsv").open("w", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=list(w.rows[0]), delimiter="\t")
        out.writeheader()
        out.writerows(w.rows)
    n_gal = sum(r["role"] == "gallery" for r in w.rows)
    print(f"{CACHE}: {n_gal} gallery photos, {len(w.rows) - n_gal} negatives")
    return CACHE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-apt", action="store_true", help="never run apt-get")
    args = parser.parse_args()
    build(use_apt=not args.no_apt)


if __name__ == "__main__":
    main()
