"""Tests for yolo2retina.anchors: the simulated resize, anchor IoUs and fit_anchors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import Subset
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import box_iou

from yolo2retina.anchors import (
    DEFAULT_RATIOS,
    DEFAULT_SIZES,
    STRIDES,
    anchor_coverage,
    anchor_wh,
    best_anchor_iou,
    fit_anchors,
    grid_anchor_iou,
    resized_box_wh,
    resized_boxes,
)
from yolo2retina.annotations import Annotations, AnnotationsBuilder
from yolo2retina.dataset import DetectionDataset
from yolo2retina.errors import ConfigError
from yolo2retina.target import FLAG_CROWD

VARROA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "varroa-sticky-board-yolo"


def _small_boxes(
    n_images: int = 30, per_image: int = 20, hw: tuple[int, int] = (1024, 1024), seed: int = 0
) -> Annotations:
    """Varroa-like boxes: 9-24 px, aspect 0.75-1.33, in large images."""
    rng = np.random.default_rng(seed)
    builder = AnnotationsBuilder()
    for i in range(n_images):
        side = rng.uniform(9, 24, per_image)
        aspect = np.exp(rng.uniform(np.log(0.75), np.log(1.33), per_image))
        wh = np.stack([side / np.sqrt(aspect), side * np.sqrt(aspect)], 1)
        xy = rng.uniform(0, min(hw) - 40, (per_image, 2))
        builder.add(f"i{i}.jpg", hw, np.concatenate([xy, xy + wh], 1), np.zeros(per_image))
    return builder.build(["mite"])


def test_fit_reaches_99_percent_on_small_boxes() -> None:
    """Small boxes get >= 99% coverage with fitted anchors, far more than the defaults."""
    ann = _small_boxes()
    fit = fit_anchors(ann, min_size=800, max_size=1333)
    assert fit.fitted_coverage >= 0.99
    assert fit.default_coverage < 0.5
    assert fit.fitted_grid_coverage > fit.default_grid_coverage
    assert len(fit.sizes) == 5 and all(len(level) == 3 for level in fit.sizes)
    assert fit.aspect_ratios == DEFAULT_RATIOS  # (0.5, 1, 2) suffice for near-square boxes
    # the reported figures are what anchor_coverage measures for the same boxes
    wh = resized_box_wh(ann, min_size=800, max_size=1333)
    assert fit.fitted_coverage == anchor_coverage(wh, fit.sizes, fit.aspect_ratios)
    assert fit.default_coverage == anchor_coverage(wh, DEFAULT_SIZES, DEFAULT_RATIOS)
    d = fit.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["sizes"] == [list(level) for level in fit.sizes]
    text = str(fit)
    assert f"{100 * fit.default_coverage:.1f}%" in text
    assert f"{100 * fit.fitted_coverage:.1f}%" in text


def test_fit_widens_ratios_for_elongated_boxes() -> None:
    """Boxes 5x wider than tall make the fit change the aspect ratios."""
    rng = np.random.default_rng(1)
    builder = AnnotationsBuilder()
    for i in range(10):
        w = rng.uniform(60, 120, 20)
        h = w / rng.uniform(4.5, 5.5, 20)
        xy = rng.uniform(0, 300, (20, 2))
        builder.add(
            f"i{i}.jpg",
            (800, 800),
            np.stack([xy[:, 0], xy[:, 1], xy[:, 0] + w, xy[:, 1] + h], 1),
            np.zeros(20),
        )
    fit = fit_anchors(builder.build(["stick"]), min_size=800, max_size=800)
    assert fit.aspect_ratios != DEFAULT_RATIOS
    assert min(fit.aspect_ratios[0]) < 0.5
    assert fit.fitted_coverage > fit.default_coverage
    assert fit.fitted_coverage >= 0.99


def test_fit_spans_a_wide_size_range() -> None:
    """Boxes from 10 to 700 px are still covered by 5 levels of 3 scales."""
    rng = np.random.default_rng(2)
    builder = AnnotationsBuilder()
    for i in range(20):
        side = np.exp(rng.uniform(np.log(10), np.log(700), 25))
        xy = rng.uniform(0, 50, (25, 2))
        builder.add(
            f"i{i}.jpg", (800, 800), np.concatenate([xy, xy + side[:, None]], 1), np.zeros(25)
        )
    fit = fit_anchors(builder.build(["x"]), min_size=800, max_size=800)
    assert fit.fitted_coverage >= 0.99


@pytest.mark.parametrize("image_hw", [(1000, 500), (480, 640), (3000, 4000), (333, 777)])
def test_resize_matches_torchvision_transform(image_hw: tuple[int, int]) -> None:
    """resized_boxes gives the boxes GeneralizedRCNNTransform produces for the same image."""
    h, w = image_hw
    xyxy = np.array([[10.0, 20.0, 60.0, 45.0], [w - 40.0, h - 30.0, w - 1.0, h - 2.0]])
    builder = AnnotationsBuilder()
    builder.add("a.jpg", image_hw, xyxy, [0, 0])
    ann = builder.build(["a"])
    transform = GeneralizedRCNNTransform(800, 1333, [0.0] * 3, [1.0] * 3)
    transform.eval()  # eval uses min_size[-1], deterministic
    _, targets = transform(
        [torch.zeros(3, h, w)],
        [
            {
                "boxes": torch.tensor(xyxy, dtype=torch.float32),
                "labels": torch.zeros(2, dtype=torch.int64),
            }
        ],
    )
    expected = targets[0]["boxes"].numpy()
    np.testing.assert_allclose(resized_boxes(ann, min_size=800, max_size=1333), expected, rtol=1e-5)


def test_anchor_shapes_match_torchvision_generator() -> None:
    """anchor_wh reproduces the widths and heights of torchvision's cell anchors, rounding included."""
    sizes = (
        (10.2, 13.9, 18.9),
        (25.6, 34.8, 47.2),
        (64.1, 86.9, 118.0),
        (160.1, 217.3, 295.0),
        (400.3, 543.3, 737.4),
    )
    for s, r in [
        (DEFAULT_SIZES, DEFAULT_RATIOS),
        (sizes, DEFAULT_RATIOS),
        (sizes, ((0.3, 1.0, 3.3),) * 5),
    ]:
        gen = AnchorGenerator(s, r)
        cells = torch.cat(gen.cell_anchors).numpy()
        expected = np.stack([cells[:, 2] - cells[:, 0], cells[:, 3] - cells[:, 1]], 1)
        np.testing.assert_array_equal(anchor_wh(s, r), expected)


