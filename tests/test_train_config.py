"""Tests for yolo2retina.train_config: TrainConfig validation and its dict round trip."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from yolo2retina.errors import ConfigError
from yolo2retina.train import (
    TrainConfig,
)

torch.set_num_threads(1)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"batch_size": 2.5}, "batch_size must be an integer"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"lr": math.nan}, "lr must be > 0"),
        ({"optimizer": "adam"}, "optimizer must be one of sgd, adamw"),
        ({"amp": "fp32"}, "amp must be one of"),
        ({"device": "tpu"}, "device must be"),
        ({"schedule": "multistep"}, "needs milestones"),
        ({"schedule": "multistep", "milestones": (5, 3)}, "increasing"),
        ({"warmup_iters": 10, "warmup_epochs": 1.0}, "not both"),
        ({"metric": "f1"}, "metric must be one of"),
        ({"patience": 0}, "patience must be >= 1"),
        ({"grad_clip": -1.0}, "grad_clip must be > 0"),
        ({"accumulate": 0}, "accumulate must be >= 1"),
        ({"min_lr_ratio": 2.0}, "min_lr_ratio"),
        ({"augment": "heavy"}, "augment must be one of none, light, default, strong"),
        ({"augment": True}, "augment must be one of"),
        ({"crop_size": 0}, "crop_size must be >= 1"),
        ({"crop_size": 256.0}, "crop_size must be an integer"),
        ({"crop_size": True}, "crop_size must be a number"),
        ({"loss_norm": "mean"}, "loss_norm must be one of torchvision, batch"),
    ],
)
def test_config_rejects_bad_values(kw: dict[str, Any], message: str) -> None:
    """Each invalid setting raises ConfigError naming the setting."""
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**kw)


def test_config_is_frozen_and_round_trips(tmp_path: Path) -> None:
    """A config cannot be changed in place and survives to_dict / from_dict."""
    cfg = TrainConfig(
        out_dir=tmp_path, schedule="multistep", milestones=[3, 5], grad_clip=None, device="cuda:1"
    )
    with pytest.raises(AttributeError):
        cfg.epochs = 3  # type: ignore[misc]
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d  # plain values only
    assert TrainConfig.from_dict(d) == cfg
    with pytest.raises(ConfigError, match="unknown TrainConfig settings: bogus"):
        TrainConfig.from_dict(d | {"bogus": 1})
    new = TrainConfig(augment="strong", crop_size=512, loss_norm="batch")
    assert TrainConfig.from_dict(new.to_dict()) == new
    # a checkpoint from before these settings existed still loads, with the defaults
    old = {k: v for k, v in d.items() if k not in ("augment", "crop_size", "loss_norm")}
    assert TrainConfig.from_dict(old) == cfg
