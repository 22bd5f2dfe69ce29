"""Tests for yolo2retina/convert.py: a whole dataset, every split, to another format."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from tests.conftest import make_yolo_dataset
from yolo2retina.convert import ConvertReport, convert_dataset
from yolo2retina.errors import DatasetError
from yolo2retina.formats import load_annotations


def test_relative_paths_every_split_and_a_second_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`convert_dataset("ds/data.yaml", "out", "coco")` writes both splits, reports what was
    read per split; a second run is refused until overwrite=True."""
    make_yolo_dataset(tmp_path / "ds", {"a": ["0 0.5 0.5 0.2 0.4", "1 0.3 0.3 0.1 0.1"], "b": []})
    monkeypatch.chdir(tmp_path)
    report = convert_dataset("ds/data.yaml", "out", "coco")
    assert isinstance(report, ConvertReport)
    assert (report.source, report.source_format) == ("ds/data.yaml", "yolo")
    assert sorted(report.loaded) == ["train", "val"] and report.notes == []
    rows = [line.split() for line in report.table().splitlines()[2:]]
    assert [r[:4] for r in rows] == [["train", "2", "1", "2"], ["val", "2", "1", "2"]]
    back = load_annotations("out", split="val")
    assert len(back) == 2 and back.num_boxes == 2
    with pytest.raises(DatasetError, match="already exists"):
        convert_dataset("ds/data.yaml", "out", "coco")
    assert convert_dataset("ds/data.yaml", "out", "coco", overwrite=True).source == "ds/data.yaml"


def test_clipped_boxes_are_notes(tmp_path: Path) -> None:
    """What the reader clipped is in the report's notes (file:line), once."""
    y = make_yolo_dataset(tmp_path / "ds", {"a": ["0 0.5 0.5 0.2 1.01"]})
    report = convert_dataset(y, tmp_path / "out", "voc")
    assert len(report.notes) == 1 and "a.txt:1" in report.notes[0], report.notes
    assert report.loaded["train"].clipped == 1


def test_the_input_is_path_and_options_are_keywords() -> None:
    """The input dataset parameter is `path` (was `src`); every option after `to` is a keyword."""
    params = inspect.signature(convert_dataset).parameters
    assert list(params)[:3] == ["path", "dst", "to"]
    rest = [p.kind for n, p in params.items() if n not in ("path", "dst", "to", "options")]
    assert set(rest) == {inspect.Parameter.KEYWORD_ONLY}
