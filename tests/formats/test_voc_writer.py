"""Tests for the Pascal VOC writer (yolo2retina/formats/voc_writer.py)."""

from __future__ import annotations

from pathlib import Path

import attrs
import numpy as np
import pytest

from tests.conftest import write_image
from tests.formats._helpers import make_annotations, make_voc
from yolo2retina.errors import DatasetError
from yolo2retina.formats.voc import read_voc, write_voc


def test_write_then_read_gives_the_same_numbers(tmp_path: Path) -> None:
    """VOC -> VOC: writing what was read and reading it again changes nothing."""
    make_voc(
        tmp_path / "src",
        {
            "a": [
                {"name": "x", "box": (1, 1, 64, 48), "difficult": 1},
                {"name": "y", "box": (2.5, 3, 9.25, 7)},
            ],
            "b": [],
        },
        splits={"train": ["a", "b"]},
    )
    first = read_voc(tmp_path / "src", "train")
    report = write_voc({"train": first}, tmp_path / "out")
    again = read_voc(tmp_path / "out", "train")
    assert again.class_names == first.class_names
    np.testing.assert_array_equal(again.boxes, first.boxes)
    np.testing.assert_array_equal(again.labels, first.labels)
    np.testing.assert_array_equal(again.flags, first.flags)
    assert again.report.background_images == 1
    assert report.lost == []
    text = (tmp_path / "out" / "Annotations" / "a.xml").read_text()
    assert "<xmin>1</xmin>" in text and "<xmax>64</xmax>" in text


def test_writer_reports_lost_crowd_flags(tmp_path: Path) -> None:
    """VOC has no crowd marker, so the writer says crowd flags were lost."""
    ann = make_annotations(tmp_path, [[((1, 1, 9, 9), 0, 1)]])
    report = write_voc(ann, tmp_path / "out")
    assert any("crowd" in line for line in report.lost)


def test_same_stem_images_are_refused_by_the_writer_before_writing(tmp_path: Path) -> None:
    """write_voc names annotation files by stem, so a.jpg and a.png would share a.xml."""
    a = make_annotations(tmp_path / "src", [[((1, 1, 9, 9), 0, 0)]], prefix="a")
    b = make_annotations(tmp_path / "src", [[((2, 2, 9, 9), 1, 0)]], prefix="a")
    jpg = tmp_path / "src" / "a0.jpg"
    write_image(jpg, (64, 48))
    b = attrs.evolve(b, paths=np.array([str(jpg)]))
    with pytest.raises(DatasetError, match=r"a0\.jpg: same output name as .*a0\.png"):
        write_voc({"train": a, "val": b}, tmp_path / "out")
    assert not (tmp_path / "out").exists()
