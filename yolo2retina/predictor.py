"""A trained checkpoint as a ready predictor: model, class names and training meta together.

Example:
    >>> predictor = Predictor.from_checkpoint("runs/demo/best.pt")  # doctest: +SKIP
    >>> [t] = predictor.predict("board.jpg", tile="auto")  # doctest: +SKIP
    >>> predictor.counts(t)  # doctest: +SKIP
    {'varroa': 57}
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import attrs
import torch

from yolo2retina.counts import count_labels
from yolo2retina.device import check_threads
from yolo2retina.model import LoadedModel, load_model
from yolo2retina.prediction import ImageInput, predict
from yolo2retina.score_threshold import recorded_score_threshold
from yolo2retina.target import Target
from yolo2retina.tiling import TileArg

__all__ = ["Predictor"]


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.define
class Predictor:
    """A model with its class names and training meta, ready for :func:`~yolo2retina.prediction.predict`.

    Attributes:
        model: the detection model (eval mode) or any model callable.
        class_names: index = label.
        meta: training facts from the checkpoint (``train_image_size``, ``box_size_px``,
            ``score_threshold``).
        source: where it was loaded from, for messages.
        loaded: the checkpoint it was built from (:meth:`from_loaded`), with its
            ``model_args`` and ``path``; ``None`` for a model given by hand.
    """

    model: Any
    class_names: tuple[str, ...] = attrs.field(converter=_names)
    meta: dict[str, Any] = attrs.field(factory=dict)
    source: str = ""
    loaded: LoadedModel | None = attrs.field(default=None, kw_only=True, repr=False)

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, *, source: str | None = None) -> Predictor:
        """A predictor for a checkpoint :func:`yolo2retina.model.load_model` has loaded.

        Args:
            loaded: the loaded checkpoint; the predictor runs its model (not a copy)
                and keeps it as :attr:`loaded`.
            source: the name for messages; default: the checkpoint's path.
        """
        name = str(loaded.path) if source is None else source
        return cls(loaded.model, loaded.class_names, dict(loaded.meta), name, loaded=loaded)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str | torch.device = "cpu",
        threads: int | None = None,
    ) -> Predictor:
        """Load a training checkpoint (``best.pt``/``last.pt``) into a ready predictor.

        A path ending in ``.onnx`` is an exported model: :meth:`from_onnx` loads it, with
        ``threads`` (ONNX Runtime's CPU threads; a PyTorch model's threads are the
        process's, see :func:`~yolo2retina.device.torch_threads`).

        Raises:
            ConfigError: the file is missing or is not a yolo2retina checkpoint, or
                ``threads`` is not ``None`` or a whole number >= 1.
        """
        if os.fspath(path).lower().endswith(".onnx"):
            return cls.from_onnx(path, device=device, threads=threads)
        check_threads(threads)
        return cls.from_loaded(load_model(path, device=device), source=str(path))

    @classmethod
    def from_onnx(
        cls,
        path: str | os.PathLike[str],
        *,
        device: str | torch.device = "cpu",
        threads: int | None = None,
    ) -> Predictor:
        """An exported model (:func:`~yolo2retina.onnx_export.export_onnx`) run by ONNX Runtime.

        The model is an :class:`~yolo2retina.onnx_runtime.OnnxDetector`: it takes the
        same inputs and gives the same outputs as the PyTorch model, so :meth:`predict`,
        tiles included, works the same.

        Args:
            path: the ``.onnx`` file; its sidecar ``.onnx.json`` lies beside it.
            device: ``"cpu"``; ``"cuda"`` for ONNX Runtime's CUDA provider (the CPU
                provider stays the fallback); ``"auto"``: CUDA when ONNX Runtime has it.
            threads: CPU threads ONNX Runtime may use per model call; ``None``: its
                default (one per physical core).

        Raises:
            ConfigError: the model or its sidecar is missing or unreadable, onnxruntime
                is not installed, the device is not available to it, or ``threads`` is
                not ``None`` or a whole number >= 1.
        """
        from yolo2retina.onnx_runtime import OnnxDetector, providers_for

        detector = OnnxDetector(path, providers=providers_for(str(device)), threads=threads)
        return cls(detector, detector.class_names, dict(detector.meta), str(path))

    @property
    def recorded_score_threshold(self) -> float | None:
        """The score threshold training chose on the validation set (best F1 at IoU 0.5),
        from ``meta["score_threshold"]``; ``None`` when the checkpoint records none.

        :meth:`predict` does not use it by itself (its default stays 0.3); pass it:
        ``predictor.predict(img, score_threshold=predictor.recorded_score_threshold or 0.3)``.
        ``yolo2retina predict`` does this when ``--score`` is not given.

        Raises:
            ConfigError: the entry is malformed (names :attr:`source`).
        """
        return recorded_score_threshold(self.meta, where=self.source or "checkpoint")

    def predict(
        self,
        images: ImageInput | Iterable[ImageInput],
        *,
        score_threshold: float = 0.3,
        tile: TileArg = None,
        overlap: float = 0.2,
        batch_size: int = 4,
        device: str | torch.device | None = None,
    ) -> list[Target]:
        """:func:`~yolo2retina.prediction.predict` with this model (``tile="auto"`` works here)."""
        return predict(
            self,
            images,
            score_threshold=score_threshold,
            tile=tile,
            overlap=overlap,
            batch_size=batch_size,
            device=device,
        )

    def counts(self, target: Target) -> dict[str, int]:
        """Detections per class name for one image."""
        return count_labels(target, self.class_names)
