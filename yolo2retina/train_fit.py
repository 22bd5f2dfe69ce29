"""The fit loop: :func:`fit` trains a model for ``config.epochs`` and writes the run folder.

Read it top to bottom: :func:`fit` sets up the device, data loaders, optimizer and schedule
(:func:`~yolo2retina.train_run.set_up_run`), restores a resumed run
(:func:`~yolo2retina.train_run.restore_run`), then alternates
:func:`~yolo2retina.train_loop.train_one_epoch` and
:func:`~yolo2retina.train_loop.validate`, and writes ``metrics.jsonl``, ``curves.png``,
``last.pt`` and ``best.pt`` into ``config.out_dir`` (:func:`_write_files`). The
validation that makes an epoch the best one also chooses predict's score threshold (the
best F1 at IoU 0.5, :mod:`yolo2retina.score_threshold`), kept in both checkpoints'
``meta["score_threshold"]``.

The same :func:`fit` runs unchanged under ``torchrun --nproc_per_node=N``: it wraps the
model in DistributedDataParallel, shards the data with a DistributedSampler, and only rank 0
logs, validates and writes files.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from yolo2retina import distributed
from yolo2retina.atomic import atomic_write_text
from yolo2retina.checkpoint import Checkpoint
from yolo2retina.device import resolve_device
from yolo2retina.losses import loss_normalisation
from yolo2retina.run_meta import plain
from yolo2retina.score_threshold import DEFAULT_SCORE_THRESHOLD, META_KEY, ThresholdChoice
from yolo2retina.train_config import TrainConfig
from yolo2retina.train_loop import run_validation, train_one_epoch
from yolo2retina.train_run import (
    TrainProgress,
    TrainRun,
    announce_run,
    restore_run,
    set_up_run,
)
from yolo2retina.train_setup import rng_state

__all__ = ["FitResult", "fit"]

#: ``curves.png`` is redrawn after an epoch when this many seconds passed since the last
#: drawing, and always after the last epoch.
CURVES_EVERY_S = 60.0

#: Metrics where larger is better; every other metric is a loss (smaller is better).
_MAXIMISED = frozenset({"map50", "map", "map75"})


@attrs.frozen
class FitResult:
    """What :func:`fit` did.

    Attributes:
        out_dir: the run folder.
        last_checkpoint: ``last.pt`` (the final epoch).
        best_checkpoint: ``best.pt`` (best ``metric``; the last epoch without validation data).
        metric: the metric that chose ``best.pt``.
        best_metric: its best value, or ``None`` without validation.
        best_epoch: the epoch of ``best.pt``.
        epochs_completed: epochs trained in total, resumed ones included.
        stopped_early: whether ``patience`` ended training.
        history: one record per epoch, as in ``metrics.jsonl``.
        train_steps: optimizer-side batches run in this call (not counting resumed epochs).
        train_seconds: wall time of those batches (data loading included, validation not).
    """

    out_dir: Path
    last_checkpoint: Path
    best_checkpoint: Path
    metric: str
    best_metric: float | None
    best_epoch: int | None
    epochs_completed: int
    stopped_early: bool
    history: tuple[dict[str, Any], ...]
    train_steps: int
    train_seconds: float

    @property
    def final(self) -> dict[str, Any]:
        """The last epoch's record (empty if no epoch ran)."""
        return self.history[-1] if self.history else {}


