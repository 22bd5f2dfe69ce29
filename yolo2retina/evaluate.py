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

:func:`evaluate` runs a torchvision detection model over a
:class:`~yolo2retina.dataset.DetectionDataset` and scores it.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import numpy.typing as npt

from yolo2retina import boxes as box_ops
from yolo2retina.annotations import Annotations
from yolo2retina.errors import ConfigError, DatasetError
from yolo2retina.target import FLAG_CROWD, FLAG_DIFFICULT, Target

if TYPE_CHECKING:
    import torch

    from yolo2retina.dataset import DetectionDataset

__all__ = [
    "AREA_RANGES",
    "IOU_THRESHOLDS",
    "MAX_DETS",
    "RECALL_THRESHOLDS",
    "ClassMetrics",
    "Metrics",
    "coco_map",
    "confusion_matrix",
    "evaluate",
    "predict_dataset",
    "write_evaluation",
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

#: Pairs (detection, ground truth) processed at once when computing IoUs; bounds memory.
_PAIR_CHUNK = 4_000_000

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


# -- input flattening ------------------------------------------------------------------------


@attrs.frozen
class _Flat:
    """Predictions of a whole split in flat arrays (like :class:`Annotations`)."""

    image: npt.NDArray[np.int64]
    xyxy: npt.NDArray[np.float64]
    labels: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float64]


def _flatten_predictions(predictions: Sequence[Target], num_classes: int) -> _Flat:
    counts = np.fromiter((len(p) for p in predictions), dtype=np.int64, count=len(predictions))
    boxes, labels, scores = [], [], []
    for i, p in enumerate(predictions):
        if not isinstance(p, Target):
            raise DatasetError(f"predictions[{i}]: expected a Target, got {type(p).__name__}")
        if len(p) == 0:
            continue
        if p.scores is None:
            raise DatasetError(f"predictions[{i}]: a prediction Target needs scores")
        boxes.append(p.boxes)
        labels.append(p.labels)
        scores.append(p.scores)
    if not boxes:
        return _Flat(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0))
    image = np.repeat(np.arange(len(predictions), dtype=np.int64), counts)
    flat_labels = np.concatenate(labels)
    bad = np.flatnonzero(flat_labels >= num_classes)
    if bad.size:
        i, lab = int(image[bad[0]]), int(flat_labels[bad[0]])
        raise DatasetError(f"predictions[{i}]: label {lab} is outside 0..{num_classes - 1}")
    return _Flat(
        image=image,
        xyxy=np.concatenate(boxes).astype(np.float64),
        labels=flat_labels,
        scores=np.concatenate(scores).astype(np.float64),
    )


