"""Build torchvision RetinaNets for a dataset, load pretrained weights safely, reload checkpoints.

:func:`build_retinanet` is the one builder: four backbones, anchors that can be fitted
to the data (:func:`yolo2retina.anchors.fit_anchors`), a classification head sized for
``num_classes`` and weights from torchvision, a local checkpoint or a plain state dict.
Nothing is downloaded unless ``"DEFAULT"`` is passed.

:func:`load_model` rebuilds a trained model from a checkpoint written by
:func:`yolo2retina.train.fit`.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal, cast

import attrs
import torch
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.retinanet import RetinaNet, RetinaNetHead
from torchvision.ops.feature_pyramid_network import LastLevelP6P7
from torchvision.ops.misc import FrozenBatchNorm2d

from yolo2retina.anchors import DEFAULT_RATIOS as DEFAULT_ASPECT_RATIOS
from yolo2retina.anchors import DEFAULT_SIZES as DEFAULT_ANCHOR_SIZES
from yolo2retina.anchors import fit_anchors
from yolo2retina.errors import ConfigError

__all__ = [
    "BACKBONES",
    "DEFAULT_ANCHOR_SIZES",
    "DEFAULT_ASPECT_RATIOS",
    "LoadedModel",
    "build_args",
    "build_retinanet",
    "load_model",
    "load_state_dict_matching",
]

#: Backbone names accepted by :func:`build_retinanet`.
BACKBONES = ("resnet50_fpn", "resnet50_fpn_v2", "resnet18_fpn", "mobilenet_v3_large_fpn")

#: Number of feature levels (P3-P7) of every backbone here, as in torchvision's RetinaNet.
NUM_LEVELS = 5

#: The attribute of a built model that holds its :func:`build_args`.
_ARGS_ATTR = "yolo2retina_args"

_PRIOR_PROBABILITY = 0.01
_CLS_LOGITS = "head.classification_head.cls_logits."
_BBOX_REG = "head.regression_head.bbox_reg."
_V1_HEAD_KEY = re.compile(
    r"^(head\.(?:classification|regression)_head\.conv)\.([0246])\.(weight|bias)$"
)

WeightsArg = str | os.PathLike[str] | None
AnchorSizesArg = Literal["auto"] | Sequence[Sequence[float]] | None


# -- weights ----------------------------------------------------------------------------------


@attrs.frozen
class LoadResult:
    """What :func:`load_state_dict_matching` did.

    Attributes:
        loaded: names of the model tensors that were loaded.
        skipped: ``name: shape in file vs shape in model`` for tensors left at their init.
    """

    loaded: tuple[str, ...]
    skipped: tuple[str, ...]


def _read_state_dict(path: str | os.PathLike[str], what: str) -> dict[str, torch.Tensor]:
    """A state dict from a checkpoint (``{"model": ...}``) or a plain state-dict file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{what}: {p}: file not found")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, zip errors, unsafe globals
        raise ConfigError(f"{what}: {p}: not a loadable weights file ({e})") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise ConfigError(
            f"{what}: {p}: expected a state dict (name -> tensor) or a checkpoint with a 'model' key"
        )
    return _strip_ddp_prefix(obj)


