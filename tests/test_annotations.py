"""Tests for the flat annotation storage (yolo2retina/annotations.py)."""

from __future__ import annotations

from typing import get_args

import attrs
import numpy as np
import pytest

from yolo2retina.annotations import AnnotationsBuilder, LoadReport, NoteKind
from yolo2retina.errors import ConfigError, DatasetError


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


@pytest.mark.parametrize("kind", get_args(NoteKind))
def test_note_counts_each_kind_in_its_own_counter(kind: str) -> None:
    """note(kind) adds one to that counter only and keeps the detail line."""
    r = LoadReport()
    r.note(kind, "a.txt:3: what happened")  # type: ignore[arg-type]  # kind is each NoteKind
    counters = {
        f.name: getattr(r, f.name) for f in attrs.fields(LoadReport) if f.type in ("int", int)
    }
    assert counters.pop(kind) == 1 and set(counters.values()) == {0}
    assert r.details == ["a.txt:3: what happened"]


def test_note_kinds_are_every_event_counter() -> None:
    """NoteKind names every int counter except the three the builder sets (images, boxes,
    background_images): a new counter cannot be added without note() counting it."""
    ints = {f.name for f in attrs.fields(LoadReport) if f.type in ("int", int)}
    assert set(get_args(NoteKind)) == ints - {"images", "boxes", "background_images"}


@pytest.mark.parametrize("kind", ["images", "boxes", "details", "source", "nope"])
def test_note_refuses_a_name_that_is_not_an_event_counter(kind: str) -> None:
    """note("images") used to add 1 to the image count through setattr; every name outside
    NoteKind is a ConfigError naming the allowed kinds, and nothing is counted."""
    r = LoadReport()
    with pytest.raises(ConfigError, match=f"unknown kind '{kind}'.*clipped"):
        r.note(kind, "x")  # type: ignore[arg-type]
    assert r == LoadReport()


def test_builder_options_after_the_data_are_keyword_only() -> None:
    """add(..., flags, image_id=) and build(names, report, category_ids=): the id options
    are keyword-only, so a positional id cannot land in the wrong slot."""
    b = AnnotationsBuilder()
    with pytest.raises(TypeError):
        b.add("a.jpg", (10, 10), [[0, 0, 5, 5]], [0], None, 7)  # type: ignore[call-arg]
    b.add("a.jpg", (10, 10), [[0, 0, 5, 5]], [0], None, image_id=7)
    with pytest.raises(TypeError):
        b.build(["p"], None, [5])  # type: ignore[call-arg]
    a = b.build(["p"], None, category_ids=[5])
    assert a.image_ids.tolist() == [7] and a.category_ids == (5,)


def test_add_images_equals_add_one_by_one_and_names_a_bad_image() -> None:
    from yolo2retina.annotations import AnnotationsBuilder
    from yolo2retina.errors import AnnotationError

    boxes = [np.array([[0, 0, 2, 2]], np.float32), np.zeros((0, 4), np.float32)]
    boxes.append(np.array([[1, 1, 3, 3], [0, 0, 1, 1]], np.float32))
    labels = [np.array([0]), np.zeros(0, np.int64), np.array([1, 0])]
    hws = [(10, 20), (5, 5), (7, 8)]
    one, many = AnnotationsBuilder(), AnnotationsBuilder()
    for k, (b, lab, hw) in enumerate(zip(boxes, labels, hws, strict=True)):
        one.add(f"i{k}.jpg", hw, b, lab, image_id=None if k != 1 else 40)
    many.add_images(["i0.jpg", "i1.jpg", "i2.jpg"], hws, boxes, labels, image_ids=[None, 40, None])
    a, b = one.build(["x", "y"]), many.build(["x", "y"])
    for field in ("paths", "image_hw_array", "offsets", "boxes", "labels", "flags", "image_ids"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    bad = AnnotationsBuilder()
    boxes[2] = np.array([[1, 1, 3, 3], [5, 0, 1, 1]], np.float32)
    with pytest.raises(AnnotationError, match=r"i2\.jpg.*box 1"):
        bad.add_images(["i0.jpg", "i1.jpg", "i2.jpg"], hws, boxes, labels)
