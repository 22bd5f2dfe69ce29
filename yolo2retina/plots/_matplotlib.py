"""The one place that imports matplotlib, and says how to install it when it is missing.

Figures are built with matplotlib's object API (:class:`matplotlib.figure.Figure`): no
pyplot state, no ``matplotlib.use()``, no GUI backend, so plotting never changes the
backend of the user's process and is safe in scripts, notebooks and worker threads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolo2retina.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["MISSING_MATPLOTLIB", "new_figure", "save_png"]

#: The message of the ImportError raised when matplotlib is not installed.
MISSING_MATPLOTLIB = (
    "plots need matplotlib: pip install 'yolo2retina[plot]' (or pip install matplotlib)"
)


def new_figure(**kwargs: Any) -> Figure:
    """A new :class:`matplotlib.figure.Figure` (``figsize=``, ``dpi=``, ...).

    Raises:
        ImportError: matplotlib is not installed; the message is :data:`MISSING_MATPLOTLIB`.
    """
    try:
        import matplotlib  # noqa: F401  # a missing parent package also means "not installed"
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(MISSING_MATPLOTLIB) from None
    return Figure(**kwargs)


def save_png(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` as a PNG atomically (never a half-written file); returns the path."""
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    return out
