"""The ids sidecar (:data:`~yolo2retina.formats._common.IDS_FILE`) beside a YOLO data.yaml.

YOLO label files name classes by index and images by file, so COCO category ids and image
ids are lost on the way through YOLO. The writer keeps them in ``yolo2retina_ids.json``
beside the yaml (only when there is something to keep); the reader uses them when they
still fit the split. Ultralytics ignores the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from yolo2retina.annotations import Annotations, LoadReport
from yolo2retina.errors import DatasetError
from yolo2retina.formats._common import IDS_FILE
from yolo2retina.formats._files import path_kind, read_text_file
from yolo2retina.formats.data_yaml import DataYaml


def ids_document(
    splits: Mapping[str, Annotations], file_names: Mapping[str, list[str]]
) -> dict[str, Any] | None:
    """The ids document for :data:`IDS_FILE`, or ``None`` when there is nothing to keep
    (no category ids, and image ids ``0..N-1`` in every split)."""
    cats = {a.category_ids for a in splits.values()}
    category_ids = next(iter(cats)) if len(cats) == 1 else None
    images: dict[str, int] = {}
    keep_images = False
    for s, ann in splits.items():
        ids = ann.image_ids.tolist()
        keep_images |= ids != list(range(len(ann)))
        for fn, i in zip(file_names[s], ids, strict=True):
            images[f"images/{s}/{fn}"] = int(i)
    if category_ids is None and not keep_images:
        return None
    return {
        "about": "COCO ids that YOLO labels cannot hold, kept by yolo2retina (read_yolo "
        "reads them back); Ultralytics ignores this file",
        "category_ids": None if category_ids is None else list(category_ids),
        "image_ids": images if keep_images else None,
    }


def read_sidecar_ids(
    dy: DataYaml | None,
    class_names: Sequence[str] | None,
    image_files: Sequence[str],
    report: LoadReport,
) -> tuple[list[int] | None, dict[str, int]]:
    """``(category ids, {image: id})`` from the :data:`IDS_FILE` beside a data.yaml."""
    if dy is None or dy.darknet:
        return None, {}
    ids_base = Path(os.path.realpath(dy.file.parent))
    sidecar = ids_base / IDS_FILE
    if path_kind(sidecar) == "missing":
        return None, {}
    category_ids, id_of = _read_ids_sidecar(sidecar, len(dy.class_names))
    if class_names is not None and list(class_names) != dy.class_names:
        category_ids = None  # the classes were reordered: the ids no longer match
    if id_of is None:
        return category_ids, {}
    rel = {img: Path(os.path.relpath(img, ids_base)).as_posix() for img in image_files}
    found = {img: id_of[r] for img, r in rel.items() if r in id_of}
    if len(found) == len(rel) and len(set(found.values())) == len(found):
        return category_ids, found
    report.details.append(
        f"{ids_base / IDS_FILE}: image ids not used for this split: "
        f"{len(rel) - len(found)} of its {len(rel)} images are not listed, or ids repeat"
    )
    return category_ids, {}


def _read_ids_sidecar(
    file: Path, num_classes: int
) -> tuple[list[int] | None, dict[str, int] | None]:
    """``(category_ids, {relative image path: id})`` of an :data:`IDS_FILE`.

    Raises:
        DatasetError: naming the file: not JSON, or ids that are not integers, not unique,
            or a category id count that differs from the class names.
    """
    try:
        doc = json.loads(read_text_file(file, IDS_FILE))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{file}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    if not isinstance(doc, dict):
        raise DatasetError(f"{file}: expected a JSON object with category_ids and image_ids")
    cats, imgs = doc.get("category_ids"), doc.get("image_ids")

    def ints(values: list[Any]) -> bool:
        return all(type(v) is int for v in values) and len(set(values)) == len(values)

    if cats is not None and not (
        isinstance(cats, list) and ints(cats) and len(cats) == num_classes
    ):
        raise DatasetError(
            f"{file}: category_ids must be {num_classes} unique integers (one per class name)"
        )
    if imgs is not None and not (
        isinstance(imgs, dict) and all(type(v) is int for v in imgs.values())
    ):
        raise DatasetError(f"{file}: image_ids must map image paths to integers")
    return cats, imgs
