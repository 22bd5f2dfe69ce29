"""The class confusion matrix of a detector, with a background row and column.

NumPy only; the pair IoU is pycocotools' (:func:`yolo2retina.coco_matching.pair_iou`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from yolo2retina import boxes as box_ops
from yolo2retina.annotations import Annotations
from yolo2retina.coco_matching import flatten_predictions, pair_iou
from yolo2retina.errors import DatasetError
from yolo2retina.target import FLAG_CROWD, FLAG_DIFFICULT, Target

__all__ = ["confusion_matrix"]


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
    pred = flatten_predictions(predictions, K)
    out = np.zeros((K + 1, K + 1), np.int64)
    keep = pred.scores >= score_threshold
    d_img = pred.image[keep]
    d_order = np.lexsort((-pred.scores[keep], d_img))
    d_xyxy = pred.xyxy[keep][d_order]
    d_lab = pred.labels[keep][d_order]
    d_bounds = np.searchsorted(d_img[d_order], np.arange(n_img + 1))
    crowd_all = (ground_truth.flags & (FLAG_CROWD | FLAG_DIFFICULT)) != 0
    for i in range(n_img):
        s = ground_truth.box_slice(i)
        d = slice(d_bounds[i], d_bounds[i + 1])
        _add_image(
            out,
            ground_truth.boxes[s].astype(np.float64),
            ground_truth.labels[s],
            crowd_all[s],
            d_xyxy[d],
            d_lab[d],
            iou_threshold,
        )
    return out


def _add_image(
    out: npt.NDArray[np.int64],
    g: npt.NDArray[np.float64],
    g_lab: npt.NDArray[np.int64],
    crowd: npt.NDArray[np.bool_],
    db: npt.NDArray[np.float64],
    dl: npt.NDArray[np.int64],
    iou_threshold: float,
) -> None:
    """Add one image's counts to ``out``: gt ``(G, 4)`` xyxy with labels and ignore flags,
    detections ``(D, 4)`` xyxy with labels, best score first."""
    K = out.shape[0] - 1
    taken = np.zeros(len(g), dtype=bool)
    n_g, n_d = len(g), len(db)
    ious = pair_iou(
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
