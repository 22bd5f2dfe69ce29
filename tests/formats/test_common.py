"""Tests for the helpers shared by the readers (yolo2retina/formats/_common.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from yolo2retina.annotations import AnnotationsBuilder, LoadReport
from yolo2retina.errors import AnnotationError, DatasetError
from yolo2retina.formats._common import check_pixel_boxes


def _check(xyxy: list[list[float]], wh: tuple[float, float], strict: bool) -> tuple:
    boxes = np.array(xyxy, dtype=np.float64)
    report, problems = LoadReport(), []
    keep = check_pixel_boxes(
        boxes, wh, lambda i: f"f.xml: object {i}", strict=strict, report=report, problems=problems
    )
    return keep.tolist(), report, problems


def test_pixel_box_without_area_in_float32_is_a_counted_drop() -> None:
    """A ymax of 1e-320 or a 1e-6-px-wide box at x=100 has area in float64 only: dropped, named."""
    keep, report, problems = _check(
        [[0, 0, 10, 1e-320], [1, 1, 5, 5], [100, 3, 100 + 1e-6, 5]], (640, 480), strict=False
    )
    assert keep == [False, True, False] and problems == []
    assert report.dropped_zero_area == 2
    assert [d.split(":")[1].strip() for d in report.details] == ["object 0", "object 2"]
    assert all("float32" in d for d in report.details)


def test_strict_pixel_box_without_area_in_float32_is_an_error() -> None:
    """With strict=True the float32-degenerate box is a problem naming its location."""
    keep, report, problems = _check([[0, 0, 10, 1e-320]], (640, 480), strict=True)
    assert keep == [False] and report.dropped_zero_area == 0
    assert problems and problems[0].startswith("f.xml: object 0: zero-area box")


def test_pixel_box_beyond_float32_range_is_an_error() -> None:
    """A coordinate that becomes infinite in float32 is an error even without strict."""
    keep, _, problems = _check([[0, 0, 1e39, 10]], (1e40, 480), strict=False)
    assert keep == [False] and "float32 range" in problems[0]


def test_builder_refuses_box_without_area_in_float32_naming_the_image() -> None:
    """AnnotationsBuilder.add names the image when a box degenerates in float32 (a reader's last guard)."""
    b = AnnotationsBuilder()
    with pytest.raises(AnnotationError, match=r"^/d/a\.jpg: box 1 "):
        b.add("/d/a.jpg", (48, 64), [[1, 1, 5, 5], [100, 3, 100 + 1e-6, 5]], [0, 0])


@pytest.mark.parametrize("fmt", ["yolo", "voc", "coco"])
def test_writers_refuse_one_image_twice_in_a_split(tmp_path: Path, fmt: str) -> None:
    """A split listing one image twice would become two COCO records / two VOC ids for one
    file, which the readers refuse on read-back: the writers refuse it before writing."""
    from tests.formats._helpers import make_annotations
    from yolo2retina.formats import write_annotations

    ann = make_annotations(tmp_path / "src", [[((1, 1, 9, 9), 0, 0)], []])
    twice = ann.subset([0, 1, 0])
    with pytest.raises(DatasetError) as e:
        write_annotations(twice, tmp_path / "out", fmt)
    assert "listed twice in split 'train'" in str(e.value)
    assert not (tmp_path / "out").exists()
