"""The names a setting may take (backbones, augmentation policies, loss norms...), torch-free.

The command line lists these as its choices, and ``yolo2retina <command> --help`` must not
import torch to print them, so the names live here, apart from the torch modules that build
what they name: :mod:`~yolo2retina.backbones` (``BACKBONES``, re-exported by
:mod:`~yolo2retina.model`), :mod:`~yolo2retina.augment` (``POLICIES``, keyed by
:data:`AUGMENT_POLICIES`) and :mod:`~yolo2retina.losses` (``LOSS_NORMS``) take them from here.
Each tuple is made from its ``Literal`` type (the type of the matching
:class:`~yolo2retina.train.TrainConfig` field, for the training settings), so that the two
cannot drift apart.

Example:
    >>> "resnet18_fpn" in BACKBONES
    True
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "AMP_MODES",
    "AUGMENT_POLICIES",
    "BACKBONES",
    "LOSS_NORMS",
    "METRICS",
    "OPTIMIZERS",
    "SCHEDULES",
    "Amp",
    "AugmentPolicy",
    "Backbone",
    "LossNorm",
    "Metric",
    "Optimizer",
    "Schedule",
]

#: The type of a backbone name; :data:`BACKBONES` lists its values.
Backbone = Literal["resnet50_fpn", "resnet50_fpn_v2", "resnet18_fpn", "mobilenet_v3_large_fpn"]

#: Backbone names accepted by :func:`~yolo2retina.model.build_retinanet`.
BACKBONES: tuple[Backbone, ...] = get_args(Backbone)

#: The type of an augmentation policy name; :data:`AUGMENT_POLICIES` lists its values.
AugmentPolicy = Literal["none", "light", "default", "strong"]

#: Training augmentation policies, mildest first (:data:`yolo2retina.augment.POLICIES`).
AUGMENT_POLICIES: tuple[AugmentPolicy, ...] = get_args(AugmentPolicy)

#: The type of a loss normalisation; :data:`LOSS_NORMS` lists its values.
LossNorm = Literal["torchvision", "batch"]

#: The loss normalisations: ``"torchvision"`` (each image by its own foreground count, then
#: the mean over images) and ``"batch"`` (:class:`~yolo2retina.losses.BatchNormalizedLoss`).
LOSS_NORMS: tuple[LossNorm, ...] = get_args(LossNorm)

#: The type of an optimizer name; :data:`OPTIMIZERS` lists its values.
Optimizer = Literal["sgd", "adamw"]

#: Optimizers of :class:`~yolo2retina.train.TrainConfig`.
OPTIMIZERS: tuple[Optimizer, ...] = get_args(Optimizer)

#: The type of a learning-rate schedule; :data:`SCHEDULES` lists its values.
Schedule = Literal["cosine", "multistep"]

#: Learning-rate schedules after warmup.
SCHEDULES: tuple[Schedule, ...] = get_args(Schedule)

#: The type of a mixed-precision mode; :data:`AMP_MODES` lists its values.
Amp = Literal["auto", "bf16", "fp16", "off"]

#: Mixed-precision modes (``"auto"``: bf16 where the GPU supports it, else fp16; off on CPU).
AMP_MODES: tuple[Amp, ...] = get_args(Amp)

#: The type of a validation metric; :data:`METRICS` lists its values.
Metric = Literal["map50", "map", "map75", "val_loss"]

#: Validation metrics that can pick ``best.pt`` and drive early stopping.
METRICS: tuple[Metric, ...] = get_args(Metric)
