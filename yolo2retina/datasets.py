"""Temporary shim: moved to :mod:`yolo2retina.synthetic` (issue 12).

The lead replaces this file with the package's alias for moved modules.
"""

from __future__ import annotations

from yolo2retina.synthetic import synthetic_sticky_board as synthetic_sticky_board

__all__ = ["synthetic_sticky_board"]
