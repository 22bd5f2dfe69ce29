"""Counting detections per class (yolo2retina.counts)."""

from __future__ import annotations

import pytest

from yolo2retina.counts import count_labels, counts_table
from yolo2retina.errors import ConfigError
from yolo2retina.target import Target


def test_count_labels_and_counts_table() -> None:
    """Counts list every class (zeros too); the table has one row per image, errors included."""
    from yolo2retina.prediction import ImagePrediction

    t = Target.from_xyxy([[0, 0, 1, 1]] * 3, [0, 2, 2], [0.9, 0.8, 0.7])
    assert count_labels(t, ["a", "b", "c"]) == {"a": 1, "b": 0, "c": 2}
    assert count_labels(Target.empty(), ["a"]) == {"a": 0}
    with pytest.raises(ConfigError, match="no class name"):
        count_labels(t, ["a"])
    rows = counts_table(
        [ImagePrediction("x.jpg", t, (1, 1)), ImagePrediction("y.jpg", None, None, "broken")],
        ["a", "b", "c"],
    )
    assert rows[0] == {"image": "x.jpg", "total": 3, "a": 1, "b": 0, "c": 2, "error": ""}
    assert rows[1]["error"] == "broken" and rows[1]["total"] == ""
