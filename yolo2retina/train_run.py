"""The state of one :func:`~yolo2retina.train_fit.fit` call: set up, restored, announced.

:func:`set_up_run` checks everything before anything is written (precision, the resumed
checkpoint and its classes, the run folder), then prepares the run folder, seeds, loaders,
optimizer, schedule and scaler; :func:`restore_run` loads a resumed run's weights, optimizer,
schedule, scaler, RNG and bookkeeping; :func:`announce_run` wraps the model for
DistributedDataParallel and says what will run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from yolo2retina import distributed
from yolo2retina.checkpoint import Checkpoint
from yolo2retina.losses import BatchNormalizedLoss
from yolo2retina.run_folder import input_folders, prepare_out_dir
from yolo2retina.run_meta import dataset_meta, describe_model, plain
from yolo2retina.train_config import TrainConfig
from yolo2retina.train_resume import check_class_names, check_resumable
from yolo2retina.train_setup import (
    make_loader,
    make_lr_lambda,
    make_optimizer,
    resolve_amp,
    seed_everything,
    set_rng_state,
)

__all__: list[str] = []  # the parts of fit; nothing here is public API


@attrs.define
class TrainRun:
    """What one :func:`~yolo2retina.train_fit.fit` call trains with; made by :func:`set_up_run`."""

    config: TrainConfig
    device: torch.device
    info: distributed.DistInfo
    amp_dtype: torch.dtype | None
    say: Callable[[str], None]
    quiet: bool  # rank > 0, or config.progress off: no lines, no bar
    model: nn.Module
    train_dataset: Dataset[Any]
    val_dataset: Dataset[Any] | None
    loss: BatchNormalizedLoss | None
    resume: Checkpoint | None
    args: dict[str, Any]  # build_retinanet arguments, for the checkpoints
    names: list[str]
    meta: dict[str, Any]
    train_loader: DataLoader[Any]
    train_sampler: DistributedSampler[Any]
    val_loader: DataLoader[Any] | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    train_model: nn.Module  # the model, or its DistributedDataParallel wrapper

    @property
    def out_dir(self) -> Path:
        return Path(self.config.out_dir)


@attrs.define
class TrainProgress:
    """Where a :func:`~yolo2retina.train_fit.fit` call is: epoch, best metric, history."""

    start_epoch: int = 0
    epoch: int = 0
    best: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    history: list[dict[str, Any]] = attrs.Factory(list)
    steps_run: int = 0
    train_seconds: float = 0.0
    curves_noted: bool = False
    last_draw: float = attrs.Factory(time.monotonic)
    stopped_early: bool = False


def set_up_run(
    model: nn.Module,
    train_dataset: Dataset[Any],
    val_dataset: Dataset[Any] | None,
    config: TrainConfig,
    *,
    device: torch.device,
    info: distributed.DistInfo,
    loss: BatchNormalizedLoss | None,
    model_args: Mapping[str, Any] | None,
    class_names: Sequence[str] | None,
    meta: Mapping[str, Any] | None,
    log: Callable[[str], None] | None,
) -> TrainRun:
    """Check everything, then prepare the run folder, seeds, loaders and optimizer."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    quiet = not info.is_main or not config.progress
    say: Callable[[str], None] = _silent if quiet else (log or print)
    # every check before anything is written
    amp_dtype = resolve_amp(config.amp, device)
    names = list(
        class_names if class_names is not None else getattr(train_dataset, "class_names", ())
    )
    resume = _checked_resume(config, names)
    inputs = input_folders((train_dataset, val_dataset), meta)
    prepare_out_dir(Path(config.out_dir), config, inputs, is_main=info.is_main, say=say)
    seed_everything(config.seed + info.rank)
    args, run_meta = _describe(model, train_dataset, model_args, meta, say)
    train_loader, train_sampler = make_loader(
        train_dataset, config, info, shuffle=True, device=device
    )
    val_loader = None
    if val_dataset is not None and info.is_main:
        val_loader, _ = make_loader(
            val_dataset, config, distributed.DistInfo(), shuffle=False, device=device
        )
    model.to(device)
    model.train()
    optimizer = make_optimizer(model, config)
    steps_per_epoch = math.ceil(len(train_loader) / config.accumulate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, make_lr_lambda(config, steps_per_epoch)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    return TrainRun(
        config, device, info, amp_dtype, say, quiet, model, train_dataset, val_dataset, loss,
        resume, args, names, run_meta, train_loader, train_sampler, val_loader, optimizer,
        scheduler, scaler, train_model=model,
    )  # fmt: skip


def _checked_resume(config: TrainConfig, names: Sequence[str]) -> Checkpoint | None:
    """The checkpoint ``config.resume`` names, refused unless it resumes on these classes."""
    if config.resume is None:
        return None
    ckpt = Checkpoint.load(config.resume)
    check_resumable(config.resume, ckpt)
    if names:
        check_class_names(config.resume, ckpt.class_names, names)
    return ckpt


def _describe(
    model: nn.Module,
    train_dataset: Dataset[Any],
    model_args: Mapping[str, Any] | None,
    meta: Mapping[str, Any] | None,
    say: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checkpoints' ``model_args`` and ``meta``; says how the anchors were fitted."""
    args = plain(dict(model_args) if model_args is not None else describe_model(model))
    anchor_fit = getattr(model, "anchor_fit", None)  # set by build_retinanet(anchor_sizes="auto")
    if anchor_fit is not None:
        say(str(anchor_fit))
    run_meta = dataset_meta(train_dataset, args) | dict(meta or {})
    if anchor_fit is not None and hasattr(anchor_fit, "to_dict"):
        run_meta.setdefault("anchor_fit", anchor_fit.to_dict())
    return args, plain(run_meta)


def restore_run(run: TrainRun) -> TrainProgress:
    """Restore weights, optimizer, schedule, scaler, RNG and bookkeeping of a resumed run."""
    progress = TrainProgress()
    ckpt, say = run.resume, run.say
    if ckpt is not None:
        state = ckpt.training or {}
        run.model.load_state_dict(ckpt.model)
        run.optimizer.load_state_dict(state["optimizer"])
        run.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            run.scaler.load_state_dict(state["scaler"])
        progress.start_epoch = progress.epoch = ckpt.epoch
        progress.best = state.get("best_metric")
        progress.best_epoch = state.get("best_epoch")
        progress.bad_epochs = int(state.get("bad_epochs", 0))
        if "rng" in state and not run.info.distributed:
            set_rng_state(state["rng"])
        if run.loss is not None:
            if isinstance(state.get("loss_norm"), Mapping):
                run.loss.load_state_dict(state["loss_norm"])
            else:
                say("note: the checkpoint has no batch loss normaliser; its average starts anew")
        metrics_path = run.out_dir / "metrics.jsonl"
        if metrics_path.exists():
            from yolo2retina.plots.curves import read_metrics

            records = read_metrics(metrics_path)
            progress.history = [r for r in records if r.get("epoch", 0) <= ckpt.epoch]
        say(f"resumed from {run.config.resume} after epoch {ckpt.epoch}")
    if progress.start_epoch >= run.config.epochs:
        done, total = progress.start_epoch, run.config.epochs
        say(f"nothing to do: checkpoint already has {done} of {total} epochs")
    return progress


def announce_run(run: TrainRun) -> None:
    """Wrap the model for DistributedDataParallel when distributed; say what will run."""
    config, info = run.config, run.info
    if info.distributed:
        device_ids = [run.device.index] if run.device.type == "cuda" else None
        run.train_model = nn.parallel.DistributedDataParallel(run.model, device_ids=device_ids)
    run.say(
        f"training on {run.device} ({info.world_size} process(es)), {len(run.train_dataset)} images, "  # type: ignore[arg-type]
        f"{config.epochs} epochs x {len(run.train_loader)} batches of {config.batch_size}"
        + (f", amp {run.amp_dtype}" if run.amp_dtype is not None else "")
        + (
            f", loss normalised per batch (momentum {run.loss.momentum:g})"
            if run.loss is not None
            else ""
        )
    )


def _silent(_line: str) -> None:
    pass
