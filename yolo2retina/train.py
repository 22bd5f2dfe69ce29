"""Training: :class:`TrainConfig`, :func:`fit`, checkpoints and exact resume, in one namespace.

The parts live in modules with one job each; this module gathers their public names:

* :mod:`yolo2retina.train_config`: :class:`TrainConfig` and the presets
  (:data:`SCRATCH_CONFIG`, :data:`SCRATCH_MODEL`, :data:`DEMO_DATA`, :data:`DEMO_MODEL`,
  :data:`DEMO_CONFIG`);
* :mod:`yolo2retina.checkpoint`: :class:`~yolo2retina.checkpoint.Checkpoint`, the file
  :func:`fit` writes (:func:`save_checkpoint` and :func:`load_checkpoint` here are its
  dict-in, dict-out form);
* :mod:`yolo2retina.run_folder`: the run folder's checks (:func:`check_out_dir`,
  :func:`next_run_dir`, :func:`remove_stale_temp_files`);
* :mod:`yolo2retina.train_setup`: seeds, RNG state, precision, the learning-rate schedule,
  the optimizer and the loaders;
* :mod:`yolo2retina.train_loop`: the epoch engine (:func:`train_one_epoch`, :func:`validate`);
* :mod:`yolo2retina.train_fit`: the fit loop (:func:`fit`, :class:`FitResult`);
* :mod:`yolo2retina.train_resume`: resuming (:func:`resume_config`, :func:`check_resumable`,
  :func:`check_class_names`);
* :mod:`yolo2retina.train_recipe`: from a dataset path to a trained model
  (:func:`prepare_training`, :func:`run_training`: what ``yolo2retina train`` calls).

Example:
    >>> from yolo2retina.train import TrainConfig
    >>> TrainConfig(epochs=2, batch_size=8).epochs
    2
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from yolo2retina.checkpoint import TRAINING_ONLY_KEYS as TRAINING_ONLY_KEYS
from yolo2retina.checkpoint import Checkpoint
from yolo2retina.losses import loss_normalisation as loss_normalisation
from yolo2retina.run_folder import RUN_FILES as RUN_FILES
from yolo2retina.run_folder import STALE_TMP_AGE_S as STALE_TMP_AGE_S
from yolo2retina.run_folder import check_out_dir as check_out_dir
from yolo2retina.run_folder import next_run_dir as next_run_dir
from yolo2retina.run_folder import remove_stale_temp_files as remove_stale_temp_files
from yolo2retina.run_folder import run_files as run_files
from yolo2retina.run_meta import dataset_meta as dataset_meta
from yolo2retina.run_meta import describe_model as describe_model
from yolo2retina.train_config import DEMO_CONFIG as DEMO_CONFIG
from yolo2retina.train_config import DEMO_DATA as DEMO_DATA
from yolo2retina.train_config import DEMO_MODEL as DEMO_MODEL
from yolo2retina.train_config import SCRATCH_CONFIG as SCRATCH_CONFIG
from yolo2retina.train_config import SCRATCH_MODEL as SCRATCH_MODEL
from yolo2retina.train_config import TrainConfig as TrainConfig
from yolo2retina.train_fit import CURVES_EVERY_S as CURVES_EVERY_S
from yolo2retina.train_fit import FitResult as FitResult
from yolo2retina.train_fit import fit as fit
from yolo2retina.train_loop import recall_at as recall_at
from yolo2retina.train_loop import train_one_epoch as train_one_epoch
from yolo2retina.train_loop import validate as validate
from yolo2retina.train_loop import validation_losses as validation_losses
from yolo2retina.train_recipe import TrainingSetup as TrainingSetup
from yolo2retina.train_recipe import prepare_training as prepare_training
from yolo2retina.train_recipe import run_training as run_training
from yolo2retina.train_resume import check_class_names as check_class_names
from yolo2retina.train_resume import check_resumable as check_resumable
from yolo2retina.train_resume import resume_config as resume_config
from yolo2retina.train_setup import make_lr_lambda as make_lr_lambda
from yolo2retina.train_setup import seed_everything as seed_everything

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
    "resume_config",
    "run_files",
    "run_training",
    "save_checkpoint",
    "seed_everything",
    "train_one_epoch",
    "validate",
]


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Save a checkpoint dict atomically
    (:meth:`Checkpoint.save <yolo2retina.checkpoint.Checkpoint.save>`).

    A crash mid-write leaves the previous checkpoint intact.

    Raises:
        ConfigError: ``state`` lacks ``model``, ``model_args`` or ``class_names``.
    """
    return Checkpoint.from_dict(state).save(path)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint written by :func:`fit` with ``torch.load(weights_only=True)``.

    Nothing in the file is executed: it holds only tensors and plain Python values. The
    dict has the file's keys
    (:meth:`Checkpoint.to_dict <yolo2retina.checkpoint.Checkpoint.to_dict>`).

    Raises:
        ConfigError: the file is missing or is not a yolo2retina checkpoint.
    """
    return Checkpoint.load(path).to_dict()
