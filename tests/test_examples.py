"""Every script in examples/ runs at its tiny size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import VARROA_YAML

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_custom_training_loop(tmp_path: Path) -> None:
    """The user-owned loop trains two steps with its own v2 augmentation."""
    out = _run("custom_training_loop.py", "--fast", cwd=tmp_path)
    assert "epoch 0 step 1: loss=" in out


def test_convert_formats(tmp_path: Path) -> None:
    """YOLO -> COCO -> VOC keeps every box."""
    out = _run("convert_formats.py", "--fast", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert "all equal" in out


def test_varroa_from_yolov8(tmp_path: Path) -> None:
    """The seed's workflow runs end to end on the real export (tiny settings)."""
    if not VARROA_YAML.is_file():
        pytest.skip(f"real data not found at {VARROA_YAML} (../shared/data is absent)")
    out = _run("varroa_from_yolov8.py", "--fast", "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert "boxes with an anchor at IoU >= 0.5" in out and "varroa" in out
    assert (tmp_path / "run" / "train" / "best.pt").is_file()
    assert len(list((tmp_path / "run" / "predictions").glob("*.png"))) == 1
    assert len(list((tmp_path / "run" / "samples").glob("*.png"))) == 2
