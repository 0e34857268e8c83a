"""The descriptor bundle: every target's features, concatenated. A deployed gallery is
stored as several bundles, one per shard (``opencrs.store.bundles``), searched as one.

One contiguous descriptor matrix serves the searcher's inverted file and Hamming checks
(``opencrs.index.search``); per-target offsets recover each target's features for
geometric verification. Each feature's visual word under the shipped vocabulary
(``opencrs.index.vocabulary``) is computed once, when its target enters the bundle, and
stored with it: a cold Lambda then builds its search index from the words instead of
quantising the whole gallery (~3.5 us per descriptor, ~30 s at 10k targets).

Keypoint positions and angles are quantised to 16 bits when a target enters, not when
the bundle is written, so a bundle in memory and the copy read back from its bytes hold
the same values and give the same answers. The loss is far below ORB's own precision:
1/65535 of the image side (0.01 px at 640 px) and 360/65536 degrees.

The on-disk format is explicit (no pickle) so a bundle fetched from S3 can never execute
code, and a CRC32 catches truncated or corrupted downloads. Formats 4 (written) and 3
are read; any other version is refused with ``UnsupportedFormat`` (index the targets
again). A bundle whose vocabulary fingerprint is not the shipped vocabulary's (the
vocabulary was upgraded) is re-quantised on load.

Why format 4 stores the posting order: a cold searcher's inverted file groups every
feature by word, a sort of all the gallery's features (~0.4 s of a 6,250-target
partition's 1-1.6 s build). Each bundle carries its own order (4 bytes a feature), and
a searcher over several merges theirs in linear time (``merged_posting_order``).

Format 4 (little-endian), 46 bytes per feature and 1,033 per target::

    magic "OCRSBNDL" | u16 version = 4 | u16 descriptor bytes | u32 targets | u32 features
    u32 vocabulary fingerprint (``Vocabulary.fingerprint()`` of the words' vocabulary)
    per target: u16 id length | id (UTF-8) | u32 width | u32 height | u32 feature count
                | u8 has thumbnail (0 or 1)
    0-7 zero bytes, so the arrays start 8-byte aligned (read in place, without copies)
    u64 pHash[targets] | u8 thumbnails[targets, 32, 32] (zeros where a target has none)
    u32 words[features] | u32 posting order[features] | u16 xy[features, 2]
    u16 angle[features] | u8 descriptors[features, dbytes]
    u32 CRC32 of everything before it

    posting order: the feature rows grouped by word, ascending within a word
    (``opencrs.index.inverted.posting_order``); checked on load.
    Format 3 is the same without the posting order (computed on load).

    x_q = clip(round(x / max(width, 1) * 65535), 0, 65535), y_q likewise with height;
    angle_q = round(angle / 360 * 65536) mod 65536; non-finite values are stored as 0.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from opencrs.index.inverted import is_posting_order, merged_posting_order, posting_order
from opencrs.index.vocabulary import shipped
from opencrs.vision.features import Features, UnsupportedFormat, make_features
from opencrs.vision.wholeimage import THUMB_SIDE, Thumbnail

_MAGIC = b"OCRSBNDL"
_VERSION = 4
_OLDEST_READ = 3  # format 3: no posting order
_PREFIX = struct.Struct("<8sH")  # magic, version: read before the rest of the header
_HEADER = struct.Struct("<8sHHIII")
_TARGET = struct.Struct("<IIIB")
_IDLEN = struct.Struct("<H")
_CRC = struct.Struct("<I")
_DESC_BYTES = 32
_FEATURE_BYTES = 4 + 4 + 4 + 2 + _DESC_BYTES  # word, posting order, xy, angle, descriptor
# Below this many descriptors (~64 targets) the vectorised ``quantise`` is the faster (9x at
# one target's 1,000); above it, the grouped ``quantise_many`` (docs/scale-out.md).
BULK_QUANTISE_FROM = 64_000
_V3_FEATURE_BYTES = _FEATURE_BYTES - 4
_THUMB_BYTES_PER_TARGET = 8 + THUMB_SIDE * THUMB_SIDE  # pHash and pixels
_ALIGN = 8
_MAX_ID_BYTES = 0xFFFF
XY_STEPS = 65535  # x_q = 65535 is the image's right edge
_ANGLE_STEPS = 65536  # angles wrap: 65536 would be 360 degrees, i.e. 0


class Bundle:
    """Immutable gallery of target features, all descriptors concatenated for vectorised
    search, with each feature's visual word and each target's whole-image thumbnail.
    ``with_target``/``without_target`` return new bundles."""

    __slots__ = (
        "_angle",
        "_descriptors",
        "_fingerprint",
        "_has_thumb",
        "_ids",
        "_offsets",
        "_order",
        "_phashes",
        "_pos",
        "_sizes",
        "_thumbs",
        "_words",
        "_xy",
    )

    def __init__(
        self,
        ids: list[str],
        sizes: np.ndarray,
        offsets: np.ndarray,
        xy_q: np.ndarray,
        angle_q: np.ndarray,
        descriptors: np.ndarray,
        words: np.ndarray,
        fingerprint: int,
        thumbs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        order: np.ndarray | None = None,
    ) -> None:
        """Internal: quantised geometry and words as stored (see the module docstring);
        ``thumbs`` is (has thumbnail, pHash, pixels) per target, None: no target has one;
        ``order`` the words' posting order when known (computed when None)."""
        self._ids = list(ids)
        self._pos = {tid: i for i, tid in enumerate(self._ids)}
        if len(self._pos) != len(self._ids):
            raise ValueError("bundle: duplicate target id")
        self._sizes = np.ascontiguousarray(sizes, dtype=np.int64).reshape(-1, 2)
        self._offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        self._xy = np.ascontiguousarray(xy_q, dtype=np.uint16).reshape(-1, 2)
        self._angle = np.ascontiguousarray(angle_q, dtype=np.uint16).reshape(-1)
        self._descriptors = np.ascontiguousarray(descriptors, dtype=np.uint8).reshape(
            -1, _DESC_BYTES
        )
        self._words = np.ascontiguousarray(words, dtype=np.uint32).reshape(-1)
        self._fingerprint = int(fingerprint)
        if thumbs is None:
            thumbs = _no_thumbnails(len(self._ids))
        has, phashes, pixels = thumbs
        self._has_thumb = np.ascontiguousarray(has, dtype=bool).reshape(-1)
        self._phashes = np.ascontiguousarray(phashes, dtype=np.uint64).reshape(-1)
        self._thumbs = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(
            -1, THUMB_SIDE, THUMB_SIDE
        )
        n = int(self._offsets[-1])
        if len(self._offsets) != len(self._ids) + 1 or not (
            n == len(self._xy) == len(self._angle) == len(self._descriptors) == len(self._words)
        ):
            raise ValueError("bundle: array lengths disagree")
        if not (len(self._ids) == len(self._has_thumb) == len(self._phashes) == len(self._thumbs)):
            raise ValueError("bundle: thumbnail arrays disagree")
        if order is None:
            order = posting_order(self._words)
        self._order = np.ascontiguousarray(order, dtype=np.uint32).reshape(-1)
        if len(self._order) != n:
            raise ValueError("bundle: array lengths disagree")
        arrays = (self._sizes, self._offsets, self._xy, self._angle, self._descriptors)
        for arr in (
            *arrays,
            self._words,
            self._order,
            self._has_thumb,
            self._phashes,
            self._thumbs,
        ):
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
            np.zeros(0),
            shipped().fingerprint(),
        )

    @classmethod
    def from_targets(cls, parts: Iterable[tuple[str, Features]]) -> Bundle:
        """A bundle of many targets at once (bulk loads, rebuilds, benchmarks): one
        concatenation and one quantisation instead of one per ``with_target``, by
        ``quantise_many`` from ``BULK_QUANTISE_FROM`` descriptors on (where it is the
        faster: see that constant). Same validation as :meth:`with_target`."""
        parts = list(parts)
        for tid, f in parts:
            _check_target(tid, f)
        vocab = shipped()
        bulk = sum(len(f) for _, f in parts) >= BULK_QUANTISE_FROM
        return cls._encode(parts, vocab.quantise_many if bulk else vocab.quantise)

    @classmethod
    def _encode(
        cls, parts: list[tuple[str, Features]], quantise: Callable[[np.ndarray], np.ndarray]
    ) -> Bundle:
        """A bundle of new targets: geometry quantised, descriptors turned into words."""
        if not parts:
            return cls.empty()
        counts = [len(f) for _, f in parts]
        sizes = np.array([[f.width, f.height] for _, f in parts], dtype=np.int64)
        descriptors = np.concatenate([f.descriptors.reshape(-1, _DESC_BYTES) for _, f in parts])
        xy_q, angle_q = _quantise_geometry(
            np.concatenate([f.xy for _, f in parts]),
            np.concatenate([f.angle for _, f in parts]),
            np.repeat(sizes, counts, axis=0),
        )
        thumbs = [f.thumbnail for _, f in parts]
        blank = np.zeros((THUMB_SIDE, THUMB_SIDE), np.uint8)
        return cls(
            [tid for tid, _ in parts],
            sizes,
            np.concatenate([[0], np.cumsum(counts)]),
            xy_q,
            angle_q,
            descriptors,
            quantise(descriptors),
            shipped().fingerprint(),
            (
                np.array([t is not None for t in thumbs], dtype=bool),
                np.array([t.phash if t else 0 for t in thumbs], dtype=np.uint64),
                np.stack([t.stored() if t else blank for t in thumbs]),
            ),
        )

    def with_target(self, target_id: str, features: Features) -> Bundle:
        """A new bundle holding ``features`` under ``target_id`` (replacing any previous),
        last; only the new target's descriptors are quantised, and this bundle's arrays
        are copied only when the new one's are read (:meth:`layered`)."""
        _check_target(target_id, features)
        new = Bundle._encode([(target_id, features)], shipped().quantise)
        return Bundle.layered(self, [target_id], [new])

    def without_target(self, target_id: str) -> Bundle:
        """A bundle without ``target_id`` (this one, unchanged, if absent)."""
        return self.without_targets([target_id])

    def without_targets(self, target_ids: Iterable[str]) -> Bundle:
        """A bundle without any of ``target_ids``, the others in their order (this one,
        unchanged, if it holds none of them); its arrays are cut when read (:meth:`layered`)."""
        return Bundle.layered(self, target_ids, [])

    def _cut(self, target_ids: Iterable[str]) -> Bundle:
        """:meth:`without_targets` at once: one cut however many go."""
        gone = sorted({self._pos[t] for t in target_ids if t in self._pos})
        if not gone:
            return self
        keep = np.ones(len(self._ids), dtype=bool)
        keep[gone] = False
        counts = np.diff(self._offsets)
        rows = np.repeat(keep, counts)
        # The kept features' order, renumbered: a row moves up by the rows cut before it.
        kept_order = self._order[rows[self._order]].astype(np.int64)
        kept_order -= np.cumsum(~rows)[kept_order]
        return Bundle(
            [tid for tid, k in zip(self._ids, keep, strict=True) if k],
            self._sizes[keep],
            np.concatenate([[0], np.cumsum(counts[keep])]),
            self._xy[rows],
            self._angle[rows],
            self._descriptors[rows],
            self._words[rows],
            self._fingerprint,
            (self._has_thumb[keep], self._phashes[keep], self._thumbs[keep]),
            kept_order,
        )

    def only(self, target_id: str) -> Bundle:
        """A bundle of ``target_id`` alone, its values as stored here (a write's delta);
        ``KeyError`` if absent. Copies of the target's slices: O(the target), and it holds
        nothing of this bundle (a shard's downloaded bytes) once made."""
        i = self._pos[target_id]
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        one = slice(i, i + 1)
        return Bundle(
            [target_id],
            self._sizes[one].copy(),
            np.array([0, b - a]),
            self._xy[a:b].copy(),
            self._angle[a:b].copy(),
            self._descriptors[a:b].copy(),
            self._words[a:b].copy(),
            self._fingerprint,
            (self._has_thumb[one].copy(), self._phashes[one].copy(), self._thumbs[one].copy()),
        )

    def changes_since(self, base: Bundle) -> tuple[frozenset[str], tuple[Bundle, ...]] | None:
        """What turned ``base`` into this bundle, if it is ``base`` layered and not yet
        made (:meth:`layered`): the targets taken out of ``base`` and the bundles appended;
        nothing for ``base`` itself; None otherwise. A searcher built for ``base`` answers
        for this bundle from them (``index.search.layered_searcher``). Empty bundles are
        all alike: a shard never written is a new empty bundle at every read."""
        return (frozenset(), ()) if _same_base(self, base) else None

    @staticmethod
    def layered(base: Bundle, gone: Iterable[str], added: Sequence[Bundle]) -> Bundle:
        """``base`` without the targets ``gone``, then the targets of ``added`` in order
        (``ValueError`` if one is in two places), made when its arrays are first read. Its
        ids, length, membership and :meth:`only` need no copy, so a writer that changes
        one target of a large shard and writes that target alone as a delta never copies
        the shard (at 100k targets a shard holds ~70 MB); layers of layers are flattened."""
        return _Layered.of(base, gone, added)

    @classmethod
    def concat(cls, bundles: Sequence[Bundle]) -> Bundle:
        """The targets of ``bundles`` one after the other, in one copy of each array;
        ``ValueError`` if a target is in two of them. All bundles in memory hold the shipped
        vocabulary's words (``from_bytes`` re-quantises others)."""
        parts = [b for b in bundles if len(b)]
        if len(parts) <= 1:
            return parts[0] if parts else (bundles[0] if bundles else cls.empty())
        ends = np.cumsum([int(b._offsets[-1]) for b in parts])[:-1]
        return cls(
            [tid for b in parts for tid in b._ids],
            np.concatenate([b._sizes for b in parts]),
            np.concatenate(
                [[0], *(b._offsets[1:] + e for b, e in zip(parts, [0, *ends], strict=True))]
            ),
            np.concatenate([b._xy for b in parts]),
            np.concatenate([b._angle for b in parts]),
            np.concatenate([b._descriptors for b in parts]),
            np.concatenate([b._words for b in parts]),
            parts[-1]._fingerprint,
            (
                np.concatenate([b._has_thumb for b in parts]),
                np.concatenate([b._phashes for b in parts]),
                np.concatenate([b._thumbs for b in parts]),
            ),
            merged_posting_order([b._words for b in parts], [b._order for b in parts]),
        )

    # -- access -----------------------------------------------------------------------------
    def target_ids(self) -> list[str]:
        return list(self._ids)

    def features_of(self, target_id: str) -> Features:
        """The target's features as stored (geometry dequantised; descriptors are views on
        the shared array); ``KeyError`` if absent. Adding them back to a bundle stores
        exactly the same values."""
        i = self._pos[target_id]
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        w, h = (int(v) for v in self._sizes[i])
        step = np.array([max(w, 1), max(h, 1)], dtype=np.float64) / XY_STEPS
        xy = (self._xy[a:b] * step).astype(np.float32)
        angle = (self._angle[a:b] * (360.0 / _ANGLE_STEPS)).astype(np.float32)
        return make_features(xy, angle, self._descriptors[a:b], w, h, self.thumbnail_of(target_id))

    def thumbnail_of(self, target_id: str) -> Thumbnail | None:
        """The target's whole-image thumbnail (None: its features came without one);
        ``KeyError`` if absent."""
        i = self._pos[target_id]
        if not self._has_thumb[i]:
            return None
        return Thumbnail(phash=int(self._phashes[i]), pixels=self._thumbs[i])

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, target_id: object) -> bool:
        return target_id in self._pos

    @property
    def descriptors(self) -> np.ndarray:
        """All descriptors, (total, 32) uint8, target after target."""
        return self._descriptors

    @property
    def words(self) -> np.ndarray:
        """Leaf word of every descriptor (total,) uint32, under the vocabulary of
        :attr:`vocabulary_fingerprint` (always the shipped one)."""
        return self._words

    @property
    def posting_order(self) -> np.ndarray:
        """Feature rows grouped by word, ascending within a word, (total,) uint32: what an
        inverted file over :attr:`words` is built from (``InvertedIndex``)."""
        return self._order

    @property
    def vocabulary_fingerprint(self) -> int:
        """``Vocabulary.fingerprint()`` of the vocabulary that produced :attr:`words`."""
        return self._fingerprint

    @property
    def phashes(self) -> np.ndarray:
        """Each target's whole-image pHash, (targets,) uint64; see :attr:`has_thumbnail`."""
        return self._phashes

    @property
    def has_thumbnail(self) -> np.ndarray:
        """Which targets have a whole-image thumbnail, (targets,) bool."""
        return self._has_thumb

    @property
    def offsets(self) -> np.ndarray:
        """Start of each target's rows in :attr:`descriptors`, plus the total at the end."""
        return self._offsets

    @property
    def sizes(self) -> np.ndarray:
        """Each target's image (width, height), (targets, 2) int64."""
        return self._sizes

    @property
    def xy_steps(self) -> np.ndarray:
        """Every feature's position as stored, (total, 2) uint16: 65535 steps of its image's
        width and height (see the module docstring)."""
        return self._xy

    @property
    def angle_steps(self) -> np.ndarray:
        """Every feature's orientation as stored, (total,) uint16: 65536 steps a turn."""
        return self._angle

    @property
    def coarse_angles(self) -> np.ndarray:
        """Every feature's orientation in 256 steps a turn, (total,) uint8: what the
        shortlist's rotation check (``InvertedIndex.scores_consistent``) compares."""
        return (self._angle >> 8).astype(np.uint8)

    # -- serialisation ----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Format 4 (see the module docstring)."""
        n_feat = int(self._offsets[-1])
        chunks = [
            _HEADER.pack(_MAGIC, _VERSION, _DESC_BYTES, len(self._ids), n_feat, self._fingerprint)
        ]
        size = _HEADER.size
        for i, tid in enumerate(self._ids):
            raw = tid.encode("utf-8")
            count = int(self._offsets[i + 1] - self._offsets[i])
            w, h = (int(v) for v in self._sizes[i])
            has = bool(self._has_thumb[i])
            chunks += [_IDLEN.pack(len(raw)), raw, _TARGET.pack(w, h, count, has)]
            size += _IDLEN.size + len(raw) + _TARGET.size
        chunks += [
            bytes(-size % _ALIGN),
            self._phashes.astype("<u8").tobytes(),
            self._thumbs.tobytes(),
            self._words.astype("<u4").tobytes(),
            self._order.astype("<u4").tobytes(),
            self._xy.astype("<u2").tobytes(),
            self._angle.astype("<u2").tobytes(),
            self._descriptors.tobytes(),
        ]
        body = b"".join(chunks)
        return body + _CRC.pack(zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes) -> Bundle:
        """Parse format 4 or 3, in place: no array is copied or quantised when the words are
        the shipped vocabulary's (format 3's posting order is computed). ``UnsupportedFormat``
        for another version, ``ValueError`` on corrupt or truncated data."""
        data = bytes(data)  # no copy for bytes; the arrays below are views on it
        if len(data) < _PREFIX.size + _CRC.size:
            raise ValueError("bundle: data too short")
        body = memoryview(data)[: -_CRC.size]
        (crc,) = _CRC.unpack_from(data, len(body))
        if zlib.crc32(body) != crc:
            raise ValueError("bundle: checksum mismatch (corrupt or truncated)")
        magic, version = _PREFIX.unpack_from(body)
        if magic != _MAGIC:
            raise ValueError("bundle: bad magic")
        if not _OLDEST_READ <= version <= _VERSION:
            raise UnsupportedFormat(
                f"bundle: format version {version} is not read "
                f"(only {_OLDEST_READ} to {_VERSION}); index its targets again"
            )
        feature_bytes = _FEATURE_BYTES if version >= 4 else _V3_FEATURE_BYTES
        if len(body) < _HEADER.size:
            raise ValueError("bundle: data too short")
        _, _, dbytes, n_targets, n_feat, fingerprint = _HEADER.unpack_from(body)
        if dbytes != _DESC_BYTES:
            raise ValueError(f"bundle: unsupported descriptor size {dbytes}")
        pos = _HEADER.size
        # Bound the claimed counts by the bytes present before allocating anything.
        per_target = _IDLEN.size + _TARGET.size + _THUMB_BYTES_PER_TARGET
        if n_targets * per_target > len(body) - pos:
            raise ValueError("bundle: target count exceeds data")
        if n_feat * feature_bytes > len(body) - pos:
            raise ValueError("bundle: feature count exceeds data")
        ids, sizes, counts, has_thumb, pos = _read_targets(body, pos, n_targets)
        if int(counts.sum()) != n_feat:
            raise ValueError("bundle: feature counts disagree")
        offsets = np.concatenate([[0], np.cumsum(counts)])
        pad = -pos % _ALIGN
        arrays = n_targets * _THUMB_BYTES_PER_TARGET + n_feat * feature_bytes
        if len(body) - pos != pad + arrays:
            raise ValueError("bundle: wrong array length")
        if any(body[pos : pos + pad]):
            raise ValueError("bundle: bad padding")
        pos += pad
        phashes = np.frombuffer(body, "<u8", n_targets, pos)
        pos += 8 * n_targets
        pixels = np.frombuffer(body, np.uint8, n_targets * THUMB_SIDE**2, pos)
        pos += n_targets * THUMB_SIDE**2
        words = np.frombuffer(body, "<u4", n_feat, pos)
        pos += 4 * n_feat
        order = None
        if version >= 4:
            order = np.frombuffer(body, "<u4", n_feat, pos)
            pos += 4 * n_feat
        xy_q = np.frombuffer(body, "<u2", 2 * n_feat, pos).reshape(n_feat, 2)
        pos += 4 * n_feat
        angle_q = np.frombuffer(body, "<u2", n_feat, pos)
        pos += 2 * n_feat
        desc = np.frombuffer(body, np.uint8, n_feat * dbytes, pos).reshape(n_feat, dbytes)
        vocab = shipped()
        if not vocab.made_words(fingerprint):
            words = vocab.quantise_many(desc)  # written under another vocabulary
            order = None
        elif n_feat and int(words.max()) >= vocab.words:
            raise ValueError("bundle: word out of range")
        elif order is not None and not is_posting_order(words, order):
            raise ValueError("bundle: posting order does not match the words")
        thumbs = (has_thumb, phashes, pixels)
        return cls(
            ids, sizes, offsets, xy_q, angle_q, desc, words, vocab.fingerprint(), thumbs, order
        )


