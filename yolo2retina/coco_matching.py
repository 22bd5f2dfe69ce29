"""COCOeval's per-image step, vectorised: group boxes, compute IoUs, match greedily, and
turn the matches of one class into its interpolated precision/recall curve.

These are the array kernels behind :func:`yolo2retina.coco_metric.coco_map` (which holds
the COCO constants and passes them in) and :func:`yolo2retina.confusion.confusion_matrix`.
Everything here works on a whole split at once: boxes of every image live in flat arrays,
grouped by ``(class, image)`` through an integer key ``label * n_images + image rank``.
NumPy only; no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
import numpy.typing as npt

from yolo2retina import boxes as box_ops
from yolo2retina.annotations import Annotations
from yolo2retina.errors import DatasetError
from yolo2retina.target import FLAG_CROWD, FLAG_DIFFICULT, Target

__all__ = [
    "DetectionGroups",
    "FlatPredictions",
    "GroundTruthGroups",
    "candidate_pairs",
    "flatten_predictions",
    "greedy_match",
    "group_detections",
    "group_ground_truth",
    "pair_iou",
    "pr_curve",
    "rank_in_group",
    "score_matches",
    "segment_starts",
]

#: Pairs (detection, ground truth) processed at once when computing IoUs; bounds memory.
_PAIR_CHUNK = 4_000_000

_Ints = npt.NDArray[np.int64]
_Floats = npt.NDArray[np.float64]
_Bools = npt.NDArray[np.bool_]


@attrs.frozen(eq=False)
class FlatPredictions:
    """Predictions of a whole split in flat arrays (like :class:`Annotations`).

    Attributes:
        image: ``(D,) int64`` index of the image each box belongs to.
        xyxy: ``(D, 4) float64`` boxes.
        labels: ``(D,) int64``.
        scores: ``(D,) float64``.
    """

    image: _Ints
    xyxy: _Floats
    labels: _Ints
    scores: _Floats


def flatten_predictions(predictions: Sequence[Target], num_classes: int) -> FlatPredictions:
    """Concatenate one prediction :class:`Target` per image into :class:`FlatPredictions`.

    Raises:
        DatasetError: an item is not a Target, lacks scores, or has a label outside
            ``0..num_classes-1`` (the message names ``predictions[i]``).
    """
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
        z = np.zeros(0, np.int64)
        return FlatPredictions(z, np.zeros((0, 4)), z.copy(), np.zeros(0))
    image = np.repeat(np.arange(len(predictions), dtype=np.int64), counts)
    flat_labels = np.concatenate(labels)
    bad = np.flatnonzero(flat_labels >= num_classes)
    if bad.size:
        i, lab = int(image[bad[0]]), int(flat_labels[bad[0]])
        raise DatasetError(f"predictions[{i}]: label {lab} is outside 0..{num_classes - 1}")
    return FlatPredictions(
        image=image,
        xyxy=np.concatenate(boxes).astype(np.float64),
        labels=flat_labels,
        scores=np.concatenate(scores).astype(np.float64),
    )


def pair_iou(d_xywh: _Floats, g_xywh: _Floats, g_crowd: _Bools) -> _Floats:
    """``(P,) float64`` IoU of row-aligned ``(P, 4)`` xywh pairs, with the exact arithmetic
    of pycocotools' ``bbIou`` (C). For a crowd ground truth the union is the detection area.
    """
    dx, dy, dw, dh = d_xywh.T
    gx, gy, gw, gh = g_xywh.T
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    da = dw * dh
    union = np.where(g_crowd, da, da + (gw * gh) - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou: _Floats = inter / union
    iou[(w <= 0) | (h <= 0)] = 0.0
    return iou


def segment_starts(keys: _Ints) -> _Ints:
    """Start index of each run of equal values in a sorted 1-D array."""
    if keys.size == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])


def rank_in_group(keys: _Ints) -> _Ints:
    """``0, 1, 2, ...`` within each run of equal values of a sorted array."""
    n = keys.size
    starts = segment_starts(keys)
    lengths = np.diff(np.r_[starts, n])
    return np.arange(n, dtype=np.int64) - np.repeat(starts, lengths)


@attrs.frozen(eq=False)
class GroundTruthGroups:
    """Ground-truth boxes sorted by ``(class, image)``, input order kept inside a group.

    Attributes:
        order: ``(G,) int64`` index of each box in the annotations.
        key: ``(G,) int64`` sorted group key ``label * n_images + image rank``.
        xywh: ``(G, 4) float64``.
        crowd: ``(G,) bool``: crowd or difficult (an ignore region).
        label: ``(G,) int64``.
        ignore: ``(A, G) bool``: ignored in each area range (crowd, or area outside it).
    """

    order: _Ints
    key: _Ints
    xywh: _Floats
    crowd: _Bools
    label: _Ints
    ignore: _Bools


def group_ground_truth(
    ground_truth: Annotations, img_rank: _Ints, area_lo: _Floats, area_hi: _Floats
) -> GroundTruthGroups:
    """Group the ground truth; ``img_rank`` ``(N,)`` is each image's visiting rank and
    ``area_lo`` / ``area_hi`` ``(A,)`` are the inclusive area ranges."""
    n_img = len(ground_truth)
    key_raw = ground_truth.labels * n_img + img_rank[ground_truth.image_index()]
    order = np.argsort(key_raw, kind="stable")
    xywh = box_ops.xyxy_to_xywh(ground_truth.boxes[order].astype(np.float64))
    area = xywh[:, 2] * xywh[:, 3]
    crowd = (ground_truth.flags[order] & (FLAG_CROWD | FLAG_DIFFICULT)) != 0
    ignore = (
        crowd[None, :] | (area[None, :] < area_lo[:, None]) | (area[None, :] > area_hi[:, None])
    )
    return GroundTruthGroups(
        order=order,
        key=key_raw[order],
        xywh=xywh,
        crowd=crowd,
        label=ground_truth.labels[order],
        ignore=ignore,
    )


@attrs.frozen(eq=False)
class DetectionGroups:
    """Detections sorted by ``(class, image)``, best score first (stable), cut to the best
    ``max_det`` per group.

    Attributes:
        order: ``(D,) int64`` index of each kept detection in the flat predictions.
        key: ``(D,) int64`` group key, sorted.
        rank: ``(D,) int64`` score rank inside the group.
        xywh: ``(D, 4) float64``.
        area: ``(D,) float64``.
        score: ``(D,) float64``.
        label: ``(D,) int64``.
        image_rank: ``(D,) int64`` visiting rank of the detection's image.
    """

    order: _Ints
    key: _Ints
    rank: _Ints
    xywh: _Floats
    area: _Floats
    score: _Floats
    label: _Ints
    image_rank: _Ints


def group_detections(
    pred: FlatPredictions, img_rank: _Ints, n_img: int, max_det: int
) -> DetectionGroups:
    """Group the detections like :func:`group_ground_truth` and keep ``max_det`` per group."""
    key_raw = pred.labels * n_img + img_rank[pred.image]
    order = np.lexsort((-pred.scores, key_raw))
    key_all = key_raw[order]
    keep = rank_in_group(key_all) < max_det
    order, key = order[keep], key_all[keep]
    xywh = box_ops.xyxy_to_xywh(pred.xyxy[order])
    return DetectionGroups(
        order=order,
        key=key,
        rank=rank_in_group(key),
        xywh=xywh,
        area=xywh[:, 2] * xywh[:, 3],
        score=pred.scores[order],
        label=pred.labels[order],
        image_rank=img_rank[pred.image[order]],
    )


def candidate_pairs(
    det: DetectionGroups, gt: GroundTruthGroups, min_iou: float
) -> tuple[_Ints, _Ints, _Floats]:
    """All (detection, gt) pairs of a group whose IoU reaches ``min_iou``.

    Returns detection index, gt index and IoU (each ``(P,)``), sorted by detection then gt
    index. IoUs are computed in chunks of at most ``_PAIR_CHUNK`` pairs (bounded memory).
    """
    g_start = np.searchsorted(gt.key, det.key, side="left")
    g_count = np.searchsorted(gt.key, det.key, side="right") - g_start
    out_d, out_g, out_iou = [], [], []
    cum = np.cumsum(g_count)
    lo_det = 0
    n_det = det.key.size
    while lo_det < n_det:
        base = cum[lo_det - 1] if lo_det else 0
        hi_det = int(np.searchsorted(cum, base + _PAIR_CHUNK, side="right"))
        hi_det = max(hi_det, lo_det + 1)
        cnt = g_count[lo_det:hi_det]
        total = int(cnt.sum())
        if total:
            d = np.repeat(np.arange(lo_det, hi_det, dtype=np.int64), cnt)
            offs = np.cumsum(cnt) - cnt
            g = g_start[d] + np.arange(total, dtype=np.int64) - np.repeat(offs, cnt)
            iou = pair_iou(det.xywh[d], gt.xywh[g], gt.crowd[g])
            ok = iou >= min_iou
            out_d.append(d[ok])
            out_g.append(g[ok])
            out_iou.append(iou[ok])
        lo_det = hi_det
    if not out_d:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(out_d), np.concatenate(out_g), np.concatenate(out_iou)


def _match_steps(det: DetectionGroups, gt: GroundTruthGroups, p_det: _Ints, p_gt: _Ints) -> _Ints:
    """``(D,) int64``: the step at which each detection is matched.

    A non-crowd gt with two or more candidate detections can be taken by either: the order
    of those detections matters. Every other detection decides independently, in step 0;
    a conflicting one in step ``1 + its score rank among the conflicting detections of its
    group``.
    """
    n_det = det.key.size
    shared_gt = np.bincount(p_gt[~gt.crowd[p_gt]], minlength=gt.crowd.size) >= 2
    conflict_det = np.zeros(n_det, dtype=bool)
    conflict_det[p_det[shared_gt[p_gt] & ~gt.crowd[p_gt]]] = True
    step = np.zeros(n_det, dtype=np.int64)
    cd = np.flatnonzero(conflict_det)  # sorted, so group-contiguous in score order
    if cd.size:
        step[cd] = 1 + rank_in_group(det.key[cd])
    return step


def greedy_match(
    det: DetectionGroups,
    gt: GroundTruthGroups,
    pairs: tuple[_Ints, _Ints, _Floats],
    iou_thresholds: _Floats,
) -> npt.NDArray[np.int32]:
    """COCOeval's greedy matching for every area range and IoU threshold at once.

    Detections of different (class, image) groups never compete, so the groups run in
    parallel; inside a group, detections that share a non-crowd gt with another
    detection are processed one score rank at a time (:func:`_match_steps`).

    Args:
        det: the grouped detections.
        gt: the grouped ground truth.
        pairs: the result of :func:`candidate_pairs`.
        iou_thresholds: ``(T,) float64``.

    Returns:
        ``(A, T, D) int32``: the matched gt index, or -1.
    """
    p_det, p_gt, p_iou = pairs
    A, T, n_det = gt.ignore.shape[0], len(iou_thresholds), det.key.size
    match = np.full((A, T, n_det), -1, dtype=np.int32)
    if p_det.size == 0:
        return match
    p_step = _match_steps(det, gt, p_det, p_gt)[p_det]
    order = np.argsort(p_step, kind="stable")  # keeps (det, gt) order inside a step
    p_det, p_gt, p_iou, p_step = p_det[order], p_gt[order], p_iou[order], p_step[order]
    step_bounds = np.searchsorted(p_step, np.arange(int(p_step.max()) + 2))
    available = np.ones((A, T, gt.crowd.size), dtype=bool)
    crowd_p = gt.crowd[p_gt]
    for s in range(len(step_bounds) - 1):
        lo, hi = int(step_bounds[s]), int(step_bounds[s + 1])
        if lo == hi:
            continue
        d, g, iou, crowd = p_det[lo:hi], p_gt[lo:hi], p_iou[lo:hi], crowd_p[lo:hi]
        above = iou[None, :] >= iou_thresholds[:, None]  # (T, P)
        for a in range(A):
            # Preference inside a detection: regular gt first, then higher IoU, then the
            # later gt (COCOeval's scan keeps the last of equal IoUs).
            o = np.lexsort((g, iou, ~gt.ignore[a][g], d))
            det_o, gt_o = d[o], g[o]
            elig = above[:, o] & (available[a][:, gt_o] | crowd[o][None, :])
            pos = np.where(elig, np.arange(o.size)[None, :], -1)
            starts = segment_starts(det_o)
            best = np.maximum.reduceat(pos, starts, axis=1)  # (T, n_dets_in_step)
            t_idx, j = np.nonzero(best >= 0)
            g_chosen = gt_o[best[t_idx, j]]
            match[a, t_idx, det_o[starts[j]]] = g_chosen
            take = ~gt.crowd[g_chosen]
            available[a, t_idx[take], g_chosen[take]] = False
    return match


def score_matches(
    match: npt.NDArray[np.int32],
    det: DetectionGroups,
    gt: GroundTruthGroups,
    area_lo: _Floats,
    area_hi: _Floats,
    gt_id_zero: _Bools | None = None,
) -> tuple[_Bools, _Bools]:
    """True positives and ignored detections, each ``(A, T, D) bool``, from the matches.

    A detection matched to an ignored gt is ignored; an unmatched one is ignored when its
    area is outside the range. ``gt_id_zero`` ``(G,) bool`` (pycocotools compat): a match
    to such a gt is no true positive (COCOeval's ``dtm = 0``, the gt is still taken) and
    is also ignored when the detection lies outside the area range.
    """
    matched = match >= 0
    gt_ig_of_match = np.zeros(match.shape, dtype=bool)
    if gt.key.size:
        for a in range(match.shape[0]):
            gt_ig_of_match[a] = matched[a] & gt.ignore[a][np.maximum(match[a], 0)]
    d_out = (det.area[None, :] < area_lo[:, None]) | (det.area[None, :] > area_hi[:, None])
    d_ignore = np.where(matched, gt_ig_of_match, d_out[:, None, :])  # (A, T, D)
    true_pos = matched
    if gt_id_zero is not None and gt.key.size and gt_id_zero.any():
        to_zero = matched & gt_id_zero[np.maximum(match, 0)]  # (A, T, D)
        true_pos = matched & ~to_zero
        d_ignore = d_ignore | (to_zero & d_out[:, None, :])
    return true_pos, d_ignore


def pr_curve(
    matched: npt.NDArray[np.bool_],
    ignored: npt.NDArray[np.bool_],
    keep_m: npt.NDArray[np.bool_],
    npig: int,
    recall_thresholds: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Interpolated precision ``(T, R, M)`` and recall ``(T, M)`` of one class and area.

    ``matched`` and ``ignored`` are ``(T, n)`` over the class's detections in accumulation
    order; ``keep_m`` is ``(M, n)``: inside the maxDets cut; ``npig`` is the number of
    non-ignored gt boxes; ``recall_thresholds`` is ``(R,)``.

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
    need = np.searchsorted(np.arange(npig + 1) / npig, recall_thresholds, side="left")
    col = np.maximum(need - 1, 0)
    q = np.where(col < width, env[:, np.minimum(col, width - 1)], 0.0)  # (rows, R)
    q = q.reshape(Mn, T, -1).transpose(1, 2, 0)  # (T, R, M)
    rec = (n_tp / npig).reshape(Mn, T).T  # (T, M)
    return q, rec
