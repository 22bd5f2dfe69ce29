"""Tests for DetectionDataset / YoloDataset / collate (yolo2retina/dataset.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.transforms import v2

from tests.conftest import make_yolo_dataset, write_labels
from yolo2retina import YoloDataset, collate


@pytest.fixture
def yaml_path(tmp_path: Path) -> Path:
    """A 4-image dataset at 64x48 with two classes and one background image."""
    return make_yolo_dataset(
        tmp_path,
        {
            "a": ["0 0.25 0.5 0.25 0.5", "1 0.75 0.25 0.25 0.25"],
            "b": ["1 0.5 0.5 0.5 0.5"],
            "c": "",
            "d": ["0 0.5 0.5 0.1 0.2"],
        },
    )


def test_sample_follows_torchvision_conventions(yaml_path: Path) -> None:
    """A sample is (tv_tensors.Image float32 in [0, 1], {boxes: BoundingBoxes XYXY, labels: int64, image_id})."""
    ds = YoloDataset(yaml_path, split="train")
    image, target = ds[0]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.float32
    assert image.shape == (3, 48, 64) and 0.0 <= float(image.min()) <= float(image.max()) <= 1.0
    boxes = target["boxes"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes)
    assert boxes.format == tv_tensors.BoundingBoxFormat.XYXY and tuple(boxes.canvas_size) == (
        48,
        64,
    )
    np.testing.assert_allclose(boxes.numpy(), [[8, 12, 24, 36], [40, 6, 56, 18]], atol=1e-4)
    assert target["labels"].dtype == torch.int64 and target["labels"].tolist() == [0, 1]
    assert target["image_id"] == 0
    _, bg = ds[2]
    assert bg["boxes"].shape == (0, 4) and bg["labels"].shape == (0,)


def test_views_do_not_decode(yaml_path: Path) -> None:
    """len, class_names, image_path, image_hw, target, num_boxes and report need no decoding."""
    ds = YoloDataset(yaml_path, split="train")
    assert len(ds) == 4 and ds.class_names == ("a", "b") and ds.num_boxes == 4
    assert ds.image_path(1).name == "b.jpg" and ds.image_hw(1) == (48, 64)
    assert ds.target(1).labels.tolist() == [1] and ds.report.background_images == 1
    assert "4 images" in repr(ds)


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "CMYK", "I;16", "LA", "1"])
def test_image_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    """RGBA, palette, grey, CMYK and 16-bit images all load as 3-channel float images."""
    img_dir = tmp_path / "images" / "train"
    img_dir.mkdir(parents=True)
    ext = "tif" if mode == "CMYK" else "png"
    Image.new("RGB", (20, 10), (120, 60, 30)).convert(mode).save(img_dir / f"a.{ext}")
    write_labels(tmp_path / "labels" / "train" / "a.txt", ["0 0.5 0.5 0.5 0.5"])
    (tmp_path / "data.yaml").write_text("train: images/train\nnames: [x]\n")
    image, _ = YoloDataset(tmp_path / "data.yaml")[0]
    assert image.shape == (3, 10, 20) and image.dtype == torch.float32
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0


def test_flip_and_resize_move_boxes_exactly(yaml_path: Path) -> None:
    """RandomHorizontalFlip(p=1) + Resize moves boxes to the hand-computed coordinates."""
    tf = v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.Resize((96, 128))])
    image, target = YoloDataset(yaml_path, transforms=tf)[0]
    assert image.shape == (3, 96, 128)
    # original 64x48: box [8, 12, 24, 36] flips to [40, 12, 56, 36], then scales x2
    expected = np.array([[80, 24, 112, 72], [16, 12, 48, 36]], dtype=np.float32)
    np.testing.assert_allclose(target["boxes"].numpy(), expected, atol=1e-4)
    assert tuple(target["boxes"].canvas_size) == (96, 128)


def test_common_v2_pipeline_runs_unchanged(yaml_path: Path) -> None:
    """A typical detection augmentation pipeline (IoU crop, sanitize) runs on our samples."""
    torch.manual_seed(0)
    tf = v2.Compose(
        [
            v2.RandomPhotometricDistort(p=1.0),
            v2.RandomZoomOut(fill=0.0, side_range=(1.0, 2.0)),
            v2.RandomIoUCrop(),
            v2.Resize((64, 64)),
            v2.SanitizeBoundingBoxes(),
        ]
    )
    ds = YoloDataset(yaml_path, transforms=tf)
    for i in range(len(ds)):
        image, target = ds[i]
        assert image.shape[-2:] == (64, 64)
        assert target["boxes"].shape[0] == target["labels"].shape[0]


def test_retinanet_trains_on_a_dataloader_batch(yaml_path: Path) -> None:
    """torchvision's RetinaNet takes a batch from DataLoader(num_workers=2, collate) and gives finite losses."""
    from torchvision.models.detection import retinanet_resnet50_fpn

    torch.manual_seed(0)
    ds = YoloDataset(yaml_path)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate)
    model = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=2)
    model.train()
    seen = 0
    for images, targets in loader:
        assert isinstance(images, list) and isinstance(targets, list) and len(images) == 2
        losses = model(images, targets)
        assert set(losses) == {"classification", "bbox_regression"}
        assert all(torch.isfinite(v) for v in losses.values())
        seen += len(images)
        break
    assert seen == 2


def test_dataset_with_real_varroa_export(varroa_yaml: Path) -> None:
    """The real export yields 1024x1024 samples whose boxes match the annotations."""
    ds = YoloDataset(varroa_yaml, split="val")
    image, target = ds[0]
    assert image.shape == (3, *ds.image_hw(0))
    np.testing.assert_allclose(target["boxes"].numpy(), ds.target(0).boxes)
