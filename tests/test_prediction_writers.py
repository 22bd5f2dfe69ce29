"""Prediction writers (yolo2retina.prediction_writers): YOLO txt with confidence, COCO results, VOC, counts.csv."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests._prediction_helpers import NAMES, photo
from yolo2retina.errors import ConfigError
from yolo2retina.predict_folder import counts_line
from yolo2retina.prediction import ImagePrediction
from yolo2retina.prediction_writers import (
    predictions_to_annotations,
    write_counts_csv,
    write_predictions_coco,
    write_predictions_voc,
    write_yolo_txt,
    yolo_txt_lines,
)
from yolo2retina.target import Target


def test_yolo_txt_rows_are_ultralytics_save_conf_layout(tmp_path: Path) -> None:
    """Rows are 'class cx cy w h conf', normalized to the image; empty targets give empty files."""
    t = Target.from_xyxy([[10, 20, 30, 60], [0, 0, 100, 50]], [1, 0], [0.5, 0.25])
    text = yolo_txt_lines(t, (100, 200))
    assert text == "1 0.1 0.4 0.1 0.4 0.5\n0 0.25 0.25 0.5 0.5 0.25\n"
    p = write_yolo_txt(
        Target.from_xyxy(np.zeros((0, 4)), [], []), (10, 10), tmp_path / "l" / "a.txt"
    )
    assert p.read_text() == ""
    with pytest.raises(ConfigError, match="scores"):
        yolo_txt_lines(Target.from_xyxy([[0, 0, 1, 1]], [0]), (10, 10))


def test_coco_results_voc_and_counts_round_trip(tmp_path: Path) -> None:
    """COCO results map back to the boxes; VOC reads back; counts.csv has ids, counts and errors."""
    from yolo2retina.formats.voc import read_voc

    a = photo(tmp_path / "a.png", (10, 10, 20, 30))
    b = photo(tmp_path / "b.png", (0, 0, 5, 5))
    ta = Target.from_xyxy([[10, 10, 20, 30], [40, 5, 50, 15]], [0, 1], [0.9, 0.6])
    preds = [
        ImagePrediction(str(a), ta, (60, 80)),
        ImagePrediction("c.jpg", None, None, "c.jpg: not a readable image"),
        ImagePrediction(str(b), Target.from_xyxy(np.zeros((0, 4)), [], []), (60, 80)),
    ]
    res = json.loads(write_predictions_coco(preds, NAMES, tmp_path / "p.json").read_text())
    assert [(r["image_id"], r["category_id"], r["bbox"], r["score"]) for r in res] == [
        (0, 1, [10.0, 10.0, 10.0, 20.0], pytest.approx(0.9)),
        (0, 2, [40.0, 5.0, 10.0, 10.0], pytest.approx(0.6)),
    ]
    ann = predictions_to_annotations(preds, NAMES)
    assert len(ann) == 2 and ann.image_ids.tolist() == [0, 2]
    write_predictions_voc(preds, NAMES, tmp_path / "voc", images="copy")
    back = read_voc(tmp_path / "voc", "train")
    np.testing.assert_allclose(back.target(0).boxes, ta.boxes)
    assert back.target(0).labels.tolist() == [0, 1] and len(back.target(1)) == 0
    rows = list(csv.DictReader(write_counts_csv(preds, NAMES, tmp_path / "c.csv").open()))
    assert [r["image_id"] for r in rows] == ["0", "1", "2"]
    assert (rows[0]["total"], rows[0]["varroa"], rows[0]["bee"]) == ("2", "1", "1")
    assert rows[1]["error"].startswith("c.jpg") and rows[2]["total"] == "0"
    assert counts_line(preds[0], NAMES) == "a.png: 1 varroa, 1 bee"
    assert counts_line(preds[1], NAMES).startswith("c.jpg: ERROR")


def test_writers_take_relative_paths_and_replace_files_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative paths work; a second write replaces the file, a refused one keeps it, and no
    temporary file is left; files get the usual mode (0666 minus the umask)."""
    monkeypatch.chdir(tmp_path)
    t = Target.from_xyxy([[10, 20, 30, 60]], [1], [0.5])
    preds = [ImagePrediction("a.jpg", t, (100, 200))]
    write_yolo_txt(t, (100, 200), "labels/a.txt")
    p = write_yolo_txt(Target.from_xyxy(np.zeros((0, 4)), [], []), (100, 200), "labels/a.txt")
    assert p == Path("labels/a.txt") and p.read_text() == ""
    first = write_counts_csv(preds, NAMES, "counts.csv").read_text()
    assert write_counts_csv(preds, NAMES, "counts.csv").read_text() == first
    with pytest.raises(ConfigError, match="clash"):
        write_counts_csv(preds, ["image", "x"], "counts.csv")
    assert Path("counts.csv").read_text() == first
    assert not [f for f in tmp_path.rglob("*") if ".tmp" in f.name]
    umask = os.umask(0)
    os.umask(umask)
    assert Path("counts.csv").stat().st_mode & 0o777 == 0o666 & ~umask
