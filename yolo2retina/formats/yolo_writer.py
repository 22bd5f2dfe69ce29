"""YOLO writer: an Ultralytics dataset (``data.yaml``, ``images/{split}/``, ``labels/{split}/``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm.auto import tqdm

from yolo2retina import boxes as box_ops
from yolo2retina.annotations import Annotations
from yolo2retina.atomic import atomic_write_text
from yolo2retina.errors import DatasetError
from yolo2retina.formats._common import (
    IDS_FILE,
    as_splits,
    common_names,
    flag_losses,
    fmt_number,
    place_image,
    refuse_existing,
    unique_names,
)
from yolo2retina.formats.base import ImageMode, WriteReport
from yolo2retina.formats.yolo_ids import ids_document

__all__ = ["write_yolo"]


#: Keys of an Ultralytics data.yaml for the split names a writer is given.
_YAML_KEYS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _yolo_lines(target_cxcywh: np.ndarray, labels: np.ndarray) -> str:
    """Label rows with the shortest text that reads back as the same float64 values.

    Widths are nudged down by an ulp where rounding would put an edge past 0 or 1, so
    the reader never sees (and clips) a box that was inside the image.
    """
    v = np.array(target_cxcywh, dtype=np.float64)
    for _ in range(8):
        edges = box_ops.cxcywh_to_xyxy(v)
        bad_w = (edges[:, 0] < 0) | (edges[:, 2] > 1)
        bad_h = (edges[:, 1] < 0) | (edges[:, 3] > 1)
        if not (bad_w.any() or bad_h.any()):
            break
        v[bad_w, 2] = np.nextafter(v[bad_w, 2], 0)
        v[bad_h, 3] = np.nextafter(v[bad_h, 3], 0)
    return "".join(
        f"{int(c)} {' '.join(fmt_number(x) for x in row)}\n"
        for c, row in zip(labels.tolist(), v.tolist(), strict=True)
    )


def _refuse_shared_labels(
    splits: Mapping[str, Annotations], file_names: Mapping[str, list[str]]
) -> None:
    """Raise when two images of a split would write the same ``labels/{split}/{stem}.txt``."""
    problems = []
    for s, ann in splits.items():
        seen: dict[str, str] = {}
        for path, fn in zip(ann.paths.tolist(), file_names[s], strict=True):
            stem = Path(fn).stem
            if stem in seen and seen[stem] != path:  # one image listed twice is fine
                problems.append(
                    f"{path} and {seen[stem]}: both would be written to labels/{s}/{stem}.txt"
                )
            seen.setdefault(stem, path)
    if problems:
        raise DatasetError(
            "two images would share one YOLO label file (same name apart from the "
            "extension); rename one",
            problems,
        )


def write_yolo(
    annotations: Annotations | Mapping[str, Annotations],
    dst: str | os.PathLike[str],
    *,
    images: ImageMode = "copy",
    overwrite: bool = False,
    progress: bool = False,
) -> WriteReport:
    """Write an Ultralytics dataset: ``data.yaml``, ``images/{split}/``, ``labels/{split}/``.

    Background images get an empty label file. The yaml has no ``path`` key and only
    paths relative to itself, so Ultralytics and :func:`read_yolo` resolve splits beside
    it and a moved or renamed output folder still loads; a ``valid`` split is listed
    under the ``val`` key. Two images of one split whose names differ only in the
    extension (``a.jpg``, ``a.png``) would share a label file: that is an error, raised
    before anything is written. YOLO cannot hold crowd/difficult/truncated flags
    (those boxes are written as ordinary boxes): the returned report's ``lost`` says which
    were dropped. COCO category ids and image ids are kept in :data:`IDS_FILE` beside the
    yaml (written only when there are ids to keep), which :func:`read_yolo` reads back, so
    COCO -> YOLO -> COCO keeps them.

    Args:
        annotations: one split (written as ``train``) or a mapping split name -> split.
        dst: output folder.
        images: ``"copy"``, ``"symlink"`` or ``"hardlink"``.
        overwrite: replace existing files (otherwise nothing is written).
        progress: show a progress bar.
    """
    splits = as_splits(annotations)
    out = Path(dst)
    names = common_names(splits)
    file_names = unique_names(splits, across_splits=False)
    _refuse_shared_labels(splits, file_names)
    keys = {s: _YAML_KEYS.get(s, s) for s in splits}
    if len(set(keys.values())) != len(keys):
        raise DatasetError(f"splits {sorted(splits)} map to the same data.yaml key")
    plan = [out / "data.yaml"]
    for s in splits:
        for fn in file_names[s]:
            plan += [out / "images" / s / fn, out / "labels" / s / (Path(fn).stem + ".txt")]
    refuse_existing(plan, overwrite, out)
    report = WriteReport(str(out), "yolo")
    report.lost = flag_losses(splits, 0, "YOLO", "those boxes are written as ordinary boxes")
    ids_doc = ids_document(splits, file_names)
    if len({a.category_ids for a in splits.values()}) > 1:
        report.lost.append("COCO category ids: the splits disagree, so none are kept")
    if ids_doc is not None:
        refuse_existing([out / IDS_FILE], overwrite, out)
    _write_images_and_labels(splits, file_names, out, images, progress, report)
    if ids_doc is not None:
        atomic_write_text(out / IDS_FILE, json.dumps(ids_doc, indent=1) + "\n")
        report.files.append(str(out / IDS_FILE))
    atomic_write_text(out / "data.yaml", _data_yaml_text(splits, keys, names, report))
    report.files.append(str(out / "data.yaml"))
    return report


def _write_images_and_labels(
    splits: Mapping[str, Annotations],
    file_names: Mapping[str, list[str]],
    out: Path,
    images: ImageMode,
    progress: bool,
    report: WriteReport,
) -> None:
    bar = tqdm(total=sum(len(a) for a in splits.values()), desc="write YOLO", disable=not progress)
    for s, ann in splits.items():
        for i, fn in enumerate(file_names[s]):
            h, w = ann.image_hw(i)
            place_image(ann.image_path(i), out / "images" / s / fn, images)
            t = ann.target(i)
            lf = out / "labels" / s / (Path(fn).stem + ".txt")
            atomic_write_text(lf, _yolo_lines(t.to_yolo((w, h)), t.labels))
            report.files.append(str(lf))
            bar.update(1)
        report.images += len(ann)
        report.boxes += ann.num_boxes
    bar.close()


def _data_yaml_text(
    splits: Mapping[str, Annotations],
    keys: Mapping[str, str],
    names: Sequence[str],
    report: WriteReport,
) -> str:
    """The data.yaml: split keys relative to itself, ``nc`` and ``names``.

    A source without a ``train`` or ``val`` split lists the one it has under both keys
    (Ultralytics needs both), with a comment and a remark in ``report`` saying so.
    """
    doc: dict[str, Any] = {keys[s]: f"images/{s}" for s in splits}
    header = ""
    missing = [k for k in ("train", "val") if k not in doc]
    if missing and doc:
        only = next(iter(doc.values()))
        doc = {"train": doc.get("train", only), "val": doc.get("val", only), **doc}
        which = ", ".join(sorted(splits))
        note = (
            f"the source has no {' and no '.join(repr(k) for k in missing)} split, so "
            f"data.yaml lists {only} as {' and '.join(missing)} too (Ultralytics needs both "
            "keys); make a real validation split with 'yolo2retina split'"
        )
        report.remarks.append(note)
        header = (
            f"# Written by yolo2retina from a source with only the split(s) {which}:\n# {note}.\n"
        )
    doc["nc"] = len(names)
    doc["names"] = list(names)
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