def _strip_ddp_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that a DistributedDataParallel wrapper adds to every key."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _upgrade_v1_head_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename torchvision's first head layout ``conv.{2i}.weight`` to ``conv.{i}.0.weight``.

    The first RetinaNet weights kept conv and ReLU in one ``Sequential`` (convs at even
    indices); torchvision now wraps each conv in a ``Conv2dNormActivation``.
    """

    def rename(key: str) -> str:
        m = _V1_HEAD_KEY.match(key)
        if m is None:
            return key
        return f"{m.group(1)}.{int(m.group(2)) // 2}.0.{m.group(3)}"

    return {rename(k): v for k, v in state_dict.items()}


def load_state_dict_matching(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    source: str = "weights",
    allow_skip: Callable[[str], bool] | None = None,
) -> LoadResult:
    """Load every tensor of ``state_dict`` whose name and shape fit ``model``.

    Tensors the ``allow_skip`` predicate accepts may differ in shape (by default: the
    class logits and, when the anchors per location differ, the box regression output);
    they keep their fresh initialisation and a :class:`UserWarning` names each one.
    Any other difference (a missing tensor, an unknown one, another shape) is an error,
    so weights of another architecture never load half-way in silence. BatchNorm's
    ``num_batches_tracked`` counters may be missing on either side.

    Args:
        model: the model to fill.
        state_dict: tensors by name.
        source: how to name the weights in messages (e.g. the file path).
        allow_skip: names that may be skipped on a shape mismatch.

    Raises:
        ConfigError: listing the tensors that do not fit.
    """
    allow = allow_skip or (lambda k: k.startswith((_CLS_LOGITS, _BBOX_REG)))
    src = _upgrade_v1_head_keys(state_dict)
    own = model.state_dict()
    take: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    problems: list[str] = []
    for name, tensor in own.items():
        if name not in src:
            if not name.endswith("num_batches_tracked"):
                problems.append(f"{name}: missing from the weights")
            continue
        theirs = src[name]
        if tuple(theirs.shape) == tuple(tensor.shape):
            take[name] = theirs
        else:
            line = f"{name}: {tuple(theirs.shape)} in weights vs {tuple(tensor.shape)} in model"
            (skipped if allow(name) else problems).append(line)
    problems += [
        f"{k}: not a tensor of this model"
        for k in src
        if k not in own and not k.endswith("num_batches_tracked")
    ]
    if problems:
        shown = problems[:8]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > 8 else ""
        raise ConfigError(
            f"{source}: {len(problems)} tensor(s) do not fit this model (another backbone?):\n  "
            + "\n  ".join(shown)
            + more
        )
    model.load_state_dict(take, strict=False)
    if skipped:
        warnings.warn(
            f"{source}: loaded {len(take)} tensors; skipped {len(skipped)} whose shape differs "
            "(kept at their initialisation): " + "; ".join(skipped),
            UserWarning,
            stacklevel=3,
        )
    return LoadResult(tuple(take), tuple(skipped))


def _coco_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """torchvision's COCO RetinaNet weights (this downloads on first use)."""
    from torchvision.models.detection import (
        RetinaNet_ResNet50_FPN_V2_Weights,
        RetinaNet_ResNet50_FPN_Weights,
    )

    enum: Any
    if backbone == "resnet50_fpn":
        enum = RetinaNet_ResNet50_FPN_Weights.DEFAULT
    elif backbone == "resnet50_fpn_v2":
        enum = RetinaNet_ResNet50_FPN_V2_Weights.DEFAULT
    else:
        raise ConfigError(
            f"weights='DEFAULT': torchvision has no COCO RetinaNet weights for backbone "
            f"'{backbone}'; use weights_backbone='DEFAULT' (ImageNet) or a resnet50 backbone"
        )
    sd: dict[str, torch.Tensor] = dict(enum.get_state_dict(progress=True, check_hash=True))
    return sd


# -- backbones --------------------------------------------------------------------------------


def _check_weights_arg(value: WeightsArg, name: str) -> None:
    if value is None or isinstance(value, os.PathLike):
        return
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be None, 'DEFAULT' or a path, got {value!r}")


def _is_default(value: WeightsArg) -> bool:
    return isinstance(value, str) and value.upper() == "DEFAULT"


def _load_backbone_file(net: nn.Module, path: str | os.PathLike[str]) -> None:
    sd = _read_state_dict(path, "weights_backbone")
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
    name: str, weights_backbone: WeightsArg, frozen_bn: bool, trainable_layers: int
) -> BackboneWithFPN:
    from torchvision.models import ResNet18_Weights, ResNet50_Weights, resnet18, resnet50

    norm_layer: Callable[..., nn.Module] = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    default = _is_default(weights_backbone)
    if name == "resnet18_fpn":
        net = resnet18(weights=ResNet18_Weights.DEFAULT if default else None, norm_layer=norm_layer)
        c3_c5 = [128, 256, 512]
    else:
        net = resnet50(weights=ResNet50_Weights.DEFAULT if default else None, norm_layer=norm_layer)
        c3_c5 = [512, 1024, 2048]
    if weights_backbone is not None and not default:
        _load_backbone_file(net, weights_backbone)
    _freeze_resnet(net, trainable_layers)
    # v2 feeds C5 to P6 (as torchvision's retinanet_resnet50_fpn_v2); the others feed P5.
    extra = LastLevelP6P7(c3_c5[-1], 256) if name == "resnet50_fpn_v2" else LastLevelP6P7(256, 256)
    return BackboneWithFPN(
        net,
        return_layers={"layer2": "0", "layer3": "1", "layer4": "2"},
        in_channels_list=c3_c5,
        out_channels=256,
        extra_blocks=extra,
    )


