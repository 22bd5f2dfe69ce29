"""Tests for yolo2retina.coco_metric: parity with pycocotools, Metrics, pycocotools_compat.

The parity tests need pycocotools (they skip without it, through the ``pycocotools``
fixture); every other test runs without it.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yolo2retina.annotations import Annotations, AnnotationsBuilder
from yolo2retina.coco_metric import Metrics, coco_map
from yolo2retina.errors import DatasetError
from yolo2retina.target import FLAG_CROWD, FLAG_DIFFICULT, FLAG_TRUNCATED, Target

from ._eval_helpers import build, pred


@pytest.fixture(scope="module")
def pycocotools() -> None:
    """Skip a parity test (only those) when pycocotools is not installed."""
    pytest.importorskip("pycocotools.cocoeval")


# -- a pycocotools reference ----------------------------------------------------------------------


def gt_json(
    ann: Annotations, category_ids: list[int] | None = None, *, original_ids: bool = False
) -> dict[str, Any]:
    """A minimal COCO ground-truth dict of ``ann``: crowd and difficult become ``iscrowd``.

    Annotation ids are ``1..M``, or ``ann.annotation_ids`` with ``original_ids``.
    """
    cats = category_ids or list(range(1, ann.num_classes + 1))
    if original_ids:
        assert ann.annotation_ids is not None
        ids = [int(v) for v in ann.annotation_ids]
    else:
        ids = list(range(1, ann.num_boxes + 1))
    xywh = (ann.boxes[:, 2:] - ann.boxes[:, :2]).astype(np.float64)
    records = []
    owners = ann.image_index()
    for k in range(ann.num_boxes):
        x, y = (float(v) for v in ann.boxes[k, :2])
        w, h = (float(v) for v in ann.boxes[k, 2:].astype(np.float64) - ann.boxes[k, :2])
        records.append(
            {
                "id": ids[k],  # pycocotools treats a gt id 0 as "unmatched"
                "image_id": int(ann.image_ids[owners[k]]),
                "category_id": cats[int(ann.labels[k])],
                "bbox": [x, y, w, h],
                "area": float(xywh[k, 0] * xywh[k, 1]),
                "iscrowd": int(ann.flags[k] & (FLAG_CROWD | FLAG_DIFFICULT) != 0),
            }
        )
    return {
        "images": [
            {"id": int(i), "height": int(h), "width": int(w)}
            for i, (h, w) in zip(ann.image_ids.tolist(), ann.image_hw_array.tolist(), strict=True)
        ],
        "annotations": records,
        "categories": [{"id": c, "name": n} for c, n in zip(cats, ann.class_names, strict=True)],
    }


def results_json(ann: Annotations, preds: list[Target]) -> list[dict[str, Any]]:
    """COCO results records, image by image, with category ids ``label + 1``."""
    out = []
    for i, p in enumerate(preds):
        assert p.scores is not None
        for b, lab, s in zip(
            p.to_coco().tolist(), p.labels.tolist(), p.scores.tolist(), strict=True
        ):
            out.append(
                {"image_id": int(ann.image_ids[i]), "category_id": lab + 1, "bbox": b, "score": s}
            )
    return out


def pycoco_eval(gt_dict: dict[str, Any], results: list[dict[str, Any]] | str) -> Any:
    """Run COCOeval on a gt dict and results (records or a JSON path); returns the COCOeval."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_dict
        gt.createIndex()
        if isinstance(results, str) or results:
            dt = gt.loadRes(results)
        else:  # loadRes cannot take an empty list
            dt = COCO()
            dt.dataset = {**gt_dict, "annotations": []}
            dt.createIndex()
        e = COCOeval(gt, dt, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e


def assert_same(m: Metrics, e: Any, cat_order: np.ndarray | None = None) -> None:
    """The 12 numbers within 1e-6, and the precision/recall arrays, equal pycocotools'."""
    np.testing.assert_allclose(m.stats, e.stats, rtol=0, atol=1e-6)
    prec, rec = e.eval["precision"], e.eval["recall"]
    if cat_order is not None:
        prec, rec = prec[:, :, cat_order], rec[:, cat_order]
    np.testing.assert_allclose(m.precision, prec, rtol=0, atol=1e-12)
    np.testing.assert_allclose(m.recall, rec, rtol=0, atol=1e-12)


# -- hypothesis cases -----------------------------------------------------------------------------


K = 3
SCORES = (0.1, 0.5, 0.5, 0.7, 0.9, 1.0)  # few values: many ties


@st.composite
def eval_cases(draw: st.DrawFn) -> tuple[Annotations, list[Target]]:
    """Small grids of boxes (so IoUs hit thresholds exactly), crowd/difficult, ties, FPs."""
    n_img = draw(st.integers(0, 5))
    ids = draw(st.lists(st.integers(0, 10_000), min_size=n_img, max_size=n_img, unique=True))
    b = AnnotationsBuilder()
    preds = []
    for i in range(n_img):
        scale = draw(st.sampled_from([1.0, 2.5, 8.0]))  # areas across 32² and 96²
        n = draw(st.integers(0, 6))
        xy = np.array(draw(st.lists(st.tuples(*[st.integers(0, 16)] * 2), min_size=n, max_size=n)))
        wh = np.array(draw(st.lists(st.tuples(*[st.integers(1, 12)] * 2), min_size=n, max_size=n)))
        gt = (np.c_[xy, xy + wh] * scale).reshape(-1, 4) if n else np.zeros((0, 4))
        labels = np.array(draw(st.lists(st.integers(0, K - 1), min_size=n, max_size=n)), np.int64)
        flag_choice = st.sampled_from([0, 0, 0, 0, FLAG_CROWD, FLAG_DIFFICULT, FLAG_TRUNCATED])
        flags = np.array(draw(st.lists(flag_choice, min_size=n, max_size=n)), np.uint8)
        b.add(f"{i}.jpg", (300, 300), gt, labels, flags, image_id=ids[i])

        boxes, dl, sc = [], [], []
        for _ in range(draw(st.integers(0, 8))):
            kind = draw(st.sampled_from(["copy", "copy", "inside", "random", "random"]))
            if n and kind == "inside":  # a small box inside a gt box (crowd-region IoU)
                j = draw(st.integers(0, n - 1))
                x1, y1, x2, y2 = gt[j]
                fx, fy = draw(st.sampled_from([0.0, 0.25, 0.5])), draw(st.sampled_from([0.0, 0.5]))
                box = np.array([x1 + fx * (x2 - x1), y1 + fy * (y2 - y1), x2, y2], float)
                lab = int(labels[j])
            elif n and kind == "copy":  # a jittered copy of a gt box (maybe wrong class)
                j = draw(st.integers(0, n - 1))
                jit = np.array(draw(st.tuples(*[st.integers(-2, 2)] * 4)), float) * scale
                box = gt[j] + jit
                lab = int(labels[j]) if draw(st.integers(0, 4)) else draw(st.integers(0, K - 1))
            else:  # a false positive anywhere
                x, y = draw(st.integers(0, 20)), draw(st.integers(0, 20))
                w, h = draw(st.integers(1, 12)), draw(st.integers(1, 12))
                box = np.array([x, y, x + w, y + h], float) * scale
                lab = draw(st.integers(0, K - 1))
            box[2:] = np.maximum(box[2:], box[:2] + 1)
            boxes.append(box)
            dl.append(lab)
            sc.append(draw(st.sampled_from(SCORES)))
        preds.append(Target(np.array(boxes).reshape(-1, 4), dl, sc))
    return b.build(["a", "b", "c"]), preds


@pytest.mark.usefixtures("pycocotools")
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(eval_cases())
def test_coco_map_matches_pycocotools_on_generated_cases(
    case: tuple[Annotations, list[Target]],
) -> None:
    """The 12 numbers and the precision/recall arrays equal pycocotools' on generated cases."""
    ann, preds = case
    m = coco_map(ann, preds)
    assert_same(m, pycoco_eval(gt_json(ann), results_json(ann, preds)))


def random_case(seed: int, n_img: int, dets_per_image: int) -> tuple[Annotations, list[Target]]:
    """Random float boxes with many detections per image (past the 100-per-image cut)."""
    rng = np.random.default_rng(seed)
    b = AnnotationsBuilder()
    preds = []
    for i in range(n_img):
        n = int(rng.integers(0, 40))
        xy = rng.uniform(0, 200, (n, 2))
        gt = np.c_[xy, xy + rng.uniform(2, 120, (n, 2))]
        labels = rng.integers(0, 2, n)
        flags = np.where(rng.random(n) < 0.05, FLAG_CROWD, 0)
        b.add(f"{i}.jpg", (400, 400), gt, labels, flags, image_id=int(rng.integers(0, 10**6)))
        nd = int(rng.integers(0, dets_per_image))
        src = rng.integers(0, max(n, 1), nd)
        dxy = rng.uniform(0, 200, (nd, 2))
        det = np.c_[dxy, dxy + rng.uniform(2, 120, (nd, 2))]
        if n:
            near = rng.random(nd) < 0.7
            det[near] = gt[src[near]] + rng.normal(0, 3, (int(near.sum()), 4))
            det[:, 2:] = np.maximum(det[:, 2:], det[:, :2] + 0.5)
        dl = np.where(rng.random(nd) < 0.9, labels[src] if n else 0, rng.integers(0, 3, nd))
        preds.append(Target(det, dl, np.round(rng.random(nd), 1)))
    return b.build(["x", "y", "z"]), preds


@pytest.mark.usefixtures("pycocotools")
@pytest.mark.parametrize(("seed", "n_img", "dets"), [(0, 12, 300), (1, 40, 30), (2, 3, 250)])
def test_coco_map_matches_pycocotools_past_max_dets(seed: int, n_img: int, dets: int) -> None:
    """Parity holds with more than 100 detections per image and class (maxDets truncation)."""
    ann, preds = random_case(seed, n_img, dets)
    assert_same(coco_map(ann, preds), pycoco_eval(gt_json(ann), results_json(ann, preds)))


@pytest.mark.usefixtures("pycocotools")
def test_false_positives_on_images_without_ground_truth_lower_precision() -> None:
    """A detection on a background image is a false positive (supervision ignored these)."""
    ann = build([([[10, 10, 50, 50]], [0], [0]), ([], [], [])])
    hit = pred([[10, 10, 50, 50]], [0], [0.5])
    alone = coco_map(ann, [hit, pred([], [], [])])
    with_fp = coco_map(ann, [hit, pred([[0, 0, 30, 30]], [0], [0.9])])
    assert alone.map50 == pytest.approx(1.0)
    assert with_fp.map50 < alone.map50
    assert_same(
        with_fp,
        pycoco_eval(gt_json(ann), results_json(ann, [hit, pred([[0, 0, 30, 30]], [0], [0.9])])),
    )


@pytest.mark.usefixtures("pycocotools")
def test_equal_iou_goes_to_the_later_ground_truth_box() -> None:
    """On equal IoU a detection takes the later gt box, as COCOeval's scan does."""
    ann = build([([[0, 0, 10, 20], [0, 0, 20, 10]], [0, 0], [0, 0])])
    # The first detection has IoU 0.5 with both; COCOeval gives it the second box, so
    # the second detection (an exact copy of that box) finds it taken.
    preds = [pred([[0, 0, 10, 10], [0, 0, 20, 10]], [0, 0], [0.9, 0.8])]
    m = coco_map(ann, preds)
    assert_same(m, pycoco_eval(gt_json(ann), results_json(ann, preds)))
    assert m.per_class[0].ap50 < 1.0


def test_class_without_ground_truth_is_minus_one_and_left_out() -> None:
    """A class with no ground truth gets -1 per class and does not pull the mean down."""
    ann = build([([[10, 10, 50, 50]], [0], [0])])
    m = coco_map(ann, [pred([[10, 10, 50, 50], [60, 60, 90, 90]], [0, 1], [0.9, 0.8])])
    assert m.per_class[0].ap == pytest.approx(1.0)
    assert m.per_class[1].ap == -1.0
    assert m.map == pytest.approx(1.0)


def test_crowd_region_absorbs_detections() -> None:
    """Detections inside a crowd region are neither true nor false positives."""
    ann = build([([[10, 10, 50, 50], [0, 60, 100, 100]], [0, 0], [0, FLAG_CROWD])])
    preds = [
        pred([[10, 10, 50, 50], [5, 65, 25, 85], [40, 70, 60, 90]], [0, 0, 0], [0.5, 0.9, 0.9])
    ]
    m = coco_map(ann, preds)
    assert m.map == pytest.approx(1.0)
    assert m.num_gt == 1


def test_no_ground_truth_at_all_gives_minus_one() -> None:
    """With nothing to score against, every number is -1, as COCOeval prints."""
    ann = build([([], [], [])])
    m = coco_map(ann, [pred([[0, 0, 10, 10]], [0], [0.9])])
    assert (m.stats == -1).all()


def test_metrics_table_and_dict() -> None:
    """str() prints COCOeval's 12 lines plus a line per class; to_dict() is JSON-ready."""
    ann = build([([[10, 10, 50, 50], [60, 60, 70, 70]], [0, 1], [0, 0])])
    m = coco_map(ann, [pred([[10, 10, 50, 50]], [0], [0.9])])
    text = str(m)
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in text
    assert text.count("Average Recall") == 6
    assert any(line.split()[:1] == ["dog"] for line in text.splitlines())
    d = json.loads(json.dumps(m.to_dict()))
    assert d["map50"] == pytest.approx(m.map50)
    assert set(d["per_class"]) == {"cat", "dog"}
    assert d["per_class"]["dog"]["ap"] == 0.0
    assert len(m.stats) == 12


@pytest.mark.parametrize(
    ("preds", "match"),
    [
        ([], "predictions for 1"),
        ([Target(np.array([[0, 0, 5, 5]], float), [0])], "needs scores"),
        ([pred([[0, 0, 5, 5]], [2], [0.5])], "outside 0..1"),
    ],
)
def test_bad_predictions_raise(preds: list[Target], match: str) -> None:
    """Wrong counts, missing scores and unknown labels raise DatasetError naming the problem."""
    ann = build([([[10, 10, 50, 50]], [0], [0])])
    with pytest.raises(DatasetError, match=match):
        coco_map(ann, preds)


def test_pair_chunking_gives_the_same_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """Computing IoUs in many small chunks (bounded memory) changes nothing."""
    import yolo2retina.coco_matching as matching

    ann, preds = random_case(3, 10, 60)
    whole = coco_map(ann, preds)
    monkeypatch.setattr(matching, "_PAIR_CHUNK", 7)
    assert coco_map(ann, preds) == whole


# -- real data ----------------------------------------------------------------------------------


def perturb(ann: Annotations, seed: int) -> list[Target]:
    """Predictions from ground truth: jitter, misses, class swaps, false positives, tied scores."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(len(ann)):
        t = ann.target(i)
        h, w = ann.image_hw(i)
        keep = rng.random(len(t)) < 0.85
        boxes = t.boxes[keep].astype(np.float64)
        size = np.repeat(boxes[:, 2:] - boxes[:, :2], 2, axis=0).reshape(-1, 4)
        boxes = boxes + rng.normal(0, 0.07, boxes.shape) * size
        labels = t.labels[keep].copy()
        swap = rng.random(labels.size) < 0.05
        labels[swap] = rng.integers(0, ann.num_classes, int(swap.sum()))
        n_fp = int(rng.integers(0, 6))
        fxy = rng.uniform(0, [w - 40, h - 40], (n_fp, 2))
        boxes = np.r_[boxes, np.c_[fxy, fxy + rng.uniform(5, 40, (n_fp, 2))]]
        labels = np.r_[labels, rng.integers(0, ann.num_classes, n_fp)]
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 0.5)
        out.append(Target(boxes, labels, np.round(rng.random(len(labels)), 2)))
    return out


@pytest.mark.usefixtures("pycocotools")
@pytest.mark.parametrize("split", ["valid", "test"])
def test_blood_cells_parity(blood_coco: Path, split: str) -> None:
    """On the real blood-cells COCO export (unused category 0 included) the numbers equal pycocotools'."""
    from yolo2retina.formats import load_annotations

    ann = load_annotations(blood_coco, format="coco", split=split)
    preds = perturb(ann, seed=1)
    m = coco_map(ann, preds)
    assert ann.category_ids is not None
    cats = list(ann.category_ids)
    e = pycoco_eval(
        gt_json(ann, cats),
        [{**r, "category_id": cats[r["category_id"] - 1]} for r in results_json(ann, preds)],
    )
    # pycocotools orders classes by category id; so does the COCO reader here.
    assert_same(m, e, np.argsort(np.argsort(cats)))
    assert m.per_class[0].ap == -1.0  # the declared, unused category id 0


@pytest.mark.usefixtures("pycocotools")
def test_blood_cells_pycocotools_compat_reproduces_the_id_0_scoring(blood_coco: Path) -> None:
    """With the file's own annotation ids (starting at 0) compat mode equals pycocotools."""
    from yolo2retina.formats import load_annotations

    ann = load_annotations(blood_coco, format="coco", split="valid")
    assert ann.annotation_ids is not None
    assert (ann.annotation_ids == 0).any()  # the Roboflow export numbers from 0
    preds = jitter(ann, seed=3)
    assert ann.category_ids is not None
    cats = list(ann.category_ids)
    res = [{**r, "category_id": cats[r["category_id"] - 1]} for r in results_json(ann, preds)]
    order = np.argsort(np.argsort(cats))
    original = pycoco_eval(gt_json(ann, cats, original_ids=True), res)
    renumbered = pycoco_eval(gt_json(ann, cats), res)
    compat = coco_map(ann, preds, pycocotools_compat=True)
    default = coco_map(ann, preds)
    assert_same(compat, original, order)
    assert_same(default, renumbered, order)
    assert compat.map < default.map - 0.01  # the id-0 boxes really cost pycocotools AP
    # Without annotation ids (another format) compat mode changes nothing.
    no_ids = attrs.evolve(ann, annotation_ids=None)
    assert_same(coco_map(no_ids, preds, pycocotools_compat=True), renumbered, order)


def jitter(ann: Annotations, seed: int) -> list[Target]:
    """Every gt box (crowd excluded), moved by up to 5% of its size, with random scores."""
    rng = np.random.default_rng(seed)
    out = []
    for t in ann.targets():
        boxes = t.boxes.astype(np.float64)
        size = np.repeat(boxes[:, 2:] - boxes[:, :2], 2, axis=0).reshape(-1, 4)
        boxes = boxes + rng.uniform(-0.05, 0.05, boxes.shape) * size
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 0.5)
        out.append(Target(boxes, t.labels, np.round(rng.random(len(t)), 3)))
    return out