def _pair_iou(
    d_xywh: npt.NDArray[np.float64],
    g_xywh: npt.NDArray[np.float64],
    g_crowd: npt.NDArray[np.bool_],
) -> npt.NDArray[np.float64]:
    """IoU of row-aligned pairs, with the exact arithmetic of pycocotools' ``bbIou`` (C).

    For a crowd ground truth the union is the detection area.
    """
    dx, dy, dw, dh = d_xywh.T
    gx, gy, gw, gh = g_xywh.T
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    da = dw * dh
    union = np.where(g_crowd, da, da + (gw * gh) - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou: npt.NDArray[np.float64] = inter / union
    iou[(w <= 0) | (h <= 0)] = 0.0
    return iou


def _segment_starts(keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Start index of each run of equal values in a sorted 1-D array."""
    if keys.size == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])


def _rank_in_group(keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``0, 1, 2, ...`` within each run of equal values of a sorted array."""
    n = keys.size
    starts = _segment_starts(keys)
    lengths = np.diff(np.r_[starts, n])
    return np.arange(n, dtype=np.int64) - np.repeat(starts, lengths)


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
    K = ground_truth.num_classes
    T, R, A, M = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(AREA_RANGES), len(MAX_DETS)
    max_det = MAX_DETS[-1]
    pred = _flatten_predictions(predictions, K)

    # Images are visited in ascending image id order, like COCOeval (ties between equal
    # scores of different images are broken in that order).
    img_rank = np.empty(n_img, np.int64)
    img_rank[np.argsort(ground_truth.image_ids, kind="stable")] = np.arange(n_img)

    # Ground truth, grouped by (class, image) with the input order kept inside a group.
    g_img = ground_truth.image_index()
    g_key_raw = ground_truth.labels * n_img + img_rank[g_img]
    g_order = np.argsort(g_key_raw, kind="stable")
    g_key = g_key_raw[g_order]
    g_xyxy = ground_truth.boxes[g_order].astype(np.float64)
    g_xywh = box_ops.xyxy_to_xywh(g_xyxy)
    g_area = g_xywh[:, 2] * g_xywh[:, 3]
    g_crowd = (ground_truth.flags[g_order] & (FLAG_CROWD | FLAG_DIFFICULT)) != 0
    g_label = ground_truth.labels[g_order]
    lo = np.array([a[1] for a in AREA_RANGES])
    hi = np.array([a[2] for a in AREA_RANGES])
    g_ignore = g_crowd[None, :] | (g_area[None, :] < lo[:, None]) | (g_area[None, :] > hi[:, None])

    # Detections, grouped by (class, image), best score first, stable; keep the 100 best.
    d_key_raw = pred.labels * n_img + img_rank[pred.image]
    d_order = np.lexsort((-pred.scores, d_key_raw))
    d_key_all = d_key_raw[d_order]
    keep = _rank_in_group(d_key_all) < max_det
    d_order, d_key = d_order[keep], d_key_all[keep]
    d_rank = _rank_in_group(d_key)
    d_xywh = box_ops.xyxy_to_xywh(pred.xyxy[d_order])
    d_area = d_xywh[:, 2] * d_xywh[:, 3]
    d_score = pred.scores[d_order]
    d_label = pred.labels[d_order]
    n_det = d_key.size

    # Candidate pairs (same class and image, IoU >= the lowest threshold).
    p_det, p_gt, p_iou = _candidate_pairs(d_key, d_xywh, g_key, g_xywh, g_crowd)

    # Greedy matching at every (area range, IoU threshold); -1 = unmatched.
    match = _greedy_match(n_det, d_key, d_rank, p_det, p_gt, p_iou, g_crowd, g_ignore)
    matched = match >= 0
    gt_ig_of_match = np.zeros((A, T, n_det), dtype=bool)
    if g_key.size:
        for a in range(A):
            gt_ig_of_match[a] = matched[a] & g_ignore[a][np.maximum(match[a], 0)]
    d_out = (d_area[None, :] < lo[:, None]) | (d_area[None, :] > hi[:, None])  # (A, D)
    d_ignore = np.where(matched, gt_ig_of_match, d_out[:, None, :])  # (A, T, D)
    # A true positive is a match; in compat mode not a match to a gt whose id is 0.
    true_pos = matched
    gt_ids = ground_truth.annotation_ids
    if pycocotools_compat and gt_ids is not None and g_key.size:
        g_zero = gt_ids[g_order] == 0
        if g_zero.any():
            # COCOeval: dtm = 0 (read as unmatched) but gtm is set (the gt is taken);
            # dtIg = gtIg[m], then also ignored when outside the area range (dtm == 0).
            to_zero = matched & g_zero[np.maximum(match, 0)]  # (A, T, D)
            true_pos = matched & ~to_zero
            d_ignore = d_ignore | (to_zero & d_out[:, None, :])

    # Accumulate per class in COCOeval's order: score descending, then image, then rank.
    acc = np.lexsort((d_rank, img_rank[pred.image[d_order]], -d_score, d_label))
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))
    d_label_acc = d_label[acc]
    bounds = np.searchsorted(d_label_acc, np.arange(K + 1))
    max_dets = np.array(MAX_DETS)
    npig_all = np.zeros((K, A), np.int64)
    for a in range(A):
        npig_all[:, a] = np.bincount(g_label[~g_ignore[a]], minlength=K)
    for k in range(K):
        sel = acc[bounds[k] : bounds[k + 1]]
        n = sel.size
        keep_m = d_rank[sel][None, :] < max_dets[:, None]  # (M, n)
        for a in range(A):
            npig = int(npig_all[k, a])
            if npig == 0:
                continue
            if n == 0:
                precision[:, :, k, a, :] = 0.0
                recall[:, k, a, :] = 0.0
                continue
            # Detections ignored at every IoU threshold add nothing: leave them out.
            cols = np.flatnonzero(~d_ignore[a][:, sel].all(axis=0))
            sub = sel[cols]
            q, rec = _pr_curve(true_pos[a][:, sub], d_ignore[a][:, sub], keep_m[:, cols], npig)
            precision[:, :, k, a, :] = q
            recall[:, k, a, :] = rec

    stats = _summarize(precision, recall)
    per_class = _per_class(ground_truth, precision, recall, npig_all, pred)
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
        per_class=per_class,
        num_images=n_img,
        num_gt=int(npig_all[:, 0].sum()),
        num_predictions=int(pred.labels.size),
        precision=precision,
        recall=recall,
    )


