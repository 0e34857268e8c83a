"""A vocabulary tree over 256-bit ORB descriptors (Nistér & Stewénius 2006).

A complete ``branching``-ary tree of binary centres, ``depth`` levels deep: a descriptor is
quantised by descending from the root to the nearest of ``branching`` children at each
level, i.e. ``branching * depth`` Hamming distances instead of one per leaf. The leaves are
the visual words of the inverted file (:mod:`opencrs.index.inverted`).

Centres are trained offline by hierarchical k-majority (k-means for binary vectors: each
bit of a centre is the majority bit of its members) on descriptors of photos that are not
benchmark targets (``bench/train_vocabulary.py``) and shipped with the package as a small
versioned file, so every bundle of every gallery uses the same words.

File format v1 (little-endian)::

    magic "OCRSVOCB" | u16 version | u16 branching | u16 depth | u16 descriptor bytes
    u8 centres[branching + branching^2 + ... + branching^depth, descriptor bytes]
    u32 CRC32 of everything before it
"""

from __future__ import annotations

import struct
import zlib
from functools import cache
from pathlib import Path

import cv2
import numpy as np

_MAGIC = b"OCRSVOCB"
_VERSION = 1
_HEADER = struct.Struct("<8sHHHH")
_CRC = struct.Struct("<I")
_DESC_BYTES = 32
# Descriptors quantised per numpy batch: bounds the (batch, branching, 4) uint64 temporaries.
_BATCH = 65_536

SHIPPED = Path(__file__).with_name("vocabulary-v1.bin")
# Bundles written before fingerprints were fixed carry the CRC32 of a whole serialised tree,
# trailing CRC included: the same constant (the CRC residue) for every tree. Only the v1 tree
# had shipped then, so that constant names the v1 tree's words.
_RESIDUE_FINGERPRINT = 0x2144DF1C
_V1_FINGERPRINT = 0xABB008B9


def _popcount_rows(a: np.ndarray) -> np.ndarray:
    """Hamming weight of each row of a (..., 4) uint64 array."""
    return np.bitwise_count(a).sum(axis=-1, dtype=np.int32)


