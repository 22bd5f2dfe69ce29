"""Write predictions out: YOLO txt with confidence, COCO results JSON, Pascal VOC XML, counts CSV.

* YOLO: Ultralytics' ``predict --save-txt --save-conf`` layout, one ``labels/<stem>.txt``
  per image with ``class cx cy w h conf`` rows (normalized to the upright image).
  Unlike Ultralytics, an image without detections gets an empty file, so "looked and
  found nothing" differs from "not processed".
* COCO: a results JSON (``[{image_id, category_id, bbox, score}]``) written by
  :func:`yolo2retina.formats.coco.write_coco_results`; ``image_id`` is the image's
  index in the run (the ``image_id`` column of ``counts.csv``), category ids are
  ``label + 1`` (``1..K``, as :func:`~yolo2retina.formats.coco.write_coco` numbers them).
* VOC: a Pascal VOC dataset of the predictions (``Annotations/*.xml``, ``JPEGImages/``,
  ``ImageSets/Main/train.txt``, ``classes.txt``) written by
  :func:`yolo2retina.formats.voc.write_voc`, ready to correct in a labelling tool.
  VOC has no score field: the scores are not in the XML.

Every file is written under a temporary name and renamed (:mod:`yolo2retina.atomic`).

Example:
    >>> from yolo2retina.target import Target
    >>> t = Target.from_xyxy([[10, 20, 30, 60]], [1], [0.5])
    >>> yolo_txt_lines(t, (100, 200))
    '1 0.1 0.4 0.1 0.4 0.5\\n'
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from yolo2retina.annotations import Annotations, AnnotationsBuilder, LoadReport
from yolo2retina.atomic import atomic_write_text
from yolo2retina.counts import counts_table
from yolo2retina.errors import ConfigError
from yolo2retina.target import Target

if TYPE_CHECKING:
    from yolo2retina.formats.base import ImageMode, WriteReport
    from yolo2retina.prediction import ImagePrediction

__all__ = [
    "predictions_to_annotations",
    "write_counts_csv",
    "write_predictions_coco",
    "write_predictions_voc",
    "write_yolo_txt",
    "yolo_txt_lines",
]


def yolo_txt_lines(target: Target, image_hw: tuple[int, int]) -> str:
    """Ultralytics predict rows ``class cx cy w h conf`` (6 significant digits), one per box.

    Raises:
        ConfigError: the target has no scores.
    """
    if target.scores is None:
        raise ConfigError("YOLO prediction rows need scores (a Target from predict())")
    h, w = image_hw
    rows = np.concatenate(
        [target.to_yolo((w, h)), target.scores.astype(np.float64).reshape(-1, 1)], axis=1
    )
    return "".join(
        f"{int(c)} " + " ".join(f"{v:.6g}" for v in r) + "\n"
        for c, r in zip(target.labels.tolist(), rows, strict=True)
    )


def write_yolo_txt(target: Target, image_hw: tuple[int, int], path: str | os.PathLike[str]) -> Path:
    """Write one image's detections as an Ultralytics ``--save-conf`` label file (atomically)."""
    p = Path(path)
    atomic_write_text(p, yolo_txt_lines(target, image_hw))
    return p


def predictions_to_annotations(
    predictions: Sequence[ImagePrediction], class_names: Sequence[str]
) -> Annotations:
    """The successful predictions as :class:`Annotations` (image id = index in ``predictions``).

    Images that failed are left out; ``image_ids`` keep the index of each image in
    ``predictions`` so ids stay those of ``counts.csv``.
    """
    builder = AnnotationsBuilder()
    for i, p in enumerate(predictions):
        if p.target is None or p.image_hw is None:
            continue
        builder.add(p.source, p.image_hw, p.target.boxes, p.target.labels, None, image_id=i)
    return builder.build(class_names, LoadReport(source="predictions"))


def _ok(predictions: Sequence[ImagePrediction]) -> list[Target]:
    return [p.target for p in predictions if p.target is not None]


def write_predictions_coco(
    predictions: Sequence[ImagePrediction],
    class_names: Sequence[str],
    path: str | os.PathLike[str],
) -> Path:
    """Write a COCO results JSON for the images that were predicted."""
    from yolo2retina.formats.coco import write_coco_results

    ann = predictions_to_annotations(predictions, class_names)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return write_coco_results(_ok(predictions), ann, p)


def write_predictions_voc(
    predictions: Sequence[ImagePrediction],
    class_names: Sequence[str],
    dst: str | os.PathLike[str],
    *,
    images: ImageMode = "symlink",
    exist_ok: bool = False,
    overwrite: bool = False,
) -> WriteReport:
    """Write the predictions as a Pascal VOC dataset (scores are not kept; VOC has none).

    Written like every dataset (:func:`yolo2retina.formats.write_annotations`): into a
    temporary folder renamed to ``dst`` at the end.

    Args:
        images: how images get into ``JPEGImages/``: ``"symlink"`` (default), ``"copy"``
            or ``"hardlink"``. In-memory images cannot be exported.
        exist_ok: write into an existing ``dst`` that holds files (only new files).
        overwrite: like ``exist_ok``, and replace files of the same name.
    """
    from yolo2retina.formats import write_annotations

    bad = [p.source for p in predictions if p.target is not None and not Path(p.source).is_file()]
    if bad:
        raise ConfigError(f"VOC export needs image files; not a file: {bad[0]}")
    return write_annotations(
        predictions_to_annotations(predictions, class_names),
        dst,
        "voc",
        images=images,
        exist_ok=exist_ok,
        overwrite=overwrite,
    )


def write_counts_csv(
    predictions: Sequence[ImagePrediction],
    class_names: Sequence[str],
    path: str | os.PathLike[str],
) -> Path:
    """Write ``counts.csv``: ``image_id, image, total, <one column per class>, error``."""
    rows: list[dict[str, Any]] = [
        {"image_id": i, **row} for i, row in enumerate(counts_table(predictions, class_names))
    ]
    fields = ["image_id", "image", "total", *class_names, "error"]
    if len(set(fields)) != len(fields):
        raise ConfigError(f"class names clash with the counts.csv columns: {list(class_names)}")
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    p = Path(path)
    atomic_write_text(p, text.getvalue())
    return p
