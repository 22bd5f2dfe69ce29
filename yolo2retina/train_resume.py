"""Resuming a run: the checks a checkpoint must pass, and the settings it continues with.

A library user resumes exactly as ``yolo2retina train --resume`` does::

    from yolo2retina.train import resume_config, run_training

    run_training(None, resume_config("runs/train/last.pt", epochs=20))

:func:`resume_config` reads the run's own settings from its ``last.pt``;
:func:`~yolo2retina.train_recipe.run_training` rebuilds the model from the checkpoint and,
with ``data=None``, reloads the dataset it was trained on; :func:`~yolo2retina.train.fit`
restores the weights, optimizer, schedule and RNG state and continues after the saved epoch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from yolo2retina.checkpoint import Checkpoint
from yolo2retina.errors import ConfigError
from yolo2retina.train_config import TrainConfig

__all__ = ["check_class_names", "check_resumable", "resume_config"]


def check_resumable(path: str | os.PathLike[str], state: Mapping[str, Any] | Checkpoint) -> None:
    """Refuse to resume a checkpoint without the optimizer state (a ``best.pt``).

    Args:
        path: the checkpoint's file (for the message).
        state: the checkpoint, as a :class:`~yolo2retina.checkpoint.Checkpoint` or its dict.

    Raises:
        ConfigError: ``state`` lacks the optimizer or schedule that an exact resume needs.
    """
    if isinstance(state, Checkpoint):
        state = state.to_dict()
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


def resume_config(
    checkpoint: str | os.PathLike[str],
    *,
    out_dir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
    **overrides: Any,
) -> TrainConfig:
    """The settings that continue the run of ``checkpoint`` (a ``last.pt``).

    The run's own :class:`~yolo2retina.train_config.TrainConfig` (from the checkpoint),
    with ``resume`` set to ``checkpoint``, ``out_dir`` to ``out_dir`` or the checkpoint's
    folder, ``overwrite`` to ``False`` unless given, and every override that is not
    ``None`` applied (``epochs=20`` trains on to epoch 20). A run from before
    ``augment`` existed (it trained with horizontal flips) resumes with ``"light"``
    (flips and quarter turns) unless ``augment`` is given; ``log`` says so.

    Raises:
        ConfigError: the checkpoint cannot be loaded, cannot be resumed (a ``best.pt``),
            holds no training settings, or an override is not a valid setting.
    """
    ckpt = Checkpoint.load(checkpoint)
    check_resumable(checkpoint, ckpt)
    if ckpt.config is None:
        raise ConfigError(f"{checkpoint}: cannot resume from it: it holds no training settings")
    settings = dict(ckpt.config)
    settings["resume"] = os.fspath(checkpoint)
    settings["out_dir"] = (
        os.fspath(out_dir) if out_dir is not None else str(Path(checkpoint).parent)
    )
    given = {k: v for k, v in overrides.items() if v is not None}
    if "augment" not in settings and "augment" not in given:
        # runs from before --augment trained with horizontal flips only
        settings["augment"] = "light"
        log(
            f"note: {os.fspath(checkpoint)} predates --augment (it was trained with horizontal "
            "flips); resuming with --augment light (flips and quarter turns)"
        )
    settings |= given
    settings["overwrite"] = bool(given.get("overwrite", False))  # never inherited
    return TrainConfig.from_dict(settings)