class Vocabulary:
    """Immutable vocabulary tree; ``levels[l]`` holds the ``branching**(l+1)`` centres of
    level ``l + 1`` as (n, 4) uint64, children of node ``j`` at ``j*branching + [0, b)``."""

    __slots__ = ("_fingerprint", "branching", "depth", "levels")

    def __init__(self, branching: int, depth: int, levels: list[np.ndarray]) -> None:
        if branching < 2 or depth < 1 or len(levels) != depth:
            raise ValueError("vocabulary: bad shape")
        self.branching = int(branching)
        self.depth = int(depth)
        self.levels = []
        for lv, centres in enumerate(levels):
            c = np.ascontiguousarray(centres, dtype=np.uint8).reshape(-1, _DESC_BYTES)
            if len(c) != branching ** (lv + 1):
                raise ValueError("vocabulary: wrong centre count")
            c64 = c.view(np.uint64).reshape(-1, _DESC_BYTES // 8)
            c64.flags.writeable = False
            self.levels.append(c64)
        self._fingerprint = zlib.crc32(self.to_bytes()[: -_CRC.size])

    @property
    def words(self) -> int:
        """Number of leaves (visual words)."""
        return self.branching**self.depth

    def quantise(self, descriptors: np.ndarray, level: int | None = None) -> np.ndarray:
        """Node index at ``level`` (1..depth; default: the leaf) of each descriptor, int64."""
        level = self.depth if level is None else int(level)
        if not 1 <= level <= self.depth:
            raise ValueError("vocabulary: level out of range")
        d = np.ascontiguousarray(descriptors, dtype=np.uint8).reshape(-1, _DESC_BYTES)
        out = np.empty(len(d), dtype=np.int64)
        kids = np.arange(self.branching, dtype=np.int64)
        for start in range(0, len(d), _BATCH):
            x = d[start : start + _BATCH].view(np.uint64)[:, None, :]
            node = np.zeros(len(x), dtype=np.int64)
            for lv in range(level):
                child = node[:, None] * self.branching + kids
                dist = _popcount_rows(x ^ np.take(self.levels[lv], child, axis=0))
                node = child[np.arange(len(x)), np.argmin(dist, axis=1)]
            out[start : start + len(x)] = node
        return out

    def second_leaves(
        self, descriptors: np.ndarray, leaves: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """For descriptors quantised to ``leaves`` (:meth:`quantise`): each one's
        second-nearest sibling leaf and how many more bits away it is than its own, for
        multiple assignment (a descriptor near the border of two leaves also looks in the
        other). Only the last level is compared again: the leaf fixes the path above."""
        d = np.ascontiguousarray(descriptors, dtype=np.uint8).reshape(-1, _DESC_BYTES)
        parents = np.asarray(leaves, dtype=np.int64).reshape(-1) // self.branching
        child = parents[:, None] * self.branching + np.arange(self.branching, dtype=np.int64)
        dist = _popcount_rows(
            d.view(np.uint64)[:, None, :] ^ np.take(self.levels[-1], child, axis=0)
        )
        order = np.argsort(dist, axis=1, kind="stable")[:, :2]
        rows = np.arange(len(d))
        gap = dist[rows, order[:, 1]] - dist[rows, order[:, 0]]
        return child[rows, order[:, 1]], gap.astype(np.int64)

    def nearest_top_nodes(self, descriptors: np.ndarray, k: int) -> np.ndarray:
        """The ``k`` nearest level-1 nodes (root children) of each descriptor, nearest first,
        as (n, k) int64. A leaf's level-1 node is ``leaf // branching**(depth - 1)``."""
        d = np.ascontiguousarray(descriptors, dtype=np.uint8).reshape(-1, _DESC_BYTES)
        k = max(1, min(int(k), self.branching))
        if len(d) == 0:
            return np.zeros((0, k), dtype=np.int64)
        _, idx = cv2.batchDistance(
            d, self.levels[0].view(np.uint8), cv2.CV_32S, normType=cv2.NORM_HAMMING, K=k
        )
        return idx.astype(np.int64)

    def quantise_many(self, descriptors: np.ndarray) -> np.ndarray:
        """Leaf of each descriptor, like :meth:`quantise` (same result), for large sets (a
        whole gallery): descriptors are grouped by node and each group is compared with its
        node's children by OpenCV's SIMD Hamming ``batchDistance``, which avoids the big
        per-descriptor gathers of the vectorised path."""
        d = np.ascontiguousarray(descriptors, dtype=np.uint8).reshape(-1, _DESC_BYTES)
        node = np.zeros(len(d), dtype=np.int64)
        if len(d) == 0:
            return node
        for lv in range(self.depth):
            centres = self.levels[lv].view(np.uint8)
            order = np.argsort(node, kind="stable")
            bounds = np.flatnonzero(np.diff(node[order])) + 1
            starts = np.concatenate([[0], bounds])
            ends = np.concatenate([bounds, [len(d)]])
            sorted_d = d[order]
            new = np.empty(len(d), dtype=np.int64)
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                base = int(node[order[a]]) * self.branching
                _, idx = cv2.batchDistance(
                    sorted_d[a:b],
                    centres[base : base + self.branching],
                    cv2.CV_32S,
                    normType=cv2.NORM_HAMMING,
                    K=1,
                )
                new[a:b] = base + idx[:, 0]
            node = np.empty_like(new)
            node[order] = new
        return node

    # -- serialisation ----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        body = b"".join(
            [_HEADER.pack(_MAGIC, _VERSION, self.branching, self.depth, _DESC_BYTES)]
            + [c.view(np.uint8).tobytes() for c in self.levels]
        )
        return body + _CRC.pack(zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes) -> Vocabulary:
        """Parse :meth:`to_bytes` output; ``ValueError`` on corrupt or truncated data."""
        data = bytes(data)
        if len(data) < _HEADER.size + _CRC.size:
            raise ValueError("vocabulary: data too short")
        body = data[: -_CRC.size]
        (crc,) = _CRC.unpack_from(data, len(body))
        if zlib.crc32(body) != crc:
            raise ValueError("vocabulary: checksum mismatch")
        magic, version, branching, depth, dbytes = _HEADER.unpack_from(body)
        if magic != _MAGIC or version != _VERSION or dbytes != _DESC_BYTES:
            raise ValueError("vocabulary: bad magic, version or descriptor size")
        if branching < 2 or depth < 1:
            raise ValueError("vocabulary: bad shape")
        counts = [branching ** (lv + 1) for lv in range(depth)]
        if len(body) - _HEADER.size != sum(counts) * _DESC_BYTES:
            raise ValueError("vocabulary: wrong length")
        levels, pos = [], _HEADER.size
        for n in counts:
            levels.append(np.frombuffer(body, np.uint8, n * _DESC_BYTES, pos))
            pos += n * _DESC_BYTES
        return cls(branching, depth, levels)

    def fingerprint(self) -> int:
        """CRC32 of the serialised tree (its file's own checksum): stored words are keyed
        by it, so words from another vocabulary are never mixed with this one's."""
        return self._fingerprint

    def made_words(self, fingerprint: int) -> bool:
        """Whether words stored under ``fingerprint`` are this tree's (see
        ``_RESIDUE_FINGERPRINT`` for bundles written before the fingerprint was fixed)."""
        return fingerprint == self._fingerprint or (
            fingerprint == _RESIDUE_FINGERPRINT and self._fingerprint == _V1_FINGERPRINT
        )


@cache
def shipped() -> Vocabulary:
    """The vocabulary shipped with the package (loaded once per process)."""
    return Vocabulary.from_bytes(SHIPPED.read_bytes())


# -- training (offline; used by bench/train_vocabulary.py and the unit tests) --------------
def train(
    descriptors: np.ndarray,
    branching: int,
    depth: int,
    *,
    iterations: int = 8,
    seed: int = 0,
) -> Vocabulary:
    """Hierarchical k-majority clustering, one whole level at a time (vectorised over the
    level's nodes). Deterministic for a given ``seed``. A node with fewer members than
    ``branching`` gets its members (repeated) as centres, so the tree stays complete."""
    x = np.ascontiguousarray(descriptors, dtype=np.uint8).reshape(-1, _DESC_BYTES)
    if len(x) == 0:
        raise ValueError("vocabulary: no training descriptors")
    rng = np.random.default_rng(seed)
    x64 = x.view(np.uint64)
    bits = np.unpackbits(x, axis=1)  # (n, 256) uint8, for the majority votes
    node = np.zeros(len(x), dtype=np.int64)  # node of each descriptor at the current level
    kids = np.arange(branching, dtype=np.int64)
    levels: list[np.ndarray] = []
    for lv in range(depth):
        n_nodes = branching**lv
        # Initial centres: one random member from each of `branching` equal strata of the
        # node's members (distinct when the node has enough; an empty node copies random
        # training descriptors, and its centres then simply attract nothing).
        order = np.argsort(node, kind="stable")
        sizes = np.bincount(node, minlength=n_nodes)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        frac = (kids[None, :] + rng.random((n_nodes, branching))) / branching
        offs = starts[:, None] + (frac * sizes[:, None]).astype(np.int64)
        idx = np.where(
            sizes[:, None] > 0,
            order[np.minimum(offs, len(x) - 1)],
            rng.integers(0, len(x), (n_nodes, branching)),
        )
        centres = x[idx.reshape(-1)].copy()
        child = node * branching
        for _ in range(iterations):
            c64 = centres.view(np.uint64)
            child = np.empty(len(x), dtype=np.int64)
            for s in range(0, len(x), _BATCH):
                cand = node[s : s + _BATCH, None] * branching + kids
                dist = _popcount_rows(x64[s : s + _BATCH, None, :] ^ c64[cand])
                child[s : s + len(cand)] = cand[np.arange(len(cand)), np.argmin(dist, axis=1)]
            n_child = n_nodes * branching
            counts = np.bincount(child, minlength=n_child)
            ones = np.zeros((n_child, 256), dtype=np.int64)
            corder = np.argsort(child, kind="stable")
            present = np.nonzero(counts)[0]
            cstarts = np.concatenate([[0], np.cumsum(counts)])[present]
            ones[present] = np.add.reduceat(bits[corder], cstarts, axis=0, dtype=np.int64)
            new = np.packbits(2 * ones > counts[:, None], axis=1)
            centres = np.where(counts[:, None] > 0, new, centres)
        levels.append(centres)
        node = child
    return Vocabulary(branching, depth, levels)
