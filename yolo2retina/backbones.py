"""Feature-pyramid backbones for :func:`yolo2retina.model.build_retinanet`.

Every backbone gives :data:`~yolo2retina.anchors.NUM_LEVELS` feature levels (P3-P7,
strides 8-128) of 256 channels, like torchvision's RetinaNet: ResNet C3-C5 plus P6/P7,
or the last MobileNetV3 blocks at strides 8, 16 and 32 plus P6/P7. ImageNet weights come
from torchvision (``"DEFAULT"``, downloaded) or from a local state dict of the plain
classification network.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any, Literal, cast

from torch import nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import LastLevelP6P7
from torchvision.ops.misc import FrozenBatchNorm2d

from yolo2retina.choices import BACKBONES as BACKBONES
from yolo2retina.errors import ConfigError
from yolo2retina.weights import load_state_dict_matching, read_state_dict

__all__ = ["BACKBONES", "FPN_CHANNELS", "build_backbone", "max_trainable_layers"]

#: ``None``, ``"DEFAULT"`` (torchvision's weights, downloaded) or a local file.
WeightsArg = str | os.PathLike[str] | None

#: torchvision's FPN width (``fpn_channels``), the one its COCO detector weights have.
FPN_CHANNELS = 256


def check_weights_arg(value: WeightsArg, name: str) -> None:
    """Refuse a ``weights``-like argument that is neither ``None``, a string nor a path.

    Raises:
        ConfigError: naming the argument and the value.
    """
    if value is None or isinstance(value, os.PathLike):
        return
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be None, 'DEFAULT' or a path, got {value!r}")


def is_default(value: WeightsArg) -> bool:
    """Whether a ``weights``-like argument asks for torchvision's weights (``"DEFAULT"``)."""
    return isinstance(value, str) and value.upper() == "DEFAULT"


def max_trainable_layers(backbone: str) -> int:
    """The largest ``trainable_backbone_layers`` for ``backbone`` (ResNet 5, MobileNet 6)."""
    return 6 if backbone.startswith("mobilenet") else 5


def build_backbone(
    name: str,
    weights_backbone: WeightsArg,
    *,
    frozen_bn: bool,
    trainable_layers: int,
    fpn_channels: int = FPN_CHANNELS,
) -> BackboneWithFPN:
    """The FPN backbone ``name`` (one of :data:`BACKBONES`), its early stages frozen.

    Args:
        name: the backbone.
        weights_backbone: ``None``, ``"DEFAULT"`` or a local classification state dict.
        frozen_bn: :class:`~torchvision.ops.misc.FrozenBatchNorm2d` instead of BatchNorm.
        trainable_layers: stages left trainable, counted from the top.
        fpn_channels: channels of every FPN level (P3-P7), which the RetinaNet head keeps.

    Raises:
        ConfigError: an unknown name, or a weights file that does not fit.
    """
    builder = _BUILDERS.get(name)
    if builder is None:
        raise ConfigError(f"unknown backbone '{name}'; available: {', '.join(BACKBONES)}")
    return builder(weights_backbone, frozen_bn, trainable_layers, fpn_channels)


def _load_backbone_file(net: nn.Module, path: str | os.PathLike[str]) -> None:
    sd = read_state_dict(path, "weights_backbone")
    # A classification checkpoint has its head (fc / classifier); the detector drops it.
    load_state_dict_matching(
        net,
        sd,
        source=f"weights_backbone {path}",
        allow_skip=lambda k: k.startswith(("fc.", "classifier.")),
    )


def _freeze_resnet(body: nn.Module, trainable_layers: int) -> None:
    layers = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_layers]
    if trainable_layers == 5:
        layers.append("bn1")
    for name, param in body.named_parameters():
        if not name.startswith(tuple(layers)):
            param.requires_grad_(False)


def _resnet_backbone(
    weights_backbone: WeightsArg,
    frozen_bn: bool,
    trainable_layers: int,
    fpn_channels: int,
    *,
    depth: Literal[18, 50],
    c5_to_p6: bool = False,
) -> BackboneWithFPN:
    from torchvision.models import ResNet18_Weights, ResNet50_Weights, resnet18, resnet50

    norm_layer: Callable[..., nn.Module] = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    default = is_default(weights_backbone)
    if depth == 18:
        net = resnet18(weights=ResNet18_Weights.DEFAULT if default else None, norm_layer=norm_layer)
        c3_c5 = [128, 256, 512]
    else:
        net = resnet50(weights=ResNet50_Weights.DEFAULT if default else None, norm_layer=norm_layer)
        c3_c5 = [512, 1024, 2048]
    if weights_backbone is not None and not default:
        _load_backbone_file(net, weights_backbone)
    _freeze_resnet(net, trainable_layers)
    # v2 feeds C5 to P6 (as torchvision's retinanet_resnet50_fpn_v2); the others feed P5.
    p6_in = c3_c5[-1] if c5_to_p6 else fpn_channels
    return BackboneWithFPN(
        net,
        return_layers={"layer2": "0", "layer3": "1", "layer4": "2"},
        in_channels_list=c3_c5,
        out_channels=fpn_channels,
        extra_blocks=LastLevelP6P7(p6_in, fpn_channels),
    )


def _mobilenet_backbone(
    weights_backbone: WeightsArg, frozen_bn: bool, trainable_layers: int, fpn_channels: int
) -> BackboneWithFPN:
    from torchvision.models import MobileNet_V3_Large_Weights, mobilenet_v3_large

    default = is_default(weights_backbone)
    # MobileNetV3 was trained with BatchNorm eps=0.001: keep it when freezing.
    norm_layer = partial(FrozenBatchNorm2d, eps=0.001) if frozen_bn else None
    net = mobilenet_v3_large(
        weights=MobileNet_V3_Large_Weights.DEFAULT if default else None, norm_layer=norm_layer
    )
    if weights_backbone is not None and not default:
        _load_backbone_file(net, weights_backbone)
    features: nn.Sequential = net.features
    # Blocks that halve the resolution; the block before each one ends a stage.
    strided = [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)]
    stage_starts = [0, *strided, len(features) - 1]
    freeze_before = (
        len(features)
        if trainable_layers == 0
        else stage_starts[len(stage_starts) - trainable_layers]
    )
    for block in features[:freeze_before]:
        for param in block.parameters():
            param.requires_grad_(False)
    # C3, C4, C5: the last block at strides 8, 16 and 32 (the final 960-channel conv for C5).
    c3_c5 = [strided[2] - 1, strided[3] - 1, len(features) - 1]
    channels = [int(cast(Any, features[i]).out_channels) for i in c3_c5]
    return BackboneWithFPN(
        features,
        return_layers={str(i): str(k) for k, i in enumerate(c3_c5)},
        in_channels_list=channels,
        out_channels=fpn_channels,
        extra_blocks=LastLevelP6P7(fpn_channels, fpn_channels),
    )


#: A backbone builder: ``(weights_backbone, frozen_bn, trainable_layers, fpn_channels)``.
_Builder = Callable[[WeightsArg, bool, int, int], BackboneWithFPN]

#: The builder of each name in :data:`BACKBONES` (a test checks that the keys are the names).
_BUILDERS: dict[str, _Builder] = {
    "resnet50_fpn": partial(_resnet_backbone, depth=50),
    "resnet50_fpn_v2": partial(_resnet_backbone, depth=50, c5_to_p6=True),
    "resnet18_fpn": partial(_resnet_backbone, depth=18),
    "mobilenet_v3_large_fpn": _mobilenet_backbone,
}
