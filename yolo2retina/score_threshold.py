"""Choosing predict's score threshold on validation data: the score with the best F1.

:func:`best_f1_threshold` matches detections to ground truth as a PR curve does (per image
and class, best score first, each detection taking the free ground-truth box with the
highest IoU at or above ``iou_threshold``; the kernels of :mod:`yolo2retina.coco_matching`,
so the matching is COCO's at one IoU threshold), then walks down the scores and keeps the
one whose F1 is highest. Training records it in the checkpoint's
``meta["score_threshold"]`` and ``yolo2retina predict`` uses it when ``--score`` is not
given (:func:`recorded_score_threshold`, :func:`predict_score_threshold`).

NumPy only: importing it never imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs
import numpy as np
import numpy.typing as npt

from yolo2retina.annotations import Annotations
from yolo2retina.coco_matching import (
    candidate_pairs,
    flatten_predictions,
    greedy_match,
    group_detections,
    group_ground_truth,
    score_matches,
)
from yolo2retina.errors import ConfigError, DatasetError
from yolo2retina.target import Target

__all__ = [
    "DEFAULT_SCORE_THRESHOLD",
    "META_KEY",
    "ThresholdChoice",
    "best_f1_threshold",
    "predict_score_threshold",
    "recorded_score_threshold",
]

#: predict's threshold when neither ``--score`` nor the checkpoint gives one.
DEFAULT_SCORE_THRESHOLD = 0.3

#: The key of a checkpoint's ``meta`` that holds :meth:`ThresholdChoice.to_meta`.
META_KEY = "score_threshold"

#: Where predict's threshold came from: ``--score``, the checkpoint, or the default.
Origin = Literal["given", "validation", "default"]

# One area range that ignores nothing: only crowd / difficult boxes are ignore regions.
_AREA_LO = np.array([0.0])
_AREA_HI = np.array([np.inf])


@attrs.frozen
class ThresholdChoice:
    """The score threshold with the best F1 at one IoU threshold, and what it gives.

    ``score`` is ``None`` when no threshold finds a true positive (no ground truth, no
    detections, or only false positives): F1, precision and recall are then 0.0, and
    predict falls back to :data:`DEFAULT_SCORE_THRESHOLD`. Never NaN.

    Attributes:
        score: keep detections with ``score >= this`` (a detection's own score), or ``None``.
        f1: ``2 TP / (2 TP + FP + FN)`` at that threshold.
        precision: ``TP / (TP + FP)`` at that threshold.
        recall: ``TP / num_gt`` at that threshold.
        num_gt: ground-truth boxes that are not ignore regions (crowd or difficult).
        iou_threshold: the IoU a detection needs to match a ground-truth box.
    """

    score: float | None
    f1: float
    precision: float
    recall: float
    num_gt: int
    iou_threshold: float = 0.5

    def to_meta(self) -> dict[str, Any]:
        """The plain dict training stores as ``meta["score_threshold"]``."""
        return {
            "score": self.score,
            "f1": self.f1,
            "precision": self.precision,
            "recall": self.recall,
            "iou": self.iou_threshold,
        }

    def __str__(self) -> str:
        if self.score is None:
            return f"none chosen (no true positive at IoU {self.iou_threshold:g})"
        return (
            f"{self.score:.4g} (best F1 {self.f1:.2f}: precision {self.precision:.2f},"
            f" recall {self.recall:.2f} at IoU {self.iou_threshold:g})"
        )


def best_f1_threshold(
    ground_truth: Annotations,
    predictions: Sequence[Target],
    *,
    iou_threshold: float = 0.5,
) -> ThresholdChoice:
    """The score threshold that maximises F1 over the whole split.

    Detections are matched per image and class, best score first (ties keep their input
    order), each to the free ground-truth box of its class with the highest IoU
    ``>= iou_threshold`` (on equal IoU the later box). Crowd and difficult boxes are ignore
    regions as in :func:`~yolo2retina.coco_metric.coco_map`: a detection that matches only
    one counts as neither a true nor a false positive, and they are no false negatives.
    Then, over all detections by decreasing score, the cumulative true and false positives
    give ``F1 = 2 TP / (2 TP + FP + FN)`` at each distinct score; the best one is chosen,
    the higher score on a tie. Detections are never cut per image (unlike COCO's 100).

    Args:
        ground_truth: annotations of the split (any format).
        predictions: one :class:`~yolo2retina.target.Target` with ``scores`` per image of
            ``ground_truth``, in the same order, in the same pixel frame.
        iou_threshold: in ``(0, 1]``.

    Returns:
        The :class:`ThresholdChoice`; its ``score`` is ``None`` when no threshold finds a
        true positive.

    Raises:
        DatasetError: the number of predictions differs from the number of images, or a
            prediction is not a Target, lacks scores or has a label outside ``0..K-1``
            (the message names ``predictions[i]``). A Target's scores are always finite.
        ConfigError: ``iou_threshold`` is outside ``(0, 1]``.

    Example:
        >>> choice = best_f1_threshold(val_annotations, predictions)  # doctest: +SKIP
        >>> choice.score, choice.f1  # doctest: +SKIP
        (0.42, 0.61)
    """
    n_img = len(ground_truth)
    if len(predictions) != n_img:
        raise DatasetError(
            f"best_f1_threshold: {len(predictions)} predictions for {n_img} ground-truth"
            " images; pass one Target per image, in order"
        )
    iou = float(iou_threshold)
    if not (0.0 < iou <= 1.0):  # also refuses NaN
        raise ConfigError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
    scores, true_pos, num_gt = _match_at_iou(ground_truth, predictions, iou)
    return _choose(scores, true_pos, num_gt, iou)


def _match_at_iou(
    ground_truth: Annotations, predictions: Sequence[Target], iou_threshold: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], int]:
    """The counted detections' scores ``(D,) float64`` and whether each is a true
    positive ``(D,) bool`` (detections on ignore regions left out), and the number of
    ground-truth boxes that are not ignore regions."""
    n_img = len(ground_truth)
    pred = flatten_predictions(predictions, ground_truth.num_classes)
    img_rank = np.arange(n_img, dtype=np.int64)
    gt = group_ground_truth(ground_truth, img_rank, _AREA_LO, _AREA_HI)
    det = group_detections(pred, img_rank, n_img, max(int(pred.scores.size), 1))
    pairs = candidate_pairs(det, gt, iou_threshold)
    match = greedy_match(det, gt, pairs, np.array([iou_threshold]))  # (1, 1, D)
    true_pos, ignored = score_matches(match, det, gt, _AREA_LO, _AREA_HI)
    counted = ~ignored[0, 0]
    num_gt = int(np.count_nonzero(~gt.crowd))
    return det.score[counted], true_pos[0, 0][counted], num_gt


def _choose(
    scores: npt.NDArray[np.float64],
    true_pos: npt.NDArray[np.bool_],
    num_gt: int,
    iou_threshold: float,
) -> ThresholdChoice:
    """The best F1 over the distinct scores of ``(D,)`` counted detections."""
    none = ThresholdChoice(None, 0.0, 0.0, 0.0, num_gt, iou_threshold)
    if num_gt == 0 or not true_pos.any():
        return none
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    tp = np.cumsum(true_pos[order], dtype=np.int64)
    fp = np.arange(1, s.size + 1, dtype=np.int64) - tp
    # a threshold keeps every detection of its score: look at the end of each run of ties
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tp, fp, s = tp[ends], fp[ends], s[ends]
    f1 = 2.0 * tp / (tp + fp + num_gt)  # 2TP / (2TP + FP + FN) with FN = num_gt - TP
    best = int(np.argmax(f1))  # the first maximum: the highest score on a tie
    return ThresholdChoice(
        score=float(s[best]),
        f1=float(f1[best]),
        precision=float(tp[best] / (tp[best] + fp[best])),
        recall=float(tp[best] / num_gt),
        num_gt=num_gt,
        iou_threshold=iou_threshold,
    )


def recorded_score_threshold(meta: Mapping[str, Any], *, where: str = "checkpoint") -> float | None:
    """The threshold training chose, from a checkpoint's (or sidecar's) ``meta``.

    Returns:
        ``meta["score_threshold"]["score"]``, or ``None`` when the checkpoint records none
        (trained before it was recorded, without validation data, or no true positive).

    Raises:
        ConfigError: the entry is there but is not ``{"score": a number in [0, 1] or
            None, ...}``; the message names ``where``.
    """
    entry = meta.get(META_KEY)
    if entry is None:
        return None
    score = entry.get("score") if isinstance(entry, Mapping) else entry
    if score is None:
        return None
    if (
        not isinstance(entry, Mapping)
        or isinstance(score, bool)
        or not isinstance(score, (int, float))
        or not (0.0 <= float(score) <= 1.0)  # also refuses NaN
    ):
        raise ConfigError(
            f"{where}: meta['{META_KEY}'] is {entry!r}; expected a dict whose 'score' is"
            " a number from 0 to 1 (or None); pass the threshold yourself (--score)"
        )
    return float(score)


def predict_score_threshold(
    given: float | None, meta: Mapping[str, Any], *, where: str = "checkpoint"
) -> tuple[float, Origin]:
    """The threshold ``yolo2retina predict`` uses, and where it came from.

    ``given`` (``--score``) wins; else the one training chose on the validation set
    (:func:`recorded_score_threshold`); else :data:`DEFAULT_SCORE_THRESHOLD`.

    Raises:
        ConfigError: ``given`` is not finite, or the recorded entry is malformed.
    """
    if given is not None:
        if not math.isfinite(given):
            raise ConfigError(f"score threshold must be a finite number, got {given}")
        return float(given), "given"
    recorded = recorded_score_threshold(meta, where=where)
    if recorded is not None:
        return recorded, "validation"
    return DEFAULT_SCORE_THRESHOLD, "default"
