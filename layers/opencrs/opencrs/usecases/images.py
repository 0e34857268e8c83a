"""Checking an image before it becomes a target: decode, extract, grade, and refuse it if
the gallery already holds it. Shared by creation, update, uploads and the grade routes."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from opencrs.domain.errors import SimilarTargetsExist
from opencrs.usecases.query import SimilarityEngine
from opencrs.vision.features import Features, extract_features
from opencrs.vision.image import check_and_decode
from opencrs.vision.quality import grade


@dataclass(frozen=True)
class PreparedImage:
    """A checked image with what indexing derives from it."""

    data: bytes
    format: str
    width: int
    height: int
    features: Features
    grades: dict[str, int]

    @cached_property
    def features_bytes(self) -> bytes:
        """The features as stored: serialised once, for the object and the bundle sync."""
        return self.features.to_bytes()


class ImagePreparer:
    def __init__(self, engine: SimilarityEngine) -> None:
        self.engine = engine

    def prepare(
        self, gallery: str, image: bytes, allow_similar: str, *, exclude: str | None = None
    ) -> PreparedImage:
        """Check, extract and grade ``image``; SimilarTargetsExist if the gallery already
        holds it and ``allow_similar`` is not "1" (``exclude``: the target being updated).
        Raises ImageError for an image that cannot be a target."""
        decoded = check_and_decode(image)
        features = extract_features(decoded.gray, "target")
        if allow_similar != "1":
            found = self.engine.find(gallery, decoded.gray)
            similar = [m for m in found if m.record.target_id != exclude]
            if similar:
                raise SimilarTargetsExist(similar)
        return PreparedImage(
            image,
            decoded.format,
            decoded.width,
            decoded.height,
            features,
            grade(decoded.gray, features),
        )

    def grades(self, image: bytes) -> dict[str, int]:
        """The grade routes: every grade of ``image``, without looking at any gallery."""
        return self.prepare("", image, allow_similar="1").grades
