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

XML parsing is in :mod:`~yolo2retina.formats.voc_xml` (with :mod:`defusedxml`: entity
bombs and external entities are refused; every value is read strictly) and the writer in
:mod:`~yolo2retina.formats.voc_writer` (re-exported here).

Paths: the root is resolved once, so every way of naming it gives the same result. An
absolute ``<filename>`` or a ``..`` (in ``<filename>`` or a split list) that leaves the
root is refused unless ``allow_outside_root=True``; only regular files are ever opened
(a FIFO or ``/dev/stdin`` is refused after a ``stat``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from tqdm.auto import tqdm

from yolo2retina.annotations import Annotations, AnnotationsBuilder, LoadReport
from yolo2retina.errors import DatasetError, ImageReadError
from yolo2retina.formats._common import check_pixel_boxes
from yolo2retina.formats._files import (
    IMAGE_SUFFIXES,
    not_regular,
    path_kind,
    quote,
)
from yolo2retina.formats.base import ImageMode, WriteReport
from yolo2retina.formats.voc_layout import (
    flat_files,
    inside,
    layout,
    outside,
    read_class_file,
    voc_files,
    voc_splits,
)
from yolo2retina.formats.voc_writer import write_voc as write_voc
from yolo2retina.formats.voc_xml import VocRecord, parse_xml
from yolo2retina.image import read_image_hw

__all__ = ["ADAPTER", "VocFormat", "read_voc", "write_voc"]


def _find_image(
    rec: VocRecord,
    image_dirs: Sequence[Path],
    root: Path,
    allow_outside_root: bool,
    problems: list[str],
) -> Path | None:
    """The image of ``rec``: ``<filename>``, else ``{xml stem}.{ext}``; ``None`` after a problem.

    Only regular files are taken; a name that leaves ``root`` is refused before anything
    is looked at, unless ``allow_outside_root``. The stem is tried with every image suffix
    (:data:`~yolo2retina.formats._files.IMAGE_SUFFIXES`, in that order).
    """
    cands: list[Path] = []
    if rec.filename:
        named = [os.path.normpath(os.path.join(d, rec.filename)) for d in image_dirs]
        if not allow_outside_root and not all(inside(c, root) for c in named):
            problems.append(f"{rec.xml}: " + outside("<filename>", rec.filename, root))
            return None
        cands += [Path(c) for c in named]
    for c in cands:
        why = not_regular(c)
        if why is None:
            return c
        if why != "not found":
            problems.append(f"{rec.xml}: image {c} {why}")
            return None
    return _image_by_stem(rec, image_dirs, problems)


def _image_by_stem(rec: VocRecord, image_dirs: Sequence[Path], problems: list[str]) -> Path | None:
    """The one image named ``{xml stem}{suffix}`` in ``image_dirs``; several are a problem."""
    found: dict[tuple[int, int] | Path, Path] = {}
    stem_cands = [d / (rec.xml.stem + ext) for d in image_dirs for ext in IMAGE_SUFFIXES]
    for c in stem_cands:  # one file seen under two names (a.jpg, a.JPG on macOS) counts once
        kind = path_kind(c)
        if kind == "file":
            st = os.stat(c)
            found.setdefault((st.st_dev, st.st_ino), c)
        elif kind != "missing":  # a folder, FIFO or broken link: reported below
            found[c] = c
    if len(found) > 1:
        problems.append(
            f"{rec.xml}: "
            + (
                "no <filename>"
                if rec.filename is None
                else f"image {quote(rec.filename)} not found"
            )
            + ", and several images have its stem: "
            + ", ".join(str(c) for c in found.values())
            + "; name one in <filename> or rename the others"
        )
        return None
    for c in found.values():
        why = not_regular(c)
        if why is not None:
            problems.append(f"{rec.xml}: image {c} {why}")
            return None
        return c
    return None


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
        allow_outside_root: accept an absolute ``<filename>``, and a ``<filename>`` or an
            ``ImageSets`` id whose ``..`` leaves the dataset root.
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
    problems: list[str] = []
    report = LoadReport(source=str(root) + (f" [{split}]" if split else ""))
    if layout(root) == "voc":
        files = voc_files(root, split, allow_outside_root, problems)
    else:
        files = flat_files(root, split, problems)
    records: dict[Path, VocRecord | None] = {}
    wanted = set(files.xmls)
    scan = files.all_xml if class_names is None else files.xmls
    for x in tqdm(scan, desc="VOC xml", disable=not progress):
        records[x] = parse_xml(x, problems if x in wanted else [])
    for x in files.xmls:  # xmls named by a split list but outside the scanned folder
        if x not in records:
            records[x] = parse_xml(x, problems)
    names = list(class_names) if class_names is not None else read_class_file(*files.class_dirs)
    if names is None:
        names = sorted({o.name for r in records.values() if r is not None for o in r.objects})
    builder = AnnotationsBuilder()
    reader = _RecordReader(root, files.image_dirs, allow_outside_root, names, strict, report)
    for x in files.xmls:
        rec = records[x]
        if rec is not None:
            reader.add(builder, rec, problems)
    for img in files.orphans:
        _add_background(builder, img, report, problems)
    if problems:
        raise DatasetError(f"cannot load VOC dataset {root}", problems)
    return builder.build(names, report)


@attrs.define
class _RecordReader:
    """Adds the records of one split to a builder: finds each image, checks its size and
    boxes. Remembers which xml described each image (one image, one annotation file)."""

    root: Path
    image_dirs: list[Path]
    allow_outside_root: bool
    names: list[str]
    strict: bool
    report: LoadReport
    described: dict[Path, Path] = attrs.field(factory=dict)
    index: dict[str, int] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.index = {n: i for i, n in enumerate(self.names)}

    def add(self, builder: AnnotationsBuilder, rec: VocRecord, problems: list[str]) -> None:
        x = rec.xml
        n_problems = len(problems)
        img = _find_image(rec, self.image_dirs, self.root, self.allow_outside_root, problems)
        if img is None:
            if len(problems) == n_problems:
                problems.append(
                    f"{x}: image {quote(rec.filename or x.stem)} not found in "
                    + ", ".join(str(d) for d in self.image_dirs)
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
                f"{x}: <size> says {rec.size_wh[0]}x{rec.size_wh[1]} but image {img.name} is "
                f"{w}x{h} (width x height, after EXIF orientation)"
            )
            return
        self._add_boxes(builder, rec, img, (h, w), problems)

    def _add_boxes(
        self,
        builder: AnnotationsBuilder,
        rec: VocRecord,
        img: Path,
        hw: tuple[int, int],
        problems: list[str],
    ) -> None:
        index = self.index
        objs = []
        for o in rec.objects:
            if o.name not in index:
                problems.append(f"{o.where}: class '{o.name}' is not in class_names {self.names}")
            else:
                objs.append(o)
        if not objs:
            builder.add(img, hw, np.zeros((0, 4)), np.zeros(0, np.int64))
            return
        voc = np.array([o.box for o in objs], dtype=np.float64)
        labels = np.array([index[o.name] for o in objs], dtype=np.int64)
        flags = np.array([o.flags for o in objs], dtype=np.uint8)
        xyxy = voc.copy()
        xyxy[:, :2] -= 1.0  # the VOC rule, as Target.from_voc applies it
        keep = check_pixel_boxes(
            xyxy,
            (hw[1], hw[0]),
            [o.where for o in objs].__getitem__,
            strict=self.strict,
            report=self.report,
            problems=problems,
            file_offset=(1.0, 1.0, 0.0, 0.0),  # messages show the file's own values
        )
        builder.add(img, hw, xyxy[keep], labels[keep], flags[keep])


def _add_background(
    builder: AnnotationsBuilder, img: Path, report: LoadReport, problems: list[str]
) -> None:
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
    builder.add(img, (h, w), np.zeros((0, 4)), np.zeros(0, np.int64))


#: The adapter registered as ``"voc"``.
ADAPTER = VocFormat()