# Every Bundle slot but the ids, which a layered bundle knows without making its arrays.
_ARRAY_SLOTS = tuple(name for name in Bundle.__slots__ if name not in ("_ids", "_pos"))
_MAKING = threading.Lock()


class _Layered(Bundle):
    """A bundle given as another without some targets, then some bundles appended
    (:meth:`Bundle.layered`). Its ids are known at once; its arrays are made on the first
    read of any of them (``__getattr__`` runs only for a slot not yet set), after which it
    is an ordinary bundle and lets go of its layers."""

    __slots__ = ("_layers",)

    def __init__(self, base: Bundle, gone: frozenset[str], added: tuple[Bundle, ...]) -> None:
        # Bundle.__init__ is not run: the arrays are made by _make, when first read.
        self._layers: tuple[Bundle, frozenset[str], tuple[Bundle, ...]] | None = (
            base,
            gone,
            added,
        )
        ids = [t for t in base._ids if t not in gone]
        for part in added:
            ids += part._ids
        self._ids = ids
        self._pos = {t: i for i, t in enumerate(ids)}
        if len(self._pos) != len(ids):
            raise ValueError("bundle: a target is in two of the bundles")

    @staticmethod
    def of(bundle: Bundle, gone: Iterable[str], added: Sequence[Bundle]) -> Bundle:
        gone = frozenset(t for t in gone if t in bundle._pos)
        if not gone and not any(len(p) for p in added):
            return bundle
        layers = bundle._layers if isinstance(bundle, _Layered) else None
        if layers is None:
            base, kept = bundle, ()
        else:
            base, was_gone, was_added = layers
            kept = tuple(p if gone.isdisjoint(p._ids) else p._cut(gone) for p in was_added)
            gone = was_gone | frozenset(t for t in gone if t in base._pos)
        parts = tuple(p for p in (*kept, *added) if len(p))
        if not gone and not parts:
            return base
        return _Layered(base, gone, parts)

    def __getattr__(self, name: str) -> object:
        if name not in _ARRAY_SLOTS:
            raise AttributeError(name)
        with _MAKING:  # two threads reading one layered bundle make it once
            if self._layers is not None:
                self._make()
        return object.__getattribute__(self, name)

    def _make(self) -> None:
        assert self._layers is not None
        base, gone, added = self._layers
        made = Bundle.concat([base._cut(gone), *added])
        for name in _ARRAY_SLOTS:
            setattr(self, name, getattr(made, name))
        self._layers = None

    def changes_since(self, base: Bundle) -> tuple[frozenset[str], tuple[Bundle, ...]] | None:
        if self._layers is not None and _same_base(self._layers[0], base):
            return self._layers[1], self._layers[2]
        return super().changes_since(base)

    def only(self, target_id: str) -> Bundle:
        if self._layers is None:
            return super().only(target_id)
        base, gone, added = self._layers
        for part in added:
            if target_id in part:
                return part.only(target_id)
        if target_id in gone:
            raise KeyError(target_id)
        return base.only(target_id)


