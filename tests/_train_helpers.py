"""Shared stand-ins of the training tests (tests/test_train_*.py, tests/commands/test_train.py):
a tiny synthetic board, a small model and config, interrupted and NaN-loss stand-ins."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torchvision.transforms import v2

from yolo2retina.dataset import DetectionDataset, YoloDataset
from yolo2retina.model import build_retinanet
from yolo2retina.synthetic import synthetic_sticky_board
from yolo2retina.train import FitResult, TrainConfig, fit

SIZE = 64


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model: nn.Module = build_retinanet(
        num_classes=1, backbone="resnet18_fpn", min_size=SIZE, max_size=SIZE, detections_per_img=20
    )
    return model


def _config(out: Path, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "epochs": 2,
        "batch_size": 2,
        "lr": 0.005,
        "num_workers": 0,
        "warmup_iters": 2,
        "out_dir": out,
        "metric": "val_loss",
        "progress": False,
    }
    return TrainConfig(**(base | kw))


def _two_images(board: Path) -> DetectionDataset:
    """Two training images: one step per epoch at batch size 2."""
    return DetectionDataset(YoloDataset(board, "train").annotations.subset([0, 1]))


RESUMABLE = {"accumulate": 2, "optimizer": "adamw", "metric": "map50"}


class _Interrupted(Exception):
    pass


class _InterruptAfter(DetectionDataset):
    """Raises after ``limit`` samples, like a Ctrl-C or a pre-empted job."""

    def __init__(self, base: DetectionDataset, limit: int) -> None:
        super().__init__(base.annotations, base.transforms)
        self.calls, self.limit = 0, limit

    def __getitem__(self, i: int) -> Any:
        self.calls += 1
        if self.calls > self.limit:
            raise _Interrupted
        return super().__getitem__(i)


class _NaNLoss(nn.Module):
    """Wraps a detector and turns its classification loss into NaN."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, images: Any, targets: Any = None) -> Any:
        out = self.inner(images, targets)
        if self.training:
            out["classification"] = out["classification"] * math.nan
        return out


def _fake_run(folder: Path) -> dict[str, bytes]:
    """An earlier run's files (not real checkpoints: only their bytes matter)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: f"earlier {name}\n".encode() for name in ("best.pt", "last.pt", "metrics.jsonl")}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


TINY = ["--backbone", "resnet18_fpn", "--img-size", str(SIZE), "--epochs", "1"]
TINY += ["--batch-size", "2", "--workers", "0", "--warmup", "2", "--metric", "val_loss"]


def _relabelled(board: Path, folder: Path, names: list[str]) -> Path:
    """A data.yaml over the board's images with other class names."""
    folder.mkdir()
    text = board.read_text().split("nc:")[0] + f"nc: {len(names)}\nnames: {names}\n"
    (folder / "data.yaml").write_text(text)
    return folder / "data.yaml"


def _losses(run: Path) -> list[dict[str, Any]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "train_seconds"} for x in lines]


def _batch_config(out: Path, **kw: Any) -> TrainConfig:
    return _config(out, loss_norm="batch", optimizer="adamw", **kw)


def make_board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic sticky board: 8 images of 64 px, train and val splits."""
    root = tmp_path_factory.mktemp("board")
    return synthetic_sticky_board(root, n_images=8, image_size=SIZE, val_fraction=0.25, seed=3)


def make_straight(
    board: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[nn.Module, FitResult]:
    """One uninterrupted 2-epoch run (flip augmentation, accumulation, AdamW, mAP)."""
    flip = v2.RandomHorizontalFlip(0.5)  # uses the global RNG: resume must restore it
    train, val = YoloDataset(board, "train", transforms=flip), YoloDataset(board, "val")
    model = _model()
    out = tmp_path_factory.mktemp("straight")
    return model, fit(model, train, val, _config(out, **RESUMABLE))
