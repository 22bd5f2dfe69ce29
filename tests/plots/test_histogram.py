"""Tests for yolo2retina.plots.histogram: the box-size histogram from plain arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")

from yolo2retina.plots.histogram import plot_box_size_histogram


def test_histogram_of_two_classes_is_a_png(tmp_path: Path) -> None:
    """Sizes of two classes with the 16 / 32 px marks give a PNG (parent folders made)."""
    sides = np.array([3.0, 8.0, 20.0, 40.0, 120.0])
    out = plot_box_size_histogram(
        sides, np.array([0, 0, 1, 1, 1]), ["mite", "bee"], tmp_path / "a" / "h.png", title="t"
    )
    assert out == tmp_path / "a" / "h.png"
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (800, 450)


@pytest.mark.parametrize("sides", [[], [5.0], [5.0, 5.0]])
def test_histogram_of_no_boxes_or_one_size(tmp_path: Path, sides: list[float]) -> None:
    """No boxes ("no boxes" in the middle) and a single size (a one-bin range) still draw."""
    labels = np.zeros(len(sides), np.int64)
    out = plot_box_size_histogram(np.array(sides), labels, ["a"], tmp_path / "h.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
