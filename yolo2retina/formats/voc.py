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

XML is parsed with :mod:`defusedxml`: entity declarations (billion-laughs bombs) and
external entities are refused with an error naming the file. Every value is read strictly:
an element given twice (two ``<bndbox>``, two ``<xmin>``) is an error, numbers must be
plain decimals, sizes whole pixels.

Paths: the root is resolved once, so every way of naming it gives the same result. An
absolute ``<filename>`` or a ``..`` (in ``<filename>`` or a split list) that leaves the
root is refused unless ``allow_outside_root=True``; only regular files are ever opened
(a FIFO or ``/dev/stdin`` is refused after a ``stat``).
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import defusedxml
import defusedxml.ElementTree as SafeET
import numpy as np
from tqdm.auto import tqdm

from yolo2retina.annotations import Annotations, AnnotationsBuilder, LoadReport
from yolo2retina.errors import DatasetError, ImageReadError
from yolo2retina.formats._common import (
    as_splits,
    atomic_write_text,
    check_pixel_boxes,
    common_names,
    flag_losses,
    fmt_number,
    id_losses,
    is_image_file,
    not_regular,
    path_kind,
    place_image,
    quote,
    read_classes_txt,
    read_text_file,
    refuse_existing,
    split_candidates,
    unique_names,
)
from yolo2retina.formats.registry import ImageMode, WriteReport
from yolo2retina.image import IMAGE_EXTENSIONS, read_image_hw
from yolo2retina.target import FLAG_DIFFICULT, FLAG_TRUNCATED, Target

__all__ = ["ADAPTER", "VocFormat", "read_voc", "write_voc"]

_FLAG_TAGS = (("difficult", FLAG_DIFFICULT), ("truncated", FLAG_TRUNCATED))
_COORDS = ("xmin", "ymin", "xmax", "ymax")


@attrs.define
class _Object:
    name: str
    box: tuple[float, float, float, float]
    flags: int
    where: str


@attrs.define
class _Record:
    xml: Path
    filename: str | None
    size_wh: tuple[int, int] | None
    objects: list[_Object]


def _text(el: ET.Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    t = el.text.strip()
    return t or None


#: A plain decimal number (``nan``/``inf`` too, so they are reported as non-finite);
#: ``float()`` alone would also take ``1_000`` and non-ASCII digits.
_NUMBER = re.compile(
    r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)", re.IGNORECASE | re.ASCII
)


class _Bad(Exception):
    """One problem in an XML file, with its location; the object (or file) is skipped."""


def _child(parent: ET.Element, tag: str, where: object) -> ET.Element | None:
    """The one ``<tag>`` child of ``parent``; two are ambiguous, so an error."""
    found = parent.findall(tag)
    if len(found) > 1:
        raise _Bad(f"{where}: {len(found)} <{tag}> elements in <{parent.tag}>, expected one")
    return found[0] if found else None


def _number(text: str, tag: str, where: object) -> float:
    if not _NUMBER.fullmatch(text):
        raise _Bad(f"{where}: <{tag}> {quote(text)} is not a number")
    return float(text)


def _size(size: ET.Element, tag: str, xml: Path) -> int:
    """``<width>`` or ``<height>`` in pixels; 0 when absent (size then unknown)."""
    t = _text(_child(size, tag, xml))
    if t is None:
        return 0
    v = _number(t, tag, f"{xml}: <size>")
    if not (math.isfinite(v) and v >= 0 and v.is_integer()):
        raise _Bad(f"{xml}: <size> <{tag}> {quote(t)} is not a whole number of pixels")
    return int(v)


