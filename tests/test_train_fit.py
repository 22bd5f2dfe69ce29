"""Tests for yolo2retina.train_fit: the loop, its files, exact resume, early stopping."""

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

from tests._train_helpers import (
    RESUMABLE,
    SIZE,
    _batch_config,
    _config,
    _fake_run,
    _InterruptAfter,
    _Interrupted,
    _model,
    _NaNLoss,
    _two_images,
    make_board,
    make_straight,
)
from yolo2retina.dataset import DetectionDataset, YoloDataset
from yolo2retina.errors import ConfigError, NonFiniteLossError
from yolo2retina.model import build_args, load_model
from yolo2retina.train import (
    FitResult,
    fit,
    load_checkpoint,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic sticky board: 8 images of 64 px, train and val splits."""
    return make_board(tmp_path_factory)


@pytest.fixture(scope="module")
def straight(board: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, FitResult]:
    """One uninterrupted 2-epoch run (flip augmentation, accumulation, AdamW, mAP)."""
    return make_straight(board, tmp_path_factory)


def test_fit_writes_metrics_curves_and_loadable_checkpoints(
    straight: tuple[nn.Module, FitResult],
) -> None:
    """fit writes metrics.jsonl (one record per epoch), curves.png and weights-only checkpoints."""
    model, result = straight
    run = result.out_dir
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert list(result.history) == records
    for r in records:
        for key in ("train_loss", "train_classification", "val_loss", "map50", "map", "lr"):
            assert math.isfinite(r[key]), key
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    for key in ("model", "model_args", "class_names", "meta", "epoch", "optimizer", "scheduler"):
        assert key in state
    assert {"scaler", "config", "rng", "best_metric"} <= set(state)
    assert state["epoch"] == 2
    assert state["class_names"] == ["varroa"]
    assert state["model_args"] == build_args(model)
    assert state["config"] == _config(run, **RESUMABLE).to_dict()
    assert state["meta"]["train_image_size"] == SIZE
    assert set(state["meta"]["box_size_px"]) == {"median", "p10", "p90"}
    assert state["meta"]["source_image_size"] == SIZE
    assert result.best_epoch in (1, 2)
    best = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    assert best["epoch"] == result.best_epoch
    assert best["best_metric"] == pytest.approx(records[result.best_epoch - 1]["map50"])
    assert best["best_metric"] == max(r["map50"] for r in records)
    loaded = load_model(run / "best.pt")
    assert loaded.class_names == ("varroa",)
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, best["model"][k]), k


def test_curves_need_matplotlib_and_say_so(
    board: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without matplotlib, plot_curves names the 'plot' extra and fit still finishes."""
    from yolo2retina.plots.curves import plot_curves

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(ImportError, match=r"yolo2retina\[plot\]"):
        plot_curves([{"epoch": 1, "train_loss": 1.0}], tmp_path / "c.png")
    lines: list[str] = []
    cfg = _config(tmp_path / "run", epochs=1, progress=True)
    fit(_model(), _two_images(board), None, cfg, log=lines.append)
    assert any("curves.png not drawn" in line and "yolo2retina[plot]" in line for line in lines)
    assert not (tmp_path / "run" / "curves.png").exists()
    assert (tmp_path / "run" / "best.pt").is_file()  # without validation: the last epoch


def test_resume_continues_exactly(
    straight: tuple[nn.Module, FitResult], board: Path, tmp_path: Path
) -> None:
    """2 epochs straight and 1 epoch, interrupt, resume, 1 epoch give identical weights."""
    flip = v2.RandomHorizontalFlip(0.5)
    train, val = YoloDataset(board, "train", transforms=flip), YoloDataset(board, "val")
    cut = _InterruptAfter(train, limit=len(train))  # dies at the first sample of epoch 2
    with pytest.raises(_Interrupted):
        fit(_model(), cut, val, _config(tmp_path, **RESUMABLE))
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1

    resumed = _model(seed=123)  # another init: everything must come from the checkpoint
    cfg = _config(tmp_path, **RESUMABLE, resume=tmp_path / "last.pt")
    result = fit(resumed, train, val, cfg)
    assert result.epochs_completed == 2
    a, b = straight[0].state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k

    def records(run: Path) -> list[dict[str, Any]]:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if k != "train_seconds"} for x in lines]

    assert records(straight[1].out_dir) == records(tmp_path)


