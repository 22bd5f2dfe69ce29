"""Tests for yolo2retina.plots._matplotlib: one "matplotlib is missing" message, no pyplot,
the user's backend left alone, and PNGs that are whole or absent."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from yolo2retina.annotations import AnnotationsBuilder
from yolo2retina.coco_metric import coco_map
from yolo2retina.errors import ConfigError
from yolo2retina.plots import (
    MISSING_MATPLOTLIB,
    plot_box_size_histogram,
    plot_confusion_matrix,
    plot_curves,
    plot_pr_curves,
)
from yolo2retina.stats import save_box_size_histogram
from yolo2retina.target import Target


def _metrics() -> Any:
    b = AnnotationsBuilder()
    b.add("0.jpg", (100, 100), [[10, 10, 40, 40]], [0])
    return coco_map(b.build(["mite"]), [Target([[10, 10, 40, 40]], [0], [0.9])])


#: Each plot, drawing into a folder: name -> function(folder) -> the files it wrote.
PLOTS: dict[str, Callable[[Path], list[Path]]] = {
    "curves": lambda d: [plot_curves([{"epoch": 1, "train_loss": 1.0}], d / "curves.png")],
    "pr": lambda d: plot_pr_curves(_metrics(), d),
    "confusion": lambda d: [plot_confusion_matrix(np.eye(2, dtype=int), ["a"], d / "cm.png")],
    "histogram": lambda d: [
        plot_box_size_histogram(np.array([4.0, 40.0]), np.array([0, 0]), ["a"], d / "h.png")
    ],
}


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_every_plot_gives_the_one_message_without_matplotlib(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each plot raises ImportError with the same text (curves.png had its own before)."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError) as e:
        PLOTS[name](tmp_path)
    assert str(e.value) == MISSING_MATPLOTLIB
    assert "pip install 'yolo2retina[plot]'" in MISSING_MATPLOTLIB


def test_the_histogram_of_stats_still_raises_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stats.save_box_size_histogram keeps its ConfigError, now with the one message."""
    b = AnnotationsBuilder()
    b.add("0.jpg", (100, 100), [[0, 0, 4, 4]], [0])
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ConfigError) as e:
        save_box_size_histogram(b.build(["a"]), tmp_path / "h.png")
    assert str(e.value) == MISSING_MATPLOTLIB


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_a_failed_write_keeps_the_old_png_and_leaves_no_temporary(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """savefig failing half-way keeps the earlier PNG whole (curves.png left its temporary
    file behind before)."""
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    first = PLOTS[name](tmp_path)
    before = {p: p.read_bytes() for p in first}

    def broken(self: Figure, fname: Any, **kw: Any) -> None:
        Path(fname).write_bytes(b"half a png")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        PLOTS[name](tmp_path)
    assert {p: p.read_bytes() for p in first} == before
    assert sorted(tmp_path.iterdir()) == sorted(first)


def test_plots_use_no_pyplot_and_keep_the_users_backend(tmp_path: Path) -> None:
    """Drawing every plot leaves matplotlib's backend as the user set it and never imports
    pyplot (stats called matplotlib.use("Agg") and pyplot before)."""
    pytest.importorskip("matplotlib")
    script = textwrap.dedent(
        """
        import sys
        import matplotlib
        matplotlib.use("svg")
        import numpy as np
        from yolo2retina.annotations import AnnotationsBuilder
        from yolo2retina.stats import save_box_size_histogram
        from yolo2retina.plots import plot_confusion_matrix, plot_curves

        b = AnnotationsBuilder()
        b.add("data/0.jpg", (100, 100), [[0, 0, 4, 4], [0, 0, 50, 50]], [0, 1])
        save_box_size_histogram(b.build(["a", "b"]), "out/h.png")
        plot_curves([{"epoch": 1, "train_loss": 1.0, "map": 0.5}], "out/c.png")
        plot_confusion_matrix(np.eye(2, dtype=int), ["a"], "out/m.png")
        print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
        """
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
    assert proc.stdout.split() == ["svg", "False"]
    for name in ("h.png", "c.png", "m.png"):
        assert (tmp_path / "out" / name).read_bytes()[:4] == b"\x89PNG"
