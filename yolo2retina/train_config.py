"""Every setting of a training run: :class:`TrainConfig` and the recipes' presets.

:class:`TrainConfig` validates each value when it is made (a bad one raises
:class:`~yolo2retina.errors.ConfigError` naming the setting) and round-trips through a plain
dict (what a checkpoint stores under ``"config"``). :data:`SCRATCH_CONFIG` and the
``DEMO_*`` presets are what ``yolo2retina train`` starts from.

Example:
    >>> TrainConfig(epochs=3).to_dict()["epochs"]
    3
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from yolo2retina.choices import (
    AMP_MODES,
    AUGMENT_POLICIES,
    LOSS_NORMS,
    METRICS,
    OPTIMIZERS,
    SCHEDULES,
    Amp,
    AugmentPolicy,
    LossNorm,
    Metric,
    Optimizer,
    Schedule,
)
from yolo2retina.errors import ConfigError

__all__ = [
    "DEMO_CONFIG",
    "DEMO_DATA",
    "DEMO_MODEL",
    "SCRATCH_CONFIG",
    "SCRATCH_MODEL",
    "TrainConfig",
]


def _one_of(*choices: str) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
        if value not in choices:
            raise ConfigError(f"{attr.name} must be one of {', '.join(choices)}; got {value!r}")

    return check


def _at_least(
    bound: float, *, strict: bool = False
) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_inst: Any, attr: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{attr.name} must be a number; got {value!r}")
        bad = value <= bound if strict else value < bound
        if bad or not math.isfinite(value):
            op = ">" if strict else ">="
            raise ConfigError(f"{attr.name} must be {op} {bound}; got {value!r}")

    return check


def _check_device(_inst: Any, attr: attrs.Attribute[Any], value: str) -> None:
    if value in ("auto", "cpu", "mps", "cuda") or value.startswith("cuda:"):
        return
    raise ConfigError(f"device must be auto, cuda, cuda:N, mps or cpu; got {value!r}")


def _path_str(value: str | os.PathLike[str]) -> str:
    return os.fspath(value)


def _optional_str(value: str | os.PathLike[str] | None) -> str | None:
    return None if value is None else os.fspath(value)


def _int_tuple(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


@attrs.frozen(kw_only=True)
class TrainConfig:
    """Every setting of :func:`~yolo2retina.train.fit`, validated when the config is made.

    Invalid values raise :class:`~yolo2retina.errors.ConfigError`.

    Attributes:
        epochs: passes over the training data.
        batch_size: images per step and per process.
        lr: peak learning rate (after warmup). For ``batch_size * accumulate * world_size``
            images per update; scale it yourself when that changes.
        optimizer: ``"sgd"`` (with momentum) or ``"adamw"``.
        momentum: SGD momentum (AdamW's beta1 stays 0.9).
        weight_decay: L2 weight decay (decoupled for AdamW).
        warmup_iters: optimizer steps of linear warmup from ``lr * warmup_factor``.
        warmup_epochs: warmup length in epochs instead (set at most one of the two).
        warmup_factor: learning-rate multiplier at the first step.
        schedule: decay after warmup: ``"cosine"`` down to ``lr * min_lr_ratio``, or
            ``"multistep"`` (``lr *= gamma`` at each epoch in ``milestones``).
        milestones: epochs at which ``"multistep"`` decays the learning rate.
        gamma: ``"multistep"`` decay factor.
        min_lr_ratio: final learning rate of ``"cosine"``, as a fraction of ``lr``.
        grad_clip: clip the gradients' global L2 norm to this; ``None`` to not clip.
        accumulate: batches whose gradients add up before each optimizer step.
        amp: mixed precision: ``"auto"`` is bf16 on CUDA GPUs that support it, fp16 (with a
            GradScaler) on older ones, off on CPU and MPS.
        device: ``"auto"`` picks cuda, then mps, then cpu.
        seed: seeds torch, NumPy, Python's ``random``, the data order and the workers.
        num_workers: DataLoader worker processes.
        val_every: validate every this many epochs (and always after the last one).
        metric: what picks ``best.pt`` and drives early stopping: ``"map50"``, ``"map"``,
            ``"map75"`` (higher is better) or ``"val_loss"`` (lower is better).
        patience: stop after this many validations without improvement; ``None`` never stops.
        out_dir: run folder for checkpoints, ``metrics.jsonl`` and ``curves.png``. A folder
            that already holds a run (any of :data:`~yolo2retina.run_folder.RUN_FILES`) is
            refused, unless ``resume`` is a checkpoint in it or ``overwrite`` is set.
        resume: a ``last.pt`` to continue from (its epoch count, optimizer, schedule and RNG).
        overwrite: replace the run in ``out_dir``: its files are deleted when training starts.
        progress: show the tqdm bar and print one summary line per epoch (rank 0 only).
        augment: the training augmentation policy (:data:`yolo2retina.augment.POLICIES`:
            ``"none"``, ``"light"``, ``"default"``, ``"strong"``) that
            :func:`~yolo2retina.train_recipe.run_training` (``yolo2retina train``) puts on the
            training dataset. :func:`~yolo2retina.train.fit` trains on the datasets as given:
            set their ``transforms`` yourself (:func:`yolo2retina.augment.augmentation`).
        crop_size: with :func:`~yolo2retina.train_recipe.run_training`, train on
            ``crop_size`` square crops of the ``img_size`` image (crop training for tiles much
            larger than the objects); ``None``: the policy's own crop, if any. Validation runs
            on whole images.
        loss_norm: ``"torchvision"`` divides each image's loss by its own foreground-anchor
            count; ``"batch"`` divides the batch's summed loss by a moving average of the
            batch's count (:func:`yolo2retina.losses.install_batch_normalized_loss`, applied
            by :func:`~yolo2retina.train.fit` for the run; its state is saved in ``last.pt``).
    """

    epochs: int = attrs.field(default=12, validator=_at_least(1))
    batch_size: int = attrs.field(default=4, validator=_at_least(1))
    lr: float = attrs.field(default=0.01, validator=_at_least(0.0, strict=True))
    optimizer: Optimizer = attrs.field(default="sgd", validator=_one_of(*OPTIMIZERS))
    momentum: float = attrs.field(default=0.9, validator=_at_least(0.0))
    weight_decay: float = attrs.field(default=1e-4, validator=_at_least(0.0))
    warmup_iters: int = attrs.field(default=0, validator=_at_least(0))
    warmup_epochs: float = attrs.field(default=0.0, validator=_at_least(0.0))
    warmup_factor: float = attrs.field(default=0.001, validator=_at_least(0.0, strict=True))
    schedule: Schedule = attrs.field(default="cosine", validator=_one_of(*SCHEDULES))
    milestones: tuple[int, ...] = attrs.field(default=(), converter=_int_tuple)
    gamma: float = attrs.field(default=0.1, validator=_at_least(0.0, strict=True))
    min_lr_ratio: float = attrs.field(default=0.01, validator=_at_least(0.0))
    grad_clip: float | None = attrs.field(default=10.0, validator=_at_least(0.0, strict=True))
    accumulate: int = attrs.field(default=1, validator=_at_least(1))
    amp: Amp = attrs.field(default="auto", validator=_one_of(*AMP_MODES))
    device: str = attrs.field(default="auto", validator=_check_device)
    seed: int = attrs.field(default=0, validator=_at_least(0))
    num_workers: int = attrs.field(default=2, validator=_at_least(0))
    val_every: int = attrs.field(default=1, validator=_at_least(1))
    metric: Metric = attrs.field(default="map50", validator=_one_of(*METRICS))
    patience: int | None = attrs.field(default=None, validator=_at_least(1))
    out_dir: str = attrs.field(default="runs/train", converter=_path_str)
    resume: str | None = attrs.field(default=None, converter=_optional_str)
    overwrite: bool = False
    progress: bool = True
    augment: AugmentPolicy = attrs.field(default="default", validator=_one_of(*AUGMENT_POLICIES))
    crop_size: int | None = attrs.field(default=None, validator=_at_least(1))
    loss_norm: LossNorm = attrs.field(default="torchvision", validator=_one_of(*LOSS_NORMS))

    def __attrs_post_init__(self) -> None:
        for name in ("epochs", "batch_size", "warmup_iters", "accumulate", "seed", "num_workers"):
            if not isinstance(getattr(self, name), int):
                raise ConfigError(f"{name} must be an integer; got {getattr(self, name)!r}")
        if self.crop_size is not None and not isinstance(self.crop_size, int):
            raise ConfigError(f"crop_size must be an integer or None; got {self.crop_size!r}")
        if self.patience is not None and not isinstance(self.patience, int):
            raise ConfigError(f"patience must be an integer or None; got {self.patience!r}")
        if self.warmup_iters and self.warmup_epochs:
            raise ConfigError("set warmup_iters or warmup_epochs, not both")
        if self.schedule == "multistep" and not self.milestones:
            raise ConfigError("schedule='multistep' needs milestones (epochs), e.g. (8, 11)")
        if list(self.milestones) != sorted(set(self.milestones)) or any(
            m < 1 for m in self.milestones
        ):
            raise ConfigError(
                f"milestones must be increasing positive epochs; got {self.milestones}"
            )
        if self.min_lr_ratio > 1:
            raise ConfigError(f"min_lr_ratio must lie in [0, 1]; got {self.min_lr_ratio}")

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (what a checkpoint stores under ``"config"``)."""
        d = attrs.asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """The inverse of :meth:`to_dict`; unknown keys raise
        :class:`~yolo2retina.errors.ConfigError`."""
        known = {f.name for f in attrs.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown TrainConfig settings: {', '.join(unknown)}")
        return cls(**dict(values))


# -- presets of ``yolo2retina train`` -------------------------------------------------------

#: Settings of the no-``--data`` demo: the synthetic sticky board, sized to train on a
#: 2-core CPU in under 10 minutes (see docs/training.md for the measurements).
DEMO_DATA: dict[str, Any] = {
    "n_images": 200,
    "image_size": 128,
    "seed": 0,
    "val_fraction": 0.2,
    "max_mites": 48,
}

#: The demo's model: a resnet18-FPN RetinaNet at 128 px (``build_retinanet`` / ``--img-size``).
DEMO_MODEL: dict[str, Any] = {"backbone": "resnet18_fpn", "img_size": 128}

#: The demo's :class:`TrainConfig` settings: 6 epochs of AdamW with a warmup and light
#: augmentation, validated every 2 epochs.
DEMO_CONFIG: dict[str, Any] = {
    "epochs": 6,
    "batch_size": 2,
    "val_every": 2,
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 0.05,
    "warmup_iters": 50,
    "num_workers": 0,
    "augment": "light",  # 128 px boards: flips and quarter turns; no crop, no scale jitter
}


#: What ``yolo2retina train`` uses, unless given on the command line, when it starts from
#: random weights (no ``--weights``): AdamW with a warmup is steadier than SGD at lr 0.01 on
#: a small set from scratch. See docs/training.md for the measurements (bench/real_accuracy.py).
SCRATCH_CONFIG: dict[str, Any] = {
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 0.05,
    "warmup_iters": 50,
    "batch_size": 2,  # what bench/real_accuracy.py measured (TrainConfig's default is 4)
    "crop_size": 512,  # native-scale crops: ~3x cheaper steps than whole 1024 px tiles
    "loss_norm": "batch",  # crops without mites made torchvision's per-image loss spike
}

#: The model ``yolo2retina train`` builds from random weights (no ``--weights``), unless
#: given on the command line: a resnet18-FPN RetinaNet with a 128-channel FPN and head,
#: about 2x cheaper per step on a CPU than torchvision's 256 channels; resnet50_fpn is
#: kept for ``--weights DEFAULT``. See docs/training.md (bench/real_accuracy.py).
SCRATCH_MODEL: dict[str, Any] = {"backbone": "resnet18_fpn", "fpn_channels": 128}
