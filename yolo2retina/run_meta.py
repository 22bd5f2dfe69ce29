"""What a checkpoint records about its model and its data: the model's build arguments
(:func:`describe_model`) and the image and box sizes of the training set (:func:`dataset_meta`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from torch import nn

from yolo2retina.errors import ConfigError

__all__ = ["dataset_meta", "describe_model"]


def describe_model(model: nn.Module) -> dict[str, Any]:
    """``build_retinanet`` keyword arguments of ``model``, for its checkpoints.

    A model from :func:`yolo2retina.model.build_retinanet` knows them exactly. For another
    torchvision RetinaNet they are read back from its modules, with ``backbone=None``
    (torchvision models do not record it).
    """
    from yolo2retina.model import build_args

    try:
        return build_args(model)
    except ConfigError:
        pass
    args: dict[str, Any] = {"backbone": None}
    head = getattr(getattr(model, "head", None), "classification_head", None)
    if head is not None and hasattr(head, "num_classes"):
        args["num_classes"] = int(head.num_classes)
    transform = getattr(model, "transform", None)
    if transform is not None:
        args["min_size"] = int(transform.min_size[0])
        args["max_size"] = int(transform.max_size)
    anchors = getattr(model, "anchor_generator", None)
    if anchors is not None:
        args["anchor_sizes"] = [[float(s) for s in level] for level in anchors.sizes]
        args["aspect_ratios"] = [[float(r) for r in level] for level in anchors.aspect_ratios]
    return args


def plain(value: Any) -> Any:
    """Tuples to lists, NumPy scalars to Python: what ``weights_only`` loading accepts."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def dataset_meta(dataset: Any, model_args: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` for a checkpoint: image sizes and the boxes' sizes in pixels.

    ``train_image_size`` is the model's input size (``min_size``); ``source_image_size``
    the median longer side of the training images as stored; ``box_size_px`` is
    ``sqrt(w * h)`` of the training boxes in the stored images (median, 10th and 90th
    percentile). :func:`yolo2retina.tiling.resolve_tile` uses them for ``tile="auto"``.
    """
    meta: dict[str, Any] = {}
    size = model_args.get("min_size")
    if size is not None:
        meta["train_image_size"] = int(size)
    ann = getattr(dataset, "annotations", None)
    if ann is not None and len(ann):
        # the longer side of the training images as stored (predict's tile="auto" uses it)
        meta["source_image_size"] = int(np.median(ann.image_hw_array.max(axis=1)))
    if ann is not None and ann.num_boxes:
        from yolo2retina import boxes as box_ops

        sides = np.sqrt(np.maximum(box_ops.area(ann.boxes), 0.0))
        p10, median, p90 = np.percentile(sides, [10, 50, 90])
        meta["box_size_px"] = {"median": float(median), "p10": float(p10), "p90": float(p90)}
    return meta
