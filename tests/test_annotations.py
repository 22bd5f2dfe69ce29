"""Tests for the flat annotation storage (yolo2retina/annotations.py)."""

from __future__ import annotations

import numpy as np
import pytest

from yolo2retina.annotations import AnnotationsBuilder, LoadReport
from yolo2retina.errors import DatasetError


def _three_images() -> AnnotationsBuilder:
    b = AnnotationsBuilder()
    b.add("/x/a.jpg", (10, 20), [[0, 0, 5, 5], [1, 1, 4, 4]], [0, 1])
    b.add("/x/b.jpg", (30, 40), np.zeros((0, 4)), [])
    b.add("/x/c.jpg", (50, 60), [[2, 2, 9, 9]], [1], flags=[1], image_id=77)
    return b


def test_flat_arrays_and_views() -> None:
    """Boxes of all images live in one (M, 4) array; per-image views slice it by offsets."""
    a = _three_images().build(["p", "q"])
    assert len(a) == 3 and a.num_boxes == 3 and a.num_classes == 2
    assert a.offsets.tolist() == [0, 2, 2, 3]
    assert a.image_hw(1) == (30, 40) and a.image_path(2).name == "c.jpg"
    assert a.image_ids.tolist() == [0, 1, 77]
    assert a.target(0).labels.tolist() == [0, 1] and len(a.target(1)) == 0
    assert a.target(2).flags is not None and a.target(0).flags is None
    assert a.image_index().tolist() == [0, 0, 2]
    assert a.report.images == 3 and a.report.background_images == 1 and a.report.boxes == 3


def test_storage_holds_no_python_objects_per_image() -> None:
    """All per-image data is in NumPy arrays of fixed-size dtypes (no object arrays), read-only."""
    a = _three_images().build(["p", "q"])
    for arr in (a.paths, a.image_hw_array, a.offsets, a.boxes, a.labels, a.flags, a.image_ids):
        assert isinstance(arr, np.ndarray) and arr.dtype != object
        assert not arr.flags.writeable


def test_subset_keeps_boxes_with_their_images() -> None:
    """subset picks images in the given order, with exactly their boxes."""
    a = _three_images().build(["p", "q"])
    s = a.subset([2, 0])
    assert [p.name for p in map(s.image_path, range(2))] == ["c.jpg", "a.jpg"]
    np.testing.assert_array_equal(s.target(0).boxes, a.target(2).boxes)
    np.testing.assert_array_equal(s.target(1).boxes, a.target(0).boxes)
    assert s.num_boxes == 3 and len(a.subset([])) == 0


def test_annotation_ids_are_optional_read_only_and_follow_subset() -> None:
    """Per-box annotation ids: None from the builder; when given, copied, read-only, checked
    against the box count and carried by subset with their boxes."""
    import attrs

    a = _three_images().build(["p", "q"])
    assert a.annotation_ids is None and a.subset([2, 0]).annotation_ids is None
    src = np.array([10, 0, 12])
    b = attrs.evolve(a, annotation_ids=src)
    src[0] = 99  # the caller's array is copied
    assert b.annotation_ids is not None and b.annotation_ids.dtype == np.int64
    assert b.annotation_ids.tolist() == [10, 0, 12] and not b.annotation_ids.flags.writeable
    s = b.subset([2, 1, 0])
    assert s.annotation_ids is not None and s.annotation_ids.tolist() == [12, 10, 0]
    with pytest.raises(DatasetError, match="inconsistent"):
        attrs.evolve(a, annotation_ids=[1, 2])


def test_index_errors_and_inconsistent_labels() -> None:
    """Out-of-range indices raise IndexError; labels beyond the class list are refused."""
    a = _three_images().build(["p", "q"])
    with pytest.raises(IndexError):
        a.target(3)
    with pytest.raises(DatasetError, match=r"labels must lie in 0\.\.0"):
        _three_images().build(["p"])


def test_report_str_is_readable() -> None:
    """str(report) summarises every counter and lists details."""
    r = LoadReport(source="x.yaml")
    r.note("clipped", "a.txt:1: clipped")
    text = str(r)
    assert "x.yaml" in text and "clipped:             1" in text and "a.txt:1: clipped" in text
    assert r.changed == 1
