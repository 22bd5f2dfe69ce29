"""``curves.png``: training losses and validation metrics per epoch.

Needs matplotlib, which is the optional ``plot`` extra (``pip install 'yolo2retina[plot]'``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from yolo2retina.plots._matplotlib import MISSING_MATPLOTLIB, new_figure, save_png

__all__ = ["MISSING_MATPLOTLIB", "plot_curves", "read_metrics"]

_LOSS_PANEL = ("train_loss", "train_classification", "train_bbox_regression", "val_loss")
_METRIC_PANEL = ("map50", "map", "map75")


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file, one dict per line, in order."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                records.append(json.loads(line))
    return records


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for rec in history:
        if rec.get(key) is not None:
            xs.append(int(rec["epoch"]))
            ys.append(float(rec[key]))
    return xs, ys


def plot_curves(
    history: Sequence[Mapping[str, Any]] | str | os.PathLike[str],
    path: str | os.PathLike[str],
) -> Path:
    """Draw losses (left) and mAP (right) against the epoch, and write a PNG atomically.

    Args:
        history: the per-epoch records of :func:`yolo2retina.train.fit` (``FitResult.history``)
            or the path of a ``metrics.jsonl``.
        path: where to write the PNG.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ImportError: matplotlib is not installed (the message says how to install it).
    """
    fig = new_figure(figsize=(10, 4), dpi=100)
    from matplotlib.ticker import MaxNLocator  # installed: new_figure checked

    if isinstance(history, (str, os.PathLike)):
        history = read_metrics(history)
    ax_loss, ax_map = fig.subplots(1, 2)
    for key in _LOSS_PANEL:
        xs, ys = _series(history, key)
        if xs:
            ax_loss.plot(xs, ys, marker="o", markersize=3, label=key)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="losses")
    for key in _METRIC_PANEL:
        xs, ys = _series(history, key)
        if xs:
            ax_map.plot(xs, ys, marker="o", markersize=3, label=key)
    ax_map.set(xlabel="epoch", ylabel="mAP", title="validation", ylim=(0.0, 1.0))
    for ax in (ax_loss, ax_map):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.92, wspace=0.2)
    return save_png(fig, path)
