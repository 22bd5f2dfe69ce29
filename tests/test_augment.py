"""Tests for yolo2retina.augment: boxes stay on their objects, policies, determinism."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.transforms import v2

from tests.conftest import make_yolo_dataset
from yolo2retina.augment import (
    POLICIES,
    BoxBiasedCrop,
    RandomRot90,
    RandomScale,
    augmentation,
    crop_boxes,
    describe_policy,
    policy_table,
    set_train_resize,
)
from yolo2retina.dataset import DetectionDataset, collate
from yolo2retina.errors import ConfigError

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: small tensor ops are many times slower with two on a loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


# -- policies -------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", list(POLICIES))
@pytest.mark.parametrize(("img_size", "crop_size"), [(128, None), (160, 64), (96, 48)])
def test_policies_keep_boxes_on_objects(policy: str, img_size: int, crop_size: int | None) -> None:
    """Every policy (colour jitter off) keeps boxes and labels on their objects."""
    aug = augmentation(policy, img_size=img_size, crop_size=crop_size, color=False)
    for seed in range(6):
        torch.manual_seed(seed)
        image, target = aug(*painted_sample())
        assert isinstance(image, tv_tensors.Image) and image.dtype == torch.float32
        assert isinstance(target["boxes"], tv_tensors.BoundingBoxes)
        assert target["labels"].dtype == torch.int64
        check_boxes_on_objects(image, target)
        if aug.sets_scale:
            assert max(image.shape[-2:]) <= (crop_size or img_size)


@pytest.mark.parametrize("policy", ["default", "strong"])
def test_colour_jitter_changes_colours_not_geometry(policy: str) -> None:
    """With the same seed, colour jitter leaves the boxes and the image size as they were."""
    for seed in range(4):
        torch.manual_seed(seed)
        plain_image, plain = augmentation(policy, img_size=128, color=False)(*painted_sample())
        torch.manual_seed(seed)
        image, target = augmentation(policy, img_size=128)(*painted_sample())
        assert torch.equal(target["boxes"], plain["boxes"])
        assert torch.equal(target["labels"], plain["labels"])
        assert image.shape == plain_image.shape
        assert not torch.equal(image, plain_image)


def test_policy_steps_match_the_description() -> None:
    """Each policy builds exactly the steps describe_policy lists (and the docs show)."""
    for policy in POLICIES:
        for crop_size in (None, 64):
            aug = augmentation(policy, img_size=128, crop_size=crop_size)
            steps = describe_policy(policy, img_size=128, crop_size=crop_size)
            names = [type(t).__name__ for t in aug.transforms]
            assert len(names) == len(steps) or names == ["Identity"], (names, steps)
    names = [type(t).__name__ for t in augmentation("default", img_size=128).transforms]
    assert names == [
        "Resize",
        "RandomHorizontalFlip",
        "RandomVerticalFlip",
        "RandomRot90",
        "RandomScale",
        "BoxBiasedCrop",
        "ColorJitter",
        "SanitizeBoundingBoxes",
    ]
    assert [type(t).__name__ for t in augmentation("light").transforms] == [
        "RandomHorizontalFlip",
        "RandomVerticalFlip",
        "RandomRot90",
    ]
    assert not augmentation("light").sets_scale
    assert augmentation("light", img_size=64, crop_size=32).sets_scale


def test_none_is_the_identity() -> None:
    """Policy "none" returns the sample unchanged."""
    image, target = painted_sample()
    out_image, out = augmentation("none")(image, target)
    assert torch.equal(out_image, image) and torch.equal(out["boxes"], target["boxes"])


def test_docs_list_every_policy() -> None:
    """docs/augmentation.md and docs/training.md hold the table that policy_table() writes."""
    assert policy_table() in (DOCS / "augmentation.md").read_text(encoding="utf-8")
    assert policy_table() in (DOCS / "training.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"policy": "heavy"}, "unknown augmentation policy 'heavy'; available: none, light"),
        ({"policy": "default"}, "policy 'default' sets the training scale: give img_size"),
        ({"policy": "light", "crop_size": 64}, "crop_size=64 sets the training scale"),
        ({"policy": "light", "img_size": 0}, "img_size must be a positive integer"),
        ({"policy": "default", "img_size": 64, "crop_size": 1.5}, "crop_size must be"),
        ({"policy": "default", "img_size": 64, "min_visible": 1.2}, "min_visible"),
        ({"policy": "default", "img_size": 64, "p_box": -0.1}, "p_box"),
    ],
)
def test_augmentation_rejects_bad_settings(kwargs: dict[str, Any], match: str) -> None:
    """Unknown policies and bad sizes raise ConfigError naming the setting."""
    with pytest.raises(ConfigError, match=match):
        augmentation(**kwargs)


def test_random_scale_rejects_bad_ranges() -> None:
    """A non-positive or reversed scale range is an error."""
    for bad in ((0.0, 1.0), (1.5, 1.2), (1.0, math.inf)):
        with pytest.raises(ConfigError, match="scale_range"):
            RandomScale(bad)


# -- determinism ----------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["light", "default", "strong"])
def test_same_seed_same_output(policy: str) -> None:
    """Seeding torch reproduces the output exactly; other seeds give other outputs."""
    aug = augmentation(policy, img_size=128, crop_size=64)
    outputs = []
    for seed in (0, 0, 1, 2, 3):
        torch.manual_seed(seed)
        outputs.append(aug(*painted_sample()))
    (a_img, a), (b_img, b) = outputs[:2]
    assert torch.equal(a_img, b_img) and torch.equal(a["boxes"], b["boxes"])
    assert torch.equal(a["labels"], b["labels"])
    assert any(img.shape != a_img.shape or not torch.equal(img, a_img) for img, _ in outputs[2:])


def _epoch(ds: DetectionDataset, seed: int) -> list[Any]:
    loader = DataLoader(
        ds,
        batch_size=2,
        shuffle=True,
        num_workers=2,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(seed),
    )
    return [(images, targets) for images, targets in loader]


def test_dataloader_workers_are_deterministic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two DataLoaders with 2 workers and the same generator seed yield identical batches."""
    monkeypatch.chdir(tmp_path)
    rows = ["0 0.3 0.3 0.2 0.2", "1 0.7 0.6 0.25 0.3"]
    make_yolo_dataset(Path("data"), {f"im{i}": rows for i in range(4)})
    ds = DetectionDataset.from_path(
        "data/data.yaml",
        split="train",
        transforms=augmentation("default", img_size=64, crop_size=48),
    )
    first, second, other = _epoch(ds, 5), _epoch(ds, 5), _epoch(ds, 6)

    def flat(batches: list[Any]) -> list[torch.Tensor]:
        out = []
        for images, targets in batches:
            for image, target in zip(images, targets, strict=True):
                out += [image, target["boxes"], target["labels"], torch.tensor(target["image_id"])]
        return out

    assert len(flat(first)) == len(flat(second)) == 16
    assert all(
        a.shape == b.shape and torch.equal(a, b)
        for a, b in zip(flat(first), flat(second), strict=True)
    )
    assert not all(
        a.shape == b.shape and torch.equal(a, b)
        for a, b in zip(flat(first), flat(other), strict=True)
    )


