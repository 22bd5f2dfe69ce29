"""Tests for yolo2retina/check.py: every split loaded, every problem collected."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from tests.conftest import make_yolo_dataset
from tests.formats._helpers import make_coco
from yolo2retina.check import CheckResult, SplitCheck, check_dataset


def test_clean_dataset_from_a_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative data.yaml gives one row per split, no errors, and the path as given."""
    make_yolo_dataset(tmp_path / "ds", {"a": ["0 0.5 0.5 0.2 0.4"], "b": []})
    monkeypatch.chdir(tmp_path)
    result = check_dataset("ds/data.yaml")
    assert isinstance(result, CheckResult) and result.ok and result.num_errors == 0
    assert (result.source, result.format) == ("ds/data.yaml", "yolo")
    assert [s.split for s in result.splits] == ["train", "val"]
    train = result.splits[0]
    assert (train.images, train.boxes, train.background_images) == (2, 1, 1)
    assert result.table().splitlines()[0].split() == [
        "split", "images", "background", "boxes", "clipped", "dropped", "skipped", "errors"
    ]  # fmt: skip
    monkeypatch.chdir(tmp_path / "ds")
    assert [s.images for s in check_dataset(".").splits] == [2, 2]  # `.` is the dataset


def test_every_problem_of_a_split_is_collected(tmp_path: Path) -> None:
    """A bad split lists every file:line problem; the other splits still load."""
    y = make_yolo_dataset(
        tmp_path / "bad",
        {"a": ["0 0.5 0.5 0.2", "7 0.5 0.5 0.1 0.1"], "b": ["0 0.5 0.5 0.2 0.2 0.9"]},
    )
    result = check_dataset(y, splits=["train"])
    assert not result.ok and result.num_errors == 3
    label = tmp_path / "bad" / "labels" / "train"
    errors = result.splits[0].errors
    assert any(e.startswith(f"{label / 'a.txt'}:1: expected 5 values") for e in errors)
    assert any(e.startswith(f"{label / 'a.txt'}:2: class id 7") for e in errors)


def test_clipped_boxes_are_warnings_or_errors_with_strict(tmp_path: Path) -> None:
    """A box slightly outside the image is clipped (a warning line) or, strict, an error."""
    f = make_coco(
        tmp_path, 1, [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [60, 1, 4.5, 4]}]
    )
    loose = check_dataset(f)
    assert loose.ok and loose.splits[0].clipped == 1 and loose.splits[0].warnings
    assert not check_dataset(f, strict=True).ok


def test_options_after_the_path_are_keyword_only(tmp_path: Path) -> None:
    """check_dataset(path, "yolo", ["train"]) used to bind format and splits by position;
    every option is now a keyword, so a positional one is a TypeError."""
    y = make_yolo_dataset(tmp_path / "ds", {"a": ["0 0.5 0.5 0.2 0.2"]})
    with pytest.raises(TypeError):
        check_dataset(y, "yolo")  # type: ignore[call-arg]
    params = inspect.signature(check_dataset).parameters
    assert next(iter(params)) == "path"
    kinds = {n: p.kind for n, p in params.items() if n not in ("path", "options")}
    assert set(kinds.values()) == {inspect.Parameter.KEYWORD_ONLY}, kinds


def test_convert_still_exports_the_check_names() -> None:
    """Code written against 0.1 imports check_dataset and its types from convert."""
    import yolo2retina.check
    import yolo2retina.convert

    for name in ("check_dataset", "CheckResult", "SplitCheck"):
        assert getattr(yolo2retina.convert, name) is getattr(yolo2retina.check, name)
    assert SplitCheck("val").errors == []


def test_check_dataset_passes_cache_only_to_readers_that_have_one(tmp_path: Path) -> None:
    """``check_dataset(voc, cache=False)`` works (VOC has no load cache: the option is not
    passed on, where it used to be a TypeError from read_voc)."""
    from yolo2retina.formats import load_annotations, write_annotations
    from yolo2retina.synthetic import synthetic_sticky_board

    board = synthetic_sticky_board(tmp_path / "board", n_images=4, image_size=64)
    ann = load_annotations(board, split="train")
    write_annotations({"train": ann}, tmp_path / "voc", "voc")
    result = check_dataset(tmp_path / "voc", cache=False)
    assert result.format == "voc" and not any(s.errors for s in result.splits)
