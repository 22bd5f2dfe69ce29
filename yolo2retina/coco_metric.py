"""COCO-style detection metrics, computed exactly as pycocotools computes them, but vectorised.

:func:`coco_map` gives the 12 numbers that ``pycocotools.cocoeval.COCOeval.summarize()``
prints for ``iouType="bbox"``, plus per-class AP and AP50. It follows every rule of
COCOeval:

* matching per image and per class; detections sorted by score, highest first, with a
  *stable* sort (ties keep their input order), truncated to the 100 best per image and class;
* greedy matching at each IoU threshold ``.50:.05:.95``: a detection takes the free
  ground-truth box with the highest IoU (``>=`` the threshold; on equal IoU the later
  box wins), preferring regular boxes over ignored ones;
* crowd regions (:data:`~yolo2retina.target.FLAG_CROWD`) and VOC ``difficult`` boxes
  (:data:`~yolo2retina.target.FLAG_DIFFICULT`) are ignore regions: the IoU with them is
  ``intersection / detection area``, any number of detections may match them, and those
  detections count as neither true nor false positives;
* area ranges all / small (< 32²) / medium / large (> 96²) with inclusive bounds; a ground
  truth box outside the range is ignored, and so is an unmatched detection outside it.
  Areas are box ``w * h`` (for ground truth COCO uses its ``area`` field; Annotations
  have none, so box areas are used on both sides);
* 101-point interpolated precision over the monotone precision envelope, recall
  thresholds located with ``searchsorted(side="left")``;
* false positives on images without ground truth count;
* a class without ground truth (in an area range) gets -1 and is left out of the mean.

One COCOeval behaviour is only reproduced on request: a ground-truth annotation whose
``id`` is 0 can never be a true positive there (``pycocotools_compat=True``, see
:func:`coco_map`).

The per-image matching is in :mod:`yolo2retina.coco_matching`; this module holds the COCO
constants, the result types, the accumulation into precision/recall curves and the summary.
NumPy only: importing it never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from yolo2retina.annotations import Annotations
from yolo2retina.coco_matching import (
    DetectionGroups,
    GroundTruthGroups,
    candidate_pairs,
    flatten_predictions,
    greedy_match,
    group_detections,
    group_ground_truth,
    pr_curve,
    score_matches,
)
from yolo2retina.errors import DatasetError
from yolo2retina.target import Target

__all__ = [
    "AREA_RANGES",
    "IOU_THRESHOLDS",
    "MAX_DETS",
    "RECALL_THRESHOLDS",
    "ClassMetrics",
    "Metrics",
    "coco_map",
]

#: IoU thresholds .50:.05:.95, built exactly as pycocotools builds them (``np.linspace``).
IOU_THRESHOLDS: npt.NDArray[np.float64] = np.linspace(
    0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True
)
#: The 101 recall thresholds 0:.01:1 of COCO's interpolated precision.
RECALL_THRESHOLDS: npt.NDArray[np.float64] = np.linspace(
    0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True
)
#: Detections kept per image (and class) for the AR@1 / AR@10 / AR@100 settings.
MAX_DETS: tuple[int, int, int] = (1, 10, 100)
#: ``(name, lowest area, highest area)`` in square pixels; both bounds are inclusive.
AREA_RANGES: tuple[tuple[str, float, float], ...] = (
    ("all", 0.0**2, 1e5**2),
    ("small", 0.0**2, 32.0**2),
    ("medium", 32.0**2, 96.0**2),
    ("large", 96.0**2, 1e5**2),
)
_AREA_LO: npt.NDArray[np.float64] = np.array([a[1] for a in AREA_RANGES])
_AREA_HI: npt.NDArray[np.float64] = np.array([a[2] for a in AREA_RANGES])

# The 12 summary numbers: (attribute, AP or AR, IoU threshold or None, area name, maxDets).
_SUMMARY: tuple[tuple[str, bool, float | None, str, int], ...] = (
    ("map", True, None, "all", 100),
    ("map50", True, 0.5, "all", 100),
    ("map75", True, 0.75, "all", 100),
    ("map_small", True, None, "small", 100),
    ("map_medium", True, None, "medium", 100),
    ("map_large", True, None, "large", 100),
    ("mar_1", False, None, "all", 1),
    ("mar_10", False, None, "all", 10),
    ("mar_100", False, None, "all", 100),
    ("mar_small", False, None, "small", 100),
    ("mar_medium", False, None, "medium", 100),
    ("mar_large", False, None, "large", 100),
)


@attrs.frozen
class ClassMetrics:
    """Metrics of one class (-1 where the class has no ground truth to score against).

    Attributes:
        name: class name.
        ap: AP at IoU .50:.95 (area all, 100 detections).
        ap50: AP at IoU .50.
        ap75: AP at IoU .75.
        ar100: AR at IoU .50:.95 with 100 detections per image.
        num_gt: ground-truth boxes that are not ignore regions.
        num_predictions: predicted boxes of this class (before the 100-per-image cut).
    """

    name: str
    ap: float
    ap50: float
    ap75: float
    ar100: float
    num_gt: int
    num_predictions: int


def _float_eq(a: Any, b: Any) -> bool:
    return bool(np.array_equal(a, b))


@attrs.frozen
class Metrics:
    """The 12 COCO bbox numbers, per-class metrics and the raw precision/recall arrays.

    All values are in ``[0, 1]``, or ``-1`` where there is nothing to score (as in COCO).

    Attributes:
        map: AP at IoU .50:.95, area all, 100 detections (COCO's headline mAP).
        map50: AP at IoU .50.
        map75: AP at IoU .75.
        map_small: AP for boxes with area < 32².
        map_medium: AP for 32² <= area <= 96².
        map_large: AP for area > 96².
        mar_1: AR with 1 detection per image.
        mar_10: AR with 10 detections per image.
        mar_100: AR with 100 detections per image.
        mar_small: AR (100 detections) for small boxes.
        mar_medium: AR for medium boxes.
        mar_large: AR for large boxes.
        per_class: one :class:`ClassMetrics` per class, index = label.
        num_images: images evaluated.
        num_gt: ground-truth boxes that are not ignore regions.
        num_predictions: predicted boxes.
        precision: ``(T, R, K, A, M) float64`` like ``COCOeval.eval["precision"]``
            (IoU thresholds x recall thresholds x classes x area ranges x maxDets).
        recall: ``(T, K, A, M) float64`` like ``COCOeval.eval["recall"]``.
    """

    map: float
    map50: float
    map75: float
    map_small: float
    map_medium: float
    map_large: float
    mar_1: float
    mar_10: float
    mar_100: float
    mar_small: float
    mar_medium: float
    mar_large: float
    per_class: tuple[ClassMetrics, ...]
    num_images: int
    num_gt: int
    num_predictions: int
    precision: npt.NDArray[np.float64] = attrs.field(repr=False, eq=attrs.cmp_using(_float_eq))
    recall: npt.NDArray[np.float64] = attrs.field(repr=False, eq=attrs.cmp_using(_float_eq))

    @property
    def stats(self) -> npt.NDArray[np.float64]:
        """``(12,) float64`` in the order of ``COCOeval.stats``."""
        return np.array([getattr(self, s[0]) for s in _SUMMARY], dtype=np.float64)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names, index = label."""
        return tuple(c.name for c in self.per_class)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the 12 numbers, counts and per-class metrics (no raw arrays)."""
        out: dict[str, Any] = {s[0]: float(getattr(self, s[0])) for s in _SUMMARY}
        out["num_images"] = self.num_images
        out["num_gt"] = self.num_gt
        out["num_predictions"] = self.num_predictions
        out["per_class"] = {
            c.name: {
                "ap": c.ap,
                "ap50": c.ap50,
                "ap75": c.ap75,
                "ar100": c.ar100,
                "num_gt": c.num_gt,
                "num_predictions": c.num_predictions,
            }
            for c in self.per_class
        }
        return out

    def __str__(self) -> str:
        lines = []
        for name, is_ap, iou, area, max_det in _SUMMARY:
            title = "Average Precision  (AP)" if is_ap else "Average Recall     (AR)"
            iou_s = "0.50:0.95" if iou is None else f"{iou:0.2f}"
            value = getattr(self, name)
            lines.append(
                f" {title} @[ IoU={iou_s:<9} | area={area:>6s} | maxDets={max_det:>3d} ]"
                f" = {value:0.3f}"
            )
        width = max([5, *(len(c.name) for c in self.per_class)])
        lines.append("")
        lines.append(
            f" {'class':<{width}}  {'AP':>6}  {'AP50':>6}  {'AP75':>6}  {'AR100':>6}"
            f"  {'gt':>7}  {'pred':>7}"
        )
        for c in self.per_class:
            lines.append(
                f" {c.name:<{width}}  {c.ap:6.3f}  {c.ap50:6.3f}  {c.ap75:6.3f}  {c.ar100:6.3f}"
                f"  {c.num_gt:7d}  {c.num_predictions:7d}"
            )
        lines.append(
            f" {len(self.per_class)} classes, {self.num_images} images, {self.num_gt} gt boxes,"
            f" {self.num_predictions} predictions"
        )
        return "\n".join(lines)


# -- the evaluation ------------------------------------------------------------------------------


def coco_map(
    ground_truth: Annotations,
    predictions: Sequence[Target],
    *,
    pycocotools_compat: bool = False,
) -> Metrics:
    """The 12 COCO bbox numbers and per-class AP, equal to pycocotools' ``COCOeval``.

    Args:
        ground_truth: annotations of the split (any format). Boxes flagged
            :data:`~yolo2retina.target.FLAG_CROWD` or :data:`~yolo2retina.target.FLAG_DIFFICULT`
            are ignore regions (COCO ``iscrowd=1``).
        predictions: one :class:`~yolo2retina.target.Target` with ``scores`` per image of
            ``ground_truth``, in the same order, in the same pixel frame.
        pycocotools_compat: also reproduce pycocotools' handling of a ground-truth box whose
            annotation id is 0 (:attr:`Annotations.annotation_ids`, kept by the COCO
            reader; Roboflow exports start at 0). ``COCOeval`` records "matched to gt id"
            and reads 0 as "no match": the detection that matches such a box counts as a
            false positive (or is ignored when it lies outside the area range), while the
            box is still taken, so no other detection can match it at that IoU threshold.
            Default ``False``: every box is scored normally, which equals pycocotools on
            the same file with annotation ids renumbered from 1. Without annotation ids
            both settings give the same numbers.

    Returns:
        The :class:`Metrics`.

    Raises:
        DatasetError: the number of predictions differs from the number of images, or a
            prediction lacks scores or has a label outside ``0..K-1``.

    Example:
        >>> m = coco_map(annotations, predictions)  # doctest: +SKIP
        >>> print(m)  # the COCOeval.summarize() table plus one line per class  # doctest: +SKIP
    """
    n_img = len(ground_truth)
    if len(predictions) != n_img:
        raise DatasetError(
            f"coco_map: {len(predictions)} predictions for {n_img} ground-truth images;"
            " pass one Target per image, in order"
        )
    pred = flatten_predictions(predictions, ground_truth.num_classes)
    # Images are visited in ascending image id order, like COCOeval (ties between equal
    # scores of different images are broken in that order).
    img_rank = np.empty(n_img, np.int64)
    img_rank[np.argsort(ground_truth.image_ids, kind="stable")] = np.arange(n_img)
    gt = group_ground_truth(ground_truth, img_rank, _AREA_LO, _AREA_HI)
    det = group_detections(pred, img_rank, n_img, MAX_DETS[-1])
    pairs = candidate_pairs(det, gt, float(IOU_THRESHOLDS[0]))
    match = greedy_match(det, gt, pairs, IOU_THRESHOLDS)  # (A, T, D); -1 = unmatched
    gt_ids = ground_truth.annotation_ids
    zero = gt_ids[gt.order] == 0 if pycocotools_compat and gt_ids is not None else None
    true_pos, d_ignore = score_matches(match, det, gt, _AREA_LO, _AREA_HI, zero)
    precision, recall, npig = _accumulate(det, gt, true_pos, d_ignore, ground_truth.num_classes)
    stats = _summarize(precision, recall)
    return Metrics(
        map=stats[0],
        map50=stats[1],
        map75=stats[2],
        map_small=stats[3],
        map_medium=stats[4],
        map_large=stats[5],
        mar_1=stats[6],
        mar_10=stats[7],
        mar_100=stats[8],
        mar_small=stats[9],
        mar_medium=stats[10],
        mar_large=stats[11],
        per_class=_per_class(ground_truth, precision, recall, npig, pred.labels),
        num_images=n_img,
        num_gt=int(npig[:, 0].sum()),
        num_predictions=int(pred.labels.size),
        precision=precision,
        recall=recall,
    )


def _accumulate(
    det: DetectionGroups,
    gt: GroundTruthGroups,
    true_pos: npt.NDArray[np.bool_],
    d_ignore: npt.NDArray[np.bool_],
    num_classes: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """COCOeval's ``accumulate``: precision ``(T, R, K, A, M)``, recall ``(T, K, A, M)``
    and the number of non-ignored gt boxes ``(K, A)``.

    Detections are taken per class in COCOeval's order: score descending, then image, then
    rank. ``true_pos`` and ``d_ignore`` are ``(A, T, D)`` (:func:`score_matches`).
    """
    K, A = num_classes, len(AREA_RANGES)
    T, R, M = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(MAX_DETS)
    acc = np.lexsort((det.rank, det.image_rank, -det.score, det.label))
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    bounds = np.searchsorted(det.label[acc], np.arange(K + 1))
    max_dets = np.array(MAX_DETS)
    npig_all = np.zeros((K, A), np.int64)
    for a in range(A):
        npig_all[:, a] = np.bincount(gt.label[~gt.ignore[a]], minlength=K)
    for k in range(K):
        sel = acc[bounds[k] : bounds[k + 1]]
        keep_m = det.rank[sel][None, :] < max_dets[:, None]  # (M, n)
        for a in range(A):
            npig = int(npig_all[k, a])
            if npig == 0:
                continue
            if sel.size == 0:
                precision[:, :, k, a, :] = 0.0
                recall[:, k, a, :] = 0.0
                continue
            # Detections ignored at every IoU threshold add nothing: leave them out.
            cols = np.flatnonzero(~d_ignore[a][:, sel].all(axis=0))
            sub = sel[cols]
            q, rec = pr_curve(
                true_pos[a][:, sub], d_ignore[a][:, sub], keep_m[:, cols], npig, RECALL_THRESHOLDS
            )
            precision[:, :, k, a, :] = q
            recall[:, k, a, :] = rec
    return precision, recall, npig_all


def _mean_valid(s: npt.NDArray[np.float64]) -> float:
    v = s[s > -1]
    return -1.0 if v.size == 0 else float(np.mean(v))


def _summarize(precision: npt.NDArray[np.float64], recall: npt.NDArray[np.float64]) -> list[float]:
    """The 12 numbers of ``COCOeval.summarize()`` (same selection, same mean)."""
    area_idx = {a[0]: i for i, a in enumerate(AREA_RANGES)}
    out = []
    for _, is_ap, iou, area, max_det in _SUMMARY:
        a, m = area_idx[area], MAX_DETS.index(max_det)
        if is_ap:
            s = precision
            if iou is not None:
                s = s[np.where(iou == IOU_THRESHOLDS)[0]]
            s = s[:, :, :, a, m]
        else:
            s = recall
            if iou is not None:
                s = s[np.where(iou == IOU_THRESHOLDS)[0]]
            s = s[:, :, a, m]
        out.append(_mean_valid(s))
    return out


def _per_class(
    gt: Annotations,
    precision: npt.NDArray[np.float64],
    recall: npt.NDArray[np.float64],
    npig: npt.NDArray[np.int64],
    pred_labels: npt.NDArray[np.int64],
) -> tuple[ClassMetrics, ...]:
    n_pred = np.bincount(pred_labels, minlength=gt.num_classes)
    t50 = int(np.flatnonzero(IOU_THRESHOLDS == 0.5)[0])
    t75 = int(np.flatnonzero(IOU_THRESHOLDS == 0.75)[0])
    out = []
    for k, name in enumerate(gt.class_names):
        p = precision[:, :, k, 0, -1]
        out.append(
            ClassMetrics(
                name=name,
                ap=_mean_valid(p),
                ap50=_mean_valid(p[t50]),
                ap75=_mean_valid(p[t75]),
                ar100=_mean_valid(recall[:, k, 0, -1]),
                num_gt=int(npig[k, 0]),
                num_predictions=int(n_pred[k]),
            )
        )
    return tuple(out)
