"""Dataset formats: readers and writers that all produce or take :class:`~yolo2retina.annotations.Annotations`.

YOLO, VOC and COCO are built in; more formats plug in with :func:`register_format` or
the entry-point group ``yolo2retina.formats`` (see :mod:`yolo2retina.formats.registry`).

Example:
    >>> ann = load_annotations("data.yaml", split="val")  # doctest: +SKIP
    >>> write_annotations(ann, "out_coco", "coco", images="symlink")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from yolo2retina.annotations import Annotations
from yolo2retina.formats.coco import write_coco, write_coco_results
from yolo2retina.formats.registry import (
    ENTRY_POINT_GROUP,
    FormatAdapter,
    ImageMode,
    WriteReport,
    detect_format,
    get_format,
    list_formats,
    register_format,
    reload_plugins,
    unregister_format,
)
from yolo2retina.formats.voc import write_voc
from yolo2retina.formats.yolo import write_yolo

__all__ = [
    "ENTRY_POINT_GROUP",
    "FormatAdapter",
    "ImageMode",
    "WriteReport",
    "detect_format",
    "get_format",
    "list_formats",
    "load_annotations",
    "load_splits",
    "register_format",
    "reload_plugins",
    "unregister_format",
    "write_annotations",
    "write_coco",
    "write_coco_results",
    "write_voc",
    "write_yolo",
]


def load_annotations(
    path: str | os.PathLike[str],
    format: str = "auto",
    split: str | None = None,
    *,
    class_names: Sequence[str] | None = None,
    strict: bool = False,
    **kwargs: Any,
) -> Annotations:
    """Load one split of a dataset of any registered format.

    Args:
        path: a data.yaml, a dataset folder, a VOC folder or a COCO ``.json``.
        format: a registered format name, or ``"auto"`` to detect it from ``path``
            (:func:`detect_format`).
        split: ``"train"``, ``"val"``, ``"test"``... (``val`` also finds ``valid``);
            ``None`` loads a single-split path (a YOLO data.yaml then means ``train``).
        class_names: fix the class names and order.
        strict: turn clips and drops into errors.
        **kwargs: format options, e.g. COCO ``images_root=``, ``allow_outside_root=``,
            ``verify_images=``.

    Raises:
        FormatNotFoundError: unknown ``format``.
        DatasetError: unreadable, ambiguous or invalid dataset; the message lists problems.
    """
    p = Path(path)
    name = detect_format(p) if format == "auto" else format
    return get_format(name).read(p, split, class_names=class_names, strict=strict, **kwargs)


def load_splits(
    path: str | os.PathLike[str],
    format: str = "auto",
    splits: Sequence[str] | None = None,
    **kwargs: Any,
) -> dict[str, Annotations]:
    """Load every split of a dataset (or the given ones): ``{split: Annotations}``.

    A path that holds a single split is returned as ``{"train": ...}``.
    """
    p = Path(path)
    name = detect_format(p) if format == "auto" else format
    adapter = get_format(name)
    names: Sequence[str | None] = list(splits) if splits else list(adapter.splits(p)) or [None]
    return {s or "train": adapter.read(p, s, **kwargs) for s in names}


def write_annotations(
    annotations: Annotations | Mapping[str, Annotations],
    dst: str | os.PathLike[str],
    format: str,
    *,
    images: ImageMode = "copy",
    overwrite: bool = False,
    progress: bool = False,
) -> WriteReport:
    """Write one split (as ``train``) or a mapping of splits in a registered format.

    Args:
        annotations: what to write.
        dst: output folder.
        format: ``"yolo"``, ``"voc"``, ``"coco"`` or a plug-in's name.
        images: ``"copy"``, ``"symlink"`` or ``"hardlink"`` the images.
        overwrite: replace existing files; otherwise nothing is written when any exists.
        progress: show a progress bar.

    Returns:
        What was written, and in ``lost`` what the format could not hold.
    """
    splits = {"train": annotations} if isinstance(annotations, Annotations) else dict(annotations)
    report = get_format(format).write(
        splits, Path(dst), images=images, overwrite=overwrite, progress=progress
    )
    for line in report.lost:
        warnings.warn(f"{format} writer: lost {line}", UserWarning, stacklevel=2)
    return report
