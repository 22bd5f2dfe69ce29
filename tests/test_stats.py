"""Tests for dataset statistics and the box-size histogram (yolo2retina/stats.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.formats._helpers import make_annotations
from yolo2retina.errors import ConfigError
from yolo2retina.stats import box_sides, dataset_stats, save_box_size_histogram
from yolo2retina.target import FLAG_CROWD


def test_counts_per_class_and_background(tmp_path: Path) -> None:
    """Boxes and images per class, background images and ignored boxes are counted."""
    a = make_annotations(
        tmp_path,
        [[((0, 0, 4, 9), 0, 0), ((0, 0, 40, 40), 1, FLAG_CROWD), ((1, 1, 5, 5), 0, 0)], [], []],
    )
    s = dataset_stats(a)
    assert (s.images, s.background_images, s.boxes) == (3, 2, 3)
    assert s.boxes_per_class == (2, 1) and s.images_per_class == (1, 1)
    assert s.max_boxes_per_image == 3 and s.ignored_boxes == 1
    assert (s.tiny_boxes, s.small_boxes) == (2, 2)
    assert s.side_percentiles[0] == pytest.approx(4.0) and s.side_percentiles[100] == pytest.approx(
        40.0
    )
    text = str(s)
    assert "images:            3 (2 background)" in text and "a" in text


def test_several_splits_add_up(tmp_path: Path) -> None:
    """Stats over two splits equal the sums of each."""
    a = make_annotations(tmp_path / "a", [[((0, 0, 4, 4), 0, 0)]])
    b = make_annotations(tmp_path / "b", [[((0, 0, 8, 2), 1, 0)], []])
    s = dataset_stats([a, b])
    assert (s.images, s.boxes, s.boxes_per_class) == (3, 2, (1, 1))
    np.testing.assert_allclose(box_sides([a, b]), [4.0, 4.0])


def test_empty_dataset(tmp_path: Path) -> None:
    """A dataset with no boxes has no percentiles and prints."""
    s = dataset_stats(make_annotations(tmp_path, [[]]))
    assert s.boxes == 0 and s.side_percentiles == {}
    assert "boxes:             0" in str(s)


def test_histogram_png(tmp_path: Path) -> None:
    """The histogram is a PNG file."""
    pytest.importorskip("matplotlib")
    a = make_annotations(tmp_path / "ds", [[((0, 0, 4, 4), 0, 0), ((0, 0, 30, 30), 1, 0)]])
    out = save_box_size_histogram(a, tmp_path / "sub" / "h.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in out.parent.iterdir() if p.name != "h.png"]  # no temporary left


def test_histogram_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without matplotlib the error says which extra to install."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    a = make_annotations(tmp_path / "ds", [[]])
    with pytest.raises(ConfigError, match=r"yolo2retina\[plot\]"):
        save_box_size_histogram(a, tmp_path / "h.png")