def _mobilenet_backbone(
    weights_backbone: WeightsArg, frozen_bn: bool, trainable_layers: int
) -> BackboneWithFPN:
    from torchvision.models import MobileNet_V3_Large_Weights, mobilenet_v3_large

    default = _is_default(weights_backbone)
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
        out_channels=256,
        extra_blocks=LastLevelP6P7(256, 256),
    )


def _max_trainable_layers(backbone: str) -> int:
    return 6 if backbone.startswith("mobilenet") else 5


# -- anchors ----------------------------------------------------------------------------------


def _as_levels(value: Sequence[Sequence[float]], name: str) -> tuple[tuple[float, ...], ...]:
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
) -> tuple[tuple[tuple[float, ...], ...], tuple[tuple[float, ...], ...], Any]:
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


# -- builder ----------------------------------------------------------------------------------


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
    score_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    detections_per_img: int = 300,
    dataset: Any = None,
    frozen_bn: bool | None = None,
) -> RetinaNet:
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
        score_thresh: minimum class score of a detection.
        nms_thresh: IoU of per-class non-maximum suppression.
        detections_per_img: maximum detections returned per image.
        dataset: training data (``Annotations`` or ``DetectionDataset``) for ``anchor_sizes="auto"``.
        frozen_bn: use frozen BatchNorm in the backbone. Default: frozen when pretrained
            weights are loaded (torchvision's rule), trainable BatchNorm otherwise.

    Returns:
        The model, in training mode. ``build_args(model)`` gives the keyword arguments
        that rebuild the same architecture (fitted anchors included) without downloading.

    Raises:
        ConfigError: an unknown backbone, a bad argument, or weights that do not fit.

    Example:
        >>> model = build_retinanet(num_classes=2, backbone="resnet18_fpn", min_size=320, max_size=320)
        >>> model.head.classification_head.num_classes
        2
    """
    if backbone not in BACKBONES:
        raise ConfigError(f"unknown backbone '{backbone}'; available: {', '.join(BACKBONES)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    _check_weights_arg(weights, "weights")
    _check_weights_arg(weights_backbone, "weights_backbone")
    if not (isinstance(min_size, int) and isinstance(max_size, int) and 0 < min_size <= max_size):
        raise ConfigError(f"need integers 0 < min_size <= max_size, got {min_size}, {max_size}")
    if not 0.0 <= score_thresh <= 1.0 or not 0.0 < nms_thresh <= 1.0:
        raise ConfigError(
            f"score_thresh and nms_thresh must lie in [0, 1], got {score_thresh}, {nms_thresh}"
        )
    if detections_per_img < 1:
        raise ConfigError(f"detections_per_img must be >= 1, got {detections_per_img}")
    if weights is not None:
        weights_backbone = None
    pretrained = weights is not None or weights_backbone is not None
    max_layers = _max_trainable_layers(backbone)
    if trainable_backbone_layers is None:
        trainable_backbone_layers = 3 if pretrained else max_layers
    if not 0 <= trainable_backbone_layers <= max_layers:
        raise ConfigError(
            f"trainable_backbone_layers must lie in 0..{max_layers} for {backbone}, "
            f"got {trainable_backbone_layers}"
        )
    if frozen_bn is None:
        frozen_bn = pretrained
    sizes, ratios, fit = _resolve_anchors(anchor_sizes, aspect_ratios, dataset, min_size, max_size)

    if backbone == "mobilenet_v3_large_fpn":
        body = _mobilenet_backbone(weights_backbone, frozen_bn, trainable_backbone_layers)
    else:
        body = _resnet_backbone(backbone, weights_backbone, frozen_bn, trainable_backbone_layers)
    anchor_generator = AnchorGenerator(sizes, ratios)
    num_anchors = anchor_generator.num_anchors_per_location()[0]
    norm_layer = partial(nn.GroupNorm, 32) if backbone == "resnet50_fpn_v2" else None
    head = RetinaNetHead(body.out_channels, num_anchors, num_classes, norm_layer=norm_layer)
    if backbone == "resnet50_fpn_v2":
        head.regression_head._loss_type = "giou"
    model = RetinaNet(
        body,
        num_classes,
        min_size=min_size,
        max_size=max_size,
        anchor_generator=anchor_generator,
        head=head,
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        detections_per_img=detections_per_img,
    )

    if weights is not None:
        if _is_default(weights):
            sd, source = _coco_state_dict(backbone), f"torchvision COCO weights ({backbone})"
        else:
            sd, source = _read_state_dict(weights, "weights"), f"weights {weights}"
        load_state_dict_matching(model, sd, source=source)
        if backbone == "resnet50_fpn" and _is_default(weights):
            # torchvision's COCO_V1 weights were trained with eps=0 in frozen BatchNorm.
            for m in model.modules():
                if isinstance(m, FrozenBatchNorm2d):
                    m.eps = 0.0

    args: dict[str, Any] = {
        "num_classes": num_classes,
        "backbone": backbone,
        "weights": None,
        "weights_backbone": None,
        "trainable_backbone_layers": trainable_backbone_layers,
        "min_size": min_size,
        "max_size": max_size,
        "anchor_sizes": [list(s) for s in sizes],
        "aspect_ratios": [list(r) for r in ratios],
        "score_thresh": float(score_thresh),
        "nms_thresh": float(nms_thresh),
        "detections_per_img": int(detections_per_img),
        "frozen_bn": frozen_bn,
    }
    setattr(model, _ARGS_ATTR, args)
    if fit is not None:
        model.anchor_fit = fit
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
    args = getattr(inner, _ARGS_ATTR, None)
    if not isinstance(args, dict):
        raise ConfigError("this model was not built by yolo2retina.build_retinanet")
    return {
        k: ([list(v) for v in val] if isinstance(val, list) else val) for k, val in args.items()
    }


# -- checkpoints ------------------------------------------------------------------------------


@attrs.frozen
class LoadedModel:
    """A model rebuilt from a training checkpoint.

    Attributes:
        model: the RetinaNet, in eval mode, on the requested device.
        class_names: class names, index = label.
        model_args: the :func:`build_retinanet` keyword arguments it was built with.
        meta: what training recorded, e.g. ``"train_image_size"`` and ``"box_size_px"``.
        path: the checkpoint file.
    """

    model: RetinaNet
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
    model_args = dict(ckpt["model_args"])
    known = set(build_retinanet.__kwdefaults__ or {}) | {"num_classes"}
    unknown = sorted(set(model_args) - known)
    if unknown:
        raise ConfigError(f"{p}: model_args has unknown keys {unknown} (a newer yolo2retina?)")
    rebuild = {**model_args, "weights": None, "weights_backbone": None, "dataset": None}
    if rebuild.get("anchor_sizes") == "auto":
        raise ConfigError(f"{p}: model_args has anchor_sizes='auto' instead of the fitted sizes")
    if "frozen_bn" not in rebuild:
        rebuild["frozen_bn"] = model_args.get("weights") is not None or (
            model_args.get("weights_backbone") is not None
        )
    model = build_retinanet(**rebuild)
    state_dict = ckpt["model"]
    if not isinstance(state_dict, Mapping):
        raise ConfigError(f"{p}: 'model' is not a state dict")
    # every tensor must fit: a skipped one here would be a broken checkpoint
    load_state_dict_matching(
        model, _strip_ddp_prefix(state_dict), source=str(p), allow_skip=lambda k: False
    )
    class_names = tuple(str(c) for c in ckpt["class_names"])
    if len(class_names) != model.head.classification_head.num_classes:
        raise ConfigError(
            f"{p}: {len(class_names)} class names for a {model.head.classification_head.num_classes}-class model"
        )
    model.to(device).eval()
    return LoadedModel(model, class_names, model_args, dict(ckpt.get("meta") or {}), p)
