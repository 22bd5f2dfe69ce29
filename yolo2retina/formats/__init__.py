"""Dataset formats: readers and writers that all produce or take :class:`~yolo2retina.annotations.Annotations`.

YOLO, VOC and COCO are built in (registered when this package is imported); more formats
plug in with :func:`register_format` or the entry-point group ``yolo2retina.formats``
(loaded on the first lookup; see :mod:`yolo2retina.formats.registry`). The adapter
protocol and its values are in :mod:`yolo2retina.formats.base`.

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
from yolo2retina.formats.base import FormatAdapter, ImageMode, WriteReport
from yolo2retina.formats.cache import accepts_cache
from yolo2retina.formats.coco_writer import write_coco, write_coco_results
from yolo2retina.formats.registry import (
    ENTRY_POINT_GROUP,
    detect_format,
    get_format,
    list_formats,
    register_format,
    reload_plugins,
    unregister_format,
)
from yolo2retina.formats.voc_writer import write_voc
from yolo2retina.formats.yolo_writer import write_yolo

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
    *,
    format: str = "auto",
    split: str | None = None,
    class_names: Sequence[str] | None = None,
    strict: bool = False,
    cache: bool = True,
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
        cache: use the load cache (:mod:`~yolo2retina.formats.cache`) of the formats that
            have one (YOLO, COCO); ``False`` neither reads nor writes it. Formats without a
            cache ignore it.
        **kwargs: format options, e.g. COCO ``images_root=``, ``allow_outside_root=``,
            ``verify_images=``.

    Raises:
        FormatNotFoundError: unknown ``format``.
        DatasetError: unreadable, ambiguous or invalid dataset; the message lists problems.
    """
    p = Path(path)
    name = detect_format(p) if format == "auto" else format
    adapter = get_format(name)
    kwargs |= _cache_option(adapter, cache)
    return adapter.read(p, split, class_names=class_names, strict=strict, **kwargs)


def _cache_option(adapter: FormatAdapter, cache: bool) -> dict[str, bool]:
    """``{"cache": cache}`` for an adapter whose ``read`` takes it, else nothing."""
    return {"cache": cache} if accepts_cache(adapter) else {}


def load_splits(
    path: str | os.PathLike[str],
    format: str = "auto",
    splits: Sequence[str] | None = None,
    *,
    cache: bool = True,
    **kwargs: Any,
) -> dict[str, Annotations]:
    """Load every split of a dataset (or the given ones): ``{split: Annotations}``.

    A path that holds a single split is returned as ``{"train": ...}``. ``cache`` and the
    other keywords are those of :func:`load_annotations`.
    """
    p = Path(path)
    name = detect_format(p) if format == "auto" else format
    adapter = get_format(name)
    kwargs |= _cache_option(adapter, cache)
    names: Sequence[str | None] = list(splits) if splits else list(adapter.splits(p)) or [None]
    return {s or "train": adapter.read(p, s, **kwargs) for s in names}


def write_annotations(
    annotations: Annotations | Mapping[str, Annotations],
    dst: str | os.PathLike[str],
    format: str,
    *,
    images: ImageMode = "copy",
    exist_ok: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> WriteReport:
    """Write one split (as ``train``) or a mapping of splits in a registered format.

    The writer fills a temporary sibling folder ``.<name>.tmp-<pid>`` that is renamed to
    ``dst`` at the end, so an interrupted write (an error, Ctrl-C) leaves no partial
    dataset under ``dst``; the temporary folder is removed (or, after a kill, at the next
    write to ``dst``). When ``dst`` already holds files (``exist_ok`` or ``overwrite``),
    the new files are moved into it one by one after the whole dataset is written (images
    first, index files such as ``data.yaml`` last); files of ``dst`` that this write does
    not produce are kept as they are. See ``docs/outputs.md``.

    Args:
        annotations: what to write.
        dst: output folder: missing or empty, unless ``exist_ok`` / ``overwrite``. It may
            not be an image folder of ``annotations`` or hold one.
        format: ``"yolo"``, ``"voc"``, ``"coco"`` or a plug-in's name.
        images: ``"copy"``, ``"symlink"`` or ``"hardlink"`` the images.
        exist_ok: write into an existing folder that holds files; a file that already
            exists is still an error (nothing is written).
        overwrite: like ``exist_ok``, and replace files of the same name.
        progress: show a progress bar.

    Returns:
        What was written (paths under ``dst``), and in ``lost`` what the format could
        not hold.

    Raises:
        DatasetError: ``dst`` is refused (see :func:`yolo2retina.outputs.check_output_dir`),
            a file exists and not ``overwrite``, or the writer refuses the data.
    """
    from yolo2retina.outputs import check_output_dir, image_folders, staged_dir

    splits = {"train": annotations} if isinstance(annotations, Annotations) else dict(annotations)
    adapter = get_format(format)
    out = Path(dst)
    check_output_dir(
        out,
        inputs=image_folders(splits.values()),
        exist_ok=exist_ok,
        overwrite=overwrite,
        inside_inputs_ok=True,
    )
    with staged_dir(out, overwrite=overwrite) as tmp:
        report = adapter.write(splits, tmp, images=images, overwrite=False, progress=progress)
    _retarget(report, tmp, out)
    for line in report.lost:
        warnings.warn(f"{format} writer: lost {line}", UserWarning, stacklevel=2)
    return report


def _retarget(report: WriteReport, tmp: Path, dst: Path) -> None:
    """Point a report's paths at ``dst`` instead of the temporary folder they were written in."""
    old, new = str(tmp), str(dst)

    def fix(text: str) -> str:
        if text == old:
            return new
        return new + text[len(old) :] if text.startswith(old + os.sep) else text

    report.destination = fix(report.destination)
    report.files = [fix(f) for f in report.files]
    report.lost = [line.replace(old, new) for line in report.lost]
    report.remarks = [line.replace(old, new) for line in report.remarks]
