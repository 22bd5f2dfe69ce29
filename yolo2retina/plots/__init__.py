"""Every figure the package draws, in one place.

* :mod:`~yolo2retina.plots.boxes`: detections drawn on a photo (Pillow);
* :mod:`~yolo2retina.plots.curves`: ``curves.png``, losses and mAP per epoch;
* :mod:`~yolo2retina.plots.pr`: precision-recall curves and the confusion matrix;
* :mod:`~yolo2retina.plots.histogram`: the box-size histogram of ``yolo2retina stats``.

All but :mod:`~yolo2retina.plots.boxes` need matplotlib, the optional ``plot`` extra
(``pip install 'yolo2retina[plot]'``); without it they raise :class:`ImportError` with
:data:`MISSING_MATPLOTLIB`. They use matplotlib's object API only (no pyplot, no
``matplotlib.use()``), and write every PNG atomically.
"""

from __future__ import annotations

from yolo2retina.plots._matplotlib import MISSING_MATPLOTLIB
from yolo2retina.plots.boxes import class_color, draw
from yolo2retina.plots.curves import plot_curves, read_metrics
from yolo2retina.plots.histogram import plot_box_size_histogram
from yolo2retina.plots.pr import plot_confusion_matrix, plot_pr_curves, pr_curve_paths

__all__ = [
    "MISSING_MATPLOTLIB",
    "class_color",
    "draw",
    "plot_box_size_histogram",
    "plot_confusion_matrix",
    "plot_curves",
    "plot_pr_curves",
    "pr_curve_paths",
    "read_metrics",
]
