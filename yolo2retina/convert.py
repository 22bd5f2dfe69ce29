"""Convert a whole dataset (every split) to another format through the format registry.

:func:`check_dataset` and its result types moved to :mod:`yolo2retina.check`; they are
re-exported here for code written against 0.1.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from yolo2retina.annotations import LoadReport
from yolo2retina.check import CheckResult as CheckResult
from yolo2retina.check import SplitCheck as SplitCheck
from yolo2retina.check import check_dataset as check_dataset
from yolo2retina.check import progress_options, split_check
from yolo2retina.formats import detect_format, get_format, load_splits, write_annotations
from yolo2retina.formats.base import ImageMode, WriteReport
from yolo2retina.outputs import check_output_dir, dataset_folders

__all__ = ["CheckResult", "ConvertReport", "SplitCheck", "check_dataset", "convert_dataset"]


@attrs.define
class ConvertReport(WriteReport):
    """A :class:`~yolo2retina.formats.base.WriteReport` plus what was read.

    Attributes:
        source: the dataset that was read.
        source_format: its format.
        loaded: split name -> the :class:`~yolo2retina.annotations.LoadReport` of that
            split: boxes clipped or dropped and files skipped while reading, with a
            ``file:line`` detail line for each.
    """

    source: str = ""
    source_format: str = ""
    loaded: dict[str, LoadReport] = attrs.field(factory=dict)
    _checks: list[SplitCheck] = attrs.field(factory=list, repr=False)

    @property
    def notes(self) -> list[str]:
        """Every detail line of every split (clips, drops, skipped files), each once: a note
        about the whole dataset (a data.yaml ``path:`` fallback) is in every split's report."""
        return list(dict.fromkeys(d for r in self.loaded.values() for d in r.details))

    def table(self) -> str:
        """The per-split table of ``check`` (images, background, boxes, clipped, ...)."""
        return CheckResult(self.source, self.source_format, self._checks).table()

    def __str__(self) -> str:
        return f"{self.source} ({self.source_format})\n{self.table()}\n{super().__str__()}"


def convert_dataset(
    path: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    to: str,
    *,
    src_format: str = "auto",
    splits: Sequence[str] | None = None,
    images: ImageMode = "copy",
    exist_ok: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    **options: Any,
) -> ConvertReport:
    """Read every split of ``path`` and write them all to ``dst`` in format ``to``.

    ``dst`` is written atomically (see :func:`~yolo2retina.formats.write_annotations`)
    and is refused, before anything is read or written, when it overlaps the source:
    the same folder, a folder inside the dataset (its root or an image folder), or a
    folder that holds it. See ``docs/outputs.md``.

    Args:
        path: a data.yaml, dataset folder or COCO JSON.
        dst: output folder: missing or empty, unless ``exist_ok`` / ``overwrite``.
        to: target format name (``yolo``, ``voc``, ``coco`` or a plug-in).
        src_format: source format, ``"auto"`` to detect it.
        splits: only these splits (default: all found; a single-split source is ``train``).
        images: ``"copy"``, ``"symlink"`` or ``"hardlink"`` the images.
        exist_ok: write into an existing folder that holds files (only new files).
        overwrite: like ``exist_ok``, and replace existing output files.
        progress: show progress bars.
        **options: reader options, e.g. COCO ``images_root=``.

    Returns:
        The writer's report (``lost``: what ``to`` cannot hold) with the load report of
        every split (``loaded``, ``notes``): what was clipped, dropped or skipped.

    Raises:
        DatasetError: the source does not load, ``dst`` overlaps it, or outputs exist
            and the flags do not allow it.
    """
    get_format(to)  # unknown target: fail before reading anything
    name = detect_format(path) if src_format == "auto" else src_format
    root = Path(path) if Path(path).is_dir() else Path(path).parent
    check_output_dir(dst, inputs=[root], exist_ok=exist_ok, overwrite=overwrite)
    data = load_splits(path, name, splits, **progress_options(name, progress), **options)
    check_output_dir(
        dst, inputs=dataset_folders(data.values(), path), exist_ok=exist_ok, overwrite=overwrite
    )
    written = write_annotations(
        data, dst, to, images=images, exist_ok=exist_ok, overwrite=overwrite, progress=progress
    )
    return ConvertReport(
        **{f.name: getattr(written, f.name) for f in attrs.fields(WriteReport)},
        source=str(path),
        source_format=name,
        loaded={s: a.report for s, a in data.items()},
        checks=[split_check(s, a) for s, a in data.items()],
    )
