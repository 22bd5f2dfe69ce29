"""Tests for yolo2retina.score_threshold: the F1-optimal score threshold and its meta entry."""

from __future__ import annotations

import math
from fractions import Fraction

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests._eval_helpers import build, pred
from yolo2retina.errors import ConfigError, DatasetError
from yolo2retina.score_threshold import (
    DEFAULT_SCORE_THRESHOLD,
    ThresholdChoice,
    best_f1_threshold,
    predict_score_threshold,
    recorded_score_threshold,
)
from yolo2retina.target import FLAG_CROWD, FLAG_DIFFICULT, Target

A, B, C = [0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]
FAR = [70, 70, 80, 80]


def test_hand_built_case() -> None:
    """3 gt; 0.9 TP, 0.8 FP, 0.7 TP, 0.2 TP.

    F1 at each score: 0.9 -> 2/(2+0+2)=0.5; 0.8 -> 2/(2+1+2)=0.4; 0.7 -> 4/(4+1+1)=0.667;
    0.2 -> 6/(6+1+0)=0.857: the best is 0.2 (precision 3/4, recall 1).
    """
    gt = build([([A, B, C], [0, 0, 0], [0, 0, 0])])
    p = pred([A, FAR, B, C], [0, 0, 0, 0], [0.9, 0.8, 0.7, 0.2])
    c = best_f1_threshold(gt, [p])
    assert c.score == np.float32(0.2)  # the detection's own score (float32 in a Target)
    assert attrs.evolve(c, score=0.2) == ThresholdChoice(0.2, 6 / 7, 0.75, 1.0, 3, 0.5)


