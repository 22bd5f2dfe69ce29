"""bench/predict_speed.py runs end to end at a CI size: the tables' rows and the JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "predict_speed.py"
HEAD = "| workload | engine | img/s | decode ms | to-tensor ms | model ms | merge ms | total ms |"
CONVERT_HEAD = "| image_to_tensor | 0.1 formula ms | now ms | speed-up | same bits |"


def run_bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def table(out: str, head: str) -> list[list[str]]:
    """The cells of each body row of the Markdown table under ``head``."""
    assert head in out, out
    body = out.split(head)[1].split("\n\n")[0].strip().splitlines()[1:]
    return [[c.strip() for c in row.strip().strip("|").split("|")] for row in body]


@pytest.mark.slow  # about a minute on 2 busy cores, most of it the ONNX export
def test_predict_speed_bench_at_ci_size(tmp_path: Path) -> None:
    """A generated 320x240 photo, 128-px tiles, a 64-px resnet18 input, one repeat: a row per
    workload and engine with positive step times that add up to the total, onnxruntime
    either timed or skipped with its reason, the image_to_tensor rows with equal bits, and
    the same numbers in the JSON (a relative --out in a folder that does not exist yet)."""
    argv = ["--photo", "generated", "--photo-size", "320x240", "--tile-size", "128"]
    argv += ["--img-size", "64", "--backbone", "resnet18_fpn", "--threads", "1"]
    argv += ["--repeats", "1", "--convert-seconds", "0.05", "--out", "out/speed.json"]
    proc = run_bench(*argv, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    rows = table(proc.stdout, HEAD)
    engines = ["torch eager fp32", "torch eager fp32 channels-last", "onnxruntime"]
    expected = [(w, e) for e in engines for w in ("128-px tile", "photo, tile=auto")]
    assert [(r[0], r[1]) for r in rows] == expected
    for r in rows:
        if r[1] == "onnxruntime" and r[2].startswith("not available"):
            continue
        ips, steps, total = float(r[2]), [float(v) for v in r[3:7]], float(r[7])
        assert ips > 0 and total > 0 and min(steps) >= 0 and steps[2] > 0  # the model ran
        assert sum(steps) == pytest.approx(total, rel=0.05, abs=0.3)
        assert ips == pytest.approx(1e3 / total, rel=0.01)
    conversions = table(proc.stdout, CONVERT_HEAD)
    assert [c[0] for c in conversions] == ["640x480 random", "1024x1024 random", "320x240 photo"]
    for c in conversions:
        assert float(c[1]) > 0 and float(c[2]) > 0 and c[3].endswith("x") and c[4] == "yes"

    report = json.loads((tmp_path / "out" / "speed.json").read_text())
    assert report["backbone"] == "resnet18_fpn" and report["weights"] is None
    assert report["machine"]["torch_threads"] == 1 and report["repeats"] == 1
    assert report["photo"] == {"source": "generated 320x240 JPEG", "size_wh": [320, 240]}
    assert [(r["workload"], r["engine"]) for r in report["rows"]] == expected
    timed = [r for r in report["rows"] if "skipped" not in r]
    assert len(timed) >= 4
    for r in timed:
        assert r["img_per_s"] > 0 and r["model_ms"] > 0
        assert {"decode_ms", "to_tensor_ms", "merge_ms", "total_ms"} <= set(r)
    photo_rows = [r for r in timed if r["workload"] == "photo, tile=auto"]
    assert all(r["tiles"] == 12 for r in photo_rows)  # 4 x 3 tiles of 128 px, 38 px overlap
    assert all(c["same_bits"] for c in report["image_to_tensor"])


def test_predict_speed_bench_refuses_bad_arguments(tmp_path: Path) -> None:
    """Sizes and counts are checked before anything is built; a missing photo is named."""
    for args, message in [
        (["--repeats", "0"], "--repeats must be >= 1"),
        (["--photo-size", "12MP"], "expected WIDTHxHEIGHT"),
        (["--backbone", "vgg"], "invalid choice"),
    ]:
        proc = run_bench(*args, cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    proc = run_bench("--photo", "missing.jpg", cwd=tmp_path)
    assert proc.returncode != 0 and "missing.jpg: no such file" in proc.stderr
