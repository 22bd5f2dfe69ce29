"""Every reader gives the same result however the dataset path is spelled.

A dataset is opened through a relative path, an absolute path, a path through a
symlinked folder and ``.`` (the working directory), with ``load_annotations`` and with
the format's own reader. All four must load the same images, boxes, labels and report
counts. Before this was tested, a YOLO data.yaml without ``path:`` opened through any
relative path reported every label file as "label file has no image".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from yolo2retina.annotations import Annotations, LoadReport
from yolo2retina.formats import load_annotations, load_splits, write_annotations
from yolo2retina.formats.coco import read_coco
from yolo2retina.formats.voc import read_voc
from yolo2retina.formats.yolo import read_yolo
from yolo2retina.synthetic import synthetic_sticky_board

FORMATS = ("yolo", "voc", "coco")
HOWS = ("relative", "absolute", "symlink", "dot")

#: format -> (the file a reader is given inside the dataset folder, or "" for the folder)
SOURCE = {"yolo": "data.yaml", "voc": "", "coco": "train/_annotations.coco.json"}

READERS: dict[str, Callable[..., Annotations]] = {
    "yolo": lambda src: read_yolo(src, "train"),
    "voc": lambda src: read_voc(src, "train"),
    "coco": lambda src: read_coco(src, "train"),
}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``base/{yolo,voc,coco}`` of one synthetic board, and ``base/link-{fmt}`` symlinks to them.

    The YOLO copy is the writer's own output (a data.yaml without ``path:``), with one
    label file removed and one row moved slightly outside the image, so the report has
    a missing label file and a clip to count.
    """
    base = tmp_path_factory.mktemp("paths")
    synth = synthetic_sticky_board(base / "synth", n_images=4, image_size=64, seed=3)
    train = load_splits(synth, splits=["train"])["train"]
    for fmt in FORMATS:
        write_annotations(train, base / fmt, fmt)
        os.symlink(base / fmt, base / f"link-{fmt}", target_is_directory=True)
    labels = sorted((base / "yolo" / "labels" / "train").glob("*.txt"))
    labels[0].unlink()
    boxed = next(f for f in labels[1:] if f.read_text().strip())
    boxed.write_text(boxed.read_text() + "0 0.004 0.5 0.01 0.2\n")
    return base


def _spell(base: Path, fmt: str, how: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The dataset's source path spelled as ``how``, after moving into the right folder."""
    inner = SOURCE[fmt]
    if how == "absolute":
        return str(base / fmt / inner) if inner else str(base / fmt)
    if how == "dot":
        monkeypatch.chdir(base / fmt)
        return inner or "."
    monkeypatch.chdir(base)
    folder = fmt if how == "relative" else f"link-{fmt}"
    return f"{folder}/{inner}" if inner else folder


_COUNTS = (
    "images",
    "background_images",
    "boxes",
    "clipped",
    "dropped_zero_area",
    "dropped_duplicates",
    "missing_label_files",
    "skipped_files",
)


def _summary(a: Annotations) -> dict[str, Any]:
    r: LoadReport = a.report
    return {
        "paths": [os.path.realpath(p) for p in a.paths.tolist()],
        "image_hw": a.image_hw_array.tolist(),
        "offsets": a.offsets.tolist(),
        "boxes": a.boxes,
        "labels": a.labels.tolist(),
        "flags": a.flags.tolist(),
        "class_names": a.class_names,
        "counts": {k: getattr(r, k) for k in _COUNTS},
    }


def _assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    np.testing.assert_array_equal(got.pop("boxes"), want["boxes"])
    assert got == {k: v for k, v in want.items() if k != "boxes"}


def _reference(base: Path, fmt: str) -> dict[str, Any]:
    inner = SOURCE[fmt]
    return _summary(READERS[fmt](base / fmt / inner if inner else base / fmt))


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_format_reader_same_result_for_every_spelling(
    datasets: Path, fmt: str, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The format's reader loads the same dataset from a relative, absolute, symlinked or '.' path."""
    want = _reference(datasets, fmt)
    assert want["counts"]["images"] > 0
    src = _spell(datasets, fmt, how, monkeypatch)
    _assert_same(_summary(READERS[fmt](src)), want)


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_load_annotations_same_result_for_every_spelling(
    datasets: Path, fmt: str, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load_annotations (format detected) loads the same dataset however the path is spelled."""
    want = _reference(datasets, fmt)
    src = _spell(datasets, fmt, how, monkeypatch)
    if fmt == "yolo" and how != "dot":
        src = str(Path(src).parent)  # the folder: auto-detection finds its data.yaml
    _assert_same(_summary(load_annotations(src, split="train")), want)


def test_yolo_reference_has_counts_to_compare(datasets: Path) -> None:
    """The YOLO matrix compares a missing label file and a clip, not only clean rows."""
    counts = _reference(datasets, "yolo")["counts"]
    assert counts["missing_label_files"] == 1 and counts["clipped"] == 1


def test_yolo_image_paths_are_absolute_with_the_root_resolved(
    datasets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a symlinked folder, YOLO image paths are the same absolute strings as without it."""
    monkeypatch.chdir(datasets)
    via_link = read_yolo("link-yolo/data.yaml", "train").paths.tolist()
    direct = read_yolo(datasets / "yolo" / "data.yaml", "train").paths.tolist()
    assert via_link == direct
    assert all(Path(p).is_absolute() for p in direct)


def test_yolo_written_dataset_loads_after_the_folder_is_moved(
    datasets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """write_yolo's data.yaml holds only paths relative to itself: a moved copy still loads."""
    src = read_yolo(datasets / "yolo" / "data.yaml", "train")
    write_annotations(src, tmp_path / "out", "yolo")
    text = (tmp_path / "out" / "data.yaml").read_text()
    assert "path:" not in text and str(tmp_path) not in text
    (tmp_path / "out").rename(tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    back = read_yolo("moved/data.yaml", "train")
    assert len(back) == len(src) and back.num_boxes == src.num_boxes
    np.testing.assert_array_equal(back.boxes, src.boxes)
