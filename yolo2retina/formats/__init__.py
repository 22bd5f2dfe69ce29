"""Dataset format readers (and writers) that all produce :class:`~yolo2retina.annotations.Annotations`."""

from __future__ import annotations

import os
from typing import Any

from yolo2retina.annotations import Annotations
from yolo2retina.errors import FormatNotFoundError

__all__ = ["load_annotations"]


def load_annotations(
    path: str | os.PathLike[str], format: str = "auto", split: str | None = None, **kwargs: Any
) -> Annotations:
    """Load annotations of any known format from ``path``."""
    if format not in ("auto", "yolo"):
        raise FormatNotFoundError(f"unknown format '{format}'. Available formats: yolo")
    from yolo2retina.formats.yolo import read_yolo

    return read_yolo(path, split if split is not None else "train", **kwargs)
