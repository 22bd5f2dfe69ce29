"""Pascal VOC XML: reader, writer and adapter.

Layouts read:

* **VOC**: ``Annotations/*.xml`` + ``JPEGImages/`` + ``ImageSets/Main/{split}.txt``;
* **flat**: a folder of ``.xml`` files beside their images (Roboflow, LabelImg), with
  optional split sub-folders (``train/``, ``valid/``, ``test/``).

Pixel convention (one rule, both ways): VOC counts pixels from 1 and its max corner is
inclusive, so a box over a whole ``W x H`` image is ``(1, 1, W, H)``. It is read as
``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax`` in continuous pixel coordinates
(:meth:`~yolo2retina.target.Target.from_voc`) and written back with the inverse, so
VOC -> VOC round trips give the same numbers. Fractional coordinates are kept.

Class order: the ``class_names`` argument; else ``classes.txt`` at the dataset root (one
name per line; the writer creates it); else every object name found in the whole dataset
(all splits, so labels agree between splits), sorted by Unicode code point.

XML parsing is in :mod:`~yolo2retina.formats.voc_xml` (C expat and ElementTree; a DOCTYPE,
and with it every entity declaration, entity bomb and external entity, is refused; every
value is read strictly), file finding in :mod:`~yolo2retina.formats.voc_layout` and the
writer in :mod:`~yolo2retina.formats.voc_writer` (re-exported here).

Paths: the root is resolved once, so every way of naming it gives the same result. Images
are looked for in ``JPEGImages/`` (or beside the ``.xml`` files), or in ``images_root`` when
it is given (annotations kept apart from their images; ``<filename>`` is relative to it).
An absolute ``<filename>`` or a ``..`` (in ``<filename>`` or a split list) that leaves the
root (``images_root`` for ``<filename>``, when given) is refused unless
``allow_outside_root=True``; only regular files are ever opened (a FIFO or ``/dev/stdin``
is refused after a ``stat``).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from tqdm.auto import tqdm

from yolo2retina.annotations import Annotations, LoadReport
from yolo2retina.errors import DatasetError, ImageReadError
from yolo2retina.formats._common import check_pixel_boxes
from yolo2retina.formats._files import not_regular, path_kind, quote
from yolo2retina.formats.base import ImageMode, WriteReport
from yolo2retina.formats.voc_layout import (
    ImageFinder,
    SplitFiles,
    flat_files,
    layout,
    read_class_file,
    voc_files,
    voc_splits,
)
from yolo2retina.formats.voc_writer import write_voc as write_voc
from yolo2retina.formats.voc_xml import VocRecord, parse_xml
from yolo2retina.image import read_image_hw

__all__ = ["ADAPTER", "VocFormat", "read_voc", "write_voc"]


class VocFormat:
    """Pascal VOC adapter (see the module docstring for layouts and conventions)."""

    name = "voc"
    description = "Pascal VOC XML (Annotations/ + JPEGImages/ + ImageSets/, or flat folders)"

    def detect(self, path: Path) -> bool:
        """A folder with ``Annotations/*.xml``, ``*.xml`` files, or split folders of them."""
        kind = path_kind(path)
        if kind == "file":
            return path.suffix.lower() == ".xml"
        if kind != "dir":
            return False
        if (path / "Annotations").is_dir() and any((path / "Annotations").glob("*.xml")):
            return True
        if any(path.glob("*.xml")):
            return True
        return any(any(d.glob("*.xml")) for d in path.iterdir() if d.is_dir())

    def splits(self, path: Path) -> tuple[str, ...]:
        """``ImageSets/Main/{split}.txt`` names, or sub-folders holding ``.xml`` files."""
        return voc_splits(path)

    def read(
        self,
        path: Path,
        split: str | None = None,
        *,
        class_names: Sequence[str] | None = None,
        strict: bool = False,
        **kwargs: Any,
    ) -> Annotations:
        """Load one split; see :func:`read_voc`."""
        return read_voc(path, split, class_names=class_names, strict=strict, **kwargs)

    def write(
        self,
        splits: Mapping[str, Annotations],
        dst: Path,
        *,
        images: ImageMode = "copy",
        overwrite: bool = False,
        progress: bool = False,
    ) -> WriteReport:
        """Write splits as a VOC folder; see :func:`write_voc`."""
        return write_voc(splits, dst, images=images, overwrite=overwrite, progress=progress)


def read_voc(
    path: str | os.PathLike[str],
    split: str | None = None,
    *,
    class_names: Sequence[str] | None = None,
    strict: bool = False,
    images_root: str | os.PathLike[str] | None = None,
    allow_outside_root: bool = False,
    progress: bool = False,
) -> Annotations:
    """Load a Pascal VOC split into flat :class:`Annotations`.

    Args:
        path: the dataset root (``Annotations/`` layout) or a flat folder of ``.xml``
            files beside their images.
        split: a name in ``ImageSets/Main`` or a sub-folder of a flat dataset (``val``
            also finds ``valid``); ``None`` for every ``.xml`` file.
        class_names: fix the class order (label = index); unknown object names are errors.
        strict: turn clips and drops into errors.
        images_root: the folder ``<filename>`` is relative to, for annotations kept apart
            from their images (default: ``JPEGImages/``, or the ``.xml`` files' folder).
            Images are then looked for there only; in a flat layout, images beside the
            ``.xml`` files are not read (each is counted in ``report.skipped_files``).
        allow_outside_root: accept an absolute ``<filename>``, and a ``<filename>`` or an
            ``ImageSets`` id whose ``..`` leaves the dataset root (or ``images_root``).
        progress: show a progress bar.

    The ``<size>`` of each file must match the image (after EXIF orientation).
    Boxes up to 1 px outside the image are clipped, boxes with no area after that are
    dropped (both counted in ``report``); anything further out is an error. ``difficult``
    and ``truncated`` become per-box flags. A flat folder's images with no ``.xml`` are
    kept as background (counted as missing label files).

    Raises:
        DatasetError: listing every problem as ``file: object k: message``.
    """
    if path_kind(path) != "dir":
        raise DatasetError(f"{path}: not a VOC dataset folder")
    # One absolute, link-free root: a relative path, `.`, an absolute path and a path
    # through a symlinked folder all give the same image paths and messages.
    root = Path(os.path.realpath(path))
    img_root = None
    if images_root is not None:
        if path_kind(images_root) != "dir":
            raise DatasetError(f"{images_root}: images_root is not a folder")
        img_root = os.path.realpath(images_root)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # many small objects, none cyclic: the collector would only rescan them
    try:
        return _read(root, split, class_names, strict, img_root, allow_outside_root, progress)
    finally:
        if gc_was_enabled:
            gc.enable()


def _read(
    root: Path,
    split: str | None,
    class_names: Sequence[str] | None,
    strict: bool,
    images_root: str | None,
    allow_outside_root: bool,
    progress: bool,
) -> Annotations:
    """:func:`read_voc` once its arguments are checked (``images_root`` resolved)."""
    problems: list[str] = []
    report = LoadReport(source=str(root) + (f" [{split}]" if split else ""))
    files: SplitFiles
    if layout(root) == "voc":
        files = voc_files(root, split, allow_outside_root, problems)
        if images_root is not None:
            files = attrs.evolve(files, image_dirs=[images_root])
    else:
        files = flat_files(root, split, images_root, problems)
    records = _parse_all(files, class_names is None, progress, problems)
    names = list(class_names) if class_names is not None else read_class_file(*files.class_dirs)
    if names is None:
        names = sorted({n for r in records.values() if r is not None for n in r.names})
    finder = (
        ImageFinder(files.image_dirs, str(root), allow_outside_root)
        if images_root is None
        else ImageFinder(files.image_dirs, images_root, allow_outside_root, "images root")
    )
    cols = _Columns(names)
    for x in files.xmls:
        rec = records[x]
        if rec is not None:
            cols.add_record(rec, finder, problems)
    for img in files.orphans:
        cols.add_background(img, report, problems)
    for img in files.skipped:
        report.note("skipped_files", f"{img}: not read (images are read from {images_root})")
    ann = cols.build(strict, report, problems)
    if problems:
        raise DatasetError(f"cannot load VOC dataset {root}", problems)
    return ann


def _parse_all(
    files: SplitFiles, all_splits: bool, progress: bool, problems: list[str]
) -> dict[str, VocRecord | None]:
    """Every record of the split (of the dataset with ``all_splits``, for class names:
    problems are then only reported for the split's own files)."""
    records: dict[str, VocRecord | None] = {}
    wanted = set(files.xmls)
    scan = files.all_xml if all_splits else files.xmls
    for x in tqdm(scan, desc="VOC xml", disable=not progress):
        records[x] = parse_xml(x, problems if x in wanted else [])
    for x in files.xmls:  # xmls named by a split list but outside the scanned folder
        if x not in records:
            records[x] = parse_xml(x, problems)
    return records


@attrs.define
class _Columns:
    """The split's images and boxes as flat lists, packed into :class:`Annotations` once
    (boxes are checked in one vectorised pass). Remembers which xml described each image
    (one image, one annotation file)."""

    names: list[str]
    index: dict[str, int] = attrs.field(init=False)
    paths: list[str] = attrs.field(factory=list)
    hws: list[tuple[int, int]] = attrs.field(factory=list)
    boxes: list[tuple[float, float, float, float]] = attrs.field(factory=list)
    labels: list[int] = attrs.field(factory=list)
    flags: list[int] = attrs.field(factory=list)
    owner: list[int] = attrs.field(factory=list)  # per box: its image
    box_records: list[VocRecord] = attrs.field(factory=list)  # per box: its file
    source: list[int] = attrs.field(factory=list)  # per box: its object in that file
    described: dict[str, str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self.index = {n: i for i, n in enumerate(self.names)}

    def add_record(self, rec: VocRecord, finder: ImageFinder, problems: list[str]) -> None:
        """One annotation file: find its image, check its size, queue its boxes."""
        x = rec.xml
        n_problems = len(problems)
        img = finder.find(rec, problems)
        if img is None:
            if len(problems) == n_problems:
                problems.append(
                    f"{x}: image {quote(rec.filename or _stem(x))} not found in "
                    + ", ".join(finder.dirs)
                )
            return
        if img in self.described:
            problems.append(
                f"{x}: describes image {img}, as {self.described[img]} does; one image needs "
                "one annotation file"
            )
            return
        self.described[img] = x
        try:
            h, w = read_image_hw(img)
        except ImageReadError as e:
            problems.append(str(e))
            return
        if rec.size_wh is not None and rec.size_wh != (w, h):
            problems.append(
                f"{x}: <size> says {rec.size_wh[0]}x{rec.size_wh[1]} but image "
                f"{os.path.basename(img)} is {w}x{h} (width x height, after EXIF orientation)"
            )
            return
        k = len(self.paths)
        self.paths.append(img)
        self.hws.append((h, w))
        labels = [self.index.get(n) for n in rec.names]
        keep: Sequence[int] = range(len(labels))
        if None in labels:
            for i, (n, lab) in enumerate(zip(rec.names, labels, strict=True)):
                if lab is None:
                    problems.append(
                        f"{rec.where(i)}: class '{n}' is not in class_names {self.names}"
                    )
            keep = [i for i, lab in enumerate(labels) if lab is not None]
        self.boxes += [rec.boxes[i] for i in keep]
        self.labels += [lab for lab in labels if lab is not None]
        self.flags += [rec.flags[i] for i in keep]
        self.owner += [k] * len(keep)
        self.box_records += [rec] * len(keep)
        self.source += keep

    def add_background(self, img: str, report: LoadReport, problems: list[str]) -> None:
        """An image without an ``.xml`` (flat layout): kept as background, counted."""
        why = not_regular(img)
        if why is not None:
            problems.append(f"{img}: {why}")
            return
        try:
            h, w = read_image_hw(img)
        except ImageReadError as e:
            problems.append(str(e))
            return
        report.note("missing_label_files", f"{img}: no .xml beside it (kept as background)")
        self.paths.append(img)
        self.hws.append((h, w))

    def _where(self, j: int) -> str:
        """The location of box ``j`` for messages: ``a.xml: object 3 ('dog')``."""
        return self.box_records[j].where(self.source[j])

    def build(self, strict: bool, report: LoadReport, problems: list[str]) -> Annotations:
        """Check every box at once (the VOC pixel rule applied), then pack the arrays."""
        n = len(self.paths)
        hw = np.array(self.hws, dtype=np.int64).reshape(n, 2)
        owner = np.array(self.owner, dtype=np.int64)
        xyxy = np.array(self.boxes, dtype=np.float64).reshape(-1, 4)
        xyxy[:, :2] -= 1.0  # the VOC rule, as Target.from_voc applies it
        keep = check_pixel_boxes(
            xyxy,
            hw[owner][:, ::-1],
            self._where,
            strict=strict,
            report=report,
            problems=problems,
            file_offset=(1.0, 1.0, 0.0, 0.0),  # messages show the file's own values
        )
        counts = np.bincount(owner[keep], minlength=n)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        report.images = n
        report.boxes = int(offsets[-1])
        report.background_images = int((counts == 0).sum())
        with np.errstate(over="ignore", invalid="ignore"):  # refused boxes may not fit
            boxes = xyxy[keep].astype(np.float32)
        return Annotations(
            paths=np.asarray(self.paths, dtype=np.str_).reshape(n),
            image_hw_array=hw,
            offsets=offsets,
            boxes=boxes,
            labels=np.array(self.labels, dtype=np.int64)[keep],
            flags=np.array(self.flags, dtype=np.uint8)[keep],
            class_names=tuple(self.names),
            image_ids=np.arange(n, dtype=np.int64),
            report=report,
        )


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


#: The adapter registered as ``"voc"``.
ADAPTER = VocFormat()
