"""Ultralytics reads what the YOLO writer writes (issue 13 item 6).

Ultralytics is AGPL and never a dependency: these tests run only where it is importable
(e.g. ``PYTHONPATH=/tmp/ulib YOLO_CONFIG_DIR=/tmp/ucfg pytest -m interop``), in a
subprocess, on copies under tmp_path (Ultralytics writes ``.cache`` files beside labels).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_yolo_dataset
from tests.formats._helpers import make_coco
from yolo2retina.cli import main
from yolo2retina.formats import load_annotations, load_splits, write_annotations

_SCRIPT = """
import json, sys
from ultralytics.data.dataset import YOLODataset
from ultralytics.data.utils import check_det_dataset

data = check_det_dataset(sys.argv[1], autodownload=False)
out = {"names": list(data["names"].values())}
for k in ("train", "val"):
    ds = YOLODataset(img_path=data[k], data=data, task="detect", augment=False, imgsz=64)
    out[k] = [len(ds.labels), int(sum(len(lb["cls"]) for lb in ds.labels))]
print("RESULT " + json.dumps(out))
"""


def _ultralytics_reads(yaml_path: Path, tmp_path: Path) -> dict[str, object]:
    """Run Ultralytics' dataset check and dataset build on ``yaml_path`` in a subprocess."""
    if importlib.util.find_spec("ultralytics") is None:
        pytest.skip("ultralytics is not installed (an optional interop tool, never a dependency)")
    env = dict(os.environ)
    env.setdefault("YOLO_CONFIG_DIR", str(tmp_path / "ucfg"))
    env["YOLO_OFFLINE"] = "1"
    run = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(yaml_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stdout[-2000:] + run.stderr[-4000:]
    result: dict[str, object] = json.loads(lines[-1][len("RESULT ") :])
    return result


@pytest.mark.interop
def test_ultralytics_loads_a_converted_two_split_dataset_after_a_move(tmp_path: Path) -> None:
    """A YOLO dataset written from a two-split source passes Ultralytics' check_det_dataset
    and builds its train and val datasets with every label, after the folder is moved."""
    src = make_yolo_dataset(
        tmp_path / "src", {"a": ["0 0.5 0.5 0.2 0.4", "1 0.3 0.3 0.1 0.1"], "b": []}
    )
    make_yolo_dataset(tmp_path / "src", {"c": ["1 0.5 0.5 0.2 0.2"]}, split="val")
    src.write_text("train: images/train\nval: images/val\nnames: [a, b]\n")
    write_annotations(load_splits(src), tmp_path / "out", "yolo")
    shutil.move(tmp_path / "out", tmp_path / "moved")
    got = _ultralytics_reads(tmp_path / "moved" / "data.yaml", tmp_path)
    assert got == {"names": ["a", "b"], "train": [2, 2], "val": [1, 1]}


def test_single_split_source_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A one-split COCO file becomes a data.yaml whose val repeats train, with a comment
    saying so; convert prints the note; read_yolo loads both keys."""
    f = make_coco(tmp_path / "coco", 2)
    assert main(["convert", str(f), str(tmp_path / "out"), "--to", "yolo", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "note: the source has no 'val' split" in out
    text = (tmp_path / "out" / "data.yaml").read_text()
    assert text.startswith("# Written by yolo2retina") and "no 'val' split" in text
    doc = yaml.safe_load(text)
    assert doc["train"] == doc["val"] == "images/train"
    assert len(load_annotations(tmp_path / "out", split="val")) == 2


@pytest.mark.interop
def test_ultralytics_loads_a_single_split_conversion(tmp_path: Path) -> None:
    """Ultralytics (which needs train and val keys) loads a one-split conversion."""
    f = make_coco(tmp_path / "coco", 2)
    assert main(["convert", str(f), str(tmp_path / "out"), "--to", "yolo", "--no-progress"]) == 0
    got = _ultralytics_reads(tmp_path / "out" / "data.yaml", tmp_path)
    assert got == {"names": ["a", "b"], "train": [2, 1], "val": [2, 1]}


def test_single_split_note_in_the_writer_report(tmp_path: Path) -> None:
    """write_annotations' report carries the single-split note (no Ultralytics needed)."""
    ann = load_annotations(make_coco(tmp_path / "coco", 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = write_annotations(ann, tmp_path / "out", "yolo")
    assert any("no 'val' split" in r for r in report.remarks)
    assert "note: the source has no 'val' split" in str(report)
