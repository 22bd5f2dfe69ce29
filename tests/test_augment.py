"""Tests for yolo2retina.augment: the policies keep boxes on their objects, determinism."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.transforms import v2

from tests._augment_helpers import (
    check_boxes_on_objects,
    painted_sample,
)
from tests.conftest import make_yolo_dataset
from yolo2retina.augment import (
    POLICIES,
    augmentation,
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