def build_with_ids(
    rows: list[tuple[list[list[float]], list[int], list[int]]], ids: list[int]
) -> Annotations:
    """Like :func:`build`, with the given annotation ids (one per box, in order)."""
    return attrs.evolve(build(rows), annotation_ids=np.array(ids, np.int64))


@pytest.mark.usefixtures("pycocotools")
def test_compat_scores_a_match_to_gt_id_0_as_a_false_positive_and_consumes_the_gt() -> None:
    """Two detections on the id-0 box: neither is a true positive, and the second finds it taken."""
    ann = build_with_ids(
        [([[0, 0, 40, 40], [50, 50, 90, 90]], [0, 0], [0, 0])],
        [0, 1],
    )
    preds = [pred([[0, 0, 40, 40], [1, 1, 40, 40], [50, 50, 90, 90]], [0, 0, 0], [0.9, 0.8, 0.7])]
    default = coco_map(ann, preds)
    compat = coco_map(ann, preds, pycocotools_compat=True)
    # default: 0.9 TP, 0.8 FP (the box is taken), 0.7 TP
    assert default.map50 == pytest.approx((51 + 50 * 2 / 3) / 101, abs=1e-6)
    e = pycoco_eval(gt_json(ann, original_ids=True), results_json(ann, preds))
    assert_same(compat, e)
    # pycocotools: det 0.9 takes id 0 (FP), 0.8 finds it taken (FP), 0.7 matches id 1 (TP):
    # recall 1/2 at precision 1/3.
    assert compat.mar_100 == pytest.approx(0.5)
    assert compat.map50 == pytest.approx(51 / 101 / 3, abs=1e-6)
    # No box with id 0: compat equals the default.
    renum = attrs.evolve(ann, annotation_ids=np.array([5, 1], np.int64))
    assert_same(
        coco_map(renum, preds, pycocotools_compat=True),
        pycoco_eval(gt_json(ann), results_json(ann, preds)),
    )


