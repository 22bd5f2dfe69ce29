"""Build torchvision RetinaNets for a dataset and rebuild trained ones from their checkpoints.

:func:`build_retinanet` is the one builder: four backbones (:mod:`yolo2retina.backbones`),
anchors that can be fitted to the data (:func:`yolo2retina.anchors.fit_anchors`), a
classification head sized for ``num_classes`` and weights from torchvision, a local
checkpoint or a plain state dict (:mod:`yolo2retina.weights`). Nothing is downloaded
unless ``"DEFAULT"`` is passed. The model it returns is a :class:`BuiltRetinaNet`: a
torchvision RetinaNet that also holds its :class:`RetinaNetSpec`, the arguments that
rebuild it (:func:`build_args`).

:func:`load_model` rebuilds a trained model from a checkpoint written by
:func:`yolo2retina.train.fit`.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal

import attrs
import torch
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.retinanet import RetinaNet, RetinaNetHead
from torchvision.ops.misc import FrozenBatchNorm2d

from yolo2retina.anchors import DEFAULT_RATIOS as DEFAULT_ASPECT_RATIOS
from yolo2retina.anchors import DEFAULT_SIZES as DEFAULT_ANCHOR_SIZES
from yolo2retina.anchors import NUM_LEVELS as NUM_LEVELS
from yolo2retina.anchors import AnchorFit, fit_anchors
from yolo2retina.backbones import BACKBONES as BACKBONES
from yolo2retina.backbones import WeightsArg as WeightsArg
from yolo2retina.backbones import (
    build_backbone,
    check_weights_arg,
    is_default,
    max_trainable_layers,
)
from yolo2retina.errors import ConfigError
from yolo2retina.weights import LoadResult as LoadResult
from yolo2retina.weights import (
    coco_state_dict,
    read_state_dict,
    strip_ddp_prefix,
)
from yolo2retina.weights import load_state_dict_matching as load_state_dict_matching

__all__ = [
    "BACKBONES",
    "DEFAULT_ANCHOR_SIZES",
    "DEFAULT_ASPECT_RATIOS",
    "BuiltRetinaNet",
    "LoadedModel",
    "RetinaNetSpec",
    "build_args",
    "build_from_args",
    "build_retinanet",
    "load_model",
    "load_state_dict_matching",
]

AnchorSizesArg = Literal["auto"] | Sequence[Sequence[float]] | None
Levels = tuple[tuple[float, ...], ...]

_DEFAULT_SCORE_THRESHOLD = 0.05
#: The name ``score_threshold`` had before 0.x: still read from old checkpoints' model_args.
_OLD_SCORE_KEY = "score_thresh"


# -- the model and its spec -------------------------------------------------------------------


@attrs.frozen
class RetinaNetSpec:
    """The architecture of a :func:`build_retinanet` model: what rebuilds it exactly.

    Fitted anchors are spelled out, so a rebuild needs neither the dataset nor a download.
    The attributes are the :func:`build_retinanet` arguments of the same name.
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

    def to_kwargs(self) -> dict[str, Any]:
        """:func:`build_retinanet` keyword arguments; plain Python values (lists, not tuples)."""
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
        }


