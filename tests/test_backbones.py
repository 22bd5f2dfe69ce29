"""Tests for yolo2retina.backbones: the FPN backbones, their frozen stages and weights files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from yolo2retina.anchors import NUM_LEVELS
from yolo2retina.backbones import (
    BACKBONES,
    build_backbone,
    check_weights_arg,
    is_default,
    max_trainable_layers,
)
from yolo2retina.errors import ConfigError

torch.set_num_threads(1)


def _trainable(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", ["resnet18_fpn", "mobilenet_v3_large_fpn"])
def test_small_backbones_give_every_pyramid_level(name: str) -> None:
    """The small backbones give NUM_LEVELS maps of 256 channels at strides 8-128."""
    body = build_backbone(name, None, frozen_bn=False, trainable_layers=3)
    features = body(torch.rand(1, 3, 128, 128))
    assert len(features) == NUM_LEVELS
    assert [f.shape[1] for f in features.values()] == [256] * NUM_LEVELS
    assert [f.shape[-1] for f in features.values()] == [16, 8, 4, 2, 1]


@pytest.mark.parametrize("name", ["resnet18_fpn", "mobilenet_v3_large_fpn"])
def test_trainable_layers_freeze_from_the_bottom(name: str) -> None:
    """0 trainable stages freeze the whole body; the maximum trains all; more train more."""
    counts = [
        _trainable(build_backbone(name, None, frozen_bn=False, trainable_layers=n).body)
        for n in range(max_trainable_layers(name) + 1)
    ]
    everything = sum(
        p.numel()
        for p in build_backbone(name, None, frozen_bn=False, trainable_layers=0).body.parameters()
    )
    assert counts[0] == 0
    assert counts[-1] == everything
    assert counts == sorted(counts)


def test_frozen_bn_replaces_batch_norm() -> None:
    """frozen_bn=True leaves no trainable BatchNorm in the body."""
    body = build_backbone("resnet18_fpn", None, frozen_bn=True, trainable_layers=5).body
    assert not any(isinstance(m, nn.BatchNorm2d) for m in body.modules())
    assert any(type(m).__name__ == "FrozenBatchNorm2d" for m in body.modules())


def test_local_classification_weights_load_without_their_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain ResNet-18 state dict (10-class fc) loads into the body; the fc is skipped."""
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(3)
    classifier = resnet18(num_classes=10)
    torch.save(classifier.state_dict(), "r18.pt")
    with pytest.warns(UserWarning, match=r"weights_backbone r18\.pt: .*skipped 2.*fc\.weight"):
        body = build_backbone("resnet18_fpn", "r18.pt", frozen_bn=False, trainable_layers=5).body
    assert torch.equal(body.layer3[1].conv2.weight, classifier.layer3[1].conv2.weight)


def test_unknown_backbone_and_bad_weights_arguments() -> None:
    """An unknown name lists the choices; weights must be None, 'DEFAULT' or a path."""
    with pytest.raises(ConfigError, match="unknown backbone 'vgg16'; available: resnet50_fpn"):
        build_backbone("vgg16", None, frozen_bn=False, trainable_layers=3)
    for bad in (3, "", b"w.pt"):
        with pytest.raises(ConfigError, match="weights must be None, 'DEFAULT' or a path"):
            check_weights_arg(bad, "weights")  # type: ignore[arg-type]
    for good in (None, "DEFAULT", "w.pt", Path("w.pt")):
        check_weights_arg(good, "weights")
    assert is_default("default") and is_default("DEFAULT") and not is_default(Path("DEFAULT"))
    assert [max_trainable_layers(b) for b in BACKBONES] == [5, 5, 5, 6]
