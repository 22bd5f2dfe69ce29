"""Pascal VOC writer: ``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/{split}.txt``."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from yolo2retina.annotations import Annotations
from yolo2retina.atomic import atomic_write_text
from yolo2retina.formats._common import (
    as_splits,
    common_names,
    flag_losses,
    fmt_number,
    id_losses,
    place_image,
    refuse_existing,
    unique_names,
)
from yolo2retina.formats.base import ImageMode, WriteReport
from yolo2retina.formats.voc_xml import COORDS
from yolo2retina.target import FLAG_DIFFICULT, FLAG_TRUNCATED, Target

__all__ = ["write_voc"]


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
        for tag, v in zip(COORDS, box, strict=True):
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
