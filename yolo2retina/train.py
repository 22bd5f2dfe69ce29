"""The training loop: :class:`TrainConfig`, :func:`fit`, checkpoints and exact resume.

Read it top to bottom: :func:`fit` sets up the device, data loaders, optimizer and schedule,
then alternates :func:`train_one_epoch` and :func:`validate`, and writes ``metrics.jsonl``,
``curves.png``, ``last.pt`` and ``best.pt`` into ``config.out_dir``.

The same :func:`fit` runs unchanged under ``torchrun --nproc_per_node=N``: it wraps the
model in DistributedDataParallel, shards the data with a DistributedSampler, and only rank 0
logs, validates and writes files.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal

import attrs
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from yolo2retina import distributed
from yolo2retina.atomic import atomic_write_text
from yolo2retina.augment import POLICIES
from yolo2retina.checkpoint import TRAINING_ONLY_KEYS as TRAINING_ONLY_KEYS
from yolo2retina.checkpoint import Checkpoint
from yolo2retina.dataset import collate
from yolo2retina.errors import ConfigError, NonFiniteLossError
from yolo2retina.losses import (
    LOSS_NORMS,
    BatchNormalizedLoss,
    install_batch_normalized_loss,
    remove_batch_normalized_loss,
)

__all__ = [
    "FitResult",
    "TrainConfig",
    "TrainingSetup",
    "check_class_names",
    "check_out_dir",
    "fit",
    "load_checkpoint",
    "prepare_training",
    "remove_stale_temp_files",
    "run_files",
    "run_training",
    "save_checkpoint",
    "seed_everything",
    "train_one_epoch",
    "validate",
]

Optimizer = Literal["sgd", "adamw"]
Schedule = Literal["cosine", "multistep"]
Amp = Literal["auto", "bf16", "fp16", "off"]
Metric = Literal["map50", "map", "map75", "val_loss"]
AugmentPolicy = Literal["none", "light", "default", "strong"]
LossNorm = Literal["torchvision", "batch"]

#: ``curves.png`` is redrawn after an epoch when this many seconds passed since the last
#: drawing, and always after the last epoch.
CURVES_EVERY_S = 60.0

#: Metrics where larger is better; every other metric is a loss (smaller is better).
_MAXIMISED = frozenset({"map50", "map", "map75"})

#: The files a run writes into its folder. A folder holding any of them holds a run, which
#: :func:`fit` does not replace unless ``TrainConfig.overwrite`` (or resumes it).
RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "curves.png")

#: A temporary file of an interrupted save older than this is stale even when a process
#: with its pid is running (the pid may have been reused), or when its name has no pid.
STALE_TMP_AGE_S = 3600.0

#: The temporary files of a save beside a run file: ``.last.pt.<pid>.tmp`` (saves before
#: :mod:`yolo2retina.atomic`) and ``.last.pt.<8 random characters>.tmp``
#: (:func:`yolo2retina.atomic.atomic_path`, optionally after a ``<pid>.``).
_TMP_NAME = re.compile(
    r"\A\.(?P<name>.+?)\.(?:(?P<pid>[0-9]{1,7})(?:\.[a-z0-9_]{8})?|[a-z0-9_]{8})\.tmp\Z"
)


# -- configuration ----------------------------------------------------------------------


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
    """Every setting of :func:`fit`, validated when the config is made.

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
            that already holds a run (any of :data:`RUN_FILES`) is refused, unless ``resume``
            is a checkpoint in it or ``overwrite`` is set.
        resume: a ``last.pt`` to continue from (its epoch count, optimizer, schedule and RNG).
        overwrite: replace the run in ``out_dir``: its files are deleted when training starts.
        progress: show the tqdm bar and print one summary line per epoch (rank 0 only).
        augment: the training augmentation policy (:data:`yolo2retina.augment.POLICIES`:
            ``"none"``, ``"light"``, ``"default"``, ``"strong"``) that :func:`run_training`
            (``yolo2retina train``) puts on the training dataset. :func:`fit` trains on the
            datasets as given: set their ``transforms`` yourself
            (:func:`yolo2retina.augment.augmentation`).
        crop_size: with :func:`run_training`, train on ``crop_size`` square crops of the
            ``img_size`` image (crop training for tiles much larger than the objects);
            ``None``: the policy's own crop, if any. Validation runs on whole images.
        loss_norm: ``"torchvision"`` divides each image's loss by its own foreground-anchor
            count; ``"batch"`` divides the batch's summed loss by a moving average of the
            batch's count (:func:`yolo2retina.losses.install_batch_normalized_loss`, applied
            by :func:`fit` for the run; its state is saved in ``last.pt``).
    """

    epochs: int = attrs.field(default=12, validator=_at_least(1))
    batch_size: int = attrs.field(default=4, validator=_at_least(1))
    lr: float = attrs.field(default=0.01, validator=_at_least(0.0, strict=True))
    optimizer: Optimizer = attrs.field(default="sgd", validator=_one_of("sgd", "adamw"))
    momentum: float = attrs.field(default=0.9, validator=_at_least(0.0))
    weight_decay: float = attrs.field(default=1e-4, validator=_at_least(0.0))
    warmup_iters: int = attrs.field(default=0, validator=_at_least(0))
    warmup_epochs: float = attrs.field(default=0.0, validator=_at_least(0.0))
    warmup_factor: float = attrs.field(default=0.001, validator=_at_least(0.0, strict=True))
    schedule: Schedule = attrs.field(default="cosine", validator=_one_of("cosine", "multistep"))
    milestones: tuple[int, ...] = attrs.field(default=(), converter=_int_tuple)
    gamma: float = attrs.field(default=0.1, validator=_at_least(0.0, strict=True))
    min_lr_ratio: float = attrs.field(default=0.01, validator=_at_least(0.0))
    grad_clip: float | None = attrs.field(default=10.0, validator=_at_least(0.0, strict=True))
    accumulate: int = attrs.field(default=1, validator=_at_least(1))
    amp: Amp = attrs.field(default="auto", validator=_one_of("auto", "bf16", "fp16", "off"))
    device: str = attrs.field(default="auto", validator=_check_device)
    seed: int = attrs.field(default=0, validator=_at_least(0))
    num_workers: int = attrs.field(default=2, validator=_at_least(0))
    val_every: int = attrs.field(default=1, validator=_at_least(1))
    metric: Metric = attrs.field(
        default="map50", validator=_one_of("map50", "map", "map75", "val_loss")
    )
    patience: int | None = attrs.field(default=None, validator=_at_least(1))
    out_dir: str = attrs.field(default="runs/train", converter=_path_str)
    resume: str | None = attrs.field(default=None, converter=_optional_str)
    overwrite: bool = False
    progress: bool = True
    augment: AugmentPolicy = attrs.field(default="default", validator=_one_of(*POLICIES))
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
        """The inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        known = {f.name for f in attrs.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown TrainConfig settings: {', '.join(unknown)}")
        return cls(**dict(values))


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


# -- checkpoints --------------------------------------------------------------------------


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Save a checkpoint dict atomically (:meth:`Checkpoint.save <yolo2retina.checkpoint.Checkpoint.save>`).

    A crash mid-write leaves the previous checkpoint intact.

    Raises:
        ConfigError: ``state`` lacks ``model``, ``model_args`` or ``class_names``.
    """
    return Checkpoint.from_dict(state).save(path)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint written by :func:`fit` with ``torch.load(weights_only=True)``.

    Nothing in the file is executed: it holds only tensors and plain Python values. The
    dict has the file's keys (:meth:`Checkpoint.to_dict <yolo2retina.checkpoint.Checkpoint.to_dict>`).

    Raises:
        ConfigError: the file is missing or is not a yolo2retina checkpoint.
    """
    return Checkpoint.load(path).to_dict()


def check_resumable(path: str | os.PathLike[str], state: Mapping[str, Any]) -> None:
    """Refuse to resume a checkpoint without the optimizer state (a ``best.pt``).

    Raises:
        ConfigError: ``state`` lacks the optimizer or schedule that an exact resume needs.
    """
    missing = [k for k in ("optimizer", "scheduler", "epoch") if k not in state]
    if missing:
        raise ConfigError(
            f"{path}: cannot resume from it: it holds no {', '.join(missing)} state "
            "(best.pt keeps weights only); resume from the run's last.pt, "
            "or start a new run from these weights with --weights"
        )


def check_class_names(
    checkpoint: str | os.PathLike[str], trained: Sequence[str], data: Sequence[str]
) -> None:
    """Refuse to resume a checkpoint trained on other classes than the data's.

    Args:
        checkpoint: the checkpoint's path (for the message).
        trained: its ``class_names``.
        data: the training data's class names.

    Raises:
        ConfigError: the names differ (in number, spelling or order), naming both lists.
    """
    a, b = [str(n) for n in trained], [str(n) for n in data]
    if a == b:
        return
    raise ConfigError(
        f"{checkpoint}: the checkpoint was trained on {_names(a)} but the data has {_names(b)}; "
        "resume with the data it was trained on, or start a new run (--weights) for these classes"
    )


def _names(names: Sequence[str], limit: int = 10) -> str:
    """``3 classes ['a', 'b', 'c']``, the list cut after ``limit`` names."""
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f", ... {len(names) - limit} more" if len(names) > limit else ""
    return f"{len(names)} class{'es' if len(names) != 1 else ''} [{shown}{more}]"


# -- the run folder -----------------------------------------------------------------------


def run_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The :data:`RUN_FILES` that ``folder`` holds (an empty list for a new folder)."""
    f = Path(folder)
    return [f / name for name in RUN_FILES if (f / name).exists()]


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def check_out_dir(
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    resume: str | os.PathLike[str] | None = None,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Refuse a run folder that would replace an earlier run or write into the data.

    Nothing is written. Symlinks and relative paths are resolved before comparing.

    Args:
        out_dir: the run folder (it need not exist).
        overwrite: allow a folder that holds a run (its files will be replaced).
        resume: the checkpoint being resumed; a run in the checkpoint's own folder is allowed.
        inputs: data files or folders (a ``data.yaml``, a COCO ``.json``, an image folder);
            ``out_dir`` may not be, or lie inside, any of their folders.

    Raises:
        ConfigError: ``out_dir`` is a file, lies inside an input's folder, or holds a run
            (and neither ``overwrite`` nor a ``resume`` from it is given).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; choose another --out")
    real = out.resolve()
    for src in inputs:
        root = Path(src).resolve()
        root = root if root.is_dir() else root.parent
        if _inside(real, root):
            raise ConfigError(
                f"{out}: the run folder would be inside the dataset folder {root}; "
                "choose an --out outside it"
            )
    found = run_files(out)
    if not found or overwrite:
        return
    if resume is not None and Path(resume).resolve().parent == real:
        return
    raise ConfigError(
        f"{out}: already holds a training run ({', '.join(p.name for p in found)}); "
        "choose another --out, pass overwrite=True (CLI: --overwrite) to replace it, "
        f"or resume it (CLI: --resume {out / 'last.pt'})"
    )


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (always ``True`` on Windows)."""
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        return True
    if pid == os.getpid():  # an earlier save in this process was interrupted
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it runs, as another user
        return True
    return True


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> list[tuple[Path, int]]:
    """Delete the temporary files that interrupted saves left in ``folder``.

    Only the library's own names are candidates: ``.<run file>.<pid>.tmp`` and
    :func:`~yolo2retina.atomic.atomic_path`'s ``.<run file>.<random>.tmp`` for the
    :data:`RUN_FILES`. One is stale when no process with that pid runs on this machine,
    when the pid is this process's, or when it is older than :data:`STALE_TMP_AGE_S` (a
    name without a pid: only then).

    Returns:
        ``(path, size in bytes)`` of each file removed.
    """
    f = Path(folder)
    if not f.is_dir():
        return []
    removed: list[tuple[Path, int]] = []
    now = time.time()
    for entry in sorted(f.iterdir()):
        m = _TMP_NAME.match(entry.name)
        if m is None or m.group("name") not in RUN_FILES or not entry.is_file():
            continue
        try:
            st = entry.stat()
            pid = m.group("pid")
            alive = pid is None or _pid_alive(int(pid))
            if alive and now - st.st_mtime < STALE_TMP_AGE_S:
                continue
            entry.unlink()
        except FileNotFoundError:  # its writer renamed it meanwhile
            continue
        removed.append((entry, st.st_size))
    return removed


def _input_folders(datasets: Iterable[Any], meta: Mapping[str, Any] | None) -> list[str]:
    """The data source (``meta["data"]``) and one image of each folder holding images."""
    found: dict[str, str] = {}
    if meta and meta.get("data"):
        found[""] = os.fspath(meta["data"])
    for ds in datasets:
        paths = getattr(getattr(ds, "annotations", None), "paths", None)
        for path in paths if paths is not None else ():
            found.setdefault(os.path.dirname(str(path)), str(path))
    return sorted(found.values())


def _prepare_out_dir(
    out_dir: Path,
    config: TrainConfig,
    inputs: Sequence[str],
    info: distributed.DistInfo,
    say: Callable[[str], None],
) -> None:
    """Check ``out_dir`` on every rank; on rank 0 create it and clear what must go."""
    check_out_dir(out_dir, overwrite=config.overwrite, resume=config.resume, inputs=inputs)
    if not info.is_main:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    resuming_here = (
        config.resume is not None and Path(config.resume).resolve().parent == out_dir.resolve()
    )
    old = run_files(out_dir)
    if config.overwrite and old and not resuming_here:
        for path in old:
            path.unlink()
        say(f"overwrite: removed the earlier run's {', '.join(p.name for p in old)} from {out_dir}")
    stale = remove_stale_temp_files(out_dir)
    if stale:
        mb = sum(size for _, size in stale) / 1e6
        say(
            f"removed {len(stale)} temporary file(s) of an interrupted save from {out_dir} "
            f"({', '.join(p.name for p, _ in stale)}; {mb:.1f} MB)"
        )


def _rng_state() -> dict[str, torch.Tensor]:
    """Every RNG that training touches, as tensors (so ``weights_only`` loading works)."""
    np_state: tuple[Any, ...] = tuple(np.random.get_state())
    py_version, py_mt, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64).copy()),
        "numpy_pos": torch.tensor([int(np_state[2]), int(np_state[3])], dtype=torch.int64),
        "numpy_gauss": torch.tensor(float(np_state[4]), dtype=torch.float64),
        "python": torch.tensor([py_version, *py_mt], dtype=torch.int64),
        "python_gauss": torch.tensor(
            math.nan if py_gauss is None else py_gauss, dtype=torch.float64
        ),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    return state


