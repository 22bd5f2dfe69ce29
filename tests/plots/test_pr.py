"""Tests for yolo2retina.plots.pr: PR curves per class and the confusion matrix PNG."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yolo2retina.annotations import AnnotationsBuilder
from yolo2retina.coco_metric import Metrics, coco_map
from yolo2retina.target import Target

pytest.importorskip("matplotlib")

from yolo2retina.plots import MISSING_MATPLOTLIB, plot_confusion_matrix, plot_pr_curves


def small_metrics() -> Metrics:
    """Metrics of one image: class "mite ok" found, "dust/ball" has no ground truth."""
    b = AnnotationsBuilder()
    b.add("0.jpg", (100, 100), [[10, 10, 40, 40], [50, 50, 60, 60]], [0, 0])
    ann = b.build(["mite ok", "dust/ball"])
    return coco_map(ann, [Target([[10, 10, 40, 40], [0, 0, 5, 5]], [0, 1], [0.9, 0.8])])


def test_pr_curves_one_png_per_class_with_ground_truth(tmp_path: Path) -> None:
    """Each class with ground truth gets a readable PNG with a file-safe name; others none."""
    paths = plot_pr_curves(small_metrics(), tmp_path / "pr")
    assert [p.name for p in paths] == ["pr_00_mite_ok.png"]
    with Image.open(paths[0]) as img:
        assert img.format == "PNG" and img.width > 100


def test_pr_curves_refuse_an_unknown_iou_threshold(tmp_path: Path) -> None:
    """Only COCO's IoU thresholds have curves."""
    with pytest.raises(ValueError, match="not one of"):
        plot_pr_curves(small_metrics(), tmp_path, iou_threshold=0.42)


@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_matrix_png(tmp_path: Path, normalize: bool) -> None:
    """A (K+1)x(K+1) matrix with a background row and column is drawn to a PNG."""
    m = np.array([[3, 1, 0], [0, 2, 1], [4, 0, 0]])
    out = plot_confusion_matrix(m, ["a", "b"], tmp_path / "cm" / "m.png", normalize=normalize)
    with Image.open(out) as img:
        assert img.format == "PNG"


def test_confusion_matrix_shape_is_checked(tmp_path: Path) -> None:
    """A matrix without the background row/column is refused."""
    with pytest.raises(ValueError, match="expected"):
        plot_confusion_matrix(np.eye(2), ["a", "b"], tmp_path / "m.png")


def test_missing_matplotlib_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without matplotlib the ImportError names the 'plot' extra."""
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"yolo2retina\[plot\]") as e:
        plot_pr_curves(small_metrics(), tmp_path)
    assert str(e.value) == MISSING_MATPLOTLIB