def _candidate_pairs(
    d_key: npt.NDArray[np.int64],
    d_xywh: npt.NDArray[np.float64],
    g_key: npt.NDArray[np.int64],
    g_xywh: npt.NDArray[np.float64],
    g_crowd: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """All (detection, gt) pairs of a group whose IoU reaches the lowest threshold.

    Returns detection index, gt index and IoU, sorted by detection then gt index.
    """
    g_start = np.searchsorted(g_key, d_key, side="left")
    g_count = np.searchsorted(g_key, d_key, side="right") - g_start
    thr = IOU_THRESHOLDS[0]
    out_d, out_g, out_iou = [], [], []
    cum = np.cumsum(g_count)
    lo_det = 0
    n_det = d_key.size
    while lo_det < n_det:
        base = cum[lo_det - 1] if lo_det else 0
        hi_det = int(np.searchsorted(cum, base + _PAIR_CHUNK, side="right"))
        hi_det = max(hi_det, lo_det + 1)
        cnt = g_count[lo_det:hi_det]
        total = int(cnt.sum())
        if total:
            det = np.repeat(np.arange(lo_det, hi_det, dtype=np.int64), cnt)
            offs = np.cumsum(cnt) - cnt
            within = np.arange(total, dtype=np.int64) - np.repeat(offs, cnt)
            gt = g_start[det] + within
            iou = _pair_iou(d_xywh[det], g_xywh[gt], g_crowd[gt])
            ok = iou >= thr
            out_d.append(det[ok])
            out_g.append(gt[ok])
            out_iou.append(iou[ok])
        lo_det = hi_det
    if not out_d:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(out_d), np.concatenate(out_g), np.concatenate(out_iou)


def _greedy_match(
    n_det: int,
    d_key: npt.NDArray[np.int64],
    d_rank: npt.NDArray[np.int64],
    p_det: npt.NDArray[np.int64],
    p_gt: npt.NDArray[np.int64],
    p_iou: npt.NDArray[np.float64],
    g_crowd: npt.NDArray[np.bool_],
    g_ignore: npt.NDArray[np.bool_],
) -> npt.NDArray[np.int32]:
    """COCOeval's greedy matching for every area range and IoU threshold at once.

    Detections of different (class, image) groups never compete, so the groups run in
    parallel; inside a group, detections that share a non-crowd gt with another
    detection are processed one score rank at a time. Detections whose candidate gts are
    all theirs alone (or crowd regions) are decided in a single first step.

    Returns:
        ``(A, T, D) int32``: the matched gt index, or -1.
    """
    A, T = g_ignore.shape[0], len(IOU_THRESHOLDS)
    match = np.full((A, T, n_det), -1, dtype=np.int32)
    if p_det.size == 0:
        return match
    n_gt = g_crowd.size
    # A non-crowd gt with two or more candidate detections can be taken by either: the
    # order of those detections matters. Every other detection decides independently.
    shared_gt = np.bincount(p_gt[~g_crowd[p_gt]], minlength=n_gt) >= 2
    conflict_det = np.zeros(n_det, dtype=bool)
    conflict_det[p_det[shared_gt[p_gt] & ~g_crowd[p_gt]]] = True
    # Step of each detection: 0 for independent ones, 1 + rank among the conflicting
    # detections of its group (by score) for the others.
    step = np.zeros(n_det, dtype=np.int64)
    cd = np.flatnonzero(conflict_det)  # sorted, so group-contiguous in score order
    if cd.size:
        step[cd] = 1 + _rank_in_group(d_key[cd])
    p_step = step[p_det]
    order = np.argsort(p_step, kind="stable")  # keeps (det, gt) order inside a step
    p_det, p_gt, p_iou, p_step = p_det[order], p_gt[order], p_iou[order], p_step[order]
    step_bounds = np.searchsorted(p_step, np.arange(int(p_step.max()) + 2))
    available = np.ones((A, T, n_gt), dtype=bool)
    thr = IOU_THRESHOLDS[:, None]
    crowd_p = g_crowd[p_gt]
    for s in range(len(step_bounds) - 1):
        lo, hi = int(step_bounds[s]), int(step_bounds[s + 1])
        if lo == hi:
            continue
        det, gt, iou, crowd = p_det[lo:hi], p_gt[lo:hi], p_iou[lo:hi], crowd_p[lo:hi]
        above = iou[None, :] >= thr  # (T, P)
        for a in range(A):
            # Preference inside a detection: regular gt first, then higher IoU, then the
            # later gt (COCOeval's scan keeps the last of equal IoUs).
            o = np.lexsort((gt, iou, ~g_ignore[a][gt], det))
            det_o, gt_o = det[o], gt[o]
            elig = above[:, o] & (available[a][:, gt_o] | crowd[o][None, :])
            pos = np.where(elig, np.arange(o.size)[None, :], -1)
            starts = _segment_starts(det_o)
            best = np.maximum.reduceat(pos, starts, axis=1)  # (T, n_dets_in_step)
            t_idx, j = np.nonzero(best >= 0)
            chosen = best[t_idx, j]
            g_chosen = gt_o[chosen]
            match[a, t_idx, det_o[starts[j]]] = g_chosen
            take = ~g_crowd[g_chosen]
            available[a, t_idx[take], g_chosen[take]] = False
    return match


def _pr_curve(
    matched: npt.NDArray[np.bool_],
    ignored: npt.NDArray[np.bool_],
    keep_m: npt.NDArray[np.bool_],
    npig: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Interpolated precision ``(T, R, M)`` and recall ``(T, M)`` of one class and area.

    ``matched`` and ``ignored`` are ``(T, n)`` over the class's detections in accumulation
    order; ``keep_m`` is ``(M, n)``: inside the maxDets cut.

    COCOeval builds precision ``tp / (fp + tp + eps)`` at every counted detection, takes
    its suffix maximum (the envelope) and reads it at the first detection whose recall
    reaches each threshold. Precision only rises at true positives and the lookup always
    lands on one (or on the first detection, where the envelope is the overall maximum), so
    it is enough to compute precision at the true positives: the ``j``-th true positive,
    found at counted position ``i``, has ``tp = j`` and ``fp = i + 1 - j``. The same
    integers give the same floats, so the values are identical.
    """
    T, n = matched.shape
    Mn = keep_m.shape[0]
    rows = Mn * T
    counted = (~ignored[None, :, :] & keep_m[:, None, :]).reshape(rows, n)  # row = m * T + t
    row, pos = np.nonzero(counted)  # row-major: sorted by row, then position
    per_row = np.bincount(row, minlength=rows)
    row_start = np.cumsum(per_row) - per_row
    is_tp = matched[row % T, pos]
    tp_cum = np.cumsum(is_tp)
    tp_before_row = np.r_[0, tp_cum][row_start]
    sel = np.flatnonzero(is_tp)
    r_tp = row[sel]
    j = tp_cum[sel] - tp_before_row[r_tp]  # 1-based count of true positives in the row
    i = sel - row_start[r_tp]  # 0-based position among counted detections
    tp = j.astype(np.float64)
    fp = (i + 1 - j).astype(np.float64)
    pr = tp / (fp + tp + np.spacing(1))
    n_tp = np.bincount(r_tp, minlength=rows)
    width = max(int(n_tp.max(initial=0)), 1)
    env = np.zeros((rows, width))
    env[r_tp, j - 1] = pr
    env = np.maximum.accumulate(env[:, ::-1], axis=1)[:, ::-1]
    # Smallest tp count whose recall tp / npig reaches each threshold (same float
    # arithmetic as COCOeval's recall array, so the same searchsorted result).
    need = np.searchsorted(np.arange(npig + 1) / npig, RECALL_THRESHOLDS, side="left")
    col = np.maximum(need - 1, 0)
    q = np.where(col < width, env[:, np.minimum(col, width - 1)], 0.0)  # (rows, R)
    q = q.reshape(Mn, T, -1).transpose(1, 2, 0)  # (T, R, M)
    rec = (n_tp / npig).reshape(Mn, T).T  # (T, M)
    return q, rec


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
    pred: _Flat,
) -> tuple[ClassMetrics, ...]:
    n_pred = np.bincount(pred.labels, minlength=gt.num_classes)
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


# -- confusion matrix --------------------------------------------------------------------------


def confusion_matrix(
    ground_truth: Annotations,
    predictions: Sequence[Target],
    *,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.3,
) -> npt.NDArray[np.int64]:
    """Class confusion at one IoU threshold, with a background row and column.

    Per image, detections with ``score >= score_threshold`` are matched to ground truth
    of *any* class, best score first, each taking the free gt box with the highest IoU
    (at least ``iou_threshold``). Detections that match no regular box but fall on an
    ignore region (crowd or difficult) are left out.

    Returns:
        ``(K + 1, K + 1) int64``: ``m[true, predicted]``; row ``K`` (background) counts
        false positives, column ``K`` counts missed ground truth.
    """
    n_img = len(ground_truth)
    if len(predictions) != n_img:
        raise DatasetError(f"confusion_matrix: {len(predictions)} predictions for {n_img} images")
    K = ground_truth.num_classes
    pred = _flatten_predictions(predictions, K)
    out = np.zeros((K + 1, K + 1), np.int64)
    keep = pred.scores >= score_threshold
    d_img = pred.image[keep]
    d_order = np.lexsort((-pred.scores[keep], d_img))
    d_xyxy = pred.xyxy[keep][d_order]
    d_lab = pred.labels[keep][d_order]
    d_img = d_img[d_order]
    d_bounds = np.searchsorted(d_img, np.arange(n_img + 1))
    crowd_all = (ground_truth.flags & (FLAG_CROWD | FLAG_DIFFICULT)) != 0
    for i in range(n_img):
        s = ground_truth.box_slice(i)
        g = ground_truth.boxes[s].astype(np.float64)
        g_lab = ground_truth.labels[s]
        crowd = crowd_all[s]
        db = d_xyxy[d_bounds[i] : d_bounds[i + 1]]
        dl = d_lab[d_bounds[i] : d_bounds[i + 1]]
        taken = np.zeros(len(g), dtype=bool)
        n_g, n_d = len(g), len(db)
        ious = _pair_iou(
            np.repeat(box_ops.xyxy_to_xywh(db), n_g, axis=0),
            np.tile(box_ops.xyxy_to_xywh(g), (n_d, 1)),
            np.tile(crowd, n_d),
        ).reshape(n_d, n_g)
        for j in range(n_d):
            if n_g:
                iou = ious[j]
                free = np.where(taken | crowd, -1.0, iou)
                best = int(np.argmax(free))
                if free[best] >= iou_threshold:  # a regular box first
                    taken[best] = True
                    out[g_lab[best], dl[j]] += 1
                    continue
                if (iou[crowd] >= iou_threshold).any():  # inside an ignore region
                    continue
            out[K, dl[j]] += 1
        missed = ~taken & ~crowd
        np.add.at(out[:, K], g_lab[missed], 1)
    return out


# -- writing an evaluation ----------------------------------------------------------------------


def write_evaluation(
    out_dir: str | os.PathLike[str],
    metrics: Metrics,
    predictions: Sequence[Target],
    ground_truth: Annotations,
    *,
    plots: bool = True,
    score_threshold: float = 0.3,
    extra: Mapping[str, Any] | None = None,
    exist_ok: bool = False,
    overwrite: bool = False,
) -> list[Path]:
    """Write an evaluation folder: ``metrics.json``, ``predictions.json`` and the plots.

    * ``metrics.json``: :meth:`Metrics.to_dict` plus the confusion matrix and ``extra``;
    * ``predictions.json``: COCO results (original image and category ids when the
      ground truth came from COCO), readable by pycocotools' ``loadRes``;
    * ``pr_<index>_<class>.png`` (IoU 0.5) and ``confusion_matrix.png`` when ``plots`` is
      true and matplotlib is installed (otherwise a warning says how to install it).

    Every file is written under a temporary name and renamed. Before anything is
    written, the folder is refused when it holds files (unless ``exist_ok`` or
    ``overwrite``), when a file to write exists (unless ``overwrite``), or when it
    overlaps the dataset's folders (see ``docs/outputs.md``).

    Args:
        out_dir: the folder (created when missing).
        metrics: the result of :func:`coco_map` for ``predictions``.
        predictions: one Target with scores per image of ``ground_truth``.
        ground_truth: the annotations that were evaluated.
        plots: draw the PNGs.
        score_threshold: lowest score that counts in the confusion matrix.
        extra: more JSON-ready keys for ``metrics.json`` (e.g. data and weights paths).
        exist_ok: write into a folder that already holds other files.
        overwrite: like ``exist_ok``, and replace the files of an earlier evaluation.

    Returns:
        The files written.

    Raises:
        DatasetError: the output folder or a file in it is refused (the message names
            the path and the flag that allows it).
    """
    from yolo2retina.formats._common import atomic_write_text
    from yolo2retina.formats.coco import write_coco_results
    from yolo2retina.outputs import check_output_dir, check_output_files, dataset_folders
    from yolo2retina.plots import pr_curve_paths

    out = check_output_dir(
        out_dir, inputs=dataset_folders(ground_truth), exist_ok=exist_ok, overwrite=overwrite
    )
    planned = [out / "metrics.json", out / "predictions.json"]
    if plots:
        planned += [out / "confusion_matrix.png", *pr_curve_paths(metrics, out).values()]
    check_output_files(planned, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    cm = confusion_matrix(ground_truth, predictions, score_threshold=score_threshold)
    record = dict(extra or {})
    record.update(metrics.to_dict())
    record["confusion_matrix"] = {
        "iou_threshold": 0.5,
        "score_threshold": score_threshold,
        "labels": [*ground_truth.class_names, "background"],
        "rows": "true class",
        "columns": "predicted class",
        "matrix": cm.tolist(),
    }
    written = [out / "metrics.json"]
    atomic_write_text(written[0], json.dumps(record, indent=2) + "\n")
    written.append(write_coco_results(predictions, ground_truth, out / "predictions.json"))
    if plots:
        try:
            from yolo2retina.plots import plot_confusion_matrix, plot_pr_curves

            written += plot_pr_curves(metrics, out)
            written.append(
                plot_confusion_matrix(
                    cm,
                    ground_truth.class_names,
                    out / "confusion_matrix.png",
                    title=f"confusion matrix at IoU 0.5, score >= {score_threshold:g}",
                )
            )
        except ImportError as e:
            warnings.warn(f"plots skipped: {e}", stacklevel=2)
    return written


# -- running a model ---------------------------------------------------------------------------


def _default_device(model: torch.nn.Module) -> torch.device:
    import torch

    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def predict_dataset(
    model: torch.nn.Module,
    dataset: DetectionDataset,
    *,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    progress: bool = True,
    num_workers: int = 0,
) -> list[Target]:
    """Run a torchvision detection model over a dataset; one Target per image, in order.

    Boxes are mapped back to the original image frame (``dataset.image_hw(i)``) when the
    dataset decoded a smaller image (``max_size``) or its transforms resized it. The
    model's train/eval mode is restored afterwards.

    Args:
        model: a torchvision detection model (e.g. RetinaNet) with labels ``0..K-1``.
        dataset: a :class:`~yolo2retina.dataset.DetectionDataset`.
        batch_size: images per forward pass.
        device: where to run; default: the device of the model's parameters.
        progress: show a tqdm progress bar.
        num_workers: DataLoader worker processes.

    Returns:
        ``len(dataset)`` Targets with ``scores``.
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from yolo2retina.dataset import collate

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    dev = torch.device(device) if device is not None else _default_device(model)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate
    )
    out: list[Target | None] = [None] * len(dataset)
    dropped = 0
    was_training = model.training
    model.eval()
    model.to(dev)
    next_index = 0
    try:
        with torch.no_grad():
            for images, targets in tqdm(
                loader, desc="evaluate", unit="batch", disable=not progress, leave=False
            ):
                outputs = model([img.to(dev) for img in images])
                for img, tgt, res in zip(images, targets, outputs, strict=True):
                    i = int(tgt.get("image_id", next_index))
                    next_index = i + 1
                    h, w = dataset.image_hw(i)
                    th, tw = (int(v) for v in img.shape[-2:])
                    xyxy = res["boxes"].detach().to("cpu", torch.float64).numpy()
                    if (th, tw) != (h, w):
                        xyxy = xyxy * np.array([w / tw, h / th, w / tw, h / th])
                    xyxy = box_ops.clip_xyxy(xyxy, (w, h)).astype(np.float32)
                    ok = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
                    dropped += int((~ok).sum())
                    out[i] = Target(
                        xyxy[ok],
                        res["labels"].detach().cpu().numpy()[ok],
                        res["scores"].detach().to("cpu", torch.float32).numpy()[ok],
                    )
    finally:
        model.train(was_training)
    if dropped:
        warnings.warn(
            f"predict_dataset: dropped {dropped} predicted boxes with zero width or height",
            stacklevel=2,
        )
    empty = Target(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32))
    return [t if t is not None else empty for t in out]


