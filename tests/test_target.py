"""Tests for yolo2retina.target.Target."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

from yolo2retina.errors import AnnotationError, Yolo2RetinaError
from yolo2retina.target import FLAG_CROWD, FLAG_DIFFICULT, FLAG_TRUNCATED, Target


def test_converters_normalise_dtype_and_shape() -> None:
    """Lists become (N, 4) float32 boxes and (N,) int64 labels."""
    t = Target([1, 2, 3, 4], [1])
    assert t.boxes.dtype == np.float32 and t.boxes.shape == (1, 4)
    assert t.labels.dtype == np.int64 and t.labels.shape == (1,)


def test_empty() -> None:
    """An empty target has (0, 4) boxes and no labels."""
    t = Target.empty()
    assert t.boxes.shape == (0, 4) and len(t) == 0


@pytest.mark.parametrize(
    ("boxes", "labels", "match"),
    [
        ([[0, 0, 1, 1]], [0, 1], "1 boxes but 2 labels"),
        ([[0, 0, np.nan, 1]], [0], "finite"),
        ([[0, 0, np.inf, 1]], [0], "finite"),
        ([[5, 0, 5, 1]], [0], "x1 < x2"),
        ([[0, 3, 1, 2]], [0], "y1 < y2"),
        ([[0, 0, 1, 1]], [-1], "labels must be >= 0"),
        ([[0, 0, 1]], [0], "shape"),
    ],
)
def test_validation_errors(boxes: list[list[float]], labels: list[int], match: str) -> None:
    """Invalid boxes or labels raise AnnotationError (a ValueError) with a clear message."""
    with pytest.raises(AnnotationError, match=match) as info:
        Target(boxes, labels)
    assert isinstance(info.value, ValueError) and isinstance(info.value, Yolo2RetinaError)


def test_frozen_and_equality() -> None:
    """Targets are immutable and compare by array content."""
    a = Target([[0, 0, 2, 2]], [1])
    assert a == Target([[0, 0, 2, 2]], [1])
    assert a != Target([[0, 0, 2, 3]], [1])
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.labels = np.zeros(1, np.int64)  # type: ignore[misc]


def test_named_constructors_agree() -> None:
    """YOLO, COCO and VOC constructors describe the same box the same way."""
    xyxy = Target.from_xyxy([[10, 20, 30, 60]], [0])
    yolo = Target.from_yolo([[0.2, 0.4, 0.2, 0.4]], [0], image_wh=(100, 100))
    coco = Target.from_coco([[10, 20, 20, 40]], [0])
    voc = Target.from_voc([[11, 21, 30, 60]], [0])
    for t in (yolo, coco, voc):
        np.testing.assert_allclose(t.boxes, xyxy.boxes, atol=1e-5)


def test_voc_whole_image_rule_and_inverse() -> None:
    """VOC (1, 1, W, H) is the whole image (0, 0, W, H) and to_voc inverts from_voc."""
    t = Target.from_voc([[1, 1, 640, 480]], [0])
    np.testing.assert_array_equal(t.boxes, [[0, 0, 640, 480]])
    np.testing.assert_array_equal(t.to_voc(), [[1, 1, 640, 480]])


def test_select_and_ignore_mask() -> None:
    """select keeps scores/flags aligned; crowd and difficult boxes are ignored, truncated not."""
    t = Target(
        [[0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 3, 3], [0, 0, 4, 4]],
        [0, 1, 0, 1],
        scores=[0.1, 0.2, 0.3, 0.4],
        flags=[0, FLAG_CROWD, FLAG_DIFFICULT, FLAG_TRUNCATED],
    )
    np.testing.assert_array_equal(t.ignore_mask(), [False, True, True, False])
    s = t.select(~t.ignore_mask())
    np.testing.assert_array_equal(s.labels, [0, 1])
    assert s.scores is not None and s.scores.tolist() == pytest.approx([0.1, 0.4])
