"""Tests for yolo2retina.plots.curves: ``curves.png`` from records or a ``metrics.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from yolo2retina.plots.curves import plot_curves, read_metrics

RECORDS = [
    {"epoch": 1, "train_loss": 2.0, "val_loss": 2.5},
    {"epoch": 2, "train_loss": 1.5, "val_loss": 2.0, "map50": 0.4, "map": 0.2},
]


def test_read_metrics_skips_blank_lines(tmp_path: Path) -> None:
    """One record per non-blank line, in order."""
    p = tmp_path / "metrics.jsonl"
    p.write_text(json.dumps(RECORDS[0]) + "\n\n" + json.dumps(RECORDS[1]) + "\n")
    assert read_metrics(p) == RECORDS


def test_curves_from_records_and_from_a_file_are_the_same_png(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative metrics.jsonl path draws the same figure as the records it holds."""
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    Path("metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    a = plot_curves(RECORDS, "a.png")
    b = plot_curves("metrics.jsonl", "b.png")
    with Image.open(a) as ia, Image.open(b) as ib:
        assert ia.format == "PNG" and ia.size == (1000, 400)
        assert ia.tobytes() == ib.tobytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "metrics.jsonl"]
