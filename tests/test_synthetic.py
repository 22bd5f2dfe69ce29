"""Tests for yolo2retina.synthetic: the synthetic sticky-board generator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from yolo2retina.dataset import YoloDataset
from yolo2retina.errors import ConfigError
from yolo2retina.formats.yolo import read_yolo
from yolo2retina.synthetic import synthetic_sticky_board

KW: dict[str, Any] = {"n_images": 10, "image_size": 128, "val_fraction": 0.3}


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".jpg", ".txt")
    }


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    """A seed always gives byte-identical images and labels; another seed gives others."""
    a = _files(synthetic_sticky_board(tmp_path / "a", seed=3, **KW).parent)
    b = _files(synthetic_sticky_board(tmp_path / "b", seed=3, **KW).parent)
    c = _files(synthetic_sticky_board(tmp_path / "c", seed=4, **KW).parent)
    assert len(a) == 20
    assert a == b
    assert a.keys() != c.keys() or any(a[k] != c[k] for k in a)


def test_yolo_dataset_loads_both_splits(tmp_path: Path) -> None:
    """The written data.yaml loads with YoloDataset: one class, both splits, background images."""
    yaml_path = synthetic_sticky_board(
        tmp_path / "board", n_images=20, image_size=160, val_fraction=0.25
    )
    train = YoloDataset(yaml_path, split="train")
    val = YoloDataset(yaml_path, split="val")
    assert (len(train), len(val)) == (15, 5)
    assert train.class_names == ("varroa",)
    assert train.report.changed == 0  # nothing clipped or dropped
    ann = train.annotations
    assert ann.num_boxes > 2 * len(train)
    assert (ann.boxes_per_image() == 0).sum() + (val.annotations.boxes_per_image() == 0).sum() == 2
    wh = ann.boxes[:, 2:] - ann.boxes[:, :2]
    assert wh.min() >= 7.9 and wh.max() <= 30.1  # mites of 8-30 px
    image, target = val[0]
    assert tuple(image.shape) == (3, 160, 160)
    assert target["labels"].tolist() == [0] * len(target["labels"])


def test_mites_are_dark_and_red_on_a_pale_board(tmp_path: Path) -> None:
    """Labelled pixels are darker and redder (R - B) than the board around them."""
    yaml_path = synthetic_sticky_board(
        tmp_path, n_images=6, image_size=160, background_fraction=0.0
    )
    ann = read_yolo(yaml_path, "train")
    inside, board = [], []
    for i in range(len(ann)):
        pixels = np.asarray(Image.open(ann.image_path(i)).convert("RGB"), dtype=np.float64)
        mask = np.zeros(pixels.shape[:2], bool)
        for x1, y1, x2, y2 in ann.target(i).boxes:
            cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 4, (y2 - y1) / 4
            mask[int(cy - ry) : int(cy + ry) + 1, int(cx - rx) : int(cx + rx) + 1] = True
        inside.append(pixels[mask])
        board.append(np.median(pixels.reshape(-1, 3), axis=0))
    mite = np.concatenate(inside).mean(axis=0)
    pale = np.mean(board, axis=0)
    assert mite.sum() < 0.6 * pale.sum()
    assert mite[0] > mite[1] > mite[2]
    assert (mite[0] - mite[2]) / mite.sum() > (pale[0] - pale[2]) / pale.sum()


def test_second_call_reuses_or_regenerates(tmp_path: Path) -> None:
    """Same arguments reuse the files; other arguments replace them without stale images."""
    yaml_path = synthetic_sticky_board(tmp_path, **KW)
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.jpg")}
    assert synthetic_sticky_board(tmp_path, **KW) == yaml_path
    assert stamp == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.jpg")}
    synthetic_sticky_board(tmp_path, n_images=4, image_size=128, val_fraction=0.5)
    assert len(list(tmp_path.rglob("*.jpg"))) == 4
    assert len(read_yolo(yaml_path, "train")) + len(read_yolo(yaml_path, "val")) == 4


def test_refuses_foreign_folder_and_bad_arguments(tmp_path: Path) -> None:
    """A folder with other files, or bad sizes, raise ConfigError."""
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        synthetic_sticky_board(tmp_path, **KW)
    for kwargs, match in [
        ({"n_images": 1}, "n_images"),
        ({"image_size": 32}, "image_size"),
        ({"val_fraction": 1.0}, "val_fraction"),
    ]:
        with pytest.raises(ConfigError, match=match):
            synthetic_sticky_board(tmp_path / "new", **kwargs)  # type: ignore[arg-type]


def test_manifest_keeps_the_0_1_generator_name(tmp_path: Path) -> None:
    """The module moved from yolo2retina.datasets to yolo2retina.synthetic; the manifest keeps
    the old generator name, so a board made by 0.1 is reused, not regenerated."""
    import json

    synthetic_sticky_board(tmp_path, **KW)
    params = json.loads((tmp_path / "synthetic.json").read_text())["params"]
    assert params["generator"] == "yolo2retina.datasets.synthetic_sticky_board"
