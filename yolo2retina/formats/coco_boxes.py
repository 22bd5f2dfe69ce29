"""COCO annotation columns -> :class:`~yolo2retina.annotations.Annotations`.

Categories become labels ``0..K-1`` (:func:`categories_of`); :func:`link_boxes` links each
annotation to its image and label, checks the boxes (clips and drops counted in the report)
and groups them by image, in annotation order within an image.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from yolo2retina import boxes as box_ops
from yolo2retina.annotations import Annotations, LoadReport
from yolo2retina.errors import DatasetError
from yolo2retina.formats._common import check_pixel_boxes
from yolo2retina.formats.coco_columns import column, dupes, index_of
from yolo2retina.formats.coco_images import ImageTable


@attrs.frozen
class Categories:
    """Categories -> labels ``0..K-1`` (id order, or the order of ``class_names``)."""

    names: list[str]
    category_ids: list[int]
    keys: npt.NDArray[np.int64]  # category ids of the labels, sorted
    label_of_key: npt.NDArray[np.int64]  # label of each sorted key


def categories_of(file: Path, cats: list[Any], class_names: Sequence[str] | None) -> Categories:
    cat_ids = column(
        cats,
        itemgetter("id"),
        np.int64,
        lambda i: f"{file}: categories[{i}]: missing or non-integer 'id'",
        (int,),
    )
    cat_names: list[str] = []
    for i, c in enumerate(cats):
        if not isinstance(c.get("name"), str):
            raise DatasetError(f"{file}: categories[{i}]: missing or non-string 'name'")
        cat_names.append(c["name"])
    if dup := dupes(cat_ids):
        raise DatasetError(f"{file}: duplicate category ids {dup}")
    order = np.argsort(cat_ids, kind="stable")
    if class_names is not None:
        by_name = {cat_names[i]: int(cat_ids[i]) for i in range(len(cats))}
        if sorted(by_name) != sorted(class_names) or len(set(class_names)) != len(class_names):
            raise DatasetError(
                f"{file}: class_names {list(class_names)} must list each category name once: "
                f"{sorted(by_name)}"
            )
        names = list(class_names)
        category_ids = [by_name[n] for n in names]
        order = np.array([int(np.flatnonzero(cat_ids == c)[0]) for c in category_ids], np.int64)
    else:
        names = [cat_names[i] for i in order]
        category_ids = [int(cat_ids[i]) for i in order]
    cat_sorted = cat_ids[order]
    label_of_key = np.argsort(cat_sorted, kind="stable")
    return Categories(names, category_ids, cat_sorted[label_of_key], label_of_key)


def link_boxes(
    file: Path,
    cols: list[npt.NDArray[Any]],
    categories: Categories,
    table: ImageTable,
    strict: bool,
    report: LoadReport,
) -> Annotations:
    """Link the annotation columns to images and labels, check the boxes, group by image.

    ``cols`` (:data:`~yolo2retina.formats.coco_columns.Columns` as a list) is emptied, so
    each column is freed as soon as it has been used.
    """
    ann_ids, ann_img, ann_cat, xywh, flags = cols
    cols.clear()
    problems: list[str] = []

    def at(i: int) -> str:
        return f"{file}: annotations[{i}] (id {int(ann_ids[i])})"

    if dup := dupes(ann_ids):
        shown = ", ".join(str(d) for d in dup[:10])
        raise DatasetError(
            f"{file}: duplicate annotation ids: {shown}" + (" ..." if len(dup) > 10 else "")
        )
    img_sorted = np.argsort(table.ids, kind="stable")
    img_index, found = index_of(table.ids[img_sorted], img_sorted, ann_img)
    for i in np.flatnonzero(~found).tolist():
        problems.append(f"{at(int(i))}: image_id {int(ann_img[i])} is not in 'images'")
    del ann_img, found
    labels, found_c = index_of(categories.keys, categories.label_of_key, ann_cat)
    for i in np.flatnonzero(~found_c).tolist():
        problems.append(f"{at(int(i))}: category_id {int(ann_cat[i])} is not in 'categories'")
    del ann_cat, found_c
    with np.errstate(invalid="ignore"):
        malformed = ~np.isfinite(xywh).all(1) | (xywh[:, 2] < 0) | (xywh[:, 3] < 0)
    for i in np.flatnonzero(malformed).tolist():
        problems.append(
            f"{at(int(i))}: malformed bbox {xywh[i].tolist()} (needs finite x, y and width, height >= 0)"
        )
    if problems:
        raise DatasetError(f"cannot load COCO file {file}", problems)
    xyxy = box_ops.xywh_to_xyxy(xywh)
    del xywh
    boxes_wh = table.hw[:, ::-1].astype(np.float64)[img_index]
    keep = check_pixel_boxes(xyxy, boxes_wh, at, strict=strict, report=report, problems=problems)
    del boxes_wh
    if problems:
        raise DatasetError(f"cannot load COCO file {file}", problems)
    return _group_by_image(xyxy, labels, flags, ann_ids, img_index, keep, categories, table, report)


def _group_by_image(
    xyxy: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    flags: npt.NDArray[np.uint8],
    ann_ids: npt.NDArray[np.int64],
    img_index: npt.NDArray[np.int64],
    keep: npt.NDArray[np.bool_],
    categories: Categories,
    table: ImageTable,
    report: LoadReport,
) -> Annotations:
    """The kept boxes grouped by image (stable: annotation order kept within an image)."""
    n = len(table.paths)
    if not keep.all():
        xyxy, labels, flags = xyxy[keep], labels[keep], flags[keep]
        ann_ids, img_index = ann_ids[keep], img_index[keep]
    if len(img_index) > 1 and not bool((img_index[1:] >= img_index[:-1]).all()):
        perm = np.argsort(img_index, kind="stable")  # annotations not in image order
        xyxy, labels, flags, ann_ids = xyxy[perm], labels[perm], flags[perm], ann_ids[perm]
        del perm
    counts = np.bincount(img_index, minlength=n)
    del img_index
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    report.images = n
    report.boxes = int(offsets[-1])
    report.background_images = int((counts == 0).sum())
    return Annotations(
        paths=np.asarray(table.paths, dtype=np.str_).reshape(-1),
        image_hw_array=table.hw,
        offsets=offsets,
        boxes=xyxy.astype(np.float32),
        labels=np.array(labels, np.int64),  # copies: the columns may be views of a
        flags=np.array(flags, np.uint8),  # larger buffer (coco_json._Pieces)
        class_names=tuple(categories.names),
        image_ids=table.ids,
        category_ids=tuple(categories.category_ids),
        annotation_ids=np.array(ann_ids, np.int64),
        report=report,
    )
