"""Shared stand-ins for tests/test_augment.py and tests/test_box_transforms.py: a painted
sample whose boxes can be checked against their objects' pixels, and fixed-parameter transforms.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors

from yolo2retina.box_transforms import BoxBiasedCrop, RandomRot90

# Seven objects on a 96 x 128 (H x W) dark image, apart from each other, some near the
# edges; object i is painted in COLOURS[i] and has label i, so each box can be checked
# against its own object.
H, W = 96, 128
OBJECTS = [
    (4, 6, 20, 18),
    (40, 10, 52, 30),
    (100, 4, 124, 16),
    (10, 60, 34, 90),
    (60, 50, 74, 64),
    (96, 70, 120, 92),
    (80, 30, 90, 44),
]
COLOURS = [
    (1.0, 0.0, 0.0),
    (0.0, 1.0, 0.0),
    (0.0, 0.0, 1.0),
    (1.0, 1.0, 0.0),
    (1.0, 0.0, 1.0),
    (0.0, 1.0, 1.0),
    (1.0, 1.0, 1.0),
]


def painted_sample(
    objects: list[tuple[int, int, int, int]] = OBJECTS, hw: tuple[int, int] = (H, W)
) -> tuple[tv_tensors.Image, dict[str, Any]]:
    """A dark image with each object painted in its colour, and boxes labelled by index."""
    img = torch.full((3, *hw), 0.05)
    for (x1, y1, x2, y2), colour in zip(objects, COLOURS, strict=False):
        img[:, y1:y2, x1:x2] = torch.tensor(colour)[:, None, None]
    target = {
        "boxes": tv_tensors.BoundingBoxes(
            torch.tensor(objects, dtype=torch.float32), format="XYXY", canvas_size=hw
        ),
        "labels": torch.arange(len(objects), dtype=torch.int64),
        "image_id": 7,
    }
    return tv_tensors.Image(img), target


def check_boxes_on_objects(image: torch.Tensor, target: dict[str, Any]) -> None:
    """Each box covers its object's pixels; every object without a box was cut at the border."""
    img = image.as_subclass(torch.Tensor)
    h, w = img.shape[-2:]
    boxes = target["boxes"]
    labels = target["labels"].tolist()
    assert boxes.shape == (len(labels), 4)
    assert tuple(boxes.canvas_size) == (h, w)
    assert len(set(labels)) == len(labels)
    assert target["image_id"] == 7
    ys = torch.arange(h, dtype=torch.float32)[:, None] + 0.5  # pixel centres
    xs = torch.arange(w, dtype=torch.float32)[None, :] + 0.5
    for i, colour in enumerate(COLOURS[: len(OBJECTS)]):
        mask = (img - torch.tensor(colour)[:, None, None]).abs().amax(0) < 0.2
        if i in labels:
            x1, y1, x2, y2 = boxes[labels.index(i)].tolist()
            # (1) the object's pixels lie inside its box (1.5 px for resampling)
            near = (xs > x1 - 1.5) & (xs < x2 + 1.5) & (ys > y1 - 1.5) & (ys < y2 + 1.5)
            assert not (mask & ~near).any(), f"object {i} outside its box {boxes}"
            # (2) the box's interior is mostly the object
            inner = (xs > x1 + 1) & (xs < x2 - 1) & (ys > y1 + 1) & (ys < y2 - 1)
            assert inner.sum() > 0, f"box of object {i} is degenerate: {x1, y1, x2, y2}"
            frac = float((mask & inner).sum()) / float(inner.sum())
            assert frac > 0.6, f"box of object {i} holds {frac:.0%} of its colour"
        elif mask.any():
            # (3) an object without a box was cut by a crop: it touches the border
            rows = mask.any(1).nonzero().flatten()
            cols = mask.any(0).nonzero().flatten()
            at_border = (
                rows.min() <= 1 or rows.max() >= h - 2 or cols.min() <= 1 or cols.max() >= w - 2
            )
            assert at_border, f"object {i} is fully visible but lost its box"


class FixedRot90(RandomRot90):
    """RandomRot90 with ``k`` fixed (to test each quarter turn)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"k": self.k}


class FixedCrop(BoxBiasedCrop):
    """BoxBiasedCrop with a fixed ``(top, left, height, width)`` window."""

    def __init__(self, window: tuple[int, int, int, int]) -> None:
        super().__init__(window[2], min_visible=0.6)
        self.fixed = window

    def window(self, boxes: torch.Tensor, canvas_hw: tuple[int, int]) -> tuple[int, int, int, int]:
        return self.fixed