def test_grid_iou_matches_brute_force_over_real_anchors() -> None:
    """grid_anchor_iou equals the best IoU over every anchor torchvision places on the image."""
    rng = np.random.default_rng(3)
    size = 256
    xy = rng.uniform(5, 200, (40, 2))
    wh = rng.uniform(6, 50, (40, 2))
    xyxy = np.concatenate([xy, xy + wh], 1)
    sizes = (
        (12.0, 15.0, 19.0),
        (24.0, 30.0, 38.0),
        (48.0, 60.0, 76.0),
        (96.0, 120.0, 151.0),
        (192.0, 240.0, 302.0),
    )
    gen = AnchorGenerator(sizes, DEFAULT_RATIOS)
    images = ImageList(torch.zeros(1, 3, size, size), [(size, size)])
    features = [torch.zeros(1, 1, size // s, size // s) for s in STRIDES]
    anchors = gen(images, features)[0]
    expected = box_iou(torch.tensor(xyxy, dtype=torch.float32), anchors).max(dim=1).values.numpy()
    np.testing.assert_allclose(grid_anchor_iou(xyxy, sizes, DEFAULT_RATIOS), expected, atol=1e-5)


@settings(max_examples=50, deadline=None)
@given(
    w=st.floats(1.0, 500.0),
    h=st.floats(1.0, 500.0),
    s=st.floats(4.0, 400.0),
    r=st.floats(0.2, 5.0),
)
def test_centred_iou_properties(w: float, h: float, s: float, r: float) -> None:
    """Centred IoU lies in [0, 1] and is 1 for a box shaped exactly like an anchor."""
    anchors = anchor_wh(((s,),), ((r,),))
    iou = best_anchor_iou([[w, h]], anchors)[0]
    assert 0.0 <= iou <= 1.0 + 1e-12
    assert best_anchor_iou(anchors, anchors)[0] == pytest.approx(1.0)


def test_inputs_datasets_subsets_and_ignored_boxes() -> None:
    """DetectionDataset and Subset inputs work; crowd boxes are left out unless they train."""
    builder = AnnotationsBuilder()
    builder.add(
        "a.jpg", (100, 100), [[0, 0, 10, 10], [0, 0, 50, 50]], [0, 0], flags=[0, FLAG_CROWD]
    )
    builder.add("b.jpg", (100, 100), [[0, 0, 20, 20]], [0])
    ann = builder.build(["x"])
    kw = {"min_size": 100, "max_size": 100}
    assert resized_box_wh(ann, **kw).tolist() == [[10.0, 10.0], [20.0, 20.0]]
    assert len(resized_box_wh(DetectionDataset(ann, include_ignored=True), **kw)) == 3
    assert resized_box_wh(Subset(DetectionDataset(ann), [1]), **kw).tolist() == [[20.0, 20.0]]
    with pytest.raises(ConfigError, match="needs Annotations or a DetectionDataset"):
        fit_anchors([1, 2], **kw)
    empty = AnnotationsBuilder()
    empty.add("c.jpg", (100, 100), np.zeros((0, 4)), [])
    with pytest.raises(ConfigError, match="no boxes"):
        fit_anchors(empty.build(["x"]), **kw)


@pytest.mark.skipif(
    not VARROA.is_dir(), reason="real data ../shared/data/varroa-sticky-board-yolo is absent"
)
def test_varroa_default_anchors_miss_the_mites() -> None:
    """On the real varroa boards, default anchors cover few mites at 800 px and fitted ones >= 99%."""
    from yolo2retina.formats.yolo import read_yolo

    fit = fit_anchors(read_yolo(VARROA / "data.yaml", "train"), min_size=800, max_size=1333)
    assert fit.default_coverage < 0.1
    assert fit.fitted_coverage >= 0.99


def test_one_level_count_for_defaults_strides_and_torchvision() -> None:
    """DEFAULT_SIZES / DEFAULT_RATIOS are torchvision's, one entry per level of STRIDES."""
    from torchvision.models.detection.retinanet import _default_anchorgen

    from yolo2retina.anchors import NUM_LEVELS

    reference = _default_anchorgen()
    assert NUM_LEVELS == len(STRIDES) == len(DEFAULT_SIZES) == len(DEFAULT_RATIOS) == 5
    assert tuple(tuple(float(v) for v in s) for s in reference.sizes) == DEFAULT_SIZES
    assert tuple(tuple(r) for r in reference.aspect_ratios) == DEFAULT_RATIOS