@pytest.mark.usefixtures("pycocotools")
@pytest.mark.parametrize("ids", [[0, 7, 3, 5], [2, 7, 3, 0], [2, 7, 0, 5]])
def test_compat_id_0_crowd_and_area_range_ignores_match_pycocotools(ids: list[int]) -> None:
    """Id 0 on a crowd box (stays an ignore region), on a small box matched by a medium
    detection (ignored in the small range, as COCOeval's dtm == 0 makes it), on a plain box.

    Ids are unique, as in a real file (pycocotools keys annotations by id).
    """
    ann = build_with_ids(
        [
            ([[0, 0, 40, 40], [50, 50, 60, 60]], [0, 1], [FLAG_CROWD, 0]),
            ([[0, 0, 20, 20], [30, 30, 61, 62]], [1, 1], [0, 0]),
        ],
        ids,
    )
    preds = [
        pred([[0, 0, 20, 20], [50, 50, 60, 61]], [0, 1], [0.9, 0.6]),
        pred([[30, 30, 62, 63], [0, 0, 20, 21], [60, 0, 70, 9]], [1, 1, 1], [0.95, 0.5, 0.4]),
    ]
    e = pycoco_eval(gt_json(ann, original_ids=True), results_json(ann, preds))
    assert_same(coco_map(ann, preds, pycocotools_compat=True), e)


