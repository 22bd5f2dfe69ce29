"""Tests for yolo2retina.plots.boxes: boxes in class colours, labels, a count caption, PNG output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from yolo2retina.errors import ConfigError
from yolo2retina.plots.boxes import _caption, class_color, draw
from yolo2retina.target import Target


def test_draw_puts_boxes_in_class_colours_and_saves_png(tmp_path: Path) -> None:
    """Box outlines are drawn in their class colour at the box position, below a caption bar."""
    img = Image.new("RGB", (200, 120), (0, 0, 0))
    t = Target.from_xyxy([[20, 40, 60, 80], [120, 50, 180, 110]], [0, 1], [0.9, 0.4])
    out = draw(img, t, ["varroa", "bee"], tmp_path / "sub" / "d.png", show_labels=False)
    bar = out.height - 120
    assert out.width == 200 and bar > 0
    a = np.asarray(out)
    assert tuple(a[bar + 60, 20]) == class_color(0)  # left edge of box 0
    assert tuple(a[bar + 109, 150]) == class_color(1)  # bottom edge of box 1 (y2 = 110)
    assert tuple(a[bar + 60, 40]) == (0, 0, 0)  # inside box 0 stays untouched
    assert a[:bar].max() > 200  # caption text is white on the dark bar
    saved = Image.open(tmp_path / "sub" / "d.png")
    assert saved.format == "PNG" and saved.size == out.size
    assert class_color(0) != class_color(1)


def test_draw_caption_counts_per_class(tmp_path: Path) -> None:
    """The caption counts detections per class; labels print above the boxes."""
    t = Target.from_xyxy([[5, 30, 20, 45]] * 3, [1, 1, 0], [0.9, 0.8, 0.7])
    assert _caption(t, ["a", "b", "c"]) == "3 detections  |  a: 1  b: 2  c: 0"
    assert _caption(Target.empty(), ["a"]) == "0 detections  |  a: 0"
    plain = draw(Image.new("RGB", (100, 80)), t, ["a", "b", "c"], show_labels=False)
    labelled = draw(Image.new("RGB", (100, 80)), t, ["a", "b", "c"])
    assert not np.array_equal(np.asarray(plain), np.asarray(labelled))


def test_draw_accepts_paths_and_tensors(tmp_path: Path) -> None:
    """A path (decoded upright) and a float tensor give the same drawing as the PIL image."""
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    p = tmp_path / "x.png"
    img.save(p)
    t = Target.from_xyxy([[10, 10, 30, 30]], [0], [0.5])
    ref = np.asarray(draw(img, t, ["a"]))
    tensor = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255
    assert np.array_equal(np.asarray(draw(p, t, ["a"])), ref)
    assert np.array_equal(np.asarray(draw(tensor, t, ["a"])), ref)


def test_draw_rejects_unknown_labels() -> None:
    """A label without a class name is a ConfigError."""
    with pytest.raises(ConfigError, match="no class name"):
        draw(Image.new("RGB", (10, 10)), Target.from_xyxy([[0, 0, 5, 5]], [3]), ["a"])


def test_draw_rejects_other_inputs() -> None:
    """Something that is neither a path, a PIL image nor a tensor is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="got list"):
        draw([[0, 0]], Target.empty(), ["a"])  # type: ignore[arg-type]


def test_drawing_a_photo_loads_no_torch(tmp_path: Path) -> None:
    """Drawing on a path or a PIL image never imports torch (draw.py imported it at the top)."""
    Image.new("RGB", (40, 30)).save(tmp_path / "x.png")
    script = (
        "import sys\n"
        "from PIL import Image\n"
        "from yolo2retina.plots import draw\n"
        "from yolo2retina.target import Target\n"
        "t = Target.from_xyxy([[2, 2, 20, 20]], [0], [0.5])\n"
        "draw('x.png', t, ['a'], 'out/d.png')\n"
        "draw(Image.open('x.png'), t, ['a'])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'torchvision'}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "[]"
    assert Image.open(tmp_path / "out" / "d.png").format == "PNG"
