"""Tests for yolo2retina.train: the one namespace of training keeps every public name, and its
checkpoint functions are the dict form of yolo2retina.checkpoint.Checkpoint."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import torch

from yolo2retina import train
from yolo2retina.checkpoint import Checkpoint
from yolo2retina.errors import ConfigError

#: Every name ``yolo2retina.train`` had before the split, and the module that now holds it.
MOVED = {
    "FitResult": "train_fit",
    "fit": "train_fit",
    "CURVES_EVERY_S": "train_fit",
    "TrainConfig": "train_config",
    "SCRATCH_CONFIG": "train_config",
    "DEMO_DATA": "train_config",
    "DEMO_MODEL": "train_config",
    "DEMO_CONFIG": "train_config",
    "TrainingSetup": "train_recipe",
    "prepare_training": "train_recipe",
    "run_training": "train_recipe",
    "check_class_names": "train_resume",
    "check_resumable": "train_resume",
    "check_out_dir": "run_folder",
    "next_run_dir": "run_folder",
    "remove_stale_temp_files": "run_folder",
    "run_files": "run_folder",
    "RUN_FILES": "run_folder",
    "STALE_TMP_AGE_S": "run_folder",
    "seed_everything": "train_setup",
    "make_lr_lambda": "train_setup",
    "train_one_epoch": "train_loop",
    "validate": "train_loop",
    "validation_losses": "train_loop",
    "recall_at": "train_loop",
    "describe_model": "run_meta",
    "dataset_meta": "run_meta",
    "loss_normalisation": "losses",
    "TRAINING_ONLY_KEYS": "checkpoint",
}


@pytest.mark.parametrize(("name", "module"), sorted(MOVED.items()))
def test_every_old_name_is_the_new_modules_object(name: str, module: str) -> None:
    """yolo2retina.train.X is the very object of the module that holds X now."""
    new = importlib.import_module(f"yolo2retina.{module}")
    assert getattr(train, name) is getattr(new, name)


def test_all_lists_the_public_names_of_before() -> None:
    """Nothing left __all__; resume_config is new."""
    before = {
        "FitResult", "TrainConfig", "TrainingSetup", "check_class_names", "check_out_dir", "fit",
        "load_checkpoint", "prepare_training", "remove_stale_temp_files", "run_files",
        "run_training", "save_checkpoint", "seed_everything", "train_one_epoch", "validate",
    }  # fmt: skip
    assert set(train.__all__) == before | {"resume_config"}
    assert all(hasattr(train, name) for name in train.__all__)


def test_save_and_load_checkpoint_are_the_dict_form_of_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """save_checkpoint writes a dict atomically (relative path, second save over the first),
    load_checkpoint gives the file's dict back; anything but a checkpoint is refused."""
    monkeypatch.chdir(tmp_path)
    weights = {"w": torch.ones(2)}
    state: dict[str, Any] = {
        "model": weights,
        "model_args": {"num_classes": 1},
        "class_names": ["mite"],
        "meta": {},
        "epoch": 1,
        "optimizer": {"state": {}},
        "scheduler": {},
    }
    assert train.save_checkpoint(state, "runs/last.pt") == Path("runs/last.pt")
    train.save_checkpoint(state | {"epoch": 2}, "runs/last.pt")
    loaded = train.load_checkpoint("runs/last.pt")
    assert loaded.keys() == state.keys() and loaded["epoch"] == 2
    assert torch.equal(loaded["model"]["w"], weights["w"])
    assert Checkpoint.load("runs/last.pt").resumable
    assert [p.name for p in Path("runs").iterdir()] == ["last.pt"]
    with pytest.raises(ConfigError, match="no model_args, class_names"):
        train.save_checkpoint({"model": {}}, "runs/bad.pt")
    assert not Path("runs/bad.pt").exists()
    with pytest.raises(ConfigError, match=r"runs/none\.pt: checkpoint not found"):
        train.load_checkpoint("runs/none.pt")