def _set_rng_state(state: Mapping[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    pos, has_gauss = (int(v) for v in state["numpy_pos"].tolist())
    np.random.set_state(("MT19937", keys, pos, has_gauss, float(state["numpy_gauss"])))
    py = [int(v) for v in state["python"].tolist()]
    gauss = float(state["python_gauss"])
    random.setstate((py[0], tuple(py[1:]), None if math.isnan(gauss) else gauss))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = list(state["cuda"])
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every CUDA device).

    :func:`run_training` calls it before it builds the model, and :func:`fit` again (with
    ``seed + rank``) before training. Call it yourself before building a model for
    :func:`fit` so that its initial weights repeat too.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _seed_worker(worker_id: int) -> None:
    # DataLoader seeds torch in each worker from its generator; derive NumPy and random from it
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


# -- devices, precision, schedule -------------------------------------------------------


def _resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but CUDA is not available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device='mps' but MPS is not available")
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def _resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or ``None`` for full precision."""
    if amp == "off":
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError(f"amp='fp16' needs a CUDA device; got {device}")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def _warmup_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    if config.warmup_iters:
        return config.warmup_iters
    return round(config.warmup_epochs * steps_per_epoch)


def make_lr_lambda(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The learning-rate multiplier after ``step`` optimizer steps: warmup, then decay."""
    total = config.epochs * steps_per_epoch
    warmup = min(_warmup_steps(config, steps_per_epoch), total)
    milestone_steps = [m * steps_per_epoch for m in config.milestones]

    def factor(step: int) -> float:
        if step < warmup:  # linear from warmup_factor to 1
            alpha = step / warmup
            warm = config.warmup_factor * (1 - alpha) + alpha
        else:
            warm = 1.0
        if config.schedule == "multistep":
            return warm * config.gamma ** sum(step >= m for m in milestone_steps)
        progress = min(max(step - warmup, 0) / max(total - warmup, 1), 1.0)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return warm * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)

    return factor


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # no weight decay on norm layers and biases, as torchvision's references do
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=config.lr)


