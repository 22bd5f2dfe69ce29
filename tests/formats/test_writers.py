"""Tests for the YOLO, VOC and COCO writers: placement of images, atomicity, losses."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.formats._helpers import make_annotations
from yolo2retina.annotations import Annotations, AnnotationsBuilder
from yolo2retina.errors import DatasetError
from yolo2retina.formats import load_annotations, load_splits, write_annotations
from yolo2retina.formats.yolo import read_yolo, write_yolo


@pytest.mark.parametrize("fmt", ["yolo", "voc", "coco"])
def test_existing_outputs_are_never_overwritten(tmp_path: Path, ann: Annotations, fmt: str) -> None:
    """A second write fails before touching anything unless overwrite=True."""
    out = tmp_path / "out"
    write_annotations(ann, out, fmt)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    with pytest.raises(DatasetError, match=r"already exist.*overwrite=True"):
        write_annotations(ann, out, fmt)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
    write_annotations(ann, out, fmt, overwrite=True)
    assert not [p for p in out.rglob("*.tmp")]  # temp files were all renamed
    assert load_annotations(out, format=fmt, split="train").num_boxes == 2


@pytest.mark.parametrize("mode", ["copy", "symlink", "hardlink"])
def test_image_modes(tmp_path: Path, ann: Annotations, mode: str) -> None:
    """Images are copied, symlinked or hardlinked as asked."""
    write_yolo(ann, tmp_path / "out", images=mode)  # type: ignore[arg-type]
    src = ann.image_path(0)
    dst = tmp_path / "out" / "images" / "train" / src.name
    assert dst.read_bytes() == src.read_bytes()
    assert dst.is_symlink() == (mode == "symlink")
    assert (os.stat(dst).st_ino == os.stat(src).st_ino) == (mode != "copy")


def test_name_collisions_are_refused(tmp_path: Path) -> None:
    """Two images that would be written to the same file are an error, before writing."""
    a = make_annotations(tmp_path / "x", [[]])
    b = make_annotations(tmp_path / "y", [[]])
    builder = AnnotationsBuilder()
    for src in (a, b):
        builder.add(src.image_path(0), src.image_hw(0), np.zeros((0, 4)), [])
    with pytest.raises(DatasetError, match="same output name"):
        write_yolo(builder.build(["a"]), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_varroa_to_coco_loads_in_pycocotools(tmp_path: Path, varroa_yaml: Path) -> None:
    """The real varroa YOLO set converts to COCO that pycocotools' COCO() loads."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    src = load_splits(varroa_yaml)
    write_annotations(src, tmp_path / "coco", "coco", images="symlink")
    for split, a in src.items():
        c = COCO(str(tmp_path / "coco" / split / "_annotations.coco.json"))
        assert len(c.getImgIds()) == len(a) and len(c.getAnnIds()) == a.num_boxes


def test_varroa_to_voc_and_back_to_yolo(tmp_path: Path, varroa_yaml: Path) -> None:
    """varroa YOLO -> VOC -> YOLO gives identical boxes, labels and names."""
    src = load_splits(varroa_yaml)
    write_annotations(src, tmp_path / "voc", "voc", images="symlink")
    voc = load_splits(tmp_path / "voc")
    write_annotations(voc, tmp_path / "yolo", "yolo", images="symlink")
    back = load_splits(tmp_path / "yolo")
    assert set(back) == set(src) == {"train", "val"}
    for split, a in src.items():
        b = back[split]
        assert b.class_names == a.class_names
        assert [Path(p).name for p in b.paths] == [Path(p).name for p in a.paths]
        np.testing.assert_array_equal(b.boxes, a.boxes)
        np.testing.assert_array_equal(b.labels, a.labels)


def test_yolo_boxes_agree_with_supervision(tmp_path: Path, ann: Annotations) -> None:
    """supervision reads the same boxes from a YOLO dataset as the YOLO reader."""
    sv = pytest.importorskip("supervision")
    write_yolo(ann, tmp_path / "out")
    ours = read_yolo(tmp_path / "out" / "data.yaml", "train")
    ds = sv.DetectionDataset.from_yolo(
        str(tmp_path / "out" / "images" / "train"),
        str(tmp_path / "out" / "labels" / "train"),
        str(tmp_path / "out" / "data.yaml"),
    )
    by_name = {Path(p).name: d for p, _, d in ds}
    for i in range(len(ours)):
        d = by_name[ours.image_path(i).name]
        t = ours.target(i)
        np.testing.assert_allclose(
            np.asarray(d.xyxy, np.float32).reshape(-1, 4), t.boxes, atol=1e-3
        )
        assert np.asarray(d.class_id).tolist() == t.labels.tolist()
