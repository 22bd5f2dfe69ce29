"""What a training run sets up before its first step: seeds and RNG state, precision,
the learning-rate schedule, the optimizer and the data loaders.

Example:
    >>> from yolo2retina.train_config import TrainConfig
    >>> make_lr_lambda(TrainConfig(epochs=1, warmup_iters=0), steps_per_epoch=10)(0)
    1.0
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from yolo2retina import distributed
from yolo2retina.dataset import collate
from yolo2retina.errors import ConfigError
from yolo2retina.train_config import TrainConfig

__all__ = ["make_lr_lambda", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every CUDA device).

    :func:`~yolo2retina.train_recipe.run_training` calls it before it builds the model, and
    :func:`~yolo2retina.train.fit` again (with ``seed + rank``) before training. Call it
    yourself before building a model for :func:`~yolo2retina.train.fit` so that its initial
    weights repeat too.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    # DataLoader seeds torch in each worker from its generator; derive NumPy and random from it
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def rng_state() -> dict[str, torch.Tensor]:
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


def set_rng_state(state: Mapping[str, torch.Tensor]) -> None:
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


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
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


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
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


def make_loader(
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
        worker_init_fn=seed_worker,
        generator=generator,
        persistent_workers=False,
    )
    return loader, sampler
