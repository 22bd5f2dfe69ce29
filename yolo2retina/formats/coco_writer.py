"""COCO writers: a dataset as Roboflow-style COCO folders, and detections as a results JSON."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from yolo2retina import boxes as box_ops
from yolo2retina.annotations import Annotations
from yolo2retina.atomic import atomic_write_bytes
from yolo2retina.errors import DatasetError
from yolo2retina.formats._common import (
    as_splits,
    common_names,
    place_image,
    refuse_existing,
    unique_names,
)
from yolo2retina.formats.base import ImageMode, WriteReport
from yolo2retina.formats.coco_layout import ROBOFLOW_JSON_NAME
from yolo2retina.target import FLAG_CROWD, FLAG_DIFFICULT, FLAG_TRUNCATED, Target

__all__ = ["coco_category_ids", "write_coco", "write_coco_results"]


def coco_category_ids(annotations: Annotations) -> list[int]:
    """COCO category id of each label: the original ids when known, else ``1..K``."""
    if annotations.category_ids is not None:
        return [int(c) for c in annotations.category_ids]
    return list(range(1, annotations.num_classes + 1))


def _coco_image_ids(annotations: Annotations) -> list[int]:
    ids = annotations.image_ids
    if len(np.unique(ids)) == len(ids):
        return [int(i) for i in ids]
    return list(range(len(ids)))


def _coco_dict(ann: Annotations, file_names: Sequence[str]) -> dict[str, Any]:
    cat_ids = coco_category_ids(ann)
    img_ids = _coco_image_ids(ann)
    xywh = box_ops.xyxy_to_xywh(ann.boxes).tolist()
    owners = ann.image_index().tolist()
    labels = ann.labels.tolist()
    flags = ann.flags.tolist()
    records = []
    for k in range(ann.num_boxes):
        b = xywh[k]
        rec: dict[str, Any] = {
            "id": k + 1,
            "image_id": img_ids[owners[k]],
            "category_id": cat_ids[labels[k]],
            "bbox": b,
            "area": b[2] * b[3],
            "segmentation": [],
            "iscrowd": 1 if flags[k] & FLAG_CROWD else 0,
        }
        if flags[k] & FLAG_DIFFICULT:
            rec["difficult"] = 1
        if flags[k] & FLAG_TRUNCATED:
            rec["truncated"] = 1
        records.append(rec)
    hw = ann.image_hw_array.tolist()
    return {
        "info": {"description": "written by yolo2retina"},
        "licenses": [],
        "categories": [
            {"id": c, "name": n, "supercategory": "none"}
            for c, n in zip(cat_ids, ann.class_names, strict=True)
        ],
        "images": [
            {"id": img_ids[i], "file_name": file_names[i], "height": hw[i][0], "width": hw[i][1]}
            for i in range(len(ann))
        ],
        "annotations": records,
    }


def write_coco(
    annotations: Annotations | Mapping[str, Annotations],
    dst: str | os.PathLike[str],
    *,
    images: ImageMode = "copy",
    overwrite: bool = False,
    progress: bool = False,
) -> WriteReport:
    """Write COCO folders: ``dst/{split}/_annotations.coco.json`` with the images beside it.

    Category ids are the original ones when ``annotations.category_ids`` is set, else
    ``1..K``; image ids are ``annotations.image_ids`` when unique. Crowd flags become
    ``iscrowd``; difficult/truncated flags are kept in non-standard ``"difficult"`` /
    ``"truncated"`` keys (other COCO tools ignore them).

    Args:
        annotations: one split (written as ``train``) or a mapping split name -> split.
        dst: output folder.
        images: ``"copy"``, ``"symlink"`` or ``"hardlink"``.
        overwrite: replace existing files (otherwise nothing is written).
        progress: show a progress bar.
    """
    splits = as_splits(annotations)
    out = Path(dst)
    common_names(splits)
    file_names = unique_names(splits, across_splits=False)
    plan = []
    for s in splits:
        plan.append(out / s / ROBOFLOW_JSON_NAME)
        plan += [out / s / fn for fn in file_names[s]]
    refuse_existing(plan, overwrite, out)
    report = WriteReport(str(out), "coco")
    bar = tqdm(total=sum(len(a) for a in splits.values()), desc="write COCO", disable=not progress)
    for s, ann in splits.items():
        for i, fn in enumerate(file_names[s]):
            place_image(ann.image_path(i), out / s / fn, images)
            bar.update(1)
        f = out / s / ROBOFLOW_JSON_NAME
        atomic_write_bytes(f, json.dumps(_coco_dict(ann, file_names[s])).encode("utf-8"))
        report.files.append(str(f))
        report.images += len(ann)
        report.boxes += ann.num_boxes
        if len(np.unique(ann.image_ids)) != len(ann):
            report.lost.append(f"{s}: image ids were not unique; renumbered 0..{len(ann) - 1}")
    bar.close()
    return report


def write_coco_results(
    predictions: Sequence[Target], annotations: Annotations, path: str | os.PathLike[str]
) -> Path:
    """Write detections as a COCO results JSON (``[{image_id, category_id, bbox, score}]``).

    ``predictions[i]`` belongs to image ``i`` of ``annotations``; image and category ids
    are the ones :func:`write_coco` writes (original COCO ids when known), so the file
    can be scored with ``pycocotools`` against the ground truth JSON.

    Raises:
        DatasetError: the number of predictions differs from the number of images, or a
            prediction has no scores or a label outside the classes.
    """
    if len(predictions) != len(annotations):
        raise DatasetError(
            f"{len(predictions)} predictions for {len(annotations)} images in {path}"
        )
    cat_ids = coco_category_ids(annotations)
    img_ids = _coco_image_ids(annotations)
    out = []
    for i, t in enumerate(predictions):
        if len(t) == 0:
            continue
        if t.scores is None:
            raise DatasetError(f"prediction {i} ({annotations.image_path(i)}) has no scores")
        if int(t.labels.max()) >= len(cat_ids):
            raise DatasetError(
                f"prediction {i}: label {int(t.labels.max())} >= {len(cat_ids)} classes"
            )
        for b, lab, sc in zip(
            t.to_coco().tolist(), t.labels.tolist(), t.scores.tolist(), strict=True
        ):
            out.append(
                {"image_id": img_ids[i], "category_id": cat_ids[lab], "bbox": b, "score": sc}
            )
    p = Path(path)
    atomic_write_bytes(p, json.dumps(out).encode("utf-8"))
    return p