def _parse_xml(xml: Path, problems: list[str]) -> _Record | None:
    try:
        root = SafeET.parse(str(xml)).getroot()
    except defusedxml.DefusedXmlException as e:
        problems.append(
            f"{xml}: refused: {type(e).__name__} (entity declarations and external "
            "references are not allowed in annotation XML; possible entity-expansion bomb)"
        )
        return None
    except ET.ParseError as e:
        line = e.position[0] if e.position else 0
        problems.append(f"{xml}:{line}: malformed XML: {e}")
        return None
    except OSError as e:
        problems.append(f"{xml}: cannot read: {e.strerror or e}")
        return None
    if root is None or root.tag != "annotation":
        tag = "none" if root is None else f"<{root.tag}>"
        problems.append(f"{xml}: root element is {tag}, expected <annotation>")
        return None
    try:
        filename = _text(_child(root, "filename", xml))
        size_wh: tuple[int, int] | None = None
        size = _child(root, "size", xml)
        if size is not None:
            w, h = _size(size, "width", xml), _size(size, "height", xml)
            size_wh = (w, h) if w > 0 and h > 0 else None
    except _Bad as e:
        problems.append(str(e))
        return None
    objects = []
    for k, obj in enumerate(root.findall("object"), 1):  # <part> children are ignored
        where = f"{xml}: object {k}"
        try:
            name = _text(_child(obj, "name", where))
            if name is None:
                raise _Bad(f"{where}: no <name>")
            where = f"{where} ({quote(name)})"
            bnd = _child(obj, "bndbox", where)
            if bnd is None:
                raise _Bad(f"{where}: no <bndbox>")
            vals = []
            for tag in _COORDS:  # found by tag, so any child order works
                t = _text(_child(bnd, tag, where))
                if t is None:
                    raise _Bad(f"{where}: <bndbox> has no <{tag}>")
                vals.append(_number(t, tag, where))
            flags = 0
            for tag, bit in _FLAG_TAGS:
                t = _text(_child(obj, tag, where))
                if t is None:
                    continue
                if t not in ("0", "1"):
                    raise _Bad(f"{where}: <{tag}> must be 0 or 1, got {quote(t)}")
                if t == "1":
                    flags |= bit
        except _Bad as e:
            problems.append(str(e))
            continue
        objects.append(_Object(name, (vals[0], vals[1], vals[2], vals[3]), flags, where))
    return _Record(xml, filename, size_wh, objects)


def _inside(path: str, root: Path) -> bool:
    """Whether the normalized ``path`` lies in ``root`` (by name: links inside are fine)."""
    return path.startswith(str(root).rstrip(os.sep) + os.sep)


def _outside(what: str, value: str, root: Path) -> str:
    how = "is absolute" if os.path.isabs(value) else "escapes the dataset root"
    return (
        f"{what} {quote(value)} {how} ({root}); pass allow_outside_root=True to accept "
        "files outside it"
    )


def _find_image(
    rec: _Record,
    image_dirs: Sequence[Path],
    root: Path,
    allow_outside_root: bool,
    problems: list[str],
) -> Path | None:
    """The image of ``rec``: ``<filename>``, else ``{xml stem}.{ext}``; ``None`` after a problem.

    Only regular files are taken; a name that leaves ``root`` is refused before anything
    is looked at, unless ``allow_outside_root``.
    """
    cands: list[Path] = []
    if rec.filename:
        named = [os.path.normpath(os.path.join(d, rec.filename)) for d in image_dirs]
        if not allow_outside_root and not all(_inside(c, root) for c in named):
            problems.append(f"{rec.xml}: " + _outside("<filename>", rec.filename, root))
            return None
        cands += [Path(c) for c in named]
    exts: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".JPG", ".PNG")
    if rec.filename is None:
        exts += tuple(e for e in IMAGE_EXTENSIONS if e not in exts)
    stem_cands = [d / (rec.xml.stem + ext) for d in image_dirs for ext in exts]
    for c in cands:
        why = not_regular(c)
        if why is None:
            return c
        if why != "not found":
            problems.append(f"{rec.xml}: image {c} {why}")
            return None
    found: dict[tuple[int, int] | Path, Path] = {}
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


