"""Small helpers for ``torchrun`` / DistributedDataParallel training.

:func:`yolo2retina.train.fit` calls :func:`setup` once: under ``torchrun`` (``WORLD_SIZE > 1``
in the environment) it joins the process group, otherwise it does nothing and every helper
here behaves as in a single process.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import attrs
import torch
import torch.distributed as dist

__all__ = ["DistInfo", "any_true", "broadcast_object", "setup", "teardown"]


@attrs.frozen
class DistInfo:
    """Where this process stands in a (possibly one-process) job.

    Attributes:
        rank: global rank, 0 in a single process.
        world_size: number of processes, 1 in a single process.
        local_rank: rank on this machine (selects the GPU).
        owns_group: whether :func:`setup` created the process group (and so must destroy it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that logs and writes files (rank 0)."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def setup(device_type: str) -> DistInfo:
    """Join the process group described by torchrun's environment variables.

    Uses NCCL for CUDA and gloo otherwise. If a group is already initialised (the caller
    set it up) it is used as is and left alone by :func:`teardown`.

    Args:
        device_type: ``"cuda"``, ``"mps"`` or ``"cpu"``.
    """
    if dist.is_available() and dist.is_initialized():
        return DistInfo(
            dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0), owns_group=False
        )
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1 or not dist.is_available():
        return DistInfo()
    backend = "nccl" if device_type == "cuda" else "gloo"
    # ranks > 0 wait while rank 0 validates: allow far longer than NCCL's 10-minute default
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(hours=2))
    return DistInfo(
        dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0), owns_group=True
    )


def teardown(info: DistInfo) -> None:
    """Destroy the process group if :func:`setup` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(value: Any, info: DistInfo) -> Any:
    """``value`` from rank 0, on every rank (a no-op in a single process)."""
    if not info.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_true(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on at least one rank."""
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
