"""``--set NAME=VALUE`` for the benchmarks: a :class:`~opencrs.vision.params.Tuning` built
with ``dataclasses.replace`` and passed in, never a module global changed.

``NAME`` is ``group.field`` of ``Tuning`` (``verify.min_inliers``, ``query.features``,
``search.tilt_retry_stretch``...), or the upper-case name the value had before it became
a field (``MIN_INLIERS``, ``ORB_FAST_RETRY``...), kept so older notes still run; a value
the two roles shared (``ORB_*``, ``STRETCH_*``, ``TARGET_GRID``) sets both profiles.
``VALUE`` is a Python literal for tuples (``ORB_FAST_RETRY=(5,)``, ``TILT_RETRY_STRETCH=()``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

from opencrs.vision.params import DEFAULT, Tuning

_BOTH = ("target", "query")
_SHARED = {
    "ORB_SCALE_FACTOR": "scale_factor",
    "ORB_LEVELS": "levels",
    "ORB_PATCH": "patch",
    "ORB_FAST_THRESHOLD": "fast_threshold",
    "ORB_FAST_RETRY": "fast_retry",
    "ORB_FEW_FEATURES": "few_features",
    "STRETCH_BELOW": "stretch_below",
    "STRETCH_SIGMA": "stretch_sigma",
    "STRETCH_SIGMA_GAIN_POWER": "stretch_sigma_gain_power",
    "TARGET_GRID": "grid",
}
_RENAMED = {
    "MAX_IMAGE_BYTES": "image.max_bytes",
    "MAX_PIXELS": "image.max_pixels",
    "MAX_SIDE": "image.max_side",
    "MIN_VOTES": "verify.min_inliers",
    "SHORTLIST": "search.shortlist",
    "SHORTLIST_MAX_HAMMING": "search.shortlist_max_hamming",
    "SHORTLIST_PLAIN": "search.shortlist_plain",
    "VERIFY_WORD_LEVEL": "search.verify_word_level",
    "VERIFY_PROBES": "search.verify_probes",
    "TILT_RETRY_STRETCH": "search.tilt_retry_stretch",
}
# Upper-case prefix -> group, for the names that were the field with a prefix.
_PREFIXES = (
    ("TARGET_", "target"),
    ("QUERY_", "query"),
    ("WHOLE_", "whole"),
    ("QUALITY_", "quality"),
)


def paths(name: str) -> list[str]:
    """The ``group.field`` paths ``name`` sets."""
    if "." in name:
        return [name]
    if name in _SHARED:
        return [f"{role}.{_SHARED[name]}" for role in _BOTH]
    if name in _RENAMED:
        return [_RENAMED[name]]
    for prefix, group in _PREFIXES:
        if name.startswith(prefix):
            return [f"{group}.{name[len(prefix) :].lower()}"]
    return [f"verify.{name.lower()}"]  # RATIO, MIN_INLIERS, RANSAC_*, ... were unprefixed


def overridden(assignments: Iterable[str], base: Tuning = DEFAULT) -> Tuning:
    """``base`` with every ``NAME=VALUE`` applied in turn; ``AttributeError`` on a name
    that is no tuned value (typos fail loudly, on purpose)."""
    tuning = base
    for item in assignments:
        name, _, text = item.partition("=")
        for path in paths(name.strip()):
            group, _, field = path.partition(".")
            old = getattr(getattr(tuning, group), field)
            tuning = tuning.replace(path, _parse(text, old))
    return tuning


def _parse(text: str, old: object) -> object:
    """``text`` as a value of ``old``'s type."""
    if isinstance(old, bool):
        return text == "True"
    if isinstance(old, tuple):
        return tuple(ast.literal_eval(text))
    return type(old)(text)