def test_nan_loss_raises_naming_the_batch_images(board: Path, tmp_path: Path) -> None:
    """A NaN loss raises NonFiniteLossError listing the image files of that batch."""
    train = YoloDataset(board, "train")
    with pytest.raises(NonFiniteLossError, match="loss is nan") as info:
        fit(_NaNLoss(_model()), train, None, _config(tmp_path / "run", batch_size=2))
    paths = info.value.image_paths
    assert len(paths) == 2
    every = {str(train.image_path(i)) for i in range(len(train))}
    assert set(paths) <= every
    assert paths[0] in str(info.value)


def test_early_stopping_after_patience(
    board: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training stops once the metric has not improved for `patience` validations."""
    from yolo2retina import train_fit
    from yolo2retina.train_loop import Validation

    scores = iter([0.5, 0.6, 0.55, 0.9, 0.95])

    def fake_validate(*_a: Any, **_k: Any) -> Validation:
        return Validation({"val_loss": 1.0, "map50": next(scores), "map": 0.1, "map75": 0.1})

    monkeypatch.setattr(train_fit, "run_validation", fake_validate)
    cfg = _config(tmp_path / "run", epochs=5, metric="map50", patience=1)
    result = fit(_model(), _two_images(board), _two_images(board), cfg)
    assert result.stopped_early
    assert result.epochs_completed == 3
    assert (result.best_epoch, result.best_metric) == (2, 0.6)
    assert load_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == 2


def test_fit_refuses_an_earlier_run_unless_resuming_it(board: Path, tmp_path: Path) -> None:
    """fit (the library) refuses an out_dir with a run before writing; resuming from that
    folder itself is allowed."""
    earlier = _fake_run(tmp_path / "run")
    with pytest.raises(ConfigError, match="already holds a training run"):
        fit(_model(), _two_images(board), None, _config(tmp_path / "run", epochs=1))
    assert {n: (tmp_path / "run" / n).read_bytes() for n in earlier} == earlier


def test_fit_resume_refuses_other_class_names(
    straight: tuple[nn.Module, FitResult], board: Path, tmp_path: Path
) -> None:
    """The library path checks too: fit(resume=...) on data with renamed classes."""
    import attrs

    ann = YoloDataset(board, "train").annotations
    renamed = DetectionDataset(attrs.evolve(ann, class_names=("mite",)))
    cfg = _config(tmp_path / "run", resume=straight[1].last_checkpoint)
    with pytest.raises(ConfigError, match=r"\['varroa'\] but the data has 1 class \['mite'\]"):
        fit(_model(), renamed, None, cfg)
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def batch_straight(
    board: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[nn.Module, FitResult]:
    """An uninterrupted 2-epoch run with the batch loss normaliser."""
    model = _model()
    out = tmp_path_factory.mktemp("batch")
    train = YoloDataset(board, "train", transforms=v2.RandomHorizontalFlip(0.5))
    return model, fit(model, train, None, _batch_config(out))


def test_fit_with_the_batch_loss_saves_its_average_and_restores_the_model(
    batch_straight: tuple[nn.Module, FitResult],
) -> None:
    """loss_norm="batch" trains with BatchNormalizedLoss, stores its moving average in
    last.pt, and leaves the model with torchvision's own loss afterwards."""
    from yolo2retina.losses import BatchNormalizedLoss

    model, result = batch_straight
    state = load_checkpoint(result.last_checkpoint)
    norm = state["loss_norm"]
    assert norm["momentum"] == 0.9 and 0 < norm["weight"] < 1 and norm["average"] > 0
    assert state["config"]["loss_norm"] == "batch"
    assert not isinstance(vars(model).get("compute_loss"), BatchNormalizedLoss)
    assert all(math.isfinite(r["train_loss"]) for r in result.history)


def test_fit_resumes_the_batch_loss_average_exactly(
    batch_straight: tuple[nn.Module, FitResult], board: Path, tmp_path: Path
) -> None:
    """1 epoch + interrupt + resume + 1 epoch gives the straight run's weights and moving
    average: the average is restored from last.pt, not started anew."""
    train = YoloDataset(board, "train", transforms=v2.RandomHorizontalFlip(0.5))
    with pytest.raises(_Interrupted):
        fit(_model(), _InterruptAfter(train, limit=len(train)), None, _batch_config(tmp_path))
    resumed = _model(seed=5)
    fit(resumed, train, None, _batch_config(tmp_path, resume=tmp_path / "last.pt"))
    straight = load_checkpoint(batch_straight[1].last_checkpoint)
    again = load_checkpoint(tmp_path / "last.pt")
    assert again["loss_norm"] == straight["loss_norm"]
    for k, v in straight["model"].items():
        assert torch.equal(v, again["model"][k]), k


def test_validation_records_recall(straight: tuple[nn.Module, FitResult]) -> None:
    """Each validation record has the recall at IoU 0.5 and AR@100 next to the mAP."""
    for r in straight[1].history:
        assert 0.0 <= r["recall50"] <= 1.0 and 0.0 <= r["mar100"] <= r["recall50"] + 1e-9


def test_checkpoints_record_the_best_models_score_threshold(
    straight: tuple[nn.Module, FitResult], board: Path
) -> None:
    """best.pt and last.pt carry meta["score_threshold"]: the best F1 of best.pt's own
    predictions on the validation set (the same predictions as its mAP)."""
    from yolo2retina.evaluation import predict_dataset
    from yolo2retina.score_threshold import best_f1_threshold

    run = straight[1].out_dir
    best = torch.load(run / "best.pt", map_location="cpu", weights_only=True)["meta"]
    last = torch.load(run / "last.pt", map_location="cpu", weights_only=True)["meta"]
    assert best["score_threshold"] == last["score_threshold"]
    entry = best["score_threshold"]
    assert set(entry) == {"score", "f1", "precision", "recall", "iou"} and entry["iou"] == 0.5
    val = YoloDataset(board, "val")
    preds = predict_dataset(load_model(run / "best.pt").model, val, progress=False)
    assert entry == best_f1_threshold(val.annotations, preds).to_meta()
    assert load_model(run / "best.pt").model_args == build_args(straight[0])  # unchanged


def test_last_pt_keeps_the_best_epochs_threshold_across_a_resume(
    board: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An epoch that does not improve leaves the best epoch's threshold in last.pt, also
    after a resume; fit says which threshold predict will use."""
    from yolo2retina import train_fit
    from yolo2retina.score_threshold import ThresholdChoice
    from yolo2retina.train_loop import Validation

    # epoch 1: map50 0.5 with threshold 0.4; epoch 2: map50 0.1 (worse) with 0.9
    results = {
        1: (0.5, ThresholdChoice(0.4, 0.6, 0.75, 0.5, 4)),
        2: (0.1, ThresholdChoice(0.9, 0.2, 1.0, 0.25, 4)),
    }
    epoch = iter([1, 2])

    def fake(*_: Any, **__: Any) -> Validation:
        m, choice = results[next(epoch)]
        return Validation({"val_loss": 1.0, "map50": m, "map": m}, choice)

    monkeypatch.setattr(train_fit, "run_validation", fake)
    train, val = _two_images(board), _two_images(board)
    fit(_model(), train, val, _config(tmp_path, **RESUMABLE, epochs=1))
    lines: list[str] = []
    cfg = _config(tmp_path, **RESUMABLE, resume=tmp_path / "last.pt", progress=True)
    result = fit(_model(), train, val, cfg, log=lines.append)
    assert result.best_epoch == 1
    expected = {"score": 0.4, "f1": 0.6, "precision": 0.75, "recall": 0.5, "iou": 0.5}
    for name in ("last.pt", "best.pt"):
        meta = load_checkpoint(tmp_path / name)["meta"]
        assert meta["score_threshold"] == expected, name
    said = "score threshold for predict: 0.4 (best F1 0.60 on val: precision 0.75, recall 0.50)"
    assert said in lines


def test_no_validation_records_no_threshold(board: Path, tmp_path: Path) -> None:
    fit(_model(), _two_images(board), None, _config(tmp_path, epochs=1))
    for name in ("last.pt", "best.pt"):
        assert "score_threshold" not in load_checkpoint(tmp_path / name)["meta"], name
