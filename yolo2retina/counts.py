"""Counting detections per class: one image (:func:`count_labels`) or a run (:func:`counts_table`).

Example:
    >>> from yolo2retina.target import Target
    >>> count_labels(Target.from_xyxy([[0, 0, 1, 1]] * 2, [1, 1], [0.9, 0.8]), ["bee", "varroa"])
    {'bee': 0, 'varroa': 2}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from yolo2retina.errors import ConfigError
from yolo2retina.target import Target

if TYPE_CHECKING:
    from yolo2retina.prediction import ImagePrediction

__all__ = ["count_labels", "counts_table"]


def count_labels(target: Target, class_names: Sequence[str]) -> dict[str, int]:
    """Number of detections per class name (every class listed, zeros included).

    Raises:
        ConfigError: a label has no class name.
    """
    n = np.bincount(target.labels, minlength=len(class_names)) if len(target) else None
    counts = {name: int(n[k]) if n is not None else 0 for k, name in enumerate(class_names)}
    extra = int(target.labels.max()) + 1 - len(class_names) if len(target) else 0
    if extra > 0:
        raise ConfigError(
            f"a label {int(target.labels.max())} has no class name ({len(class_names)} names)"
        )
    return counts


def counts_table(
    predictions: Iterable[ImagePrediction], class_names: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per image: ``image``, ``total``, one column per class, ``error``."""
    rows: list[dict[str, Any]] = []
    for p in predictions:
        row: dict[str, Any] = {"image": p.source}
        if p.target is None:
            row.update({"total": "", **dict.fromkeys(class_names, ""), "error": p.error})
        else:
            c = count_labels(p.target, class_names)
            row.update({"total": len(p.target), **c, "error": ""})
        rows.append(row)
    return rows
