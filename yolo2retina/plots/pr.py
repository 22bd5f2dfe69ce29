"""Evaluation plots: a precision-recall curve per class and the confusion matrix.

Needs matplotlib, the optional ``plot`` extra (``pip install 'yolo2retina[plot]'``).
The curves read a :class:`~yolo2retina.coco_metric.Metrics`; the confusion matrix takes
plain counts. Nothing here imports the evaluation driver (:mod:`yolo2retina.evaluation`),
which imports this module.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from yolo2retina.coco_metric import IOU_THRESHOLDS, RECALL_THRESHOLDS
from yolo2retina.plots._matplotlib import MISSING_MATPLOTLIB, new_figure, save_png

if TYPE_CHECKING:
    from yolo2retina.coco_metric import Metrics

__all__ = ["MISSING_MATPLOTLIB", "plot_confusion_matrix", "plot_pr_curves", "pr_curve_paths"]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "class"


def _iou_index(iou_threshold: float) -> int:
    hits = np.flatnonzero(np.isclose(IOU_THRESHOLDS, iou_threshold))
    if hits.size == 0:
        raise ValueError(
            f"iou_threshold {iou_threshold} is not one of {np.round(IOU_THRESHOLDS, 2).tolist()}"
        )
    return int(hits[0])


def pr_curve_paths(
    metrics: Metrics, out_dir: str | os.PathLike[str], *, iou_threshold: float = 0.5
) -> dict[int, Path]:
    """``{class index: out_dir / "pr_<index>_<name>.png"}`` for the classes
    :func:`plot_pr_curves` draws (those with ground truth); nothing is written.

    Raises:
        ValueError: ``iou_threshold`` is not one of COCO's thresholds.
    """
    t = _iou_index(iou_threshold)
    out = Path(out_dir)
    return {
        k: out / f"pr_{k:02d}_{_safe(c.name)}.png"
        for k, c in enumerate(metrics.per_class)
        if not (metrics.precision[t, :, k, 0, -1] < 0).any()
    }


def plot_pr_curves(
    metrics: Metrics,
    out_dir: str | os.PathLike[str],
    *,
    iou_threshold: float = 0.5,
) -> list[Path]:
    """Write one precision-recall curve PNG per class, ``pr_<index>_<name>.png``.

    The curve is COCO's interpolated precision at the 101 recall thresholds (area all,
    100 detections per image), at one IoU threshold. Classes without ground truth
    (AP -1) get no file.

    Args:
        metrics: the result of :func:`~yolo2retina.coco_metric.coco_map`.
        out_dir: folder for the PNGs (created when missing).
        iou_threshold: one of ``0.50, 0.55, ..., 0.95``.

    Returns:
        The files written.

    Raises:
        ValueError: ``iou_threshold`` is not one of COCO's thresholds.
        ImportError: matplotlib is not installed (the message says how to install it).
    """
    t = _iou_index(iou_threshold)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written = []
    for k, path in pr_curve_paths(metrics, out_dir, iou_threshold=iou_threshold).items():
        c = metrics.per_class[k]
        precision = metrics.precision[t, :, k, 0, -1]
        fig = new_figure(figsize=(5, 4.5), dpi=100)
        ax = fig.add_subplot()
        ap = float(precision.mean())
        ax.plot(RECALL_THRESHOLDS, precision, drawstyle="steps-post", color="tab:blue")
        ax.fill_between(RECALL_THRESHOLDS, precision, step="post", alpha=0.15, color="tab:blue")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision (interpolated)")
        ax.set_title(
            f"{c.name}: AP@{IOU_THRESHOLDS[t]:.2f} = {ap:.3f}  ({c.num_gt} gt, "
            f"{c.num_predictions} predictions)",
            fontsize=9,
        )
        ax.grid(alpha=0.3)
        fig.tight_layout()
        save_png(fig, path)
        written.append(path)
    return written


def plot_confusion_matrix(
    matrix: npt.NDArray[np.integer],
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    *,
    normalize: bool = False,
    title: str = "confusion matrix at IoU 0.5",
) -> Path:
    """Write the confusion matrix of :func:`~yolo2retina.confusion.confusion_matrix` as a PNG.

    Rows are the true class, columns the predicted class; the last row and column are
    "background": false positives (row) and missed objects (column).

    Args:
        matrix: ``(K + 1, K + 1)`` counts, ``matrix[true, predicted]``.
        class_names: the K class names.
        path: the PNG to write.
        normalize: show each row as fractions of its total instead of counts.
        title: the figure title.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: the matrix does not have shape ``(K + 1, K + 1)``.
        ImportError: matplotlib is not installed (the message says how to install it).
    """
    m = np.asarray(matrix)
    k = len(class_names)
    if m.shape != (k + 1, k + 1):
        raise ValueError(f"confusion matrix has shape {m.shape}, expected {(k + 1, k + 1)}")
    labels = [*class_names, "background"]
    shown = m.astype(np.float64)
    if normalize:
        totals = shown.sum(axis=1, keepdims=True)
        shown = np.divide(shown, totals, out=np.zeros_like(shown), where=totals > 0)
    size = max(4.0, 0.6 * (k + 1) + 2.5)
    fig = new_figure(figsize=(size, size * 0.9), dpi=100)
    ax = fig.add_subplot()
    im = ax.imshow(shown, cmap="Blues", vmin=0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k + 1), labels, rotation=45, ha="right")
    ax.set_yticks(range(k + 1), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    if k + 1 <= 30:  # numbers stay readable
        peak = shown.max() if shown.size else 0.0
        for i in range(k + 1):
            for j in range(k + 1):
                v = shown[i, j]
                text = f"{v:.2f}" if normalize else str(int(m[i, j]))
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if peak and v > peak / 2 else "black",
                )
    fig.tight_layout()
    return save_png(fig, path)