def evaluate(
    model: torch.nn.Module,
    dataset: DetectionDataset,
    *,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    progress: bool = True,
    num_workers: int = 0,
    pycocotools_compat: bool = False,
) -> Metrics:
    """Run ``model`` over ``dataset`` and compute :func:`coco_map` against its annotations.

    Args:
        model: a torchvision detection model with labels ``0..K-1``.
        dataset: a :class:`~yolo2retina.dataset.DetectionDataset` (its annotations are the
            ground truth, in the original image frame).
        batch_size: images per forward pass.
        device: where to run; default: the device of the model's parameters.
        progress: show a tqdm progress bar.
        num_workers: DataLoader worker processes.
        pycocotools_compat: passed to :func:`coco_map` (pycocotools' scoring of
            ground-truth annotation id 0).

    Returns:
        The :class:`Metrics`.

    Example:
        >>> metrics = evaluate(model, DetectionDataset(val_annotations))  # doctest: +SKIP
        >>> metrics.map, metrics.map50  # doctest: +SKIP
    """
    preds = predict_dataset(
        model,
        dataset,
        batch_size=batch_size,
        device=device,
        progress=progress,
        num_workers=num_workers,
    )
    return coco_map(dataset.annotations, preds, pycocotools_compat=pycocotools_compat)
