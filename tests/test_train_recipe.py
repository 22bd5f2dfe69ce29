"""Tests for yolo2retina.train_recipe: loading the splits and the set-up that run_training fits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests._train_helpers import (
    SIZE,
    _config,
    make_board,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic sticky board: 8 images of 64 px, train and val splits."""
    return make_board(tmp_path_factory)


def test_missing_val_split_is_reported_not_fatal(board: Path, tmp_path: Path) -> None:
    """A dataset without a val split loads as None together with the reason."""
    from yolo2retina.train_recipe import _load_split

    text = board.read_text().replace("val: images/val\n", "")
    only_train = tmp_path / "data.yaml"
    only_train.write_text(text)
    val, why = _load_split(only_train, "auto", ["val", "valid"])
    assert val is None and "valid" in why
    train, why = _load_split(only_train, "auto", ["train"])
    assert len(train) == 6 and why == ""


def test_prepare_training_puts_the_policy_on_the_training_split(
    board: Path, tmp_path: Path
) -> None:
    """run_training's set-up: the policy's transforms on the train split only, the model's
    training resize off exactly when the policy sets the scale, the crop size passed on."""
    from yolo2retina.train import prepare_training

    def setup(**kw: Any) -> Any:
        cfg = _config(tmp_path / "run", **kw)
        return prepare_training(
            board, cfg, backbone="resnet18_fpn", img_size=SIZE, log=lambda _line: None
        )

    light = setup(augment="light")
    assert light.augmentation.policy == "light" and light.train.transforms is light.augmentation
    assert light.val.transforms is None
    assert not light.model.transform._skip_resize
    crop = setup(augment="light", crop_size=32)
    assert crop.augmentation.crop_size == 32 and crop.model.transform._skip_resize
    image, target = crop.train[0]
    assert max(image.shape[-2:]) <= 32 and target["boxes"].shape[0] == target["labels"].shape[0]
    default = setup()  # TrainConfig's default policy sets the scale itself
    assert default.augmentation.policy == "default" and default.model.transform._skip_resize
    assert default.augmentation.img_size == SIZE
    assert not (tmp_path / "run").exists()  # nothing is written before fit