def _same_base(one: Bundle, other: Bundle) -> bool:
    """Whether two bundles are the same one, or both empty (``Bundle.changes_since``)."""
    return one is other or (len(one) == 0 and len(other) == 0)


def _read_targets(
    body: memoryview, pos: int, n_targets: int
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, int]:
    """The target table at ``pos``: ids, (w, h) sizes, feature counts, thumbnail flags and
    the position after it."""
    ids: list[str] = []
    sizes = np.zeros((n_targets, 2), dtype=np.int64)
    counts = np.zeros(n_targets, dtype=np.int64)
    has_thumb = np.zeros(n_targets, dtype=bool)
    try:
        for i in range(n_targets):
            (ln,) = _IDLEN.unpack_from(body, pos)
            pos += _IDLEN.size
            if pos + ln > len(body):
                raise ValueError("bundle: truncated target id")
            ids.append(str(body[pos : pos + ln], "utf-8"))
            pos += ln
            w, h, c, flag = _TARGET.unpack_from(body, pos)
            pos += _TARGET.size
            if flag > 1:
                raise ValueError("bundle: bad thumbnail flag")
            sizes[i], counts[i], has_thumb[i] = (w, h), c, bool(flag)
    except (struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"bundle: corrupt target table ({exc})") from exc
    return ids, sizes, counts, has_thumb, pos