def fit(
    model: nn.Module,
    train_dataset: Dataset[Any],
    val_dataset: Dataset[Any] | None,
    config: TrainConfig,
    *,
    model_args: Mapping[str, Any] | None = None,
    class_names: Sequence[str] | None = None,
    meta: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> FitResult:
    """Train ``model`` on ``train_dataset``, validating on ``val_dataset``.

    Each epoch appends a record to ``out_dir/metrics.jsonl``, redraws ``curves.png`` (when
    matplotlib is installed) and writes ``last.pt``; ``best.pt`` follows ``config.metric``.
    Under ``torchrun`` the model is wrapped in DistributedDataParallel and only rank 0
    validates, logs and writes files.

    Args:
        model: a torchvision detection model that returns a loss dict in train mode
            (e.g. from :func:`yolo2retina.model.build_retinanet`).
        train_dataset: yields ``(image, target)`` like :class:`~yolo2retina.dataset.DetectionDataset`.
        val_dataset: the same for validation, or ``None`` to train without validation.
        config: all settings.
        model_args: the ``build_retinanet`` keyword arguments that rebuild ``model``; stored in
            checkpoints for :func:`yolo2retina.model.load_model`. Read back from the model
            when omitted (with ``backbone=None``).
        class_names: stored in checkpoints; default ``train_dataset.class_names``.
        meta: extra ``meta`` for checkpoints; defaults come from
            :func:`~yolo2retina.run_meta.dataset_meta`.
        log: where summary lines go (default ``print`` on rank 0 when ``config.progress``).

    Returns:
        A :class:`FitResult`.

    Raises:
        NonFiniteLossError: a loss became NaN or infinite (names the batch's image files).
        ConfigError: an impossible setting (e.g. ``device="cuda"`` without CUDA) or an
            unusable ``resume`` checkpoint.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    device = resolve_device(config.device, local_rank=local_rank)
    info = distributed.setup(device.type)
    try:
        with loss_normalisation(model, config.loss_norm) as loss:
            run = set_up_run(
                model, train_dataset, val_dataset, config, device=device, info=info, loss=loss,
                model_args=model_args, class_names=class_names, meta=meta, log=log,
            )  # fmt: skip
            progress = restore_run(run)
            _restore_score_threshold(run)
            announce_run(run)
            _train(run, progress)
            _say_score_threshold(run)
            return _result(run, progress)
    finally:
        distributed.teardown(info)


def _train(run: TrainRun, progress: TrainProgress) -> None:
    """The epochs: train, validate, write (rank 0), stop early when patience runs out."""
    config = run.config
    for epoch in range(progress.start_epoch + 1, config.epochs + 1):
        progress.epoch = epoch
        record = _train_epoch(run, progress)
        improved, due = _validate_epoch(run, progress, record)
        stop = config.patience is not None and progress.bad_epochs >= config.patience
        stop = bool(distributed.broadcast_object(stop, run.info))
        progress.history.append(record)
        if run.info.is_main:
            _write_files(run, progress, improved, last=stop or epoch == config.epochs)
        run.say(_summary(record, config.metric, improved and due))
        if stop:
            run.say(
                f"early stop: {config.metric} did not improve for {config.patience} validation(s)"
            )
            progress.stopped_early = True
            break


def _train_epoch(run: TrainRun, progress: TrainProgress) -> dict[str, Any]:
    """One pass over the training data; the epoch's record (losses, lr, seconds)."""
    config, epoch, loader = run.config, progress.epoch, run.train_loader
    run.train_sampler.set_epoch(epoch)  # the shuffle depends on (seed, epoch) only
    if loader.generator is not None:  # and so do the workers' seeds
        loader.generator.manual_seed(config.seed + 1_000_003 * run.info.rank + epoch)
    bar = tqdm(
        total=len(loader),
        desc=f"epoch {epoch}/{config.epochs}",
        disable=run.quiet,
        leave=False,
        dynamic_ncols=True,
    )
    t0 = time.perf_counter()
    with bar:
        stats = train_one_epoch(
            run.train_model, loader, run.optimizer, run.scheduler, run.scaler,
            device=run.device, amp_dtype=run.amp_dtype, grad_clip=config.grad_clip,
            accumulate=config.accumulate, dataset=run.train_dataset, dist_info=run.info, bar=bar,
        )  # fmt: skip
    seconds = time.perf_counter() - t0
    progress.train_seconds += seconds
    progress.steps_run += len(loader)
    record: dict[str, Any] = {"epoch": epoch, "lr": run.optimizer.param_groups[0]["lr"]}
    record |= {f"train_{k}" if k != "loss" else "train_loss": v for k, v in stats.items()}
    record["train_seconds"] = round(seconds, 3)
    return record


def _validate_epoch(
    run: TrainRun, progress: TrainProgress, record: dict[str, Any]
) -> tuple[bool, bool]:
    """Validate on rank 0 when due (adding to ``record``); ``(improved, validated)``."""
    config, epoch, metric = run.config, progress.epoch, run.config.metric
    due = run.val_loader is not None and (epoch % config.val_every == 0 or epoch == config.epochs)
    improved = False
    if due and run.val_loader is not None and run.val_dataset is not None:
        found = run_validation(
            run.model, run.val_dataset, run.val_loader, device=run.device,
            amp_dtype=run.amp_dtype, batch_size=config.batch_size, with_map=True,
        )  # fmt: skip
        record |= found.record
        improved = _improved(metric, record[metric], progress.best)
        if improved:
            progress.best, progress.best_epoch = float(record[metric]), epoch
            progress.bad_epochs = 0
            _keep_score_threshold(run, found.score_threshold)
        else:
            progress.bad_epochs += 1
    elif run.val_dataset is None:
        improved, progress.best_epoch = True, epoch
        _keep_score_threshold(run, None)  # best.pt becomes a model nobody validated
    return improved, due


def _keep_score_threshold(run: TrainRun, choice: ThresholdChoice | None) -> None:
    """Record the best epoch's threshold in the checkpoints' meta (drop a stale one)."""
    if choice is None:
        run.meta.pop(META_KEY, None)
    else:
        run.meta[META_KEY] = choice.to_meta()


def _restore_score_threshold(run: TrainRun) -> None:
    """A resumed run keeps the threshold of its best epoch so far (``last.pt`` has it)."""
    if run.resume is not None and META_KEY in run.resume.meta:
        run.meta.setdefault(META_KEY, plain(run.resume.meta[META_KEY]))


def _say_score_threshold(run: TrainRun) -> None:
    """One line: the threshold ``yolo2retina predict`` will use by default."""
    entry = run.meta.get(META_KEY)
    if not isinstance(entry, Mapping):
        return
    if entry.get("score") is None:
        run.say(
            "score threshold for predict: none chosen (no true positive on val at the best"
            f" epoch); predict uses {DEFAULT_SCORE_THRESHOLD:g} unless given --score"
        )
        return
    run.say(
        f"score threshold for predict: {entry['score']:.3g} (best F1 {entry['f1']:.2f} on val:"
        f" precision {entry['precision']:.2f}, recall {entry['recall']:.2f})"
    )


def _improved(metric: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value > best if metric in _MAXIMISED else value < best


def _write_files(run: TrainRun, progress: TrainProgress, improved: bool, *, last: bool) -> None:
    """Rank 0 writes metrics.jsonl, last.pt, best.pt (when improved) and curves.png."""
    out_dir = run.out_dir
    text = "".join(json.dumps(rec) + "\n" for rec in progress.history)
    atomic_write_text(out_dir / "metrics.jsonl", text)
    checkpoint = _checkpoint(run, progress)
    checkpoint.save(out_dir / "last.pt")
    if improved or not (out_dir / "best.pt").exists():
        # best.pt is for predicting and fine-tuning: weights and metadata, without the
        # optimizer state that triples a checkpoint's size (resume reads last.pt)
        checkpoint.for_inference().save(out_dir / "best.pt")
    # matplotlib takes seconds per figure on a busy CPU: redraw at most once a minute
    if last or time.monotonic() - progress.last_draw >= CURVES_EVERY_S:
        progress.curves_noted = _draw_curves(
            progress.history, out_dir / "curves.png", run.say, progress.curves_noted
        )
        progress.last_draw = time.monotonic()


def _checkpoint(run: TrainRun, progress: TrainProgress) -> Checkpoint:
    """Everything an exact resume needs, after ``progress.epoch``."""
    return Checkpoint(
        model=run.model.state_dict(),
        model_args=run.args,
        class_names=run.names,
        meta=run.meta,
        config=run.config.to_dict(),
        epoch=progress.epoch,
        training={
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict(),
            "rng": rng_state(),
            "best_metric": progress.best,
            "best_epoch": progress.best_epoch,
            "bad_epochs": progress.bad_epochs,
            "metric": run.config.metric,
            "loss_norm": run.loss.state_dict() if run.loss is not None else None,
        },
    )


def _result(run: TrainRun, progress: TrainProgress) -> FitResult:
    return FitResult(
        out_dir=run.out_dir,
        last_checkpoint=run.out_dir / "last.pt",
        best_checkpoint=run.out_dir / "best.pt",
        metric=run.config.metric,
        best_metric=progress.best,
        best_epoch=progress.best_epoch,
        epochs_completed=max(progress.epoch, progress.start_epoch),
        stopped_early=progress.stopped_early,
        history=tuple(progress.history),
        train_steps=progress.steps_run,
        train_seconds=progress.train_seconds,
    )


def _draw_curves(
    history: Sequence[Mapping[str, Any]], path: Path, say: Callable[[str], None], noted: bool
) -> bool:
    from yolo2retina.plots.curves import plot_curves

    try:
        plot_curves(history, path)
    except ImportError as e:
        if not noted:
            say(f"note: {path.name} not drawn: {e}")
        return True
    return noted


def _summary(record: Mapping[str, Any], metric: str, best: bool) -> str:
    parts = [f"epoch {record['epoch']}", f"loss {record['train_loss']:.4f}"]
    for key in ("val_loss", "map50", "map"):
        if key in record:
            parts.append(f"{key} {record[key]:.4f}")
    parts.append(f"lr {record['lr']:.2e}")
    parts.append(f"{record['train_seconds']:.0f}s")
    if best:
        parts.append(f"best {metric}")
    return ", ".join(parts)
