"""One checkpoint type: what :func:`yolo2retina.train.fit` writes and every loader reads.

A checkpoint file is a plain dict (so ``torch.load(weights_only=True)`` reads it and no code
in it runs) with the keys ``model`` (the state dict), ``model_args`` (the
:func:`~yolo2retina.model.build_retinanet` arguments), ``class_names``, ``meta``,
``config`` (:meth:`TrainConfig.to_dict <yolo2retina.train_config.TrainConfig.to_dict>`),
``epoch``, and, in a ``last.pt``, the state that an exact resume needs: ``optimizer``,
``scheduler``, ``scaler``, ``rng``, ``loss_norm``, ``bad_epochs``; ``best_metric``,
``best_epoch`` and ``metric`` say which epoch was best. :class:`Checkpoint` is that dict
with types; its file format is the dict, so checkpoints written before it existed load.

Example:
    >>> import tempfile, pathlib, torch
    >>> ckpt = Checkpoint({"w": torch.zeros(2)}, {"num_classes": 1}, ("mite",))
    >>> path = Checkpoint.load(ckpt.save(pathlib.Path(tempfile.mkdtemp()) / "a.pt")).path
    >>> Checkpoint.load(path).class_names, Checkpoint.load(path).resumable
    (('mite',), False)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch

from yolo2retina.atomic import atomic_path
from yolo2retina.errors import ConfigError
from yolo2retina.weights import strip_ddp_prefix

__all__ = ["REQUIRED_KEYS", "TRAINING_ONLY_KEYS", "Checkpoint"]

#: The keys every checkpoint has: without them a model cannot be rebuilt.
REQUIRED_KEYS = ("model", "model_args", "class_names")

#: What ``last.pt`` holds beyond ``best.pt``: the state that only an exact resume needs.
TRAINING_ONLY_KEYS = ("optimizer", "scheduler", "scaler", "rng", "loss_norm", "bad_epochs")

#: What :attr:`Checkpoint.resumable` needs in :attr:`Checkpoint.training`.
_RESUME_KEYS = ("optimizer", "scheduler")

#: The keys with a field of their own; every other key of the file goes to ``training``.
_OWN_KEYS = (*REQUIRED_KEYS, "meta", "config", "epoch")


def _names(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


@attrs.frozen(eq=False)  # tensors have no truth value: compare to_dict() yourself
class Checkpoint:
    """A trained (or training) model as saved on disk.

    Attributes:
        model: the state dict (name -> tensor); a DistributedDataParallel ``module.``
            prefix is stripped on load.
        model_args: the :func:`~yolo2retina.model.build_retinanet` keyword arguments that
            rebuild the model (plain values).
        class_names: one name per class, in label order.
        meta: the dataset and run description (image and box sizes, data source, ...).
        config: the training settings (``TrainConfig.to_dict()``), or ``None``.
        epoch: epochs trained.
        training: every other key of the file: the optimizer, scheduler, scaler, RNG and
            loss-normaliser state of an exact resume, and the ``best_metric``,
            ``best_epoch``, ``bad_epochs`` and ``metric`` bookkeeping; ``None`` when none.
        path: the file it was loaded from (not saved).
    """

    model: Mapping[str, torch.Tensor]
    model_args: Mapping[str, Any]
    class_names: tuple[str, ...] = attrs.field(converter=_names)
    meta: Mapping[str, Any] = attrs.field(factory=dict)
    config: Mapping[str, Any] | None = None
    epoch: int = 0
    training: Mapping[str, Any] | None = None
    path: Path | None = None

    @property
    def resumable(self) -> bool:
        """Whether it holds the optimizer and schedule state that an exact resume needs."""
        return self.training is not None and all(k in self.training for k in _RESUME_KEYS)

    def for_inference(self) -> Checkpoint:
        """The same checkpoint without the resume-only state (what ``best.pt`` holds).

        The optimizer state alone is about twice the weights' size; ``best_metric``,
        ``best_epoch`` and ``metric`` stay (they say what ``best.pt`` is).
        """
        kept = {k: v for k, v in (self.training or {}).items() if k not in TRAINING_ONLY_KEYS}
        return attrs.evolve(self, training=kept or None)

    def to_dict(self) -> dict[str, Any]:
        """The plain dict that :meth:`save` writes (the training keys at the top level)."""
        state: dict[str, Any] = {
            "model": self.model,
            "model_args": dict(self.model_args),
            "class_names": list(self.class_names),
            "meta": dict(self.meta),
            "epoch": self.epoch,
        }
        if self.config is not None:
            state["config"] = dict(self.config)
        return state | dict(self.training or {})

    @classmethod
    def from_dict(
        cls, state: Mapping[str, Any], *, path: str | os.PathLike[str] | None = None
    ) -> Checkpoint:
        """The checkpoint of a dict as :meth:`to_dict` makes (or ``torch.load`` reads).

        Raises:
            ConfigError: a required key is missing or an entry has the wrong type; the
                message names ``path`` when given.
        """
        where = f"{os.fspath(path)}: " if path is not None else ""
        if not isinstance(state, Mapping):
            raise ConfigError(f"{where}not a yolo2retina checkpoint (expected a dict)")
        missing = [k for k in REQUIRED_KEYS if k not in state]
        if missing:
            raise ConfigError(f"{where}not a yolo2retina checkpoint (no {', '.join(missing)})")
        weights = state["model"]
        if not isinstance(weights, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
        ):
            raise ConfigError(f"{where}'model' is not a state dict (name -> tensor)")
        for key, kind in (("model_args", Mapping), ("meta", Mapping), ("config", Mapping)):
            value = state.get(key)
            if value is not None and not isinstance(value, kind):
                raise ConfigError(f"{where}'{key}' is a {type(value).__name__}, not a dict")
        names = state["class_names"]
        if isinstance(names, (str, bytes)) or not isinstance(names, (list, tuple)):
            raise ConfigError(f"{where}'class_names' is a {type(names).__name__}, not a list")
        epoch = state.get("epoch", 0)
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            raise ConfigError(f"{where}'epoch' is {epoch!r}, not an integer")
        training = {k: v for k, v in state.items() if k not in _OWN_KEYS}
        return cls(
            model=strip_ddp_prefix(weights),
            model_args=state["model_args"],
            class_names=names,
            meta=state.get("meta") or {},
            config=state.get("config"),
            epoch=epoch,
            training=training or None,
            path=Path(path) if path is not None else None,
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write it to ``path`` atomically: a crash mid-write leaves the previous file intact.

        Returns:
            ``path`` as a :class:`~pathlib.Path`.
        """
        out = Path(path)
        with atomic_path(out) as tmp:
            torch.save(self.to_dict(), tmp)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """Read a checkpoint with ``torch.load(weights_only=True)``: nothing in it runs.

        Raises:
            ConfigError: the file is missing, cannot be loaded (truncated, not a torch
                file, unsafe objects), or is not a yolo2retina checkpoint; naming the file.
        """
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"{p}: checkpoint not found")
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # pickle errors, truncated zip, ... all mean "not loadable"
            raise ConfigError(f"{p}: not a loadable checkpoint ({type(e).__name__}: {e})") from None
        return cls.from_dict(state, path=p)
