"""The gallery descriptor bundle: every target's features, concatenated.

One contiguous descriptor matrix lets the searcher quantise the whole gallery into visual
words in one pass (``opencrs.index.search``); per-target offsets recover each target's
features for geometric verification. The on-disk format is explicit (no pickle) so a
bundle fetched from S3 can never execute code, and a CRC32 catches truncated or
corrupted downloads.

Format v1 (little-endian)::

    magic "OCRSBNDL" | u16 version | u16 descriptor bytes | u32 targets | u32 features
    per target: u16 id length | id (UTF-8) | u32 width | u32 height | u32 feature count
    f32 xy[features, 2] | f32 angle[features] | u8 descriptors[features, dbytes]
    u32 CRC32 of everything before it
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

import numpy as np

from opencrs.vision.features import Features, make_features

_MAGIC = b"OCRSBNDL"
_VERSION = 1
_HEADER = struct.Struct("<8sHHII")
_TARGET = struct.Struct("<III")
_IDLEN = struct.Struct("<H")
_CRC = struct.Struct("<I")
_DESC_BYTES = 32
_MAX_ID_BYTES = 0xFFFF


class Bundle:
    """Immutable gallery of target features, all descriptors concatenated for vectorised
    search. ``with_target``/``without_target`` return new bundles."""

    __slots__ = ("_angle", "_descriptors", "_ids", "_offsets", "_pos", "_sizes", "_xy")

    def __init__(
        self,
        ids: list[str],
        sizes: np.ndarray,
        offsets: np.ndarray,
        xy: np.ndarray,
        angle: np.ndarray,
        descriptors: np.ndarray,
    ) -> None:
        self._ids = list(ids)
        self._pos = {tid: i for i, tid in enumerate(self._ids)}
        if len(self._pos) != len(self._ids):
            raise ValueError("bundle: duplicate target id")
        self._sizes = np.ascontiguousarray(sizes, dtype=np.int64).reshape(-1, 2)
        self._offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        self._xy = np.ascontiguousarray(xy, dtype=np.float32).reshape(-1, 2)
        self._angle = np.ascontiguousarray(angle, dtype=np.float32).reshape(-1)
        self._descriptors = np.ascontiguousarray(descriptors, dtype=np.uint8).reshape(
            -1, _DESC_BYTES
        )
        for arr in (self._sizes, self._offsets, self._xy, self._angle, self._descriptors):
            arr.flags.writeable = False

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def empty(cls) -> Bundle:
        return cls(
            [],
            np.zeros((0, 2)),
            np.zeros(1),
            np.zeros((0, 2)),
            np.zeros(0),
            np.zeros((0, _DESC_BYTES)),
        )

    @classmethod
    def from_targets(cls, parts: Iterable[tuple[str, Features]]) -> Bundle:
        """A bundle of many targets at once (bulk loads, benchmarks): one concatenation
        instead of one per ``with_target``. Same validation as :meth:`with_target`."""
        parts = list(parts)
        for tid, f in parts:
            _check_id(tid)
            d = f.descriptors
            if len(f) and (d.ndim != 2 or d.shape[1] != _DESC_BYTES):
                raise ValueError(f"bundle: descriptors must be {_DESC_BYTES} bytes wide")
        return cls._from_parts(parts)

    @classmethod
    def _from_parts(cls, parts: Iterable[tuple[str, Features]]) -> Bundle:
        parts = list(parts)
        if not parts:
            return cls.empty()
        counts = [len(f) for _, f in parts]
        offsets = np.concatenate([[0], np.cumsum(counts)])
        return cls(
            [tid for tid, _ in parts],
            np.array([[f.width, f.height] for _, f in parts]),
            offsets,
            np.concatenate([f.xy for _, f in parts]),
            np.concatenate([f.angle for _, f in parts]),
            np.concatenate([f.descriptors.reshape(-1, _DESC_BYTES) for _, f in parts]),
        )

    def _parts(self) -> list[tuple[str, Features]]:
        return [(tid, self.features_of(tid)) for tid in self._ids]

    def with_target(self, target_id: str, features: Features) -> Bundle:
        """A new bundle holding ``features`` under ``target_id`` (replacing any previous)."""
        _check_id(target_id)
        d = features.descriptors
        if len(features) and (d.ndim != 2 or d.shape[1] != _DESC_BYTES):
            raise ValueError(f"bundle: descriptors must be {_DESC_BYTES} bytes wide")
        parts = [(tid, f) for tid, f in self._parts() if tid != target_id]
        parts.append((target_id, features))
        return Bundle._from_parts(parts)

    def without_target(self, target_id: str) -> Bundle:
        """A new bundle without ``target_id`` (unchanged copy if absent)."""
        return Bundle._from_parts((tid, f) for tid, f in self._parts() if tid != target_id)

    # -- access -----------------------------------------------------------------------------
    def target_ids(self) -> list[str]:
        return list(self._ids)

    def features_of(self, target_id: str) -> Features:
        """The target's features (views on the shared arrays); ``KeyError`` if absent."""
        i = self._pos[target_id]
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        w, h = (int(v) for v in self._sizes[i])
        return make_features(self._xy[a:b], self._angle[a:b], self._descriptors[a:b], w, h)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, target_id: object) -> bool:
        return target_id in self._pos

    @property
    def descriptors(self) -> np.ndarray:
        """All descriptors, (total, 32) uint8, target after target."""
        return self._descriptors

    @property
    def offsets(self) -> np.ndarray:
        """Start of each target's rows in :attr:`descriptors`, plus the total at the end."""
        return self._offsets

    # -- serialisation ----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        n_feat = int(self._offsets[-1])
        chunks = [_HEADER.pack(_MAGIC, _VERSION, _DESC_BYTES, len(self._ids), n_feat)]
        for i, tid in enumerate(self._ids):
            raw = tid.encode("utf-8")
            count = int(self._offsets[i + 1] - self._offsets[i])
            w, h = (int(v) for v in self._sizes[i])
            chunks += [_IDLEN.pack(len(raw)), raw, _TARGET.pack(w, h, count)]
        chunks += [
            self._xy.astype("<f4").tobytes(),
            self._angle.astype("<f4").tobytes(),
            self._descriptors.tobytes(),
        ]
        body = b"".join(chunks)
        return body + _CRC.pack(zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes) -> Bundle:
        """Parse :meth:`to_bytes` output; ``ValueError`` on corrupt or truncated data."""
        data = bytes(data)
        if len(data) < _HEADER.size + _CRC.size:
            raise ValueError("bundle: data too short")
        body = data[: -_CRC.size]
        (crc,) = _CRC.unpack_from(data, len(body))
        if zlib.crc32(body) != crc:
            raise ValueError("bundle: checksum mismatch (corrupt or truncated)")
        magic, version, dbytes, n_targets, n_feat = _HEADER.unpack_from(body)
        if magic != _MAGIC:
            raise ValueError("bundle: bad magic")
        if version != _VERSION:
            raise ValueError(f"bundle: unsupported version {version}")
        if dbytes != _DESC_BYTES:
            raise ValueError(f"bundle: unsupported descriptor size {dbytes}")
        pos = _HEADER.size
        # Bound the claimed counts by the bytes present before allocating anything.
        if n_targets * (_IDLEN.size + _TARGET.size) > len(body) - pos:
            raise ValueError("bundle: target count exceeds data")
        if n_feat * (8 + 4 + dbytes) > len(body) - pos:
            raise ValueError("bundle: feature count exceeds data")
        ids: list[str] = []
        sizes = np.zeros((n_targets, 2), dtype=np.int64)
        counts = np.zeros(n_targets, dtype=np.int64)
        try:
            for i in range(n_targets):
                (ln,) = _IDLEN.unpack_from(body, pos)
                pos += _IDLEN.size
                if pos + ln > len(body):
                    raise ValueError("bundle: truncated target id")
                ids.append(body[pos : pos + ln].decode("utf-8"))
                pos += ln
                w, h, c = _TARGET.unpack_from(body, pos)
                pos += _TARGET.size
                sizes[i] = (w, h)
                counts[i] = c
        except (struct.error, UnicodeDecodeError) as exc:
            raise ValueError(f"bundle: corrupt target table ({exc})") from exc
        if int(counts.sum()) != n_feat:
            raise ValueError("bundle: feature counts disagree")
        if len(body) - pos != n_feat * (8 + 4 + dbytes):
            raise ValueError("bundle: wrong array length")
        xy = np.frombuffer(body, "<f4", 2 * n_feat, pos).reshape(n_feat, 2)
        pos += 8 * n_feat
        angle = np.frombuffer(body, "<f4", n_feat, pos)
        pos += 4 * n_feat
        desc = np.frombuffer(body, np.uint8, n_feat * dbytes, pos).reshape(n_feat, dbytes)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        return cls(ids, sizes, offsets, xy, angle, desc)


def _check_id(target_id: str) -> None:
    if not isinstance(target_id, str) or not target_id:
        raise ValueError("bundle: target id must be a non-empty string")
    if len(target_id.encode("utf-8")) > _MAX_ID_BYTES:
        raise ValueError("bundle: target id too long")