# -- the model's own resize -----------------------------------------------------------------


class _Holder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.transform = GeneralizedRCNNTransform(64, 64, [0.0] * 3, [1.0] * 3)


def test_set_train_resize_skips_only_training_resize() -> None:
    """With the resize off, training images keep their size; evaluation still resizes."""
    model = _Holder()
    keys = set(model.state_dict())
    image = torch.rand(3, 40, 48)
    model.train()
    assert model.transform([image])[0].image_sizes == [(53, 64)]
    set_train_resize(model, False)
    assert model.transform([image])[0].image_sizes == [(40, 48)]
    model.eval()
    assert model.transform([image])[0].image_sizes == [(53, 64)]
    set_train_resize(model, True)
    model.train()
    assert model.transform([image])[0].image_sizes == [(53, 64)]
    assert set(model.state_dict()) == keys
    with pytest.raises(ConfigError, match="Linear has no GeneralizedRCNNTransform"):
        set_train_resize(nn.Linear(2, 2), False)


def test_policies_table_is_complete() -> None:
    """POLICIES holds the four policies with their documented ranges."""
    assert list(POLICIES) == ["none", "light", "default", "strong"]
    assert POLICIES["default"].scale_range == (0.8, 1.25)
    assert POLICIES["strong"].scale_range is not None
    lo, hi = POLICIES["strong"].scale_range
    assert lo < 0.8 and hi > 1.25
    assert POLICIES["strong"].brightness > POLICIES["default"].brightness > 0
    assert not POLICIES["light"].color and not POLICIES["light"].sets_scale
    assert np.isclose(POLICIES["default"].min_visible, 0.6)


def test_pil_in_rot90_policy() -> None:
    """The light policy also takes PIL images (the boxes follow)."""
    image, target = painted_sample()
    pil = v2.functional.to_pil_image(image)
    torch.manual_seed(0)
    out_pil, out = augmentation("light")(pil, target)
    assert isinstance(out_pil, PIL.Image.Image)
    check_boxes_on_objects(v2.functional.to_image(out_pil).float() / 255, out)
