"""The box-size histogram: ``sqrt(w * h)`` per class on a log axis, stacked.

Takes plain arrays; :func:`yolo2retina.stats.save_box_size_histogram` computes them from
annotations and checks the output path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from yolo2retina.plots._matplotlib import MISSING_MATPLOTLIB, new_figure, save_png

__all__ = ["MISSING_MATPLOTLIB", "plot_box_size_histogram"]


def plot_box_size_histogram(
    sides: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    *,
    marks: Sequence[float] = (16.0, 32.0),
    title: str = "",
) -> Path:
    """Write a PNG histogram of box sizes, stacked by class, with a log x axis.

    Args:
        sides: ``(M,) float64`` box sizes ``sqrt(w * h)`` in pixels.
        labels: ``(M,) int64`` class of each box.
        class_names: index = label.
        path: the PNG to write (atomically; an existing file is replaced whole).
        marks: sizes (px) marked with a dashed line and ``"<size> px"``.
        title: the figure title.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ImportError: matplotlib is not installed (the message says how to install it).
    """
    fig = new_figure(figsize=(8, 4.5), dpi=100)
    ax = fig.add_subplot()
    if sides.size:
        lo, hi = max(float(sides.min()), 0.5), max(float(sides.max()), 1.0)
        bins = np.geomspace(lo, hi * 1.0001 if hi > lo else lo * 2, 40)
        data = [sides[labels == k] for k in range(len(class_names))]
        ax.hist(data, bins=bins.tolist(), stacked=True, label=list(class_names))
        ax.set_xscale("log")
        ticks = [2.0**k for k in range(0, 14) if lo / 2 <= 2.0**k <= hi * 2]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        for x in marks:
            ax.axvline(x, color="k", ls="--", lw=0.8)
            ax.text(x, ax.get_ylim()[1] * 0.95, f" {x:g} px", va="top", fontsize=8)
        if len(class_names) > 1:
            ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no boxes", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("box size sqrt(width x height) [px]")
    ax.set_ylabel("boxes")
    ax.set_title(title)
    fig.tight_layout()
    return save_png(fig, path)
