"""The example format plug-in (examples/custom_format_plugin) reads, writes and registers."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import write_image
from yolo2retina.formats import get_format, list_formats, register_format, unregister_format

PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "custom_format_plugin"


@pytest.fixture
def csv_adapter(monkeypatch: pytest.MonkeyPatch) -> object:
    """The plug-in's adapter, registered for the test (imported from the example folder)."""
    monkeypatch.syspath_prepend(str(PLUGIN))
    mod = importlib.import_module("yolo2retina_csv")
    installed = "csv" in list_formats()  # CI pip-installs the example
    if not installed:
        register_format(mod.ADAPTER)
    yield mod.ADAPTER
    if not installed:
        unregister_format("csv")
    sys.modules.pop("yolo2retina_csv", None)


def test_plugin_reads_converts_and_round_trips(tmp_path: Path, csv_adapter: object) -> None:
    """A CSV dataset loads through the registry, converts to COCO and back with equal boxes."""
    from yolo2retina.formats import load_annotations, write_annotations

    src = tmp_path / "csv"
    write_image(src / "a.jpg", (100, 80))
    write_image(src / "b.jpg", (100, 80))
    (src / "train.csv").write_text(
        "image,x1,y1,x2,y2,class\na.jpg,10,20,30.5,40,mite\na.jpg,1,1,5,5,dust\nb.jpg,0,0,100,80,mite\n"
    )
    assert get_format("csv") is csv_adapter
    ann = load_annotations(src, format="auto", split="train")
    assert ann.class_names == ("dust", "mite") and ann.num_boxes == 3
    np.testing.assert_allclose(ann.target(0).boxes[0], [10, 20, 30.5, 40])
    write_annotations(ann, tmp_path / "coco", "coco")
    back = load_annotations(tmp_path / "coco", format="coco", split="train")
    write_annotations(back, tmp_path / "csv2", "csv")
    again = load_annotations(tmp_path / "csv2", format="csv", split="train")
    np.testing.assert_allclose(again.boxes, ann.boxes, atol=1e-4)
    assert again.class_names == ann.class_names


def test_plugin_bad_row_names_file_and_line(tmp_path: Path, csv_adapter: object) -> None:
    """A bad CSV row is reported as file:line."""
    from yolo2retina.errors import DatasetError
    from yolo2retina.formats import load_annotations

    write_image(tmp_path / "a.jpg")
    (tmp_path / "train.csv").write_text("image,x1,y1,x2,y2,class\na.jpg,10,20,5,40,mite\n")
    with pytest.raises(DatasetError, match=r"train\.csv:2: need x1 < x2"):
        load_annotations(tmp_path, format="csv", split="train")
