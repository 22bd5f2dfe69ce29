"""bench/read_formats.py runs end to end at a tiny size: every table, yolo2retina's rows
read, the box counts agree, and the load cache is written and used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "read_formats.py"


@pytest.mark.slow  # about half a minute: every read runs in its own interpreter
def test_read_formats_bench_at_ci_size(tmp_path: Path) -> None:
    argv = [sys.executable, str(BENCH), "--coco-boxes", "2000", "--coco-images", "200"]
    argv += ["--small-images", "12", "--repeat", "1", "--cache-images", "12"]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for data in ("COCO 0k img / 2k box", "YOLO 12 img", "VOC 12 img", "COCO 12 img"):
        row = next(
            line for line in out.splitlines() if line.startswith(f"| {data} | yolo2retina |")
        )
        assert "error" not in row, row
    assert "| COCO 12 img | yolo2retina-noverify |" in out
    assert "| data | yolo2retina read | peer | time ratio |" in out  # the ratio table
    assert "box counts agree" in out
    cache = [line for line in out.splitlines() if line.startswith("| YOLO 12 img | ")][-1]
    assert "no cache entry" not in cache and "error" not in cache, cache
