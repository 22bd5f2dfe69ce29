"""Temporary shim: moved to :mod:`yolo2retina.plots.curves`."""

from __future__ import annotations

from yolo2retina.plots.curves import MISSING_MATPLOTLIB as MISSING_MATPLOTLIB
from yolo2retina.plots.curves import plot_curves as plot_curves
from yolo2retina.plots.curves import read_metrics as read_metrics

__all__ = ["MISSING_MATPLOTLIB", "plot_curves", "read_metrics"]
