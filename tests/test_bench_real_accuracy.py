"""bench/real_accuracy.py runs end to end at a CI size: the table's and the JSON's shape."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import VARROA_YAML

BENCH = Path(__file__).resolve().parents[1] / "bench" / "real_accuracy.py"


def test_real_accuracy_bench_at_ci_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny budget on 4 train and 2 val tiles at 128 px: a summary row per recipe, a row
    per validation, the JSON with the same recipes and their checkpoints, and YOLOv8n
    skipped with its reason where ultralytics is not installed. ../shared is not written."""
    if not VARROA_YAML.is_file():
        pytest.skip(f"real data not found at {VARROA_YAML} (../shared/data is absent)")
    monkeypatch.chdir(tmp_path)
    has_yolo = importlib.util.find_spec("ultralytics") is not None
    recipes = ["baseline", "crop"] + ([] if has_yolo else ["yolov8n"])
    shared_before = sorted(p.name for p in VARROA_YAML.parent.rglob("*"))
    argv = [sys.executable, str(BENCH), "--minutes", "0.05", "--max-train-images", "4"]
    argv += ["--max-val-images", "2", "--img-size", "128", "--torch-threads", "1"]
    argv += ["--probe-steps", "1", "--recipes", ",".join(recipes), "--out", "out/r.json"]
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout

    head = "| recipe | img | epochs | s/step | train min | val mAP@0.5 | mAP | recall@0.5 |"
    assert head in out and "| recipe | epoch | train min | budget |" in out
    summary = out.split(head)[1].split("\n\n")[0].strip().splitlines()[1:]
    assert [row.split("|")[1].strip() for row in summary] == recipes
    for row in summary[:2]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == "128" and int(cells[2]) >= 1
        for value in cells[5:8]:
            assert 0.0 <= float(value) <= 1.0
    if not has_yolo:
        assert "skipped: ultralytics is not importable" in summary[-1]

    report = json.loads((tmp_path / "out" / "r.json").read_text())
    assert report["images"] == {"train": 4, "val": 2}
    assert report["minutes"] == 0.05
    assert {"cpu_count", "torch_threads", "torch"} <= set(report["machine"])
    assert report["machine"]["torch_threads"] == 1
    assert list(report["recipes"]) == ["baseline", "crop"]
    baseline, crop = report["recipes"]["baseline"], report["recipes"]["crop"]
    assert baseline["hflip_only"] and baseline["settings"]["optimizer"] == "sgd"
    assert baseline["settings"]["augment"] == "none"
    assert crop["settings"]["augment"] == "default" and crop["settings"]["crop_size"] == 64
    for r in (baseline, crop):
        assert r["epochs"] >= 1 and r["seconds_per_step"] > 0
        checkpoints = r["checkpoints"]
        assert checkpoints and checkpoints[-1] == r["final"]
        assert checkpoints[-1]["epoch"] == r["epochs"]
        for c in checkpoints:
            assert {"epoch", "train_seconds", "budget_fraction", "map50", "map", "recall50"} <= set(
                c
            )
            assert 0.0 <= c["map50"] <= 1.0 and 0.0 <= c["recall50"] <= 1.0
    if not has_yolo:
        assert "ultralytics" in report["skipped"]["yolov8n"]
    assert sorted(p.name for p in VARROA_YAML.parent.rglob("*")) == shared_before


def test_real_accuracy_bench_refuses_unknown_recipes() -> None:
    """--recipes names are checked before anything runs."""
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--recipes", "baseline,fastest"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "unknown recipe(s) fastest" in proc.stderr and "torchvision-loss" in proc.stderr


def _report(recipe: str, map50: float, threads: int) -> dict[str, object]:
    """A run's JSON as the bench writes it, one recipe with one validation."""
    final = {
        "epoch": 3,
        "train_seconds": 120.0,
        "budget_fraction": 1.0,
        "map50": map50,
        "map": map50 / 3,
        "recall50": 0.5,
    }
    result = {
        "img_size": 1024,
        "epochs": 3,
        "seconds_per_step": 6.5,
        "train_seconds": 120.0,
        "checkpoints": [final],
        "final": final,
    }
    machine = {"cpu_count": 2, "torch_threads": threads, "torch": "2.x"}
    head = {"data": "d", "images": {"train": 4, "val": 2}, "minutes": 2.0, "machine": machine}
    return head | {"wall_seconds": 130.0, "recipes": {recipe: result}, "skipped": {}}


def test_combine_merges_runs_into_one_table_and_refuses_a_repeated_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--combine reads runs made in parallel processes (relative paths), prints one table with
    each recipe's row in file order, and writes their union with each run's machine; a recipe
    in two files exits 1 naming the second file. Nothing is trained."""
    monkeypatch.chdir(tmp_path)
    Path("a.json").write_text(json.dumps(_report("crop", 0.25, 1)))
    Path("b.json").write_text(json.dumps(_report("default", 0.5, 2)))
    argv = [sys.executable, str(BENCH), "--combine", "a.json", "b.json", "--out", "all.json"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [r for r in proc.stdout.splitlines() if r.startswith(("| crop |", "| default |"))]
    assert [r.split("|")[1].strip() for r in rows] == ["crop", "default", "crop", "default"]
    assert "| 0.250 |" in rows[0] and "| 0.500 |" in rows[1]
    merged = json.loads(Path("all.json").read_text())
    assert list(merged["recipes"]) == ["crop", "default"]
    assert merged["recipes"]["default"]["machine"]["torch_threads"] == 2
    assert [c["file"] for c in merged["combined"]] == ["a.json", "b.json"]

    Path("c.json").write_text(json.dumps(_report("crop", 0.3, 1)))
    argv = [sys.executable, str(BENCH), "--combine", "a.json", "c.json", "--out", "x.json"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert (
        proc.returncode == 1 and "c.json: recipe 'crop' is also in an earlier file" in proc.stderr
    )
    assert not Path("x.json").exists()
