"""Tests for yolo2retina.box_transforms: quarter turns, scale jitter and box-biased crops keep
every box on its object."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2

from tests._augment_helpers import (
    OBJECTS,
    FixedCrop,
    FixedRot90,
    H,
    W,
    check_boxes_on_objects,
    painted_sample,
)
from yolo2retina.box_transforms import BoxBiasedCrop, RandomRot90, RandomScale, crop_boxes
from yolo2retina.errors import ConfigError


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: small tensor ops are many times slower with two on a loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- each transform alone -------------------------------------------------------------------


@pytest.mark.parametrize(
    "transform",
    [
        v2.RandomHorizontalFlip(1.0),
        v2.RandomVerticalFlip(1.0),
        FixedRot90(0),
        FixedRot90(1),
        FixedRot90(2),
        FixedRot90(3),
        RandomScale((0.6, 0.6)),
        RandomScale((1.7, 1.7)),
        RandomScale((0.5, 2.0)),
    ],
    ids=repr,
)
def test_geometric_transforms_keep_boxes_on_objects(transform: nn.Module) -> None:
    """Flips, each quarter turn and scale jitter move the boxes with their objects."""
    for seed in range(3):
        torch.manual_seed(seed)
        image, target = transform(*painted_sample())
        assert len(target["labels"]) == len(OBJECTS)
        check_boxes_on_objects(image, target)


def test_rot90_turns_the_canvas_and_the_box_exactly() -> None:
    """One quarter turn maps a box (x1, y1, x2, y2) on a W-wide canvas to (y1, W-x2, y2, W-x1)."""
    image, target = FixedRot90(1)(*painted_sample())
    assert image.shape == (3, W, H)
    assert target["boxes"].canvas_size == (W, H)
    assert target["boxes"][0].tolist() == [6.0, W - 20.0, 18.0, W - 4.0]
    image4, target4 = FixedRot90(1)(*FixedRot90(3)(*painted_sample()))
    assert torch.equal(image4, painted_sample()[0])
    assert torch.equal(target4["boxes"], painted_sample()[1]["boxes"])


def test_rot90_keeps_the_box_format() -> None:
    """CXCYWH boxes come back as CXCYWH, turned."""
    boxes = tv_tensors.BoundingBoxes(
        torch.tensor([[12.0, 12.0, 16.0, 12.0]]), format="CXCYWH", canvas_size=(96, 128)
    )
    out = RandomRot90().transform(boxes, {"k": 1})
    assert out.format == tv_tensors.BoundingBoxFormat.CXCYWH
    assert out.tolist() == [[12.0, 128 - 12.0, 12.0, 16.0]]


def test_rot90_turns_pil_images_like_tensors() -> None:
    """A PIL image turns the same way as a tensor image."""
    image, _ = painted_sample()
    pil = v2.functional.to_pil_image(image)
    for k in range(4):
        turned_pil = v2.functional.pil_to_tensor(RandomRot90().transform(pil, {"k": k}))
        turned = v2.functional.pil_to_tensor(
            v2.functional.to_pil_image(RandomRot90().transform(image, {"k": k}))
        )
        assert torch.equal(turned_pil, turned)


@pytest.mark.parametrize("p_box", [0.0, 1.0])
def test_box_biased_crop_keeps_boxes_on_objects(p_box: float) -> None:
    """Crops clip the boxes they cut, drop slivers with their labels, and keep the rest."""
    crop = BoxBiasedCrop(48, p_box=p_box, min_visible=0.6)
    for seed in range(30):
        torch.manual_seed(seed)
        image, target = crop(*painted_sample())
        assert image.shape == (3, 48, 48)
        check_boxes_on_objects(image, target)


def test_box_biased_crop_with_p_box_1_always_holds_a_box() -> None:
    """A box-centred crop contains the centre of the box it was placed around."""
    image, target = painted_sample([(100, 80, 110, 90)])
    for seed in range(20):
        torch.manual_seed(seed)
        _, out = BoxBiasedCrop(32, p_box=1.0)(image, target)
        assert out["labels"].tolist() == [0]


def test_box_biased_crop_of_a_small_image_keeps_it_whole() -> None:
    """An image smaller than the crop is kept whole along that side."""
    image, target = painted_sample()
    out_image, out = BoxBiasedCrop(100)((image, target))
    assert out_image.shape == (3, 96, 100)
    assert out["boxes"].canvas_size == (96, 100)


def test_box_biased_crop_drops_the_sliver_and_its_label() -> None:
    """A box cut to 25% (or 0%) visible is dropped with its label; a 75% one is kept, clipped."""
    image, target = painted_sample([(28, 0, 36, 8), (38, 0, 46, 8)], hw=(32, 80))
    target["labels"] = torch.tensor([3, 5])
    cases = {
        6: ([3], [[22.0, 0.0, 30.0, 8.0]]),  # box 1 -> (32, 0, 40, 8): nothing visible
        12: ([3, 5], [[16.0, 0.0, 24.0, 8.0], [26.0, 0.0, 32.0, 8.0]]),  # box 1: 75% visible
        34: ([5], [[4.0, 0.0, 12.0, 8.0]]),  # box 0 -> (-6, 0, 2, 8): 25% visible
    }
    for left, (labels, boxes) in cases.items():
        out_image, out = FixedCrop((0, left, 32, 32))(image, target)
        assert out["labels"].tolist() == labels
        assert out["boxes"].tolist() == boxes
        assert torch.equal(out_image, image[:, :, left : left + 32])


def test_box_biased_crop_checks_its_input() -> None:
    """A sample without BoundingBoxes, or labels of another length, is an error."""
    image, target = painted_sample()
    with pytest.raises(ConfigError, match="BoundingBoxes"):
        BoxBiasedCrop(32)(image, {"boxes": torch.zeros(0, 4)})
    target["labels"] = target["labels"][:2]
    with pytest.raises(ConfigError, match="2 rows for 7 boxes"):
        BoxBiasedCrop(32)(image, target)
    for bad in ({"size": 0}, {"size": 32, "p_box": 1.5}, {"size": 32, "min_visible": 0.0}):
        with pytest.raises(ConfigError):
            BoxBiasedCrop(**bad)


boxes_st = st.lists(
    st.tuples(st.floats(-50, 150), st.floats(-50, 150), st.floats(0.5, 60), st.floats(0.5, 60)),
    min_size=0,
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(
    boxes=boxes_st,
    top=st.integers(0, 60),
    left=st.integers(0, 60),
    size=st.integers(1, 80),
    min_visible=st.floats(0.05, 1.0),
)
def test_crop_boxes_properties(
    boxes: list[tuple[float, float, float, float]],
    top: int,
    left: int,
    size: int,
    min_visible: float,
) -> None:
    """Clipped boxes lie in the window; a box is kept iff enough of its area is visible."""
    xyxy = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in boxes], dtype=torch.float32)
    xyxy = xyxy.reshape(-1, 4)
    clipped, keep = crop_boxes(xyxy, (top, left, size, size), min_visible=min_visible)
    assert clipped.shape == xyxy.shape and keep.shape == (len(boxes),)
    assert (clipped >= 0).all() and (clipped <= size).all()
    for (x, y, w, h), kept in zip(boxes, keep.tolist(), strict=True):
        ix = max(0.0, min(x + w, left + size) - max(x, left))
        iy = max(0.0, min(y + h, top + size) - max(y, top))
        frac = ix * iy / (w * h)
        if abs(frac - min_visible) > 1e-3:  # float32 rounding at the threshold
            assert kept == (frac >= min_visible)


def test_random_scale_rejects_bad_ranges() -> None:
    """A non-positive or reversed scale range is an error."""
    for bad in ((0.0, 1.0), (1.5, 1.2), (1.0, math.inf)):
        with pytest.raises(ConfigError, match="scale_range"):
            RandomScale(bad)
