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
external entities are refused with an error naming the file.
"""

from __future__ import annotations

import os
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
    is_image_file,
    place_image,
    read_classes_txt,
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
        problems.append(f"{xml}: cannot read: {e.strerror}")
        return None
    if root is None or root.tag != "annotation":
        tag = "none" if root is None else f"<{root.tag}>"
        problems.append(f"{xml}: root element is {tag}, expected <annotation>")
        return None
    size_wh: tuple[int, int] | None = None
    size = root.find("size")
    if size is not None:
        try:
            w = int(float(_text(size.find("width")) or 0))
            h = int(float(_text(size.find("height")) or 0))
        except ValueError:
            problems.append(f"{xml}: <size> width/height are not numbers")
            return None
        size_wh = (w, h) if w > 0 and h > 0 else None
    objects = []
    for k, obj in enumerate(root.findall("object"), 1):  # <part> children are ignored
        where = f"{xml}: object {k}"
        name = _text(obj.find("name"))
        if name is None:
            problems.append(f"{where}: no <name>")
            continue
        where = f"{where} ('{name}')"
        bnd = obj.find("bndbox")
        if bnd is None:
            problems.append(f"{where}: no <bndbox>")
            continue
        vals = []
        for tag in _COORDS:  # found by tag, so any child order works
            t = _text(bnd.find(tag))
            if t is None:
                problems.append(f"{where}: <bndbox> has no <{tag}>")
                break
            try:
                vals.append(float(t))
            except ValueError:
                problems.append(f"{where}: <{tag}> '{t}' is not a number")
                break
        else:
            flags = 0
            for tag, bit in _FLAG_TAGS:
                t = _text(obj.find(tag))
                if t is None:
                    continue
                if t not in ("0", "1"):
                    problems.append(f"{where}: <{tag}> must be 0 or 1, got '{t}'")
                elif t == "1":
                    flags |= bit
            objects.append(_Object(name, (vals[0], vals[1], vals[2], vals[3]), flags, where))
    return _Record(xml, _text(root.find("filename")), size_wh, objects)


def _find_image(rec: _Record, image_dirs: Sequence[Path]) -> Path | None:
    cands = []
    for d in image_dirs:
        if rec.filename:
            cands.append(d / rec.filename)
        cands += [d / (rec.xml.stem + ext) for ext in (".jpg", ".jpeg", ".png", ".JPG", ".PNG")]
    for c in cands:
        if c.is_file():
            return c
    if rec.filename is None:
        for d in image_dirs:
            for ext in IMAGE_EXTENSIONS:
                if (d / (rec.xml.stem + ext)).is_file():
                    return d / (rec.xml.stem + ext)
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
        if path.is_file():
            return path.suffix.lower() == ".xml"
        if not path.is_dir():
            return False
        if (path / "Annotations").is_dir() and any((path / "Annotations").glob("*.xml")):
            return True
        if any(path.glob("*.xml")):
            return True
        return any(any(d.glob("*.xml")) for d in path.iterdir() if d.is_dir())

    def splits(self, path: Path) -> tuple[str, ...]:
        """``ImageSets/Main/{split}.txt`` names, or sub-folders holding ``.xml`` files."""
        if not path.is_dir():
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
        progress: show a progress bar.

    The ``<size>`` of each file must match the image (after EXIF orientation).
    Boxes up to 1 px outside the image are clipped, boxes with no area after that are
    dropped (both counted in ``report``); anything further out is an error. ``difficult``
    and ``truncated`` become per-box flags. A flat folder's images with no ``.xml`` are
    kept as background (counted as missing label files).

    Raises:
        DatasetError: listing every problem as ``file: object k: message``.
    """
    if not Path(source).is_dir():
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
            for lineno, line in enumerate(lst.read_text("utf-8-sig").splitlines(), 1):
                toks = line.split()
                if not toks:
                    continue
                x = ann_dir / f"{toks[0]}.xml"
                if not x.is_file():
                    problems.append(f"{lst}:{lineno}: '{toks[0]}' has no {x}")
                    continue
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
        stems = {x.stem for x in xmls}
        orphans = sorted(
            p for p in folder.iterdir() if is_image_file(p.name) and p.stem not in stems
        )
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
    for x in xmls:
        rec = records[x]
        if rec is None:
            continue
        img = _find_image(rec, image_dirs)
        if img is None:
            problems.append(
                f"{x}: image '{rec.filename or x.stem}' not found in "
                + ", ".join(str(d) for d in image_dirs)
            )
            continue
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
            )
            builder.add(img, (h, w), xyxy[keep], labels[keep], flags[keep])
        else:
            builder.add(img, (h, w), np.zeros((0, 4)), np.zeros(0, np.int64))
    for img in orphans:
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
    are written; crowd flags cannot be (VOC has none) and are reported in ``lost``.

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
    )
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