def _xml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.xml") if p.is_file())


def _layout(path: Path) -> str:
    return "voc" if (path / "Annotations").is_dir() else "flat"


def _split_dir(path: Path, split: str) -> Path | None:
    for s in split_candidates(split):
        if (path / s).is_dir() and _xml_files(path / s):
            return path / s
    return None


def _read_class_file(*folders: Path) -> list[str] | None:
    for d in folders:
        f = d / "classes.txt"
        if f.is_file():
            return read_classes_txt(f)
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
        if path_kind(path) != "dir":
            return ()
        if _layout(path) == "voc":
            main = path / "ImageSets" / "Main"
            if not main.is_dir():
                return ()
            return tuple(sorted(p.stem for p in main.glob("*.txt") if "_" not in p.stem))
        if any(path.glob("*.xml")):
            return ()
        return tuple(sorted(d.name for d in path.iterdir() if d.is_dir() and _xml_files(d)))

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
    source: str | os.PathLike[str],
    split: str | None = None,
    *,
    class_names: Sequence[str] | None = None,
    strict: bool = False,
    allow_outside_root: bool = False,
    progress: bool = False,
) -> Annotations:
    """Load a Pascal VOC split into flat :class:`Annotations`.

    Args:
        source: the dataset root (``Annotations/`` layout) or a flat folder of ``.xml``
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
    if path_kind(source) != "dir":
        raise DatasetError(f"{source}: not a VOC dataset folder")
    # One absolute, link-free root: a relative path, `.`, an absolute path and a path
    # through a symlinked folder all give the same image paths and messages.
    root = Path(os.path.realpath(source))
    problems: list[str] = []
    report = LoadReport(source=str(root) + (f" [{split}]" if split else ""))
    all_xml: list[Path]
    orphans: list[Path] = []
    if _layout(root) == "voc":
        ann_dir = root / "Annotations"
        image_dirs = [root / "JPEGImages", ann_dir]
        all_xml = _xml_files(ann_dir)
        if split is None:
            xmls = all_xml
        else:
            main = root / "ImageSets" / "Main"
            lst = next(
                (
                    main / f"{s}.txt"
                    for s in split_candidates(split)
                    if (main / f"{s}.txt").is_file()
                ),
                None,
            )
            if lst is None:
                raise DatasetError(
                    f"{root}: no split '{split}' (ImageSets/Main/{split}.txt); found "
                    f"{list(VocFormat().splits(root)) or 'none'}"
                )
            xmls = []
            listed: dict[Path, int] = {}
            for lineno, line in enumerate(read_text_file(lst, "image list").splitlines(), 1):
                toks = line.split()
                if not toks or toks[0].startswith("#"):  # blank or comment
                    continue
                loc = f"{lst}:{lineno}"
                x = Path(os.path.normpath(ann_dir / f"{toks[0]}.xml"))
                if not allow_outside_root and not _inside(str(x), root):
                    problems.append(f"{loc}: " + _outside("image id", toks[0], root))
                    continue
                if x in listed:
                    problems.append(
                        f"{loc}: {quote(toks[0])} is listed again (first on line "
                        f"{listed[x]}); list each image once"
                    )
                    continue
                listed[x] = lineno
                why = not_regular(x)
                if why == "not found":
                    problems.append(f"{loc}: {quote(toks[0])} has no {x}")
                elif why is not None:
                    problems.append(f"{loc}: {x} {why}")
                else:
                    xmls.append(x)
        class_file_dirs = [root]
    else:
        folder = root
        if split is not None:
            found = _split_dir(root, split)
            if found is None:
                raise DatasetError(
                    f"{root}: no split '{split}' sub-folder with .xml files; found "
                    f"{list(VocFormat().splits(root)) or 'none'}"
                )
            folder = found
        image_dirs = [folder]
        xmls = _xml_files(folder)
        sibling_dirs = [folder] if split is None else [root / s for s in VocFormat().splits(root)]
        all_xml = [x for d in sibling_dirs for x in _xml_files(d)]
        by_stem: dict[str, list[Path]] = {}
        for p in sorted(folder.iterdir()):
            if is_image_file(p.name):
                by_stem.setdefault(p.stem, []).append(p)
        for x in xmls:
            if len(by_stem.get(x.stem, ())) > 1:
                problems.append(
                    f"{x}: images "
                    + ", ".join(p.name for p in by_stem[x.stem])
                    + " share its stem, but each image needs its own .xml; rename all but one"
                )
        stems = {x.stem for x in xmls}
        orphans = sorted(p for stem, ps in by_stem.items() if stem not in stems for p in ps)
        class_file_dirs = [folder, root]

    records: dict[Path, _Record | None] = {}
    wanted = set(xmls)
    for x in tqdm(all_xml if class_names is None else xmls, desc="VOC xml", disable=not progress):
        sink: list[str] = problems if x in wanted else []
        records[x] = _parse_xml(x, sink)
    for x in xmls:  # xmls named by a split list but outside the scanned folder
        if x not in records:
            records[x] = _parse_xml(x, problems)

    names = list(class_names) if class_names is not None else _read_class_file(*class_file_dirs)
    if names is None:
        names = sorted({o.name for r in records.values() if r is not None for o in r.objects})
    index = {n: i for i, n in enumerate(names)}

    builder = AnnotationsBuilder()
    described: dict[Path, Path] = {}  # image -> the xml that describes it
    for x in xmls:
        rec = records[x]
        if rec is None:
            continue
        n_problems = len(problems)
        img = _find_image(rec, image_dirs, root, allow_outside_root, problems)
        if img is None:
            if len(problems) == n_problems:
                problems.append(
                    f"{x}: image {quote(rec.filename or x.stem)} not found in "
                    + ", ".join(str(d) for d in image_dirs)
                )
            continue
        if img in described:
            problems.append(
                f"{x}: describes image {img}, as {described[img]} does; one image needs "
                "one annotation file"
            )
            continue
        described[img] = x
        try:
            h, w = read_image_hw(img)
        except ImageReadError as e:
            problems.append(str(e))
            continue
        if rec.size_wh is not None and rec.size_wh != (w, h):
            problems.append(
                f"{x}: <size> says {rec.size_wh[0]}x{rec.size_wh[1]} but image {img.name} is "
                f"{w}x{h} (width x height, after EXIF orientation)"
            )
            continue
        objs = []
        for o in rec.objects:
            if o.name not in index:
                problems.append(f"{o.where}: class '{o.name}' is not in class_names {names}")
            else:
                objs.append(o)
        if objs:
            voc = np.array([o.box for o in objs], dtype=np.float64)
            labels = np.array([index[o.name] for o in objs], dtype=np.int64)
            flags = np.array([o.flags for o in objs], dtype=np.uint8)
            xyxy = voc.copy()
            xyxy[:, :2] -= 1.0  # the VOC rule, as Target.from_voc applies it
            keep = check_pixel_boxes(
                xyxy,
                (w, h),
                [o.where for o in objs].__getitem__,
                strict=strict,
                report=report,
                problems=problems,
                file_offset=(1.0, 1.0, 0.0, 0.0),  # messages show the file's own values
            )
            builder.add(img, (h, w), xyxy[keep], labels[keep], flags[keep])
        else:
            builder.add(img, (h, w), np.zeros((0, 4)), np.zeros(0, np.int64))
    for img in orphans:
        why = not_regular(img)
        if why is not None:
            problems.append(f"{img}: {why}")
            continue
        try:
            h, w = read_image_hw(img)
        except ImageReadError as e:
            problems.append(str(e))
            continue
        report.note("missing_label_files", f"{img}: no .xml beside it (kept as background)")
        builder.add(img, (h, w), np.zeros((0, 4)), np.zeros(0, np.int64))
    if problems:
        raise DatasetError(f"cannot load VOC dataset {root}", problems)
    return builder.build(names, report)


def _voc_xml(filename: str, hw: tuple[int, int], target: Target, names: Sequence[str]) -> str:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = filename
    src = ET.SubElement(root, "source")
    ET.SubElement(src, "database").text = "yolo2retina"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(hw[1])
    ET.SubElement(size, "height").text = str(hw[0])
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "0"
    flags = target.flags if target.flags is not None else np.zeros(len(target), np.uint8)
    for box, label, f in zip(target.to_voc(), target.labels, flags, strict=True):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = names[int(label)]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "1" if int(f) & FLAG_TRUNCATED else "0"
        ET.SubElement(obj, "difficult").text = "1" if int(f) & FLAG_DIFFICULT else "0"
        bnd = ET.SubElement(obj, "bndbox")
        for tag, v in zip(_COORDS, box, strict=True):
            ET.SubElement(bnd, tag).text = fmt_number(float(v))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def write_voc(
    annotations: Annotations | Mapping[str, Annotations],
    dst: str | os.PathLike[str],
    *,
    images: ImageMode = "copy",
    overwrite: bool = False,
    progress: bool = False,
) -> WriteReport:
    """Write a VOC dataset: ``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/{split}.txt``.

    ``classes.txt`` at the root keeps the class order. ``difficult`` and ``truncated`` flags
    are written; crowd flags cannot be (VOC has none), nor COCO category ids and image ids
    (VOC names classes and images): ``lost`` lists each of them.

    Args:
        annotations: one split (written as ``train``) or a mapping split name -> split.
        dst: output folder.
        images: ``"copy"``, ``"symlink"`` or ``"hardlink"`` the images into ``JPEGImages/``.
        overwrite: replace existing files (otherwise nothing is written and an error
            lists them).
        progress: show a progress bar.

    Raises:
        DatasetError: outputs exist, two images share a file stem, or class names differ
            between splits.
    """
    splits = as_splits(annotations)
    out = Path(dst)
    names = common_names(splits)
    file_names = unique_names(splits, across_splits=True)
    plan = [out / "classes.txt"] + [out / "ImageSets" / "Main" / f"{s}.txt" for s in splits]
    for s in splits:
        for fn in file_names[s]:
            plan += [out / "JPEGImages" / fn, out / "Annotations" / f"{Path(fn).stem}.xml"]
    refuse_existing(dict.fromkeys(plan), overwrite, out)
    done: set[str] = set()
    report = WriteReport(str(out), "voc")
    report.lost = flag_losses(
        splits, FLAG_DIFFICULT | FLAG_TRUNCATED, "VOC", "boxes written without it"
    ) + id_losses(splits, "VOC")
    total = sum(len(a) for a in splits.values())
    bar = tqdm(total=total, desc="write VOC", disable=not progress)
    for s, ann in splits.items():
        for i, fn in enumerate(file_names[s]):
            bar.update(1)
            if fn in done:  # the same image listed in an earlier split
                continue
            done.add(fn)
            place_image(ann.image_path(i), out / "JPEGImages" / fn, images)
            xml = out / "Annotations" / f"{Path(fn).stem}.xml"
            atomic_write_text(xml, _voc_xml(fn, ann.image_hw(i), ann.target(i), names))
            report.files.append(str(xml))
        ids = "".join(f"{Path(fn).stem}\n" for fn in file_names[s])
        atomic_write_text(out / "ImageSets" / "Main" / f"{s}.txt", ids)
        report.images += len(ann)
        report.boxes += ann.num_boxes
    bar.close()
    atomic_write_text(out / "classes.txt", "".join(f"{n}\n" for n in names))
    return report


#: The adapter registered as ``"voc"``.
ADAPTER = VocFormat()