@pytest.mark.usefixtures("pycocotools")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(eval_cases(), st.randoms(use_true_random=False))
def test_compat_matches_pycocotools_with_id_0_on_generated_cases(
    case: tuple[Annotations, list[Target]], rnd: Any
) -> None:
    """Generated cases with one gt box renumbered to id 0: compat equals pycocotools."""
    ann, preds = case
    ids = list(range(1, ann.num_boxes + 1))
    if ids:
        ids[rnd.randrange(len(ids))] = 0
    ann = attrs.evolve(ann, annotation_ids=np.array(ids, np.int64))
    e = pycoco_eval(gt_json(ann, original_ids=True), results_json(ann, preds))
    assert_same(coco_map(ann, preds, pycocotools_compat=True), e)


@pytest.mark.usefixtures("pycocotools")
def test_results_json_for_varroa_loads_and_scores_the_same(
    varroa_yaml: Path, tmp_path: Path
) -> None:
    """The COCO results JSON of the varroa val set loads in loadRes and scores what coco_map scores."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from yolo2retina.formats import load_annotations
    from yolo2retina.formats.coco import coco_category_ids, write_coco_results

    ann = load_annotations(varroa_yaml, split="val")
    preds = perturb(ann, seed=2)
    res = write_coco_results(preds, ann, tmp_path / "results.json")
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt_json(ann, coco_category_ids(ann))))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        e = COCOeval(gt, gt.loadRes(str(res)), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    assert_same(coco_map(ann, preds), e)