# -- one epoch ---------------------------------------------------------------------------


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
            # stop every rank together, else the others would wait forever in all-reduce
            bad_here = not math.isfinite(values_list[0])
            if distributed.any_true(bad_here, info, device):
                where = "" if bad_here else f" on another rank (this is rank {info.rank})"
                paths = _image_paths(dataset, targets) if bad_here else []
                raise NonFiniteLossError(
                    f"loss is {values_list[0]} at batch {i}{where} "
                    f"({', '.join(f'{k}={v:.4g}' for k, v in zip(loss_dict, values_list[1:], strict=True))})",
                    paths,
                )
            # backward, scaled for fp16 and divided so accumulated gradients average
            scaler.scale(loss / accumulate).backward()
        if sync:
            # clip (on unscaled gradients), step, zero_grad
            if grad_clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
        batches += 1
        for k, v in zip(("loss", *loss_dict), values_list, strict=True):
            sums[k] = sums.get(k, 0.0) + v
        if bar is not None:
            bar.update(1)
            shown = {k: f"{v:.3f}" for k, v in zip(("loss", *loss_dict), values_list, strict=True)}
            bar.set_postfix(shown | {"lr": f"{optimizer.param_groups[0]['lr']:.2e}"}, refresh=False)
    return {k: v / max(batches, 1) for k, v in sums.items()}


