"""Tests for yolo2retina.train_setup: the learning-rate schedule."""

from __future__ import annotations

import pytest
import torch

from yolo2retina.train import (
    TrainConfig,
    make_lr_lambda,
)

torch.set_num_threads(1)


def test_lr_schedule_warmup_then_cosine_and_multistep() -> None:
    """The multiplier rises linearly during warmup, then follows cosine or steps down."""
    cfg = TrainConfig(epochs=4, warmup_iters=10, warmup_factor=0.1, min_lr_ratio=0.0)
    f = make_lr_lambda(cfg, steps_per_epoch=10)
    assert f(0) == pytest.approx(0.1)
    assert f(5) == pytest.approx(0.55)
    assert f(10) == pytest.approx(1.0)
    assert f(25) == pytest.approx(0.5)  # half-way through the 30 decay steps
    assert f(40) == pytest.approx(0.0)
    ms = TrainConfig(epochs=4, schedule="multistep", milestones=(2, 3), gamma=0.5)
    g = make_lr_lambda(ms, steps_per_epoch=10)
    assert [g(s) for s in (0, 19, 20, 29, 30, 39)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
