"""What a :func:`~yolo2retina.model.build_retinanet` model is: its spec, checked and assembled.

:class:`RetinaNetSpec` is the architecture in plain values (what rebuilds a model exactly,
fitted anchors spelled out); :class:`BuiltRetinaNet` is the torchvision RetinaNet that
carries it. :func:`checked_spec` turns the builder's arguments into a spec (every argument
checked, anchors fitted for ``anchor_sizes="auto"``) and :func:`assemble` makes the
randomly initialised model of a spec.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any, Literal

import attrs
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.retinanet import RetinaNet, RetinaNetHead

from yolo2retina.anchors import DEFAULT_RATIOS, DEFAULT_SIZES, NUM_LEVELS, AnchorFit, fit_anchors
from yolo2retina.backbones import (
    BACKBONES,
    FPN_CHANNELS,
    WeightsArg,
    build_backbone,
    check_weights_arg,
    is_default,
    max_trainable_layers,
)
from yolo2retina.errors import ConfigError

__all__ = ["BuiltRetinaNet", "RetinaNetSpec", "assemble", "checked_spec"]

AnchorSizesArg = Literal["auto"] | Sequence[Sequence[float]] | None
Levels = tuple[tuple[float, ...], ...]


# -- the model and its spec -------------------------------------------------------------------


@attrs.frozen
class RetinaNetSpec:
    """The architecture of a :func:`~yolo2retina.model.build_retinanet` model: what rebuilds it exactly.

    Fitted anchors are spelled out, so a rebuild needs neither the dataset nor a download.
    The attributes are the :func:`~yolo2retina.model.build_retinanet` arguments of the same name.
    """

    num_classes: int
    backbone: str
    trainable_backbone_layers: int
    min_size: int
    max_size: int
    anchor_sizes: Levels
    aspect_ratios: Levels
    score_threshold: float
    nms_thresh: float
    detections_per_img: int
    frozen_bn: bool
    fpn_channels: int = FPN_CHANNELS

    def to_kwargs(self) -> dict[str, Any]:
        """:func:`~yolo2retina.model.build_retinanet` keyword arguments; plain Python values (lists, not tuples)."""
        return {
            "num_classes": self.num_classes,
            "backbone": self.backbone,
            "weights": None,
            "weights_backbone": None,
            "trainable_backbone_layers": self.trainable_backbone_layers,
            "min_size": self.min_size,
            "max_size": self.max_size,
            "anchor_sizes": [list(s) for s in self.anchor_sizes],
            "aspect_ratios": [list(r) for r in self.aspect_ratios],
            "score_threshold": float(self.score_threshold),
            "nms_thresh": float(self.nms_thresh),
            "detections_per_img": int(self.detections_per_img),
            "frozen_bn": self.frozen_bn,
            "fpn_channels": int(self.fpn_channels),
        }


# torchvision ships no type hints, so RetinaNet is Any to mypy.
class BuiltRetinaNet(RetinaNet):  # type: ignore[misc]
    """A torchvision :class:`~torchvision.models.detection.RetinaNet` made by :func:`~yolo2retina.model.build_retinanet`.

    It behaves exactly like its base class (same modules, same ``state_dict`` keys) and
    also knows how it was built.

    Attributes:
        spec: the architecture (:func:`build_args` gives it as keyword arguments).
        anchor_fit: the anchor fit when it was built with ``anchor_sizes="auto"``, else ``None``.
    """

    spec: RetinaNetSpec
    anchor_fit: AnchorFit | None

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        spec: RetinaNetSpec,
        anchor_fit: AnchorFit | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, num_classes, **kwargs)
        self.spec = spec
        self.anchor_fit = anchor_fit


# -- arguments --------------------------------------------------------------------------------


def _as_levels(value: Sequence[Sequence[float]], name: str) -> Levels:
    try:
        levels = tuple(tuple(float(v) for v in level) for level in value)
    except TypeError:
        raise ConfigError(f"{name} must be one tuple of numbers per level, got {value!r}") from None
    if len(levels) != NUM_LEVELS:
        raise ConfigError(f"{name} needs {NUM_LEVELS} levels (P3-P7), got {len(levels)}")
    for level in levels:
        if not level or not all(math.isfinite(v) and v > 0 for v in level):
            raise ConfigError(f"{name}: every level needs positive finite values, got {level}")
    return levels


def _resolve_anchors(
    anchor_sizes: AnchorSizesArg,
    aspect_ratios: Sequence[Sequence[float]] | None,
    dataset: Any,
    min_size: int,
    max_size: int,
) -> tuple[Levels, Levels, AnchorFit | None]:
    fit = None
    if isinstance(anchor_sizes, str):
        if anchor_sizes != "auto":
            raise ConfigError(
                f"anchor_sizes must be None, 'auto' or per-level tuples, got {anchor_sizes!r}"
            )
        if dataset is None:
            raise ConfigError("anchor_sizes='auto' needs dataset= (the training data to fit)")
        fit = fit_anchors(dataset, min_size=min_size, max_size=max_size)
        sizes, ratios = fit.sizes, fit.aspect_ratios
        if aspect_ratios is not None:
            ratios = _as_levels(aspect_ratios, "aspect_ratios")
    else:
        sizes = DEFAULT_SIZES if anchor_sizes is None else _as_levels(anchor_sizes, "anchor_sizes")
        ratios = (
            DEFAULT_RATIOS if aspect_ratios is None else _as_levels(aspect_ratios, "aspect_ratios")
        )
    per_location = {len(s) * len(r) for s, r in zip(sizes, ratios, strict=True)}
    if len(per_location) != 1:
        raise ConfigError(
            "every level needs the same number of anchors (sizes x ratios), got "
            + ", ".join(f"{len(s)}x{len(r)}" for s, r in zip(sizes, ratios, strict=True))
        )
    return sizes, ratios, fit


def _check_arguments(
    num_classes: int,
    backbone: str,
    weights: WeightsArg,
    weights_backbone: WeightsArg,
    min_size: int,
    max_size: int,
    score_threshold: float,
    nms_thresh: float,
    detections_per_img: int,
) -> None:
    if backbone not in BACKBONES:
        raise ConfigError(f"unknown backbone '{backbone}'; available: {', '.join(BACKBONES)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    check_weights_arg(weights, "weights")
    check_weights_arg(weights_backbone, "weights_backbone")
    if not (isinstance(min_size, int) and isinstance(max_size, int) and 0 < min_size <= max_size):
        raise ConfigError(f"need integers 0 < min_size <= max_size, got {min_size}, {max_size}")
    if not 0.0 <= score_threshold <= 1.0 or not 0.0 < nms_thresh <= 1.0:
        raise ConfigError(
            f"score_threshold and nms_thresh must lie in [0, 1], got {score_threshold}, {nms_thresh}"
        )
    if detections_per_img < 1:
        raise ConfigError(f"detections_per_img must be >= 1, got {detections_per_img}")


def _check_fpn_channels(fpn_channels: int, backbone: str, weights: WeightsArg) -> None:
    if isinstance(fpn_channels, bool) or not isinstance(fpn_channels, int) or fpn_channels < 1:
        raise ConfigError(f"fpn_channels must be a positive integer, got {fpn_channels!r}")
    if backbone == "resnet50_fpn_v2" and fpn_channels % 32:
        raise ConfigError(
            f"fpn_channels must be a multiple of 32 for resnet50_fpn_v2 (GroupNorm of 32 "
            f"groups in its head), got {fpn_channels}"
        )
    if is_default(weights) and fpn_channels != FPN_CHANNELS:
        raise ConfigError(
            f"weights='DEFAULT' (torchvision's COCO detector) has {FPN_CHANNELS} FPN "
            f"channels, got fpn_channels={fpn_channels}"
        )


def _trainable_layers(backbone: str, requested: int | None, pretrained: bool) -> int:
    max_layers = max_trainable_layers(backbone)
    layers = (3 if pretrained else max_layers) if requested is None else requested
    if not 0 <= layers <= max_layers:
        raise ConfigError(
            f"trainable_backbone_layers must lie in 0..{max_layers} for {backbone}, got {layers}"
        )
    return layers


def checked_spec(
    *,
    num_classes: int,
    backbone: str,
    weights: WeightsArg,
    weights_backbone: WeightsArg,
    trainable_backbone_layers: int | None,
    min_size: int,
    max_size: int,
    anchor_sizes: AnchorSizesArg,
    aspect_ratios: Sequence[Sequence[float]] | None,
    score_threshold: float,
    nms_thresh: float,
    detections_per_img: int,
    dataset: Any,
    frozen_bn: bool | None,
    fpn_channels: int = FPN_CHANNELS,
) -> tuple[RetinaNetSpec, AnchorFit | None]:
    """The spec that :func:`~yolo2retina.model.build_retinanet`'s arguments describe.

    Defaults follow torchvision: with pretrained ``weights`` or ``weights_backbone``, 3
    trainable backbone stages and frozen BatchNorm; without, everything trains.

    Returns:
        The spec, and the anchor fit when ``anchor_sizes="auto"`` (else ``None``).

    Raises:
        ConfigError: the first bad argument, named.
    """
    _check_arguments(
        num_classes,
        backbone,
        weights,
        weights_backbone,
        min_size,
        max_size,
        score_threshold,
        nms_thresh,
        detections_per_img,
    )
    _check_fpn_channels(fpn_channels, backbone, weights)
    pretrained = weights is not None or weights_backbone is not None
    layers = _trainable_layers(backbone, trainable_backbone_layers, pretrained)
    sizes, ratios, fit = _resolve_anchors(anchor_sizes, aspect_ratios, dataset, min_size, max_size)
    spec = RetinaNetSpec(
        num_classes=num_classes,
        backbone=backbone,
        trainable_backbone_layers=layers,
        min_size=min_size,
        max_size=max_size,
        anchor_sizes=sizes,
        aspect_ratios=ratios,
        score_threshold=float(score_threshold),
        nms_thresh=float(nms_thresh),
        detections_per_img=int(detections_per_img),
        frozen_bn=pretrained if frozen_bn is None else frozen_bn,
        fpn_channels=fpn_channels,
    )
    return spec, fit


# -- the model of a spec ----------------------------------------------------------------------


def _head(backbone: str, body: BackboneWithFPN, num_anchors: int, num_classes: int) -> nn.Module:
    norm_layer = partial(nn.GroupNorm, 32) if backbone == "resnet50_fpn_v2" else None
    head = RetinaNetHead(body.out_channels, num_anchors, num_classes, norm_layer=norm_layer)
    if backbone == "resnet50_fpn_v2":
        head.regression_head._loss_type = "giou"
    return head  # type: ignore[no-any-return]


def assemble(
    spec: RetinaNetSpec, weights_backbone: WeightsArg, fit: AnchorFit | None
) -> BuiltRetinaNet:
    """The model of ``spec``: randomly initialised, or with ``weights_backbone`` in its backbone.

    Args:
        spec: the architecture.
        weights_backbone: ``None``, ``"DEFAULT"`` or a local classification state dict.
        fit: the anchor fit to keep in ``model.anchor_fit``.
    """
    body = build_backbone(
        spec.backbone,
        weights_backbone,
        frozen_bn=spec.frozen_bn,
        trainable_layers=spec.trainable_backbone_layers,
        fpn_channels=spec.fpn_channels,
    )
    anchor_generator = AnchorGenerator(spec.anchor_sizes, spec.aspect_ratios)
    num_anchors = anchor_generator.num_anchors_per_location()[0]
    return BuiltRetinaNet(
        body,
        spec.num_classes,
        spec=spec,
        anchor_fit=fit,
        min_size=spec.min_size,
        max_size=spec.max_size,
        anchor_generator=anchor_generator,
        head=_head(spec.backbone, body, num_anchors, spec.num_classes),
        score_thresh=spec.score_threshold,
        nms_thresh=spec.nms_thresh,
        detections_per_img=spec.detections_per_img,
    )
