"""Build torchvision RetinaNets for a dataset and rebuild trained ones from their checkpoints.

:func:`build_retinanet` is the one builder: four backbones (:mod:`yolo2retina.backbones`),
anchors that can be fitted to the data (:func:`yolo2retina.anchors.fit_anchors`), a
classification head sized for ``num_classes`` and weights from torchvision, a local
checkpoint or a plain state dict (:mod:`yolo2retina.weights`). Nothing is downloaded
unless ``"DEFAULT"`` is passed. The model it returns is a
:class:`~yolo2retina.model_spec.BuiltRetinaNet`: a torchvision RetinaNet that also holds
its :class:`~yolo2retina.model_spec.RetinaNetSpec`, the arguments that rebuild it
(:func:`build_args`).

:func:`load_model` rebuilds a trained model from a checkpoint written by
:func:`yolo2retina.train.fit`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from yolo2retina.anchors import DEFAULT_RATIOS as DEFAULT_ASPECT_RATIOS
from yolo2retina.anchors import DEFAULT_SIZES as DEFAULT_ANCHOR_SIZES
from yolo2retina.anchors import NUM_LEVELS as NUM_LEVELS
from yolo2retina.backbones import BACKBONES as BACKBONES
from yolo2retina.backbones import FPN_CHANNELS, is_default
from yolo2retina.backbones import WeightsArg as WeightsArg
from yolo2retina.checkpoint import Checkpoint
from yolo2retina.errors import ConfigError
from yolo2retina.model_spec import AnchorSizesArg as AnchorSizesArg
from yolo2retina.model_spec import BuiltRetinaNet as BuiltRetinaNet
from yolo2retina.model_spec import RetinaNetSpec as RetinaNetSpec
from yolo2retina.model_spec import assemble, checked_spec
from yolo2retina.weights import LoadResult as LoadResult
from yolo2retina.weights import coco_state_dict, read_state_dict
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

_DEFAULT_SCORE_THRESHOLD = 0.05
#: The old name of ``score_threshold``: still read from old checkpoints' model_args.
_OLD_SCORE_KEY = "score_thresh"


# -- builder ----------------------------------------------------------------------------------


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


def _detector_weights(weights: str | os.PathLike[str], backbone: str) -> tuple[dict[str, Any], str]:
    """The state dict of ``weights`` and how to name it in messages."""
    if is_default(weights):
        return coco_state_dict(backbone), f"torchvision COCO weights ({backbone})"
    return read_state_dict(weights, "weights"), f"weights {weights}"


# Long only by its docstring (one entry per argument); the body is three steps.
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
    fpn_channels: int = FPN_CHANNELS,
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
        fpn_channels: channels of the FPN levels and of the head's convolutions (torchvision:
            256). The head is most of a small backbone's cost: 128 makes a resnet18_fpn
            training step about 2x faster on a CPU. Weights ``"DEFAULT"`` need 256.

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
    spec, fit = checked_spec(
        num_classes=num_classes,
        backbone=backbone,
        weights=weights,
        weights_backbone=weights_backbone,
        trainable_backbone_layers=trainable_backbone_layers,
        min_size=min_size,
        max_size=max_size,
        anchor_sizes=anchor_sizes,
        aspect_ratios=aspect_ratios,
        score_threshold=_renamed_score_threshold(score_threshold, score_thresh),
        nms_thresh=nms_thresh,
        detections_per_img=detections_per_img,
        dataset=dataset,
        frozen_bn=frozen_bn,
        fpn_channels=fpn_channels,
    )
    # weights_backbone is ignored when the whole model has weights
    model = assemble(spec, None if weights is not None else weights_backbone, fit)
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

    The file is read by :meth:`Checkpoint.load <yolo2retina.checkpoint.Checkpoint.load>`
    (``torch.load(weights_only=True)``): no code in it runs.

    Raises:
        ConfigError: the file is missing, is not a yolo2retina checkpoint, or its
            weights do not fit the recorded architecture.
    """
    ckpt = Checkpoint.load(checkpoint_path)
    p = ckpt.path if ckpt.path is not None else Path(checkpoint_path)
    model_args = _upgraded_args(ckpt.model_args, str(p))
    model = build_from_args(model_args, source=str(p))
    # every tensor must fit: a skipped one here would be a broken checkpoint
    load_state_dict_matching(model, ckpt.model, source=str(p), allow_skip=lambda k: False)
    num_classes = model.head.classification_head.num_classes
    if len(ckpt.class_names) != num_classes:
        raise ConfigError(
            f"{p}: {len(ckpt.class_names)} class names for a {num_classes}-class model"
        )
    model.to(device).eval()
    return LoadedModel(model, ckpt.class_names, model_args, dict(ckpt.meta), p)
