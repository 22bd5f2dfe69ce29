"""Whole-dataset operations over the format registry: convert every split, check a dataset."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from yolo2retina.annotations import Annotations, LoadReport
from yolo2retina.errors import DatasetError, Yolo2RetinaError
from yolo2retina.formats import detect_format, get_format, load_splits, write_annotations
from yolo2retina.formats.registry import ImageMode, WriteReport
from yolo2retina.outputs import check_output_dir, dataset_folders

__all__ = ["CheckResult", "ConvertReport", "SplitCheck", "check_dataset", "convert_dataset"]


@attrs.define
class ConvertReport(WriteReport):
    """A :class:`~yolo2retina.formats.registry.WriteReport` plus what was read.

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
    src: str | os.PathLike[str],
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
    """Read every split of ``src`` and write them all to ``dst`` in format ``to``.

    ``dst`` is written atomically (see :func:`~yolo2retina.formats.write_annotations`)
    and is refused, before anything is read or written, when it overlaps the source:
    the same folder, a folder inside the dataset (its root or an image folder), or a
    folder that holds it. See ``docs/outputs.md``.

    Args:
        src: a data.yaml, dataset folder or COCO JSON.
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
    name = detect_format(src) if src_format == "auto" else src_format
    root = Path(src) if Path(src).is_dir() else Path(src).parent
    check_output_dir(dst, inputs=[root], exist_ok=exist_ok, overwrite=overwrite)
    data = load_splits(src, name, splits, **_progress_kw(name, progress), **options)
    check_output_dir(
        dst, inputs=dataset_folders(data.values(), src), exist_ok=exist_ok, overwrite=overwrite
    )
    written = write_annotations(
        data, dst, to, images=images, exist_ok=exist_ok, overwrite=overwrite, progress=progress
    )
    return ConvertReport(
        **{f.name: getattr(written, f.name) for f in attrs.fields(WriteReport)},
        source=str(src),
        source_format=name,
        loaded={s: a.report for s, a in data.items()},
        checks=[_split_check(s, a) for s, a in data.items()],
    )


def _split_check(split: str, ann: Annotations) -> SplitCheck:
    r = ann.report
    return SplitCheck(
        split,
        images=len(ann),
        boxes=ann.num_boxes,
        background_images=r.background_images,
        clipped=r.clipped,
        dropped=r.dropped_zero_area + r.dropped_duplicates,
        skipped=r.skipped_files,
        warnings=list(r.details),
    )


def _progress_kw(fmt: str, progress: bool) -> dict[str, Any]:
    # Only the built-in VOC and COCO readers take progress=; plug-ins may not.
    return {"progress": progress} if progress and fmt in ("voc", "coco") else {}


@attrs.define
class SplitCheck:
    """The result of loading one split.

    Attributes:
        split: split name (``"train"`` for a single-split source, as in
            :func:`~yolo2retina.formats.load_splits`, ``stats`` and ``convert``).
        images: images loaded (0 when the split did not load).
        boxes: boxes loaded.
        background_images: images with no boxes.
        clipped: boxes clipped into the image.
        dropped: boxes dropped (zero area or duplicate).
        skipped: files ignored on purpose (e.g. Ultralytics ``*.cache``).
        errors: ``file:line: message`` lines that stop the split from loading.
        warnings: ``file:line: message`` lines for clips, drops and skipped files.
    """

    split: str
    images: int = 0
    boxes: int = 0
    background_images: int = 0
    clipped: int = 0
    dropped: int = 0
    skipped: int = 0
    errors: list[str] = attrs.field(factory=list)
    warnings: list[str] = attrs.field(factory=list)


@attrs.define
class CheckResult:
    """Every split's :class:`SplitCheck`."""

    source: str
    format: str
    splits: list[SplitCheck]

    @property
    def ok(self) -> bool:
        """No split has an error."""
        return not any(s.errors for s in self.splits)

    @property
    def num_errors(self) -> int:
        """Error lines over all splits."""
        return sum(len(s.errors) for s in self.splits)

    def table(self) -> str:
        """A fixed-width summary table, one row per split."""
        head = ("split", "images", "background", "boxes", "clipped", "dropped", "skipped", "errors")
        rows = [
            (
                s.split,
                str(s.images),
                str(s.background_images),
                str(s.boxes),
                str(s.clipped),
                str(s.dropped),
                str(s.skipped),
                str(len(s.errors)),
            )
            for s in self.splits
        ]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
        lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
        lines += [fmt.format(*r) for r in rows]
        return "\n".join(lines)


def check_dataset(
    src: str | os.PathLike[str],
    format: str = "auto",
    splits: Sequence[str] | None = None,
    *,
    strict: bool = False,
    progress: bool = False,
    **options: Any,
) -> CheckResult:
    """Load every split of ``src`` and collect every problem instead of stopping at one.

    Args:
        src: a data.yaml, dataset folder or COCO JSON.
        format: source format, ``"auto"`` to detect it.
        splits: only these splits (default: all found).
        strict: count clips and drops as errors.
        progress: show progress bars while VOC files or COCO image headers are read.
        **options: reader options, e.g. COCO ``images_root=``.
    """
    p = Path(src)
    name = detect_format(p) if format == "auto" else format
    adapter = get_format(name)
    names: list[str | None] = list(splits) if splits else list(adapter.splits(p)) or [None]
    out = []
    for s in names:
        sc = SplitCheck(s or "train")
        try:
            ann = adapter.read(p, s, strict=strict, **_progress_kw(name, progress), **options)
        except DatasetError as e:
            sc.errors = list(e.problems) or [e.summary]
        except Yolo2RetinaError as e:
            sc.errors = [str(e)]
        else:
            sc = _split_check(s or "train", ann)
        out.append(sc)
    return CheckResult(str(p), name, out)