def _no_thumbnails(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.zeros(n, dtype=bool),
        np.zeros(n, dtype=np.uint64),
        np.zeros((n, THUMB_SIDE, THUMB_SIDE), dtype=np.uint8),
    )


def _quantise_geometry(
    xy: np.ndarray, angle: np.ndarray, size: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """16-bit xy (relative to each feature's image ``size``, (n, 2)) and angle. Applying it
    to :meth:`Bundle.features_of` output gives back the same values (the float32 rounding
    of dequantisation is far below half a step)."""
    xy = np.nan_to_num(np.asarray(xy, dtype=np.float64).reshape(-1, 2), nan=0, posinf=0, neginf=0)
    xy_q = np.clip(np.rint(xy / np.maximum(size, 1) * XY_STEPS), 0, XY_STEPS)
    return xy_q.astype(np.uint16), _angle_steps(angle)


def _angle_steps(angle: np.ndarray) -> np.ndarray:
    """Degrees as stored: 65536 steps a turn, non-finite values as 0."""
    a = np.nan_to_num(np.asarray(angle, dtype=np.float64).reshape(-1), nan=0, posinf=0, neginf=0)
    return np.mod(np.rint(a * (_ANGLE_STEPS / 360.0)), _ANGLE_STEPS).astype(np.uint16)


def _check_target(target_id: str, features: Features) -> None:
    if not isinstance(target_id, str) or not target_id:
        raise ValueError("bundle: target id must be a non-empty string")
    if len(target_id.encode("utf-8")) > _MAX_ID_BYTES:
        raise ValueError("bundle: target id too long")
    d = features.descriptors
    if len(features) and (d.ndim != 2 or d.shape[1] != _DESC_BYTES):
        raise ValueError(f"bundle: descriptors must be {_DESC_BYTES} bytes wide")


def coarse_angles(angle: np.ndarray) -> np.ndarray:
    """Orientations in degrees as :attr:`Bundle.coarse_angles` gives a target's."""
    return (_angle_steps(angle) >> 8).astype(np.uint8)
