"""Tests for yolo2retina.train_loop: validation losses and the recall figure."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from tests._train_helpers import (
    _model,
    make_board,
)
from yolo2retina.dataset import YoloDataset
from yolo2retina.errors import ConfigError
from yolo2retina.model import build_retinanet
from yolo2retina.train import (
    validation_losses,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic sticky board: 8 images of 64 px, train and val splits."""
    return make_board(tmp_path_factory)


def test_validation_losses_leave_batchnorm_statistics_alone(board: Path) -> None:
    """Val losses run the model in train mode but update no BatchNorm running statistic."""
    model = _model()
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    from torch.utils.data import DataLoader

    from yolo2retina.dataset import collate

    loader = DataLoader(YoloDataset(board, "val"), batch_size=2, collate_fn=collate)
    losses = validation_losses(model, loader, device=torch.device("cpu"))
    assert set(losses) == {"loss", "classification", "bbox_regression"}
    assert all(math.isfinite(v) for v in losses.values())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model.training


def test_validation_losses_resize_even_with_the_training_resize_off(board: Path) -> None:
    """With the training resize off (the augmentation sets the scale), validation losses are
    still computed on images resized to the model's size, as at evaluation time."""
    from torch.utils.data import DataLoader

    from yolo2retina.augment import set_train_resize
    from yolo2retina.dataset import collate

    torch.manual_seed(0)
    model = build_retinanet(num_classes=1, backbone="resnet18_fpn", min_size=96, max_size=96)
    loader = DataLoader(YoloDataset(board, "val"), batch_size=2, collate_fn=collate)
    resized = validation_losses(model, loader, device=torch.device("cpu"))
    set_train_resize(model, False)  # 64 px images would reach the model at 64 px
    assert validation_losses(model, loader, device=torch.device("cpu")) == resized
    assert model.training and model.transform.training  # the modes are restored
    assert model.transform._skip_resize


def test_recall_at_counts_found_boxes(board: Path) -> None:
    """recall_at: every box predicted gives 1, the first half of each image's boxes about
    half, an IoU that is not a COCO threshold is refused."""
    import numpy as np

    from yolo2retina.coco_metric import coco_map
    from yolo2retina.target import Target
    from yolo2retina.train import recall_at

    ann = YoloDataset(board, "val").annotations
    targets = [ann.target(i) for i in range(len(ann))]

    def scored(t: Target, n: int) -> Target:
        return Target(t.boxes[:n], t.labels[:n], np.ones(n, np.float32))

    assert recall_at(coco_map(ann, [scored(t, len(t.boxes)) for t in targets])) == 1.0
    halves = [scored(t, len(t.boxes) // 2) for t in targets]
    expected = sum(len(h.boxes) for h in halves) / sum(len(t.boxes) for t in targets)
    assert recall_at(coco_map(ann, halves), 0.5) == pytest.approx(expected)
    with pytest.raises(ConfigError, match="iou must be one of"):
        recall_at(coco_map(ann, halves), 0.52)