# -- validation --------------------------------------------------------------------------


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

    mAP comes from :func:`yolo2retina.evaluate.evaluate` (keys ``map``, ``map50``, ``map75``),
    with the recall at IoU 0.5 (``recall50``) and COCO's AR@100 (``mar100``), both with up
    to 100 detections per image, averaged over the classes that have ground truth.
    """
    losses = validation_losses(model, loader, device=device, amp_dtype=amp_dtype)
    record = {f"val_{k}" if k != "loss" else "val_loss": v for k, v in losses.items()}
    if with_map:
        from yolo2retina.evaluate import evaluate  # type: ignore[import-not-found,unused-ignore]

        metrics = evaluate(model, dataset, batch_size=batch_size, device=device, progress=False)  # type: ignore[arg-type]
        record |= {"map": float(metrics.map), "map50": float(metrics.map50)}
        record["map75"] = float(metrics.map75)
        record["recall50"] = recall_at(metrics, 0.5)
        record["mar100"] = float(metrics.mar_100)
        model.train()
    return record


def recall_at(metrics: Any, iou: float = 0.5) -> float:
    """Recall at one IoU threshold, area all, 100 detections, averaged over classes.

    Args:
        metrics: a :class:`yolo2retina.evaluate.Metrics` (its ``recall`` array is
            ``(T, K, A, M) float64``: IoU thresholds x classes x area ranges x maxDets).
        iou: one of :data:`yolo2retina.evaluate.IOU_THRESHOLDS` (0.5, 0.55, ..., 0.95).

    Returns:
        The mean over classes with ground truth, or ``-1.0`` when no class has any (as COCO).

    Raises:
        ConfigError: ``iou`` is not one of the thresholds.
    """
    from yolo2retina.evaluate import IOU_THRESHOLDS  # type: ignore[import-not-found,unused-ignore]

    hits = np.flatnonzero(np.isclose(IOU_THRESHOLDS, iou))
    if hits.size == 0:
        raise ConfigError(f"iou must be one of {[round(float(t), 2) for t in IOU_THRESHOLDS]}")
    per_class = np.asarray(metrics.recall)[int(hits[0]), :, 0, -1]
    valid = per_class[per_class > -1]
    return float(valid.mean()) if valid.size else -1.0


def _evaluate_available() -> bool:
    try:
        from yolo2retina.evaluate import evaluate  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


# -- model description stored in checkpoints ---------------------------------------------


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


def _plain(value: Any) -> Any:
    """Tuples to lists, NumPy scalars to Python: what ``weights_only`` loading accepts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
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
    percentile). :func:`yolo2retina.predict.predict` uses them for ``tile="auto"``.
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


