"""The epoch engine: one pass of training (:func:`train_one_epoch`) and of validation
(:func:`validate`: losses and mAP; :func:`run_validation` adds the F1-optimal score
threshold, from the same predictions).

:func:`yolo2retina.train.fit` runs them epoch after epoch; they also work alone, on any
torchvision detection model and a loader of :func:`yolo2retina.dataset.collate` batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence, Sized
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import attrs
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from yolo2retina import distributed
from yolo2retina.errors import ConfigError, NonFiniteLossError
from yolo2retina.score_threshold import ThresholdChoice, best_f1_threshold

__all__ = [
    "Validation",
    "recall_at",
    "run_validation",
    "train_one_epoch",
    "validate",
    "validation_losses",
]


def _to_device(
    images: Sequence[torch.Tensor], targets: Sequence[Mapping[str, Any]], device: torch.device
) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    imgs = [img.as_subclass(torch.Tensor).to(device, non_blocking=True) for img in images]
    tgts = [
        {
            "boxes": t["boxes"].as_subclass(torch.Tensor).to(device, non_blocking=True),
            "labels": t["labels"].to(device, non_blocking=True),
        }
        for t in targets
    ]
    return imgs, tgts


def _image_paths(dataset: Any, targets: Sequence[Mapping[str, Any]]) -> list[str]:
    """The files of a batch, via ``target["image_id"]`` and ``dataset.image_path``."""
    paths = []
    for t in targets:
        image_id = t.get("image_id")
        try:
            paths.append(str(dataset.image_path(int(image_id))))  # type: ignore[arg-type]
        except (AttributeError, TypeError, ValueError, IndexError):
            paths.append(f"image_id={image_id}")
    return paths


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[tuple[Sequence[torch.Tensor], Sequence[Mapping[str, Any]]]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    grad_clip: float | None = None,
    accumulate: int = 1,
    dataset: Any = None,
    dist_info: distributed.DistInfo | None = None,
    bar: tqdm[Any] | None = None,
) -> dict[str, float]:
    """Train for one pass over ``loader``; returns the mean of each loss component.

    Args:
        model: a torchvision detection model (or its DDP wrapper), in train mode.
        loader: yields ``(images, targets)`` as :func:`yolo2retina.dataset.collate` makes them.
        optimizer: stepped every ``accumulate`` batches and after the last batch.
        scheduler: stepped after every optimizer step.
        scaler: fp16 gradient scaler (``enabled=False`` for fp32 and bf16).
        device: where the model lives.
        amp_dtype: autocast dtype, or ``None`` for full precision.
        grad_clip: max global gradient L2 norm, or ``None``.
        accumulate: batches per optimizer step.
        dataset: looked up for image paths when the loss is not finite.
        dist_info: the job's ranks (a non-finite loss on any rank stops all of them).
        bar: a tqdm bar to advance and annotate.

    Raises:
        NonFiniteLossError: the loss was NaN or infinite; names the batch's images.
    """
    info = dist_info or distributed.DistInfo()
    model.train()
    sums: dict[str, float] = {}
    batches = 0
    steps = len(loader) if isinstance(loader, Sized) else None
    for i, (images, targets) in enumerate(loader):
        imgs, tgts = _to_device(images, targets, device)
        last_batch = steps is not None and i + 1 == steps
        sync = (i + 1) % accumulate == 0 or last_batch
        # DDP all-reduces gradients in backward; skip that on the batches that only accumulate
        no_sync = getattr(model, "no_sync", None)
        ctx: AbstractContextManager[Any] = (
            no_sync() if (no_sync is not None and not sync) else nullcontext()
        )
        with ctx:
            # forward (the model returns its loss components in train mode)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss_dict = model(imgs, tgts)
            loss = sum(loss_dict.values())
            # one host sync per step for all components (they may differ in dtype under AMP)
            parts = [loss.detach(), *(v.detach() for v in loss_dict.values())]
            values_list = torch.stack([p.float() for p in parts]).tolist()
            _stop_if_not_finite(values_list, list(loss_dict), i, targets, dataset, info, device)
            # backward, scaled for fp16 and divided so accumulated gradients average
            scaler.scale(loss / accumulate).backward()
        if sync:
            _step(model, optimizer, scheduler, scaler, grad_clip)
        batches += 1
        for k, v in zip(("loss", *loss_dict), values_list, strict=True):
            sums[k] = sums.get(k, 0.0) + v
        if bar is not None:
            bar.update(1)
            shown = {k: f"{v:.3f}" for k, v in zip(("loss", *loss_dict), values_list, strict=True)}
            bar.set_postfix(shown | {"lr": f"{optimizer.param_groups[0]['lr']:.2e}"}, refresh=False)
    return {k: v / max(batches, 1) for k, v in sums.items()}


def _stop_if_not_finite(
    values: Sequence[float],
    names: Sequence[str],
    batch: int,
    targets: Sequence[Mapping[str, Any]],
    dataset: Any,
    info: distributed.DistInfo,
    device: torch.device,
) -> None:
    """Raise on every rank when the loss (``values[0]``) is not finite on any rank.

    Every rank stops together, else the others would wait forever in the all-reduce.
    """
    bad_here = not math.isfinite(values[0])
    if distributed.any_true(bad_here, info, device):
        where = "" if bad_here else f" on another rank (this is rank {info.rank})"
        paths = _image_paths(dataset, targets) if bad_here else []
        parts = ", ".join(f"{k}={v:.4g}" for k, v in zip(names, values[1:], strict=True))
        raise NonFiniteLossError(f"loss is {values[0]} at batch {batch}{where} ({parts})", paths)


def _step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    grad_clip: float | None,
) -> None:
    """Clip (on unscaled gradients), step, zero the gradients, advance the schedule."""
    if grad_clip is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()


def _norm_layers_frozen(model: nn.Module) -> list[nn.Module]:
    """Put BatchNorm layers in eval mode (running stats used, not updated); return them."""
    frozen: list[nn.Module] = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
            m.eval()
            frozen.append(m)
    return frozen


@torch.no_grad()
def validation_losses(
    model: nn.Module,
    loader: Iterable[tuple[Sequence[torch.Tensor], Sequence[Mapping[str, Any]]]],
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Mean loss components on validation data, without touching the model's state.

    torchvision's RetinaNet computes losses only in train mode, so this runs in train mode
    under ``no_grad`` with every BatchNorm layer in eval mode, so that validation images do
    not update the running statistics (ResNets built without pretrained weights and
    MobileNets use plain BatchNorm; FrozenBatchNorm2d has nothing to update). The model's
    ``transform`` runs in eval mode too, so validation images are resized to the model's
    input size even when the training resize is off
    (:func:`yolo2retina.augment.set_train_resize`).
    """
    was_training = model.training
    model.train()
    _norm_layers_frozen(model)
    transform = getattr(model, "transform", None)
    if isinstance(transform, nn.Module):
        transform.eval()  # resize as at evaluation time; model.train(...) below restores it
    sums: dict[str, float] = {}
    batches = 0
    try:
        for images, targets in loader:
            imgs, tgts = _to_device(images, targets, device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss_dict = model(imgs, tgts)
            loss = sum(loss_dict.values())
            values = torch.stack([p.float() for p in (loss, *loss_dict.values())]).tolist()
            for k, v in zip(("loss", *loss_dict), values, strict=True):
                sums[k] = sums.get(k, 0.0) + v
            batches += 1
    finally:
        model.train(was_training)
    return {k: v / max(batches, 1) for k, v in sums.items()}


@attrs.frozen
class Validation:
    """What :func:`run_validation` measured.

    Attributes:
        record: the keys :func:`validate` returns (losses, and mAP when asked).
        score_threshold: the F1-optimal score threshold at IoU 0.5
            (:func:`~yolo2retina.score_threshold.best_f1_threshold`) on the same
            predictions as the mAP; ``None`` without mAP.
    """

    record: dict[str, float]
    score_threshold: ThresholdChoice | None = None


def run_validation(
    model: nn.Module,
    dataset: Dataset[Any],
    loader: Iterable[Any],
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    batch_size: int,
    with_map: bool,
) -> Validation:
    """:func:`validate`, plus the score threshold with the best F1 on the validation set.

    The threshold comes from the predictions the mAP is computed on: no extra forward pass.
    """
    losses = validation_losses(model, loader, device=device, amp_dtype=amp_dtype)
    record = {f"val_{k}" if k != "loss" else "val_loss": v for k, v in losses.items()}
    if not with_map:
        return Validation(record)
    from yolo2retina.coco_metric import coco_map
    from yolo2retina.evaluation import predict_dataset

    ground_truth = dataset.annotations  # type: ignore[attr-defined]
    preds = predict_dataset(model, dataset, batch_size=batch_size, device=device, progress=False)  # type: ignore[arg-type]
    metrics = coco_map(ground_truth, preds)
    record |= {"map": float(metrics.map), "map50": float(metrics.map50)}
    record["map75"] = float(metrics.map75)
    record["recall50"] = recall_at(metrics, 0.5)
    record["mar100"] = float(metrics.mar_100)
    model.train()
    return Validation(record, best_f1_threshold(ground_truth, preds, iou_threshold=0.5))


def validate(
    model: nn.Module,
    dataset: Dataset[Any],
    loader: Iterable[Any],
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    batch_size: int,
    with_map: bool,
) -> dict[str, float]:
    """Validation losses (``val_loss``, ``val_classification``, ...) and, if asked, mAP.

    mAP comes from :func:`yolo2retina.coco_metric.coco_map` on the predictions of
    :func:`yolo2retina.evaluation.predict_dataset` (what :func:`~yolo2retina.evaluation.evaluate`
    runs; keys ``map``, ``map50``, ``map75``), with the recall at IoU 0.5 (``recall50``) and
    COCO's AR@100 (``mar100``), both with up to 100 detections per image, averaged over the
    classes that have ground truth.
    """
    return run_validation(
        model, dataset, loader, device=device, amp_dtype=amp_dtype,
        batch_size=batch_size, with_map=with_map,
    ).record  # fmt: skip


def recall_at(metrics: Any, iou: float = 0.5) -> float:
    """Recall at one IoU threshold, area all, 100 detections, averaged over classes.

    Args:
        metrics: a :class:`yolo2retina.coco_metric.Metrics` (its ``recall`` array is
            ``(T, K, A, M) float64``: IoU thresholds x classes x area ranges x maxDets).
        iou: one of :data:`yolo2retina.coco_metric.IOU_THRESHOLDS` (0.5, 0.55, ..., 0.95).

    Returns:
        The mean over classes with ground truth, or ``-1.0`` when no class has any (as COCO).

    Raises:
        ConfigError: ``iou`` is not one of the thresholds.
    """
    from yolo2retina.coco_metric import IOU_THRESHOLDS

    hits = np.flatnonzero(np.isclose(IOU_THRESHOLDS, iou))
    if hits.size == 0:
        raise ConfigError(f"iou must be one of {[round(float(t), 2) for t in IOU_THRESHOLDS]}")
    per_class = np.asarray(metrics.recall)[int(hits[0]), :, 0, -1]
    valid = per_class[per_class > -1]
    return float(valid.mean()) if valid.size else -1.0
