"""Tests for yolo2retina.confusion: the class confusion matrix with a background row/column."""

from __future__ import annotations

import numpy as np

from yolo2retina.confusion import confusion_matrix
from yolo2retina.target import FLAG_CROWD

from ._eval_helpers import build, pred


def test_confusion_matrix_counts_swaps_misses_and_background() -> None:
    """A class swap, a false positive, a miss and a crowd hit land in the right cells."""
    ann = build(
        [
            (
                [[10, 10, 50, 50], [60, 10, 90, 40], [0, 60, 100, 100]],
                [0, 1, 0],
                [0, 0, FLAG_CROWD],
            ),
            ([[5, 5, 20, 20]], [1], [0]),
        ]
    )
    preds = [
        pred([[10, 10, 50, 50], [0, 0, 8, 8], [10, 70, 30, 90]], [1, 0, 1], [0.9, 0.8, 0.7]),
        pred([[5, 5, 20, 20], [5, 5, 20, 21]], [1, 1], [0.9, 0.1]),  # second is under 0.3
    ]
    cm = confusion_matrix(ann, preds)
    expected = np.zeros((3, 3), np.int64)
    expected[0, 1] = 1  # cat predicted as dog
    expected[2, 0] = 1  # false positive "cat"
    expected[1, 2] = 1  # missed dog (image 0)
    expected[1, 1] = 1  # found dog (image 1)
    np.testing.assert_array_equal(cm, expected)


def test_confusion_matrix_prefers_a_regular_box_over_a_crowd_region() -> None:
    """A detection on both a crowd region and a regular box counts as a hit on the box."""
    ann = build([([[0, 0, 100, 100], [10, 10, 50, 50]], [0, 0], [FLAG_CROWD, 0])])
    cm = confusion_matrix(ann, [pred([[12, 12, 50, 50]], [0], [0.9])])
    assert cm[0, 0] == 1
    assert cm.sum() == 1
