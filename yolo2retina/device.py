"""One device resolver for training, evaluation and prediction.

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from yolo2retina.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["check_threads", "resolve_device", "torch_threads"]


def resolve_device(
    device: str | torch.device | None = "auto",
    *,
    model: torch.nn.Module | None = None,
    local_rank: int = 0,
) -> torch.device:
    """The :class:`torch.device` that ``device`` names.

    Args:
        device: ``"auto"`` (CUDA, then Apple MPS, then the CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:1"``, ``"mps"``, a :class:`torch.device`, or ``None``: where ``model``'s
            parameters are (the CPU without a model or parameters).
        model: the model whose device ``None`` means.
        local_rank: the GPU of this process under ``torchrun`` (``"auto"`` and ``"cuda"``).

    Raises:
        ConfigError: the device names CUDA or MPS and this machine has none.
    """
    import torch

    if device is None:
        p = next(model.parameters(), None) if model is not None else None
        return p.device if p is not None else torch.device("cpu")
    name = str(device)
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
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"device={name!r}: {e}") from None


def check_threads(n: int | None) -> int | None:
    """``n`` when it is ``None`` or a whole number >= 1 (a CPU thread count).

    Raises:
        ConfigError: anything else (``0``, ``1.5``, ``True``, ``"2"``).
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ConfigError(f"threads must be a whole number >= 1 or None, got {n!r}")
    return n


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's CPU (intra-op) threads set to ``n`` inside the block, restored after it,
    even when the block raises; ``None`` leaves them alone (and imports nothing).

    Raises:
        ConfigError: ``n`` is not ``None`` or a whole number >= 1.
    """
    n = check_threads(n)
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
