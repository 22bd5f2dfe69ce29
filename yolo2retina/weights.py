"""Weights for a RetinaNet: read a state dict safely and load the tensors that fit.

:func:`read_state_dict` reads a plain state dict or the ``"model"`` entry of a checkpoint
with ``torch.load(weights_only=True)`` (no code in the file runs), drops the ``module.``
prefix of a DistributedDataParallel wrapper and names the file in every error.
:func:`load_state_dict_matching` loads the tensors whose name and shape fit a model and
refuses weights of another architecture instead of loading them half-way.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from yolo2retina.errors import ConfigError

__all__ = [
    "LoadResult",
    "load_state_dict_matching",
    "read_state_dict",
    "strip_ddp_prefix",
    "upgrade_v1_head_keys",
]

#: Prefixes of the head outputs whose shape depends on the classes and anchors per location.
CLS_LOGITS = "head.classification_head.cls_logits."
BBOX_REG = "head.regression_head.bbox_reg."
_DDP_PREFIX = "module."
_V1_HEAD_KEY = re.compile(
    r"^(head\.(?:classification|regression)_head\.conv)\.([0246])\.(weight|bias)$"
)
_SHOWN_PROBLEMS = 8


@attrs.frozen
class LoadResult:
    """What :func:`load_state_dict_matching` did.

    Attributes:
        loaded: names of the model tensors that were loaded.
        skipped: ``name: shape in file vs shape in model`` for tensors left at their init.
    """

    loaded: tuple[str, ...]
    skipped: tuple[str, ...]


def read_state_dict(path: str | os.PathLike[str], what: str) -> dict[str, torch.Tensor]:
    """A state dict from a checkpoint (``{"model": ...}``) or a plain state-dict file.

    Args:
        path: the file; ``~`` is expanded.
        what: how to name the file's role in messages (e.g. ``"weights"``).

    Returns:
        Tensors by name, without a DistributedDataParallel ``module.`` prefix.

    Raises:
        ConfigError: naming the file when it is missing, not loadable with
            ``weights_only=True``, or holds no state dict.
    """
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
    return strip_ddp_prefix(obj)


def strip_ddp_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that a DistributedDataParallel wrapper adds to every key."""
    if state_dict and all(k.startswith(_DDP_PREFIX) for k in state_dict):
        return {k[len(_DDP_PREFIX) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def upgrade_v1_head_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
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


def _default_allow_skip(name: str) -> bool:
    return name.startswith((CLS_LOGITS, BBOX_REG))


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
    allow = allow_skip or _default_allow_skip
    src = upgrade_v1_head_keys(state_dict)
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
        raise ConfigError(_misfit_message(source, problems))
    model.load_state_dict(take, strict=False)
    if skipped:
        warnings.warn(
            f"{source}: loaded {len(take)} tensors; skipped {len(skipped)} whose shape differs "
            "(kept at their initialisation): " + "; ".join(skipped),
            UserWarning,
            stacklevel=3,
        )
    return LoadResult(tuple(take), tuple(skipped))


def _misfit_message(source: str, problems: list[str]) -> str:
    shown = problems[:_SHOWN_PROBLEMS]
    more = len(problems) - len(shown)
    return (
        f"{source}: {len(problems)} tensor(s) do not fit this model (another backbone?):\n  "
        + "\n  ".join(shown)
        + (f"\n  ... and {more} more" if more else "")
    )


def coco_state_dict(backbone: str) -> dict[str, torch.Tensor]:
    """torchvision's COCO RetinaNet weights for ``backbone`` (this downloads on first use).

    Raises:
        ConfigError: torchvision has no COCO RetinaNet for ``backbone``.
    """
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
