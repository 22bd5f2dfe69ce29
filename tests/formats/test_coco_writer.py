"""Tests for the COCO writers (yolo2retina/formats/coco_writer.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.formats._helpers import coco_ann, make_annotations, make_coco
from yolo2retina.errors import DatasetError
from yolo2retina.formats.coco import read_coco, write_coco, write_coco_results
from yolo2retina.target import FLAG_CROWD, FLAG_DIFFICULT, Target


def test_results_use_original_category_and_image_ids(tmp_path: Path) -> None:
    """write_coco_results exports labels with the original category ids."""
    f = make_coco(
        tmp_path, 2, categories=[(7, "a"), (9, "b")], anns=[coco_ann(1, 2, 9, [1, 1, 4, 4])]
    )
    ann = read_coco(f)
    preds = [Target.empty(), Target.from_xyxy([[1, 2, 5, 7]], [1], scores=[0.75])]
    out = write_coco_results(preds, ann, tmp_path / "res.json")
    assert json.loads(out.read_text()) == [
        {"image_id": 2, "category_id": 9, "bbox": [1.0, 2.0, 4.0, 5.0], "score": 0.75}
    ]
    with pytest.raises(DatasetError, match="1 predictions for 2 images"):
        write_coco_results(preds[:1], ann, tmp_path / "r2.json")


def test_writer_keeps_flags_ids_and_background(tmp_path: Path) -> None:
    """COCO -> COCO keeps crowd (iscrowd), difficult (extra key), ids and empty images."""
    src = make_annotations(
        tmp_path / "src", [[((1, 1, 9, 9), 0, FLAG_CROWD), ((2, 2, 8, 8), 1, FLAG_DIFFICULT)], []]
    )
    report = write_coco({"val": src}, tmp_path / "out")
    assert report.lost == []
    back = read_coco(tmp_path / "out", "val")
    np.testing.assert_array_equal(back.boxes, src.boxes)
    np.testing.assert_array_equal(back.flags, src.flags)
    assert back.image_ids.tolist() == [1, 2] and back.report.background_images == 1
    assert back.category_ids == (1, 2)


def test_pycocotools_reads_written_file(tmp_path: Path) -> None:
    """pycocotools' own COCO() loads what the writer wrote."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    src = make_annotations(tmp_path / "src", [[((1, 1, 9, 9), 0, 0)], [((3, 3, 20, 10), 1, 0)]])
    write_coco(src, tmp_path / "out")
    c = COCO(str(tmp_path / "out" / "train" / "_annotations.coco.json"))
    assert len(c.getAnnIds()) == 2 and len(c.getImgIds()) == 2
    assert [c.cats[i]["name"] for i in sorted(c.cats)] == ["a", "b"]
