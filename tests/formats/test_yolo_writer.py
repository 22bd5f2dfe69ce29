"""Tests for the YOLO writer (yolo2retina/formats/yolo_writer.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import write_image
from tests.formats._helpers import make_annotations
from yolo2retina.annotations import Annotations, AnnotationsBuilder
from yolo2retina.errors import DatasetError
from yolo2retina.formats import write_annotations
from yolo2retina.formats.yolo import read_yolo, write_yolo
from yolo2retina.target import FLAG_CROWD, FLAG_DIFFICULT


def test_writer_refuses_images_that_would_share_a_label_file(tmp_path: Path) -> None:
    """Two images whose names differ only in the extension are refused before anything is written."""
    b = AnnotationsBuilder()
    jpg = write_image(tmp_path / "src1" / "a.jpg")
    png = write_image(tmp_path / "src2" / "a.png")
    b.add(jpg, (48, 64), [[1, 2, 10, 20]], [0])
    b.add(png, (48, 64), [[5, 5, 30, 30]], [1])
    with pytest.raises(DatasetError, match="share one YOLO label file") as info:
        write_yolo(b.build(("a", "b")), tmp_path / "out")
    text = "\n".join(info.value.problems)
    assert str(jpg) in text and str(png) in text and "labels/train/a.txt" in text
    assert not (tmp_path / "out").exists()


def test_yolo_writer_layout_background_and_yaml(tmp_path: Path, ann: Annotations) -> None:
    """Labels per image (empty for background), and a data.yaml with val for 'valid'."""
    write_yolo({"train": ann, "valid": ann}, tmp_path / "out")
    doc = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())
    assert doc == {"train": "images/train", "val": "images/valid", "nc": 2, "names": ["a", "b"]}
    assert (tmp_path / "out" / "labels" / "valid" / "img1.txt").read_text() == ""
    back = read_yolo(tmp_path / "out" / "data.yaml", "val")
    np.testing.assert_allclose(back.boxes, ann.boxes, atol=1e-4)
    assert back.report.clipped == 0 and back.report.background_images == 1


def test_yolo_writer_says_what_is_lost(tmp_path: Path) -> None:
    """Crowd and difficult flags cannot be written to YOLO; the report and a warning say so."""
    a = make_annotations(
        tmp_path, [[((1, 1, 9, 9), 0, FLAG_CROWD), ((1, 1, 5, 5), 0, FLAG_DIFFICULT)]]
    )
    with pytest.warns(UserWarning) as caught:
        report = write_annotations(a, tmp_path / "out", "yolo")
    messages = [str(w.message) for w in caught]
    assert any("lost 1 crowd flag" in m for m in messages)
    assert any("lost 1 difficult flag" in m for m in messages)
    assert any("1 crowd flag" in line for line in report.lost)
    assert any("1 difficult flag" in line for line in report.lost)
    assert "lost: " in str(report)
