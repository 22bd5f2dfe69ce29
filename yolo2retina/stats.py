"""Dataset statistics: images, background images, boxes per class, box sizes, and a histogram."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import attrs
import numpy as np
import numpy.typing as npt

from yolo2retina import boxes as box_ops
from yolo2retina.annotations import Annotations
from yolo2retina.errors import ConfigError
from yolo2retina.outputs import check_output_file, dataset_folders
from yolo2retina.plots.histogram import MISSING_MATPLOTLIB, plot_box_size_histogram
from yolo2retina.target import FLAG_CROWD, FLAG_DIFFICULT

__all__ = ["DatasetStats", "box_sides", "dataset_stats", "save_box_size_histogram"]

#: Box side (square root of the area, px) below which a box counts as tiny / small.
TINY_PX = 16.0
SMALL_PX = 32.0  # COCO's "small" objects: area < 32 ** 2
_PERCENTILES = (0, 10, 50, 90, 100)


def _as_list(annotations: Annotations | Sequence[Annotations]) -> list[Annotations]:
    return [annotations] if isinstance(annotations, Annotations) else list(annotations)


def box_sides(annotations: Annotations | Sequence[Annotations]) -> npt.NDArray[np.float64]:
    """``(M,) float64`` box size as ``sqrt(width * height)`` in pixels, over all splits."""
    parts = [np.sqrt(box_ops.area(a.boxes)) for a in _as_list(annotations)]
    return np.concatenate(parts) if parts else np.zeros(0)


@attrs.frozen
class DatasetStats:
    """Counts and box-size percentiles of one or more splits.

    Attributes:
        images: number of images.
        background_images: images with no boxes.
        boxes: number of boxes.
        class_names: class names, index = label.
        boxes_per_class: ``boxes_per_class[k]`` boxes of class ``k``.
        images_per_class: images with at least one box of class ``k``.
        max_boxes_per_image: the most boxes on one image.
        side_percentiles: ``{p: px}`` of ``sqrt(w * h)`` for p in 0, 10, 50, 90, 100.
        width_median: median box width (px).
        height_median: median box height (px).
        tiny_boxes: boxes smaller than 16 px (``sqrt(w * h)``).
        small_boxes: boxes smaller than 32 px (COCO "small").
        ignored_boxes: crowd or difficult boxes.
    """

    images: int
    background_images: int
    boxes: int
    class_names: tuple[str, ...]
    boxes_per_class: tuple[int, ...]
    images_per_class: tuple[int, ...]
    max_boxes_per_image: int
    side_percentiles: dict[int, float]
    width_median: float
    height_median: float
    tiny_boxes: int
    small_boxes: int
    ignored_boxes: int

    def __str__(self) -> str:
        lines = [
            f"images:            {self.images} ({self.background_images} background)",
            f"boxes:             {self.boxes} (max {self.max_boxes_per_image} on one image, "
            f"{self.ignored_boxes} crowd/difficult)",
        ]
        if self.boxes:
            pct = ", ".join(f"p{p} {v:.1f}" for p, v in self.side_percentiles.items())
            lines += [
                f"box size px:       sqrt(w*h) {pct}",
                f"                   median w x h {self.width_median:.1f} x {self.height_median:.1f}",
                f"small boxes:       {self.tiny_boxes} < {TINY_PX:g} px, "
                f"{self.small_boxes} < {SMALL_PX:g} px",
            ]
        w = max([5, *(len(n) for n in self.class_names)])
        lines.append(f"{'class':<{w}}  {'boxes':>8}  {'images':>8}")
        for n, b, i in zip(
            self.class_names, self.boxes_per_class, self.images_per_class, strict=True
        ):
            lines.append(f"{n:<{w}}  {b:>8}  {i:>8}")
        return "\n".join(lines)


def dataset_stats(annotations: Annotations | Sequence[Annotations]) -> DatasetStats:
    """Statistics of one split, or of several splits together (same classes).

    Nothing is decoded: everything comes from the loaded annotations.
    """
    anns = _as_list(annotations)
    names = anns[0].class_names if anns else ()
    k = len(names)
    per_class = np.zeros(k, np.int64)
    img_class = np.zeros(k, np.int64)
    max_boxes = 0
    ignored = 0
    for a in anns:
        per_class += np.bincount(a.labels, minlength=k)[:k]
        if a.num_boxes:
            pairs = np.unique(a.image_index() * k + a.labels)
            img_class += np.bincount(pairs % k, minlength=k)[:k]
            max_boxes = max(max_boxes, int(a.boxes_per_image().max()))
            ignored += int(((a.flags & (FLAG_CROWD | FLAG_DIFFICULT)) != 0).sum())
    sides = box_sides(anns)
    wh = np.concatenate([box_ops.xyxy_to_xywh(a.boxes)[:, 2:] for a in anns]) if anns else None
    has = sides.size > 0 and wh is not None
    return DatasetStats(
        images=sum(len(a) for a in anns),
        background_images=sum(int((a.boxes_per_image() == 0).sum()) for a in anns),
        boxes=int(sides.size),
        class_names=tuple(names),
        boxes_per_class=tuple(int(v) for v in per_class),
        images_per_class=tuple(int(v) for v in img_class),
        max_boxes_per_image=max_boxes,
        side_percentiles=({p: float(np.percentile(sides, p)) for p in _PERCENTILES} if has else {}),
        width_median=float(np.median(wh[:, 0])) if has and wh is not None else 0.0,
        height_median=float(np.median(wh[:, 1])) if has and wh is not None else 0.0,
        tiny_boxes=int((sides < TINY_PX).sum()),
        small_boxes=int((sides < SMALL_PX).sum()),
        ignored_boxes=ignored,
    )


def save_box_size_histogram(
    annotations: Annotations | Sequence[Annotations],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Save a PNG histogram of box sizes (``sqrt(w * h)``, log scale) per class.

    Lines at 16 and 32 px make tiny objects (e.g. varroa mites) visible at a glance.
    The PNG is written under a temporary name and renamed, so an existing file is
    either kept or replaced whole. The drawing is
    :func:`yolo2retina.plots.histogram.plot_box_size_histogram`.

    Args:
        annotations: one or more splits.
        path: the PNG to write: not an existing file unless ``overwrite``, and not
            inside the dataset (its source folder or an image folder).
        title: figure title (default: box counts).
        overwrite: replace an existing file.

    Raises:
        DatasetError: ``path`` is a folder, lies inside the dataset, or exists and not
            ``overwrite`` (see ``docs/outputs.md``).
        ConfigError: matplotlib is not installed (``pip install 'yolo2retina[plot]'``).
    """
    anns = _as_list(annotations)
    out = check_output_file(path, inputs=dataset_folders(anns), overwrite=overwrite)
    sides = box_sides(anns)
    labels = np.concatenate([a.labels for a in anns]) if anns else np.zeros(0, np.int64)
    default_title = f"{sides.size} boxes, {int((sides < TINY_PX).sum())} under 16 px"
    try:
        return plot_box_size_histogram(
            sides,
            labels,
            anns[0].class_names if anns else (),
            out,
            marks=(TINY_PX, SMALL_PX),
            title=title or default_title,
        )
    except ImportError as e:
        if str(e) != MISSING_MATPLOTLIB:
            raise
        raise ConfigError(MISSING_MATPLOTLIB) from None  # a ConfigError, as it always was
