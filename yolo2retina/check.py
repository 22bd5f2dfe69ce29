"""Check a whole dataset: load every split and collect every problem instead of stopping at one."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from yolo2retina.annotations import Annotations
from yolo2retina.errors import DatasetError, Yolo2RetinaError
from yolo2retina.formats import detect_format, get_format

__all__ = ["CheckResult", "SplitCheck", "check_dataset"]


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


def split_check(split: str, ann: Annotations) -> SplitCheck:
    """The :class:`SplitCheck` of a split that loaded: its counts and detail lines."""
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


def progress_options(fmt: str, progress: bool) -> dict[str, Any]:
    """``{"progress": True}`` for the readers that take it, else nothing."""
    # Only the built-in VOC and COCO readers take progress=; plug-ins may not.
    return {"progress": progress} if progress and fmt in ("voc", "coco") else {}


def check_dataset(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    splits: Sequence[str] | None = None,
    strict: bool = False,
    progress: bool = False,
    **options: Any,
) -> CheckResult:
    """Load every split of ``path`` and collect every problem instead of stopping at one.

    Args:
        path: a data.yaml, dataset folder or COCO JSON.
        format: source format, ``"auto"`` to detect it.
        splits: only these splits (default: all found).
        strict: count clips and drops as errors.
        progress: show progress bars while VOC files or COCO image headers are read.
        **options: reader options, e.g. COCO ``images_root=``; ``cache=`` goes only to
            readers with a load cache.
    """
    from yolo2retina.formats.cache import accepts_cache

    p = Path(path)
    name = detect_format(p) if format == "auto" else format
    adapter = get_format(name)
    if "cache" in options and not accepts_cache(adapter):
        options = {k: v for k, v in options.items() if k != "cache"}  # VOC, plug-ins: no cache
    names: list[str | None] = list(splits) if splits else list(adapter.splits(p)) or [None]
    out = []
    for s in names:
        sc = SplitCheck(s or "train")
        try:
            ann = adapter.read(p, s, strict=strict, **progress_options(name, progress), **options)
        except DatasetError as e:
            sc.errors = list(e.problems) or [e.summary]
        except Yolo2RetinaError as e:
            sc.errors = [str(e)]
        else:
            sc = split_check(s or "train", ann)
        out.append(sc)
    return CheckResult(str(p), name, out)
