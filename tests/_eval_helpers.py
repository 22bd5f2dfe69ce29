"""Small ground truth and predictions shared by the metric, confusion and evaluation tests."""

from __future__ import annotations

import numpy as np

from yolo2retina.annotations import Annotations, AnnotationsBuilder
from yolo2retina.target import Target


def build(rows: list[tuple[list[list[float]], list[int], list[int]]]) -> Annotations:
    """Annotations from per-image (boxes, labels, flags), image size 100x100, two classes."""
    b = AnnotationsBuilder()
    for i, (boxes, labels, flags) in enumerate(rows):
        b.add(f"{i}.jpg", (100, 100), np.array(boxes, float).reshape(-1, 4), labels, flags)
    return b.build(["cat", "dog"])


def pred(boxes: list[list[float]], labels: list[int], scores: list[float]) -> Target:
    """A prediction Target."""
    return Target(np.array(boxes, float).reshape(-1, 4), labels, scores)
