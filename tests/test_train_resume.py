"""Tests for yolo2retina.train_resume: resume checks and resume_config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests._train_helpers import (
    RESUMABLE,
    _config,
    _model,
    make_board,
)
from yolo2retina.dataset import YoloDataset
from yolo2retina.errors import ConfigError
from yolo2retina.train import (
    check_class_names,
    fit,
    load_checkpoint,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic sticky board: 8 images of 64 px, train and val splits."""
    return make_board(tmp_path_factory)


def test_class_name_lists_are_cut_in_messages() -> None:
    """A long class list is shortened in the message, which stays one line."""
    with pytest.raises(ConfigError) as info:
        check_class_names("last.pt", [f"c{i}" for i in range(80)], [f"c{i}" for i in range(79)])
    text = str(info.value)
    assert "80 classes" in text and "79 classes" in text and "... 70 more" in text
    assert "c50" not in text and "\n" not in text


def test_library_resume_through_resume_config_and_run_training(board: Path, tmp_path: Path) -> None:
    """A library user resumes as the CLI does: resume_config reads the run's own settings
    (overrides applied, the checkpoint's folder as out_dir), run_training continues it; a
    best.pt or a checkpoint without settings is refused naming the file."""
    from yolo2retina.train import resume_config, run_training

    run = tmp_path / "run"
    first = _config(run, epochs=1, augment="light", **RESUMABLE)
    fit(_model(), YoloDataset(board, "train"), YoloDataset(board, "val"), first)
    lines: list[str] = []
    config = resume_config(run / "last.pt", epochs=2, patience=None, log=lines.append)
    assert config.epochs == 2 and config.resume == str(run / "last.pt")
    assert config.out_dir == str(run) and not config.overwrite
    assert config.to_dict() | {"epochs": 1, "resume": None} == first.to_dict()
    assert lines == []  # the run knows its augmentation
    result = run_training(board, config, log=lines.append)
    assert result.epochs_completed == 2 and load_checkpoint(run / "last.pt")["epoch"] == 2
    epochs = [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
    with pytest.raises(ConfigError, match=r"best\.pt: cannot resume from it"):
        resume_config(run / "best.pt")
    state = load_checkpoint(run / "last.pt")
    del state["config"]
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(ConfigError, match=r"old\.pt: cannot resume from it: it holds no training"):
        resume_config(tmp_path / "old.pt")