# -- the loop ------------------------------------------------------------------------------


def _loader(
    dataset: Dataset[Any],
    config: TrainConfig,
    info: distributed.DistInfo,
    *,
    shuffle: bool,
    device: torch.device,
) -> tuple[DataLoader[Any], DistributedSampler[Any]]:
    # DistributedSampler also in one process: its order depends only on (seed, epoch),
    # so a resumed run sees exactly the batches the uninterrupted run would have seen.
    sampler: DistributedSampler[Any] = DistributedSampler(
        dataset,
        num_replicas=info.world_size,
        rank=info.rank,
        shuffle=shuffle,
        seed=config.seed,
        drop_last=False,
    )
    generator = torch.Generator()
    generator.manual_seed(config.seed + 1_000_003 * info.rank)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.num_workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        worker_init_fn=_seed_worker,
        generator=generator,
        persistent_workers=False,
    )
    return loader, sampler


def _improved(metric: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value > best if metric in _MAXIMISED else value < best


def _write_jsonl(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(rec) + "\n" for rec in records))


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
        meta: extra ``meta`` for checkpoints; defaults come from :func:`dataset_meta`.
        log: where summary lines go (default ``print`` on rank 0 when ``config.progress``).

    Returns:
        A :class:`FitResult`.

    Raises:
        NonFiniteLossError: a loss became NaN or infinite (names the batch's image files).
        ConfigError: an impossible setting (e.g. ``device="cuda"`` without CUDA) or an
            unusable ``resume`` checkpoint.
    """
    # -- set-up: process group, device, seeds, output folder
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    device = _resolve_device(config.device, local_rank)
    info = distributed.setup(device.type)
    try:
        with loss_normalisation(model, config.loss_norm) as loss:
            return _fit(
                model, train_dataset, val_dataset, config, device, info, model_args,
                class_names, meta, log, loss,
            )  # fmt: skip
    finally:
        distributed.teardown(info)


@contextmanager
def loss_normalisation(model: nn.Module, norm: str) -> Iterator[BatchNormalizedLoss | None]:
    """Train ``model`` with the loss normalisation ``norm`` inside the ``with`` block.

    ``"batch"`` installs :class:`~yolo2retina.losses.BatchNormalizedLoss` (or keeps the one
    already installed, with its momentum and average) and yields it; ``"torchvision"`` yields
    ``None`` and takes an installed one out for the block. On exit the model's loss is what
    it was before.

    Raises:
        ConfigError: ``norm`` is not one of :data:`~yolo2retina.losses.LOSS_NORMS`, or
            ``"batch"`` for a model that is not a torchvision RetinaNet.
    """
    if norm not in LOSS_NORMS:
        raise ConfigError(f"loss_norm must be one of {', '.join(LOSS_NORMS)}; got {norm!r}")
    net = getattr(model, "module", model)  # DistributedDataParallel keeps the model here
    before = vars(net).get("compute_loss")
    own = before if isinstance(before, BatchNormalizedLoss) else None
    loss: BatchNormalizedLoss | None = None
    if norm == "batch":
        loss = own if own is not None else install_batch_normalized_loss(model)
    elif own is not None:
        remove_batch_normalized_loss(model)
    try:
        yield loss
    finally:
        if norm == "batch" and own is None:
            remove_batch_normalized_loss(model)
        elif norm != "batch" and own is not None:
            net.compute_loss = own


def _fit(
    model: nn.Module,
    train_dataset: Dataset[Any],
    val_dataset: Dataset[Any] | None,
    config: TrainConfig,
    device: torch.device,
    info: distributed.DistInfo,
    model_args: Mapping[str, Any] | None,
    class_names: Sequence[str] | None,
    meta: Mapping[str, Any] | None,
    log: Callable[[str], None] | None,
    loss: BatchNormalizedLoss | None,
) -> FitResult:
    if device.type == "cuda":
        torch.cuda.set_device(device)
    quiet = not info.is_main or not config.progress
    say: Callable[[str], None] = _quiet if quiet else (log or print)
    out_dir = Path(config.out_dir)
    # every check before anything is written
    amp_dtype = _resolve_amp(config.amp, device)
    names = list(
        class_names if class_names is not None else getattr(train_dataset, "class_names", ())
    )
    resume_state = load_checkpoint(config.resume) if config.resume is not None else None
    if resume_state is not None:
        check_resumable(config.resume or "", resume_state)
    if resume_state is not None and names:
        check_class_names(config.resume or "", resume_state.get("class_names", ()), names)
    inputs = _input_folders((train_dataset, val_dataset), meta)
    _prepare_out_dir(out_dir, config, inputs, info, say)
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    metrics_path = out_dir / "metrics.jsonl"
    seed_everything(config.seed + info.rank)

    args = _plain(dict(model_args) if model_args is not None else describe_model(model))
    anchor_fit = getattr(model, "anchor_fit", None)  # set by build_retinanet(anchor_sizes="auto")
    if anchor_fit is not None:
        say(str(anchor_fit))
    run_meta = dataset_meta(train_dataset, args) | dict(meta or {})
    if anchor_fit is not None and hasattr(anchor_fit, "to_dict"):
        run_meta.setdefault("anchor_fit", anchor_fit.to_dict())
    run_meta = _plain(run_meta)

    # -- data
    train_loader, train_sampler = _loader(train_dataset, config, info, shuffle=True, device=device)
    val_loader = None
    if val_dataset is not None and info.is_main:
        val_loader, _ = _loader(
            val_dataset, config, distributed.DistInfo(), shuffle=False, device=device
        )
    with_map = _evaluate_available()
    metric = config.metric
    if val_dataset is not None and metric != "val_loss" and not with_map:
        say(f"note: yolo2retina.evaluate is not available; using val_loss instead of {metric}")
        metric, with_map = "val_loss", False

    # -- model, optimizer, schedule, scaler
    model.to(device)
    model.train()
    optimizer = _make_optimizer(model, config)
    steps_per_epoch = math.ceil(len(train_loader) / config.accumulate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, make_lr_lambda(config, steps_per_epoch)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    # -- resume: weights, optimizer, schedule, scaler, RNG, bookkeeping
    start_epoch, best, best_epoch, bad_epochs = 0, None, None, 0
    history: list[dict[str, Any]] = []
    if resume_state is not None:
        state = resume_state
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch = int(state["epoch"])
        best = state.get("best_metric")
        best_epoch = state.get("best_epoch")
        bad_epochs = int(state.get("bad_epochs", 0))
        if "rng" in state and not info.distributed:
            _set_rng_state(state["rng"])
        if loss is not None:
            if isinstance(state.get("loss_norm"), Mapping):
                loss.load_state_dict(state["loss_norm"])
            else:
                say("note: the checkpoint has no batch loss normaliser; its average starts anew")
        if metrics_path.exists():
            from yolo2retina.curves import read_metrics

            history = [r for r in read_metrics(metrics_path) if r.get("epoch", 0) <= start_epoch]
        say(f"resumed from {config.resume} after epoch {start_epoch}")
    if start_epoch >= config.epochs:
        say(f"nothing to do: checkpoint already has {start_epoch} of {config.epochs} epochs")

    train_model: nn.Module = model
    if info.distributed:
        device_ids = [device.index] if device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    say(
        f"training on {device} ({info.world_size} process(es)), {len(train_dataset)} images, "  # type: ignore[arg-type]
        f"{config.epochs} epochs x {len(train_loader)} batches of {config.batch_size}"
        + (f", amp {amp_dtype}" if amp_dtype is not None else "")
        + (f", loss normalised per batch (momentum {loss.momentum:g})" if loss is not None else "")
    )

    # -- epochs
    stopped_early = False
    steps_run, train_seconds = 0, 0.0
    curves_note, last_draw = False, time.monotonic()
    epoch = start_epoch
    for epoch in range(start_epoch + 1, config.epochs + 1):
        train_sampler.set_epoch(epoch)  # the shuffle depends on (seed, epoch) only
        if train_loader.generator is not None:  # and so do the workers' seeds
            train_loader.generator.manual_seed(config.seed + 1_000_003 * info.rank + epoch)
        bar = tqdm(
            total=len(train_loader),
            desc=f"epoch {epoch}/{config.epochs}",
            disable=say is _quiet,
            leave=False,
            dynamic_ncols=True,
        )
        t0 = time.perf_counter()
        with bar:
            train_stats = train_one_epoch(
                train_model, train_loader, optimizer, scheduler, scaler,
                device=device, amp_dtype=amp_dtype, grad_clip=config.grad_clip,
                accumulate=config.accumulate, dataset=train_dataset, dist_info=info, bar=bar,
            )  # fmt: skip
        epoch_seconds = time.perf_counter() - t0
        train_seconds += epoch_seconds
        steps_run += len(train_loader)
        record: dict[str, Any] = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
        record |= {f"train_{k}" if k != "loss" else "train_loss": v for k, v in train_stats.items()}
        record["train_seconds"] = round(epoch_seconds, 3)

        # validation on rank 0; every rank learns whether to stop
        due = val_loader is not None and (epoch % config.val_every == 0 or epoch == config.epochs)
        improved = False
        if due and val_loader is not None and val_dataset is not None:
            record |= validate(
                model, val_dataset, val_loader, device=device, amp_dtype=amp_dtype,
                batch_size=config.batch_size, with_map=with_map,
            )  # fmt: skip
            improved = _improved(metric, record[metric], best)
            if improved:
                best, best_epoch, bad_epochs = float(record[metric]), epoch, 0
            else:
                bad_epochs += 1
        elif val_dataset is None:
            improved, best_epoch = True, epoch
        stop = config.patience is not None and bad_epochs >= config.patience
        stop = bool(distributed.broadcast_object(stop, info))
        history.append(record)

        # rank 0 writes: metrics.jsonl, last.pt, best.pt, curves.png
        if info.is_main:
            _write_jsonl(metrics_path, history)
            state = {
                "model": model.state_dict(),
                "model_args": args,
                "class_names": names,
                "meta": run_meta,
                "epoch": epoch,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "config": config.to_dict(),
                "rng": _rng_state(),
                "best_metric": best,
                "best_epoch": best_epoch,
                "bad_epochs": bad_epochs,
                "metric": metric,
                "loss_norm": loss.state_dict() if loss is not None else None,
            }
            checkpoint = Checkpoint.from_dict(state)
            checkpoint.save(last_path)
            if improved or not best_path.exists():
                # best.pt is for predicting and fine-tuning: weights and metadata, without the
                # optimizer state that triples a checkpoint's size (resume reads last.pt)
                checkpoint.for_inference().save(best_path)
            # matplotlib takes seconds per figure on a busy CPU: redraw at most once a minute
            last_epoch = stop or epoch == config.epochs
            if last_epoch or time.monotonic() - last_draw >= CURVES_EVERY_S:
                curves_note = _draw_curves(history, out_dir / "curves.png", say, curves_note)
                last_draw = time.monotonic()
        say(_summary(record, metric, improved and due))
        if stop:
            say(f"early stop: {metric} did not improve for {config.patience} validation(s)")
            stopped_early = True
            break

    return FitResult(
        out_dir=out_dir,
        last_checkpoint=last_path,
        best_checkpoint=best_path,
        metric=metric,
        best_metric=best,
        best_epoch=best_epoch,
        epochs_completed=max(epoch, start_epoch),
        stopped_early=stopped_early,
        history=tuple(history),
        train_steps=steps_run,
        train_seconds=train_seconds,
    )


def _quiet(_line: str) -> None:
    pass


def _draw_curves(
    history: Sequence[Mapping[str, Any]], path: Path, say: Callable[[str], None], noted: bool
) -> bool:
    from yolo2retina.curves import plot_curves

    try:
        plot_curves(history, path)
    except ImportError as e:
        if not noted:
            say(f"note: {e}")
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


# -- from a dataset path to a trained model (what ``yolo2retina train`` calls) -------------

#: Settings of the no-``--data`` demo: the synthetic sticky board, sized to train on a
#: 2-core CPU in under 10 minutes (see docs/training.md for the measurements).
DEMO_DATA: dict[str, Any] = {
    "n_images": 200,
    "image_size": 128,
    "seed": 0,
    "val_fraction": 0.2,
    "max_mites": 48,
}
DEMO_MODEL: dict[str, Any] = {"backbone": "resnet18_fpn", "img_size": 128}
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
}


def next_run_dir(base: str | os.PathLike[str]) -> Path:
    """``base`` if it holds no run (:func:`run_files`), else ``base2``, ``base3``, ...

    A folder with any file of a run counts as taken, also a run that stopped before its
    first ``last.pt``.
    """
    b = Path(base)
    candidate, n = b, 1
    while run_files(candidate) or candidate.is_file():
        n += 1
        candidate = b.with_name(f"{b.name}{n}")
    return candidate


def _load_split(data: Path, format: str, splits: Sequence[str], **kw: Any) -> tuple[Any, str]:
    """The first split of ``splits`` that loads, or ``(None, why the last one failed)``."""
    from yolo2retina.dataset import DetectionDataset
    from yolo2retina.errors import DatasetError

    why = ""
    for split in splits:
        try:
            return DetectionDataset.from_path(data, format=format, split=split, **kw), ""
        except (DatasetError, KeyError) as e:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
    return None, why


@attrs.frozen
class TrainingSetup:
    """What :func:`prepare_training` built: everything :func:`fit` needs.

    Attributes:
        model: the RetinaNet (its training resize off when ``augmentation.sets_scale``).
        train: the training split, with ``augmentation`` as its ``transforms``.
        val: the validation split, or ``None`` when the data has none.
        augmentation: the training transforms (:func:`yolo2retina.augment.augmentation`).
        model_args: the ``build_retinanet`` arguments, for the checkpoints.
        meta: the data source and format, for the checkpoints.
    """

    model: nn.Module
    train: Any
    val: Any
    augmentation: Any
    model_args: dict[str, Any]
    meta: dict[str, Any]

    def fit(self, config: TrainConfig, *, log: Callable[[str], None] = print) -> FitResult:
        """:func:`fit` this model on these splits, with the checkpoints' args and metadata."""
        return fit(
            self.model,
            self.train,
            self.val,
            config,
            model_args=self.model_args,
            class_names=self.train.class_names,
            meta=self.meta,
            log=log,
        )


def prepare_training(
    data: str | os.PathLike[str] | None,
    config: TrainConfig,
    *,
    format: str = "auto",
    backbone: str = "resnet50_fpn",
    img_size: int = 800,
    weights: str | None = None,
    weights_backbone: str | None = None,
    anchors: Literal["auto", "default"] = "auto",
    reader_options: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> TrainingSetup:
    """Load a dataset and build the augmentation and the RetinaNet that :func:`run_training` trains.

    The same arguments as :func:`run_training`, which is ``fit`` on what this returns. The
    training split gets ``augmentation(config.augment, img_size=..., crop_size=config.crop_size)``
    as its transforms, where the size is ``img_size`` or, with ``config.resume``, the
    checkpoint's ``min_size``. When the policy sets the scale itself, the model's training
    resize is switched off (:func:`yolo2retina.augment.set_train_resize`); validation and
    prediction still resize whole images to the model's size.
    """
    from yolo2retina.augment import augmentation, set_train_resize
    from yolo2retina.dataset import DetectionDataset
    from yolo2retina.model import build_args, build_retinanet

    resume_state = load_checkpoint(config.resume) if config.resume is not None else None
    if resume_state is not None:
        check_resumable(config.resume or "", resume_state)
    options = dict(reader_options or {})
    if data is None and resume_state is not None:
        data = resume_state.get("meta", {}).get("data")
        options = dict(resume_state.get("meta", {}).get("reader_options", {})) | options
    check_out_dir(
        config.out_dir,
        overwrite=config.overwrite,
        resume=config.resume,
        inputs=[data] if data is not None and Path(data).exists() else [],  # else: not found
    )
    size = img_size if resume_state is None else int(resume_state["model_args"]["min_size"])
    aug = augmentation(config.augment, img_size=size, crop_size=config.crop_size)
    if data is None:
        from yolo2retina.datasets import synthetic_sticky_board

        data_root = Path(config.out_dir) / "data"
        log(f"no --data: writing the synthetic sticky board to {data_root}")
        data = synthetic_sticky_board(data_root, **DEMO_DATA)
    data_path = Path(data)

    train_ds = DetectionDataset.from_path(
        data_path, format=format, split="train", transforms=aug, **options
    )
    val_ds, why = _load_split(data_path, format, ["val", "valid"], **options)
    log(f"train: {train_ds!r}")
    log(f"val:   {val_ds!r}" if val_ds is not None else f"val:   none, training without ({why})")
    if resume_state is not None:
        check_class_names(
            config.resume or "", resume_state.get("class_names", ()), train_ds.class_names
        )

    seed_everything(config.seed)  # the initial weights (and anchor fit) repeat with the seed
    if resume_state is not None:
        rebuild = {**resume_state["model_args"], "weights": None, "weights_backbone": None}
        model = build_retinanet(**rebuild)
    else:
        model = build_retinanet(
            num_classes=len(train_ds.class_names),
            backbone=backbone,
            weights=weights,
            weights_backbone=weights_backbone,
            min_size=img_size,
            max_size=img_size,
            anchor_sizes="auto" if anchors == "auto" else None,
            dataset=train_ds.annotations if anchors == "auto" else None,
        )
    if aug.sets_scale:
        set_train_resize(model, False)  # the augmentation resizes, jitters and crops
    crop = f", {aug.crop_size} px crops" if aug.crop_size is not None else ""
    log(f"augment: {config.augment} at {size} px{crop}")
    return TrainingSetup(
        model=model,
        train=train_ds,
        val=val_ds,
        augmentation=aug,
        model_args=build_args(model),
        meta={
            "data": os.fspath(data_path.resolve()),
            "format": format,
            "reader_options": {k: os.fspath(v) for k, v in options.items()},
        },
    )


def run_training(
    data: str | os.PathLike[str] | None,
    config: TrainConfig,
    *,
    format: str = "auto",
    backbone: str = "resnet50_fpn",
    img_size: int = 800,
    weights: str | None = None,
    weights_backbone: str | None = None,
    anchors: Literal["auto", "default"] = "auto",
    reader_options: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> FitResult:
    """Load a dataset, build a RetinaNet for it and :func:`fit` it.

    ``data=None`` writes the synthetic sticky board (:data:`DEMO_DATA`) into
    ``config.out_dir / "data"`` and trains on it. With ``config.resume`` the model is rebuilt
    from the checkpoint's ``model_args`` and ``data`` defaults to the dataset it was trained on;
    the data's class names must be the checkpoint's.

    Everything is checked before anything is written: the run folder (:func:`check_out_dir`),
    the dataset and the resumed checkpoint's classes. The model is built after
    :func:`seed_everything` (``config.seed``), so the same call gives the same initial weights.

    The training images are augmented with ``config.augment`` (and cropped to
    ``config.crop_size``), see :func:`prepare_training`; validation runs on whole images.

    Args:
        data: a ``data.yaml``, a dataset folder, a VOC folder or a COCO ``.json`` with a
            ``train`` split and a ``val`` (or ``valid``) split; ``None`` for the demo.
        config: training settings.
        format: dataset format, ``"auto"`` to detect it.
        backbone: see :func:`yolo2retina.model.build_retinanet`.
        img_size: the longer image side the model sees (``min_size = max_size = img_size``).
        weights: ``None``, ``"DEFAULT"`` (downloads COCO weights) or a checkpoint path.
        weights_backbone: ``None``, ``"DEFAULT"`` (downloads ImageNet weights) or a path.
        anchors: ``"auto"`` fits anchor sizes to the training boxes (the coverage figures are
            printed), ``"default"`` keeps torchvision's 32-512 px anchors.
        reader_options: keywords for the format reader, e.g. ``{"images_root": ...}`` for a
            COCO file whose images lie elsewhere (kept in the checkpoint for ``resume``).
        log: where progress lines go.

    Raises:
        DatasetError: the training split cannot be loaded.
        ConfigError: a bad setting, an unusable checkpoint, a checkpoint trained on other
            classes, or a run folder that holds another run or lies inside the dataset.
    """
    setup = prepare_training(
        data,
        config,
        format=format,
        backbone=backbone,
        img_size=img_size,
        weights=weights,
        weights_backbone=weights_backbone,
        anchors=anchors,
        reader_options=reader_options,
        log=log,
    )
    return setup.fit(config, log=log)
