"""Temporary shim: moved to :mod:`yolo2retina.plots.boxes`."""

from __future__ import annotations

from yolo2retina.plots.boxes import class_color as class_color
from yolo2retina.plots.boxes import draw as draw

__all__ = ["class_color", "draw"]