def test_more_false_positives_move_the_threshold_up() -> None:
    """Four FPs between 0.7 and 0.2 make 0.7 the best: F1 0.667 beats 6/(6+5)=0.545."""
    gt = build([([A, B, C], [0, 0, 0], [0, 0, 0])])
    fps = [[60 + k, 0, 65 + k, 5] for k in range(4)]
    p = pred([A, FAR, B, *fps, C], [0] * 8, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    c = best_f1_threshold(gt, [p])
    assert c.score == pytest.approx(0.7)
    assert (c.f1, c.precision, c.recall) == pytest.approx((2 / 3, 2 / 3, 2 / 3))


def test_equal_f1_takes_the_higher_score() -> None:
    """Equal scores are one threshold; equal F1 at two thresholds picks the higher score."""
    gt = build([([A], [0], [0])])
    p = pred([A, B], [0, 0], [0.9, 0.9])  # equal scores: one threshold keeps both
    c = best_f1_threshold(gt, [p])
    assert c.score == pytest.approx(0.9) and c.f1 == pytest.approx(2 / 3)
    # 3 gt; TP at 0.8, then FP and TP both at 0.6: 0.8 -> 2/(2+0+2)=0.5, 0.6 -> 4/(4+1+1)=2/3
    gt3 = build([([A, B, C], [0, 0, 0], [0, 0, 0])])
    tie = pred([A, FAR, B], [0, 0, 0], [0.8, 0.6, 0.6])
    assert best_f1_threshold(gt3, [tie]).score == pytest.approx(0.6)
    # 2 gt; TP 0.9 -> 2/(2+0+1)=2/3; FP 0.8, FP 0.7, TP 0.5 -> 4/(4+2+0)=2/3: a tie
    gt2 = build([([A, B], [0, 0], [0, 0])])
    p2 = pred([A, FAR, C, B], [0, 0, 0, 0], [0.9, 0.8, 0.7, 0.5])
    c2 = best_f1_threshold(gt2, [p2])
    assert c2.f1 == pytest.approx(2 / 3) and c2.score == pytest.approx(0.9)


def test_classes_and_images_are_matched_separately() -> None:
    """A box of the wrong class, or on the other image, is a false positive."""
    gt = build([([A], [0], [0]), ([B], [1], [0])])
    p0 = pred([A, A], [1, 0], [0.95, 0.6])  # wrong class first, then the right one
    p1 = pred([A, B], [1, 1], [0.9, 0.5])  # A is not on image 1
    c = best_f1_threshold(gt, [p0, p1])
    # by score: 0.95 FP, 0.9 FP, 0.6 TP, 0.5 TP -> F1 at 0.5: 4/(4+2+0) = 2/3
    assert c.score == pytest.approx(0.5) and c.f1 == pytest.approx(2 / 3)
    assert c.precision == pytest.approx(0.5) and c.recall == 1.0 and c.num_gt == 2


def test_one_gt_matches_one_detection_and_iou_threshold_applies() -> None:
    """A duplicate is a false positive; a box at IoU 0.25 only matches at iou_threshold 0.25."""
    gt = build([([A], [0], [0])])
    dup = pred([A, A], [0, 0], [0.9, 0.8])
    c = best_f1_threshold(gt, [dup])
    assert (c.score, c.f1, c.precision, c.recall) == (np.float32(0.9), 1.0, 1.0, 1.0)
    half = pred([[0, 0, 10, 5]], [0], [0.7])  # IoU 50 / 100 = 0.5 exactly
    assert best_f1_threshold(gt, [half]).score == pytest.approx(0.7)
    quarter = pred([[0, 0, 5, 5]], [0], [0.7])  # IoU 25 / 100
    assert best_f1_threshold(gt, [quarter]).score is None
    c = best_f1_threshold(gt, [quarter], iou_threshold=0.25)
    assert c.score == pytest.approx(0.7) and c.iou_threshold == 0.25


def test_crowd_and_difficult_boxes_are_neither_fn_nor_fp() -> None:
    """Detections on ignore regions are left out; ignore regions are not missed boxes."""
    for flag in (FLAG_CROWD, FLAG_DIFFICULT):
        gt = build([([A, [40, 40, 90, 90]], [0, 0], [0, flag])])
        # 0.95 and 0.9 lie inside the ignore region (IoU = inter / detection area = 1)
        p = pred([[50, 50, 60, 60], [60, 60, 70, 70], A], [0, 0, 0], [0.95, 0.9, 0.3])
        c = best_f1_threshold(gt, [p])
        assert (c.score, c.f1, c.num_gt) == (np.float32(0.3), 1.0, 1), flag


@pytest.mark.parametrize(
    ("rows", "preds"),
    [
        ([], []),  # no images
        ([([], [], [])], [pred([], [], [])]),  # no gt, no detections
        ([([], [], [])], [pred([A], [0], [0.9])]),  # no gt: only false positives
        ([([A], [0], [0])], [pred([], [], [])]),  # no detections
        ([([A], [0], [0])], [pred([B, C], [0, 1], [0.9, 0.1])]),  # all false positives
        ([([A], [0], [FLAG_CROWD])], [pred([A], [0], [0.9])]),  # only an ignore region
    ],
)
def test_nothing_to_choose_gives_score_none_and_zeros(
    rows: list[tuple[list[list[float]], list[int], list[int]]], preds: list[object]
) -> None:
    """No true positive anywhere: score None, F1/precision/recall 0.0 (never NaN, no error)."""
    c = best_f1_threshold(build(rows), preds)  # type: ignore[arg-type]
    assert c.score is None and (c.f1, c.precision, c.recall) == (0.0, 0.0, 0.0)
    assert c.to_meta()["score"] is None and "none chosen" in str(c)


def test_bad_inputs_raise_library_errors_naming_them() -> None:
    gt = build([([A], [0], [0])])
    with pytest.raises(DatasetError, match=r"best_f1_threshold: 2 predictions for 1 "):
        best_f1_threshold(gt, [pred([], [], []), pred([], [], [])])
    with pytest.raises(DatasetError, match=r"predictions\[0\]: label 2 is outside 0\.\.1"):
        best_f1_threshold(gt, [pred([A], [2], [0.5])])
    with pytest.raises(DatasetError, match=r"predictions\[0\]: a prediction Target needs"):
        best_f1_threshold(gt, [Target(np.array([A], float), [0])])
    for bad in (0.0, 1.5, math.nan):
        with pytest.raises(ConfigError, match="iou_threshold must be in"):
            best_f1_threshold(gt, [pred([A], [0], [0.5])], iou_threshold=bad)


# -- against a brute-force reference --------------------------------------------------------------


def _iou(d: list[int], g: list[int], crowd: bool) -> Fraction:
    w = min(d[2], g[2]) - max(d[0], g[0])
    h = min(d[3], g[3]) - max(d[1], g[1])
    if w <= 0 or h <= 0:
        return Fraction(0)
    inter = w * h
    da = (d[2] - d[0]) * (d[3] - d[1])
    union = da if crowd else da + (g[2] - g[0]) * (g[3] - g[1]) - inter
    return Fraction(inter, union)


Image = tuple[list[list[int]], list[int], list[int], list[list[int]], list[int], list[float]]


def _counts_at(images: list[Image], t: float, thr: Fraction) -> tuple[int, int, int]:
    """TP, FP, FN keeping scores >= t: plain greedy matching, one detection at a time."""
    tp = fp = fn = 0
    for g_boxes, g_lab, g_crowd, d_boxes, d_lab, d_sc in images:
        order = sorted(range(len(d_sc)), key=lambda j: -d_sc[j])  # stable: input order on ties
        taken = [False] * len(g_boxes)
        for j in order:
            if d_sc[j] < t:
                continue
            best, best_iou = -1, Fraction(-1)
            for k, g in enumerate(g_boxes):  # a free regular box, highest IoU, later on ties
                if g_lab[k] == d_lab[j] and not g_crowd[k] and not taken[k]:
                    iou = _iou(d_boxes[j], g, False)
                    if iou >= thr and iou >= best_iou:
                        best, best_iou = k, iou
            if best >= 0:
                taken[best] = True
                tp += 1
            elif not any(
                g_lab[k] == d_lab[j] and g_crowd[k] and _iou(d_boxes[j], g, True) >= thr
                for k, g in enumerate(g_boxes)
            ):
                fp += 1
        fn += sum(1 for k in range(len(g_boxes)) if not taken[k] and not g_crowd[k])
    return tp, fp, fn


def _box(draw: st.DrawFn) -> list[int]:
    x, y = draw(st.integers(0, 12)), draw(st.integers(0, 12))
    return [x, y, x + draw(st.integers(1, 8)), y + draw(st.integers(1, 8))]


@st.composite
def _images(draw: st.DrawFn) -> list[Image]:
    out = []
    for _ in range(draw(st.integers(1, 3))):
        n_g, n_d = draw(st.integers(0, 4)), draw(st.integers(0, 6))
        g_boxes = [_box(draw) for _ in range(n_g)]
        d_boxes = [_box(draw) for _ in range(n_d)]
        out.append(
            (
                g_boxes,
                [draw(st.integers(0, 1)) for _ in range(n_g)],
                [int(draw(st.integers(0, 5)) == 0) for _ in range(n_g)],  # some crowd boxes
                d_boxes,
                [draw(st.integers(0, 1)) for _ in range(n_d)],
                [draw(st.sampled_from([0.1, 0.25, 0.5, 0.75, 0.9])) for _ in range(n_d)],
            )
        )
    return out


@settings(max_examples=150, deadline=None)
@given(_images(), st.sampled_from([0.3, 0.5, 0.7]))
def test_the_choice_is_the_best_f1_of_every_threshold(images: list[Image], iou: float) -> None:
    """The chosen F1 is the maximum over all candidate thresholds (brute force), at the
    highest score that reaches it; precision and recall are those of that threshold."""
    gt = build([(g, gl, [FLAG_CROWD * c for c in gc]) for g, gl, gc, *_ in images])
    preds = [pred(d, dl, ds) for *_, d, dl, ds in images]
    c = best_f1_threshold(gt, preds, iou_threshold=iou)
    thr = Fraction(iou)
    best: tuple[Fraction, float, int, int, int] | None = None
    for t in sorted({s for *_, ds in images for s in ds}, reverse=True):
        tp, fp, fn = _counts_at(images, t, thr)
        f1 = Fraction(2 * tp, 2 * tp + fp + fn) if tp else Fraction(0)
        if best is None or f1 > best[0]:
            best = (f1, t, tp, fp, fn)
    if best is None or best[0] == 0:
        assert c.score is None and c.f1 == 0.0
        return
    f1, t, tp, fp, fn = best
    assert c.score == pytest.approx(t)
    assert c.f1 == pytest.approx(float(f1))
    assert c.precision == pytest.approx(tp / (tp + fp))
    assert c.recall == pytest.approx(tp / (tp + fn))
    assert c.num_gt == tp + fn
    assert all(np.isfinite([c.f1, c.precision, c.recall]))


# -- the recorded threshold -----------------------------------------------------------------------


def test_recorded_threshold_and_predicts_choice() -> None:
    meta = {"score_threshold": ThresholdChoice(0.42, 0.6, 0.7, 0.5, 10).to_meta()}
    assert meta["score_threshold"]["iou"] == 0.5
    assert recorded_score_threshold(meta) == 0.42
    assert predict_score_threshold(None, meta) == (0.42, "validation")
    assert predict_score_threshold(0.1, meta) == (0.1, "given")
    assert predict_score_threshold(None, {}) == (DEFAULT_SCORE_THRESHOLD, "default")
    none = {"score_threshold": ThresholdChoice(None, 0.0, 0.0, 0.0, 0).to_meta()}
    assert predict_score_threshold(None, none) == (0.3, "default")
    with pytest.raises(ConfigError, match="finite"):
        predict_score_threshold(math.nan, meta)


@pytest.mark.parametrize("entry", [{"score": "0.4"}, {"score": 1.5}, {"score": math.nan}, 0.4])
def test_a_malformed_recorded_threshold_is_an_error_naming_the_file(entry: object) -> None:
    with pytest.raises(ConfigError, match=r"runs/a/best\.pt: meta\['score_threshold'\]"):
        recorded_score_threshold({"score_threshold": entry}, where="runs/a/best.pt")