# torchvision ships no type hints, so RetinaNet is Any to mypy.
class BuiltRetinaNet(RetinaNet):  # type: ignore[misc]
    """A torchvision :class:`~torchvision.models.detection.RetinaNet` made by :func:`build_retinanet`.

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
        sizes = (
            DEFAULT_ANCHOR_SIZES
            if anchor_sizes is None
            else _as_levels(anchor_sizes, "anchor_sizes")
        )
        ratios = (
            DEFAULT_ASPECT_RATIOS
            if aspect_ratios is None
            else _as_levels(aspect_ratios, "aspect_ratios")
        )
    per_location = {len(s) * len(r) for s, r in zip(sizes, ratios, strict=True)}
    if len(per_location) != 1:
        raise ConfigError(
            "every level needs the same number of anchors (sizes x ratios), got "
            + ", ".join(f"{len(s)}x{len(r)}" for s, r in zip(sizes, ratios, strict=True))
        )
    return sizes, ratios, fit


def _renamed_score_threshold(score_threshold: float, score_thresh: float | None) -> float:
    """``score_threshold``, or the deprecated ``score_thresh`` with a DeprecationWarning."""
    if score_thresh is None:
        return score_threshold
    warnings.warn(
        "build_retinanet(score_thresh=...) is deprecated; pass score_threshold=...",
        DeprecationWarning,
        stacklevel=3,
    )
    if score_threshold not in (_DEFAULT_SCORE_THRESHOLD, score_thresh):
        raise ConfigError(
            f"got score_threshold={score_threshold} and score_thresh={score_thresh}; "
            "pass score_threshold only"
        )
    return score_thresh


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


def _trainable_layers(backbone: str, requested: int | None, pretrained: bool) -> int:
    max_layers = max_trainable_layers(backbone)
    layers = (3 if pretrained else max_layers) if requested is None else requested
    if not 0 <= layers <= max_layers:
        raise ConfigError(
            f"trainable_backbone_layers must lie in 0..{max_layers} for {backbone}, got {layers}"
        )
    return layers


# -- builder ----------------------------------------------------------------------------------


def _head(backbone: str, body: BackboneWithFPN, num_anchors: int, num_classes: int) -> nn.Module:
    norm_layer = partial(nn.GroupNorm, 32) if backbone == "resnet50_fpn_v2" else None
    head = RetinaNetHead(body.out_channels, num_anchors, num_classes, norm_layer=norm_layer)
    if backbone == "resnet50_fpn_v2":
        head.regression_head._loss_type = "giou"
    return head  # type: ignore[no-any-return]


def _assemble(
    spec: RetinaNetSpec, weights_backbone: WeightsArg, fit: AnchorFit | None
) -> BuiltRetinaNet:
    """The model of ``spec`` (randomly initialised, or with ``weights_backbone``)."""
    body = build_backbone(
        spec.backbone,
        weights_backbone,
        frozen_bn=spec.frozen_bn,
        trainable_layers=spec.trainable_backbone_layers,
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


def _detector_weights(weights: str | os.PathLike[str], backbone: str) -> tuple[dict[str, Any], str]:
    """The state dict of ``weights`` and how to name it in messages."""
    if is_default(weights):
        return coco_state_dict(backbone), f"torchvision COCO weights ({backbone})"
    return read_state_dict(weights, "weights"), f"weights {weights}"


def build_retinanet(
    *,
    num_classes: int,
    backbone: str = "resnet50_fpn",
    weights: WeightsArg = None,
    weights_backbone: WeightsArg = None,
    trainable_backbone_layers: int | None = None,
    min_size: int = 800,
    max_size: int = 1333,
    anchor_sizes: AnchorSizesArg = None,
    aspect_ratios: Sequence[Sequence[float]] | None = None,
    score_threshold: float = _DEFAULT_SCORE_THRESHOLD,
    nms_thresh: float = 0.5,
    detections_per_img: int = 300,
    dataset: Any = None,
    frozen_bn: bool | None = None,
    score_thresh: float | None = None,
) -> BuiltRetinaNet:
    """A torchvision :class:`~torchvision.models.detection.RetinaNet` for ``num_classes`` classes.

    The classification head is built for ``num_classes`` (labels ``0..K-1``, no
    background class) with the focal-loss prior bias ``-log((1 - 0.01) / 0.01)``;
    ``resnet50_fpn_v2`` keeps its GroupNorm head and GIoU box loss.

    Args:
        num_classes: number of object classes K (>= 1).
        backbone: one of :data:`BACKBONES`. ``resnet18_fpn`` and ``mobilenet_v3_large_fpn``
            are small enough for CPU training; all have 5 levels (P3-P7).
        weights: ``None`` (random init), ``"DEFAULT"`` (torchvision's COCO weights,
            downloaded; ``resnet50_fpn`` and ``resnet50_fpn_v2`` only) or a local path to a
            checkpoint (``{"model": state_dict, ...}``) or a plain state dict. Weights with
            another class count load everything but the class logits, with a warning that
            names the skipped tensors.
        weights_backbone: ``None``, ``"DEFAULT"`` (torchvision's ImageNet weights, downloaded)
            or a local path to a state dict of the plain classification network. Ignored
            when ``weights`` is given. Unlike torchvision, the default downloads nothing.
        trainable_backbone_layers: backbone stages left trainable, counted from the top
            (0-5; 0-6 for MobileNet). Default: 3 with pretrained weights, all without.
        min_size: the model resizes images so the shorter side is this...
        max_size: ...unless the longer side would exceed this.
        anchor_sizes: ``None`` (torchvision's 32-512 px), ``"auto"`` (fitted to ``dataset`` by
            :func:`~yolo2retina.anchors.fit_anchors`, which may also pick the aspect
            ratios), or one tuple of sizes in pixels per level (5 levels).
        aspect_ratios: height / width per level; ``None``: (0.5, 1, 2) on every level.
        score_threshold: minimum class score of a detection.
        nms_thresh: IoU of per-class non-maximum suppression.
        detections_per_img: maximum detections returned per image.
        dataset: training data (``Annotations`` or ``DetectionDataset``) for ``anchor_sizes="auto"``.
        frozen_bn: use frozen BatchNorm in the backbone. Default: frozen when pretrained
            weights are loaded (torchvision's rule), trainable BatchNorm otherwise.
        score_thresh: deprecated name of ``score_threshold`` (a DeprecationWarning).

    Returns:
        The model, in training mode. ``build_args(model)`` gives the keyword arguments
        that rebuild the same architecture (fitted anchors included) without downloading;
        ``model.anchor_fit`` is the anchor fit of ``anchor_sizes="auto"``.

    Raises:
        ConfigError: an unknown backbone, a bad argument, or weights that do not fit.

    Example:
        >>> model = build_retinanet(num_classes=2, backbone="resnet18_fpn", min_size=320, max_size=320)
        >>> model.head.classification_head.num_classes
        2
    """
    score_threshold = _renamed_score_threshold(score_threshold, score_thresh)
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
    if weights is not None:
        weights_backbone = None
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
    )
    model = _assemble(spec, weights_backbone, fit)
    if weights is not None:
        state_dict, source = _detector_weights(weights, backbone)
        load_state_dict_matching(model, state_dict, source=source)
        if backbone == "resnet50_fpn" and is_default(weights):
            # torchvision's COCO_V1 weights were trained with eps=0 in frozen BatchNorm.
            for m in model.modules():
                if isinstance(m, FrozenBatchNorm2d):
                    m.eps = 0.0
    return model


def build_args(model: nn.Module) -> dict[str, Any]:
    """The :func:`build_retinanet` keyword arguments that rebuild ``model``'s architecture.

    Plain Python values only (fit for a checkpoint loaded with ``weights_only=True``);
    fitted anchors are spelled out and ``weights`` is ``None``, so rebuilding never
    needs the dataset or a download.

    Raises:
        ConfigError: the model was not made by :func:`build_retinanet`.
    """
    inner = getattr(model, "module", model)  # DistributedDataParallel
    if not isinstance(inner, BuiltRetinaNet):
        raise ConfigError("this model was not built by yolo2retina.build_retinanet")
    return inner.spec.to_kwargs()


def _upgraded_args(model_args: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``model_args`` with the old ``score_thresh`` key renamed to ``score_threshold``."""
    args = dict(model_args)
    if _OLD_SCORE_KEY in args:
        old = args.pop(_OLD_SCORE_KEY)
        if args.setdefault("score_threshold", old) != old:
            raise ConfigError(
                f"{source}: model_args has score_thresh={old} and "
                f"score_threshold={args['score_threshold']}"
            )
    return args


def build_from_args(model_args: Mapping[str, Any], *, source: str = "model_args") -> BuiltRetinaNet:
    """A fresh model from the ``model_args`` a checkpoint recorded (weights not loaded).

    Accepts the model_args of every yolo2retina version: the old ``score_thresh`` key, and
    no ``frozen_bn`` (then frozen when the recorded model had pretrained weights).

    Args:
        model_args: :func:`build_args` of the trained model.
        source: how to name the checkpoint in messages (e.g. its path).

    Raises:
        ConfigError: unknown keys (a newer yolo2retina?) or unfitted ``anchor_sizes="auto"``.
    """
    args = _upgraded_args(model_args, source)
    known = set(build_retinanet.__kwdefaults__ or {}) - {_OLD_SCORE_KEY} | {"num_classes"}
    unknown = sorted(set(args) - known)
    if unknown:
        raise ConfigError(f"{source}: model_args has unknown keys {unknown} (a newer yolo2retina?)")
    rebuild = {**args, "weights": None, "weights_backbone": None, "dataset": None}
    if rebuild.get("anchor_sizes") == "auto":
        raise ConfigError(
            f"{source}: model_args has anchor_sizes='auto' instead of the fitted sizes"
        )
    if "frozen_bn" not in rebuild:
        rebuild["frozen_bn"] = (
            args.get("weights") is not None or args.get("weights_backbone") is not None
        )
    return build_retinanet(**rebuild)


# -- checkpoints ------------------------------------------------------------------------------


@attrs.frozen
class LoadedModel:
    """A model rebuilt from a training checkpoint.

    Attributes:
        model: the RetinaNet, in eval mode, on the requested device.
        class_names: class names, index = label.
        model_args: the :func:`build_retinanet` keyword arguments it was built with (an
            old checkpoint's ``score_thresh`` reads as ``score_threshold``).
        meta: what training recorded, e.g. ``"train_image_size"`` and ``"box_size_px"``.
        path: the checkpoint file.
    """

    model: BuiltRetinaNet
    class_names: tuple[str, ...]
    model_args: dict[str, Any]
    meta: dict[str, Any]
    path: Path


def load_model(
    checkpoint_path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> LoadedModel:
    """Rebuild a trained model from a checkpoint (``best.pt`` / ``last.pt``).

    The file is read with ``torch.load(weights_only=True)``: no code in it runs.

    Raises:
        ConfigError: the file is missing, is not a yolo2retina checkpoint, or its
            weights do not fit the recorded architecture.
    """
    p = Path(checkpoint_path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{p}: checkpoint not found")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"{p}: not a loadable checkpoint ({e})") from None
    if not isinstance(ckpt, dict):
        raise ConfigError(f"{p}: not a yolo2retina checkpoint (expected a dict)")
    missing = [k for k in ("model", "model_args", "class_names") if k not in ckpt]
    if missing:
        raise ConfigError(f"{p}: not a yolo2retina checkpoint (no {', '.join(missing)})")
    model_args = _upgraded_args(ckpt["model_args"], str(p))
    model = build_from_args(model_args, source=str(p))
    state_dict = ckpt["model"]
    if not isinstance(state_dict, Mapping):
        raise ConfigError(f"{p}: 'model' is not a state dict")
    # every tensor must fit: a skipped one here would be a broken checkpoint
    load_state_dict_matching(
        model, strip_ddp_prefix(state_dict), source=str(p), allow_skip=lambda k: False
    )
    class_names = tuple(str(c) for c in ckpt["class_names"])
    if len(class_names) != model.head.classification_head.num_classes:
        raise ConfigError(
            f"{p}: {len(class_names)} class names for a {model.head.classification_head.num_classes}-class model"
        )
    model.to(device).eval()
    return LoadedModel(model, class_names, model_args, dict(ckpt.get("meta") or {}), p)
