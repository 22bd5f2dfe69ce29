"""Tests for yolo2retina.train: config validation, the loop, checkpoints and exact resume."""

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

from yolo2retina.cli import main
from yolo2retina.dataset import DetectionDataset, YoloDataset
from yolo2retina.errors import ConfigError, NonFiniteLossError
from yolo2retina.model import build_args, build_retinanet, load_model
from yolo2retina.synthetic import synthetic_sticky_board
from yolo2retina.train import (
    FitResult,
    TrainConfig,
    check_class_names,
    check_out_dir,
    fit,
    load_checkpoint,
    make_lr_lambda,
    next_run_dir,
    remove_stale_temp_files,
    validation_losses,
)

torch.set_num_threads(1)
SIZE = 64


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic sticky board: 8 images of 64 px, train and val splits."""
    root = tmp_path_factory.mktemp("board")
    return synthetic_sticky_board(root, n_images=8, image_size=SIZE, val_fraction=0.25, seed=3)


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


# -- config ---------------------------------------------------------------------------------


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


# -- the loop and its files --------------------------------------------------------------------


RESUMABLE = {"accumulate": 2, "optimizer": "adamw", "metric": "map50"}


@pytest.fixture(scope="module")
def straight(board: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, FitResult]:
    """One uninterrupted 2-epoch run (flip augmentation, accumulation, AdamW, mAP)."""
    flip = v2.RandomHorizontalFlip(0.5)  # uses the global RNG: resume must restore it
    train, val = YoloDataset(board, "train", transforms=flip), YoloDataset(board, "val")
    model = _model()
    out = tmp_path_factory.mktemp("straight")
    return model, fit(model, train, val, _config(out, **RESUMABLE))


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
    assert any("yolo2retina[plot]" in line for line in lines)
    assert not (tmp_path / "run" / "curves.png").exists()
    assert (tmp_path / "run" / "best.pt").is_file()  # without validation: the last epoch


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


def test_validation_losses_leave_batchnorm_statistics_alone(board: Path) -> None:
    """Val losses run the model in train mode but update no BatchNorm running statistic."""
    model = _model()
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    from torch.utils.data import DataLoader

    from yolo2retina.dataset import collate

    loader = DataLoader(YoloDataset(board, "val"), batch_size=2, collate_fn=collate)
    losses = validation_losses(model, loader, device=torch.device("cpu"))
    assert set(losses) == {"loss", "classification", "bbox_regression"}
    assert all(math.isfinite(v) for v in losses.values())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model.training


def test_early_stopping_after_patience(
    board: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training stops once the metric has not improved for `patience` validations."""
    from yolo2retina import train_fit

    scores = iter([0.5, 0.6, 0.55, 0.9, 0.95])

    def fake_validate(*_a: Any, **_k: Any) -> dict[str, float]:
        return {"val_loss": 1.0, "map50": next(scores), "map": 0.1, "map75": 0.1}

    monkeypatch.setattr(train_fit, "validate", fake_validate)
    cfg = _config(tmp_path / "run", epochs=5, metric="map50", patience=1)
    result = fit(_model(), _two_images(board), _two_images(board), cfg)
    assert result.stopped_early
    assert result.epochs_completed == 3
    assert (result.best_epoch, result.best_metric) == (2, 0.6)
    assert load_checkpoint(tmp_path / "run" / "best.pt")["epoch"] == 2


def test_cli_train_then_resume(
    board: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`yolo2retina train` writes a run folder and prints the final mAP; --resume continues it."""
    out = tmp_path / "run"
    common = ["--img-size", str(SIZE), "--batch-size", "2", "--workers", "0", "--seed", "1"]
    argv = ["train", "--data", str(board), "--backbone", "resnet18_fpn", "--epochs", "1"]
    assert main([*argv, *common, "--warmup", "3", "--out", str(out)]) == 0
    assert load_checkpoint(out / "last.pt")["config"]["warmup_iters"] == 3
    text = capsys.readouterr().out
    assert "final val mAP@0.5:" in text
    assert "Anchors for min_size=64" in text  # the fitted anchors' coverage is printed
    assert {"best.pt", "last.pt", "metrics.jsonl", "curves.png"} <= {p.name for p in out.iterdir()}
    # best.pt keeps weights and metadata only: a third of last.pt, and not resumable
    best = load_checkpoint(out / "best.pt")
    assert "optimizer" not in best and {"model", "model_args", "class_names", "meta"} <= set(best)
    assert (out / "best.pt").stat().st_size < (out / "last.pt").stat().st_size / 2
    capsys.readouterr()
    assert main(["train", "--resume", str(out / "best.pt"), "--epochs", "2"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "best.pt: cannot resume" in err and "last.pt" in err
    assert main(["train", "--resume", str(out / "last.pt"), "--epochs", "2"]) == 0
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_cli_train_reports_a_bad_dataset_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing dataset is a library error: one line on stderr and exit code 1."""
    assert main(["train", "--data", str(tmp_path / "nope.yaml"), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nope.yaml" in err


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


# -- the run folder: never replace an earlier run, never write into the data -----------------


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


def test_cli_train_refuses_an_earlier_run_and_overwrite_replaces_it(
    board: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out holding a run is refused untouched (one line naming it and --overwrite);
    --overwrite replaces the run and the next start removes a dead save's temporary file."""
    monkeypatch.chdir(tmp_path)
    earlier = _fake_run(tmp_path / "run")
    stale = tmp_path / "run" / f".last.pt.{_dead_pid()}.tmp"
    stale.write_bytes(b"\0" * 1000)
    argv = ["train", "--data", str(board), *TINY, "--out", "run"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: run: already holds a training run")
    assert "--overwrite" in err and "--resume run/last.pt" in err
    assert {n: (tmp_path / "run" / n).read_bytes() for n in earlier} == earlier
    assert stale.exists()  # a refused command changes nothing

    assert main([*argv, "--overwrite"]) == 0
    out = capsys.readouterr().out
    assert "removed the earlier run's last.pt, best.pt, metrics.jsonl" in out
    assert f"removed 1 temporary file(s) of an interrupted save from run ({stale.name}" in out
    assert not stale.exists()
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text())["epoch"] == 1
    assert (tmp_path / "run" / "best.pt").read_bytes() != earlier["best.pt"]


@pytest.mark.parametrize("out", ["data/runs", ".", "link/runs", "data/images/train"])
def test_cli_train_refuses_an_out_inside_the_dataset(
    board: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: str
) -> None:
    """--out equal to or inside the dataset folder (also through a symlink) is refused
    before anything is written."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(board.parent, data)
    (data / "data.yaml").write_text(board.read_text().replace(str(board.parent), "."))
    (tmp_path / "link").symlink_to(data)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    monkeypatch.chdir(data if out == "." else tmp_path)
    data_arg = "data.yaml" if out == "." else "data/data.yaml"
    assert main(["train", "--data", data_arg, *TINY, "--out", out]) == 1
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_fit_refuses_an_earlier_run_unless_resuming_it(board: Path, tmp_path: Path) -> None:
    """fit (the library) refuses an out_dir with a run before writing; resuming from that
    folder itself is allowed."""
    earlier = _fake_run(tmp_path / "run")
    with pytest.raises(ConfigError, match="already holds a training run"):
        fit(_model(), _two_images(board), None, _config(tmp_path / "run", epochs=1))
    assert {n: (tmp_path / "run" / n).read_bytes() for n in earlier} == earlier


def test_check_out_dir_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths, '.', and symlinks are resolved; a resume from another folder does not
    make an occupied folder writable."""
    monkeypatch.chdir(tmp_path)
    _fake_run(tmp_path / "a")
    (tmp_path / "alias").symlink_to(tmp_path / "a")
    check_out_dir("a", resume="a/last.pt")
    check_out_dir("alias", resume=tmp_path / "a" / "last.pt")
    check_out_dir("a", overwrite=True)
    check_out_dir("fresh")
    with pytest.raises(ConfigError, match="already holds"):
        check_out_dir("alias", resume="b/last.pt")
    monkeypatch.chdir(tmp_path / "a")
    with pytest.raises(ConfigError, match=r"^\.: already holds a training run"):
        check_out_dir(".")
    with pytest.raises(ConfigError, match="inside the dataset folder"):
        check_out_dir("sub", inputs=["data.yaml"])
    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError, match="not a folder"):
        check_out_dir(tmp_path / "f")


def test_next_run_dir_skips_any_run_not_only_finished_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default folder auto-increments past a run that has any run file (a run killed
    before its first last.pt has metrics.jsonl or curves.png only)."""
    monkeypatch.chdir(tmp_path)
    assert next_run_dir("runs/train") == Path("runs/train")
    Path("runs/train").mkdir(parents=True)
    assert next_run_dir("runs/train") == Path("runs/train")  # an empty folder is free
    Path("runs/train/metrics.jsonl").write_text("")
    Path("runs/train2").mkdir()
    Path("runs/train2/curves.png").write_text("")
    assert next_run_dir("runs/train") == Path("runs/train3")


def test_remove_stale_temp_files_only_touches_dead_saves(tmp_path: Path) -> None:
    """Only the library's own temp names are removed, and only when the writing process is
    gone or the file is old; a live save and other files stay."""
    import os

    dead, alive = _dead_pid(), os.getppid()
    names = {
        f".last.pt.{dead}.tmp": True,
        f".metrics.jsonl.{dead}.tmp": True,
        f".best.pt.{alive}.tmp": False,  # a running save
        f".notes.txt.{dead}.tmp": False,  # not a run file
        ".last.pt.abc.tmp": False,
        f"last.pt.{dead}.tmp": False,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x" * 10)
    old = tmp_path / f".curves.png.{alive}.tmp"
    old.write_bytes(b"x")
    os.utime(old, (1_000_000_000, 1_000_000_000))
    removed = remove_stale_temp_files(tmp_path)
    assert sorted(p.name for p, _ in removed) == sorted(
        [old.name, *(n for n, g in names.items() if g)]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        n for n, g in names.items() if not g
    )


# -- resume checks ---------------------------------------------------------------------------------


def _relabelled(board: Path, folder: Path, names: list[str]) -> Path:
    """A data.yaml over the board's images with other class names."""
    folder.mkdir()
    text = board.read_text().split("nc:")[0] + f"nc: {len(names)}\nnames: {names}\n"
    (folder / "data.yaml").write_text(text)
    return folder / "data.yaml"


@pytest.mark.parametrize("names", [["mite"], ["varroa", "bee"], ["bee", "varroa"]])
def test_cli_resume_refuses_data_with_other_classes(
    straight: tuple[nn.Module, FitResult],
    board: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    names: list[str],
) -> None:
    """--resume with data of other class names (renamed, added, reordered) is refused in one
    line naming both lists, before anything is written."""
    other = _relabelled(board, tmp_path / "other", names)
    ckpt = straight[1].last_checkpoint
    argv = ["train", "--resume", str(ckpt), "--data", str(other), "--epochs", "3"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "trained on 1 class ['varroa']" in err
    assert f"the data has {len(names)} class" in err and repr(names[0]) in err
    assert not (tmp_path / "run").exists()


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


def test_class_name_lists_are_cut_in_messages() -> None:
    """A long class list is shortened in the message, which stays one line."""
    with pytest.raises(ConfigError) as info:
        check_class_names("last.pt", [f"c{i}" for i in range(80)], [f"c{i}" for i in range(79)])
    text = str(info.value)
    assert "80 classes" in text and "79 classes" in text and "... 70 more" in text
    assert "c50" not in text and "\n" not in text


# -- reproducibility and errors from DataLoader workers ------------------------------------------


def _losses(run: Path) -> list[dict[str, Any]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "train_seconds"} for x in lines]


@pytest.mark.parametrize("workers", ["0", "2"])
def test_cli_same_seed_same_losses(board: Path, tmp_path: Path, workers: str) -> None:
    """Two runs of the same command and seed give identical losses and weights on the CPU
    (the model is built after seeding; workers are seeded from the loader's generator)."""
    torch.manual_seed(12345)  # whatever ran before must not matter
    argv = ["train", "--data", str(board), *TINY, "--seed", "7", "--device", "cpu"]
    argv[argv.index("--workers") + 1] = workers
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    torch.manual_seed(54321)
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    a, b = _losses(tmp_path / "a"), _losses(tmp_path / "b")
    assert a == b and math.isfinite(a[0]["train_loss"])
    wa = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    wb = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_cli_names_the_unreadable_image_from_a_worker(
    board: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An image that breaks after loading (truncated) shows its path and the reason, also
    when a DataLoader worker process read it."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(board.parent, data)
    (data / "data.yaml").write_text(board.read_text().replace(str(board.parent), str(data)))
    bad = sorted((data / "images" / "train").iterdir())
    for image in bad:  # every training image: the first batch fails whatever the order
        image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    argv = ["train", "--data", str(data / "data.yaml"), *TINY, "--out", str(tmp_path / "run")]
    argv[argv.index("--workers") + 1] = "1"
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert "Caught" not in err and str(data / "images" / "train") in err
    assert "truncated" in err


# -- augmentation, crop training and the loss normaliser in training --------------------------


def test_validation_losses_resize_even_with_the_training_resize_off(board: Path) -> None:
    """With the training resize off (the augmentation sets the scale), validation losses are
    still computed on images resized to the model's size, as at evaluation time."""
    from torch.utils.data import DataLoader

    from yolo2retina.augment import set_train_resize
    from yolo2retina.dataset import collate

    torch.manual_seed(0)
    model = build_retinanet(num_classes=1, backbone="resnet18_fpn", min_size=96, max_size=96)
    loader = DataLoader(YoloDataset(board, "val"), batch_size=2, collate_fn=collate)
    resized = validation_losses(model, loader, device=torch.device("cpu"))
    set_train_resize(model, False)  # 64 px images would reach the model at 64 px
    assert validation_losses(model, loader, device=torch.device("cpu")) == resized
    assert model.training and model.transform.training  # the modes are restored
    assert model.transform._skip_resize


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


def _batch_config(out: Path, **kw: Any) -> TrainConfig:
    return _config(out, loss_norm="batch", optimizer="adamw", **kw)


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


def test_loss_normalisation_is_for_the_run_only() -> None:
    """The context installs the batch loss for the block (keeping one the user installed),
    takes a user's one out for "torchvision", and restores the model's loss afterwards;
    a model that is not a RetinaNet is refused for "batch"."""
    from yolo2retina.losses import BatchNormalizedLoss, install_batch_normalized_loss
    from yolo2retina.train import loss_normalisation

    model = _model()
    with loss_normalisation(model, "batch") as loss:
        assert isinstance(loss, BatchNormalizedLoss) and model.compute_loss is loss
    assert "compute_loss" not in vars(model)
    mine = install_batch_normalized_loss(model, momentum=0.5)
    with loss_normalisation(model, "batch") as loss:
        assert loss is mine
    with loss_normalisation(model, "torchvision") as loss:
        assert loss is None and "compute_loss" not in vars(model)
    assert model.compute_loss is mine
    wrapped = _NaNLoss(_model())
    with (
        pytest.raises(ConfigError, match="needs a torchvision RetinaNet"),
        loss_normalisation(wrapped, "batch"),
    ):
        pass
    with (
        pytest.raises(ConfigError, match="loss_norm must be one of"),
        loss_normalisation(model, "mean"),
    ):
        pass


def test_validation_records_recall(straight: tuple[nn.Module, FitResult]) -> None:
    """Each validation record has the recall at IoU 0.5 and AR@100 next to the mAP."""
    for r in straight[1].history:
        assert 0.0 <= r["recall50"] <= 1.0 and 0.0 <= r["mar100"] <= r["recall50"] + 1e-9


def test_recall_at_counts_found_boxes(board: Path) -> None:
    """recall_at: every box predicted gives 1, the first half of each image's boxes about
    half, an IoU that is not a COCO threshold is refused."""
    import numpy as np

    from yolo2retina.coco_metric import coco_map
    from yolo2retina.target import Target
    from yolo2retina.train import recall_at

    ann = YoloDataset(board, "val").annotations
    targets = [ann.target(i) for i in range(len(ann))]

    def scored(t: Target, n: int) -> Target:
        return Target(t.boxes[:n], t.labels[:n], np.ones(n, np.float32))

    assert recall_at(coco_map(ann, [scored(t, len(t.boxes)) for t in targets])) == 1.0
    halves = [scored(t, len(t.boxes) // 2) for t in targets]
    expected = sum(len(h.boxes) for h in halves) / sum(len(t.boxes) for t in targets)
    assert recall_at(coco_map(ann, halves), 0.5) == pytest.approx(expected)
    with pytest.raises(ConfigError, match="iou must be one of"):
        recall_at(coco_map(ann, halves), 0.52)


def test_cli_augment_crop_and_loss_norm_reach_the_checkpoint(
    board: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--augment, --crop-size and --loss-norm reach the run's config; without --weights one
    line names the from-scratch recipe and how to start from COCO weights instead."""
    argv = ["train", "--data", str(board), *TINY, "--out", str(tmp_path / "run")]
    argv += ["--augment", "strong", "--crop-size", "48", "--loss-norm", "batch"]
    assert main(argv) == 0
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    config = state["config"]
    assert (config["augment"], config["crop_size"], config["loss_norm"]) == ("strong", 48, "batch")
    assert (config["optimizer"], config["lr"], config["warmup_iters"]) == ("adamw", 1e-3, 2)
    assert state["loss_norm"]["weight"] > 0
    out = capsys.readouterr().out
    recipe = [line for line in out.splitlines() if line.startswith("no pretrained weights")]
    assert len(recipe) == 1
    assert "adamw lr 0.001, warmup 2 steps, augment strong, 48 px crops" in recipe[0]
    assert "your settings; the from-scratch default is adamw lr 0.001, warmup 50" in recipe[0]
    assert "--weights DEFAULT" in recipe[0]
    assert "augment: strong at 64 px, 48 px crops" in out


def test_recipe_line_of_the_defaults_is_the_documented_one() -> None:
    """With the from-scratch defaults the line gives the recipe's reason, word for word as
    docs/training.md shows it; with ImageNet backbone weights it does not say 'from scratch'."""
    from yolo2retina.commands.train import _recipe_line
    from yolo2retina.train import SCRATCH_CONFIG

    line = _recipe_line(TrainConfig(**SCRATCH_CONFIG), SCRATCH_CONFIG, None, demo=False)
    assert line.startswith("no pretrained weights: training from scratch with adamw lr 0.001")
    docs = Path(__file__).resolve().parents[1] / "docs" / "training.md"
    assert line in docs.read_text(encoding="utf-8")
    backbone = _recipe_line(TrainConfig(**SCRATCH_CONFIG), SCRATCH_CONFIG, "DEFAULT", demo=False)
    assert backbone.startswith("no pretrained detector weights (backbone from DEFAULT)")
    assert "from scratch" not in backbone.split("(", 2)[1]


def test_cli_weights_keep_the_fine_tuning_defaults(
    straight: tuple[nn.Module, FitResult],
    board: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With --weights the CLI keeps SGD at lr 0.01 and prints no from-scratch line."""
    argv = ["train", "--data", str(board), *TINY, "--out", str(tmp_path / "run")]
    argv += ["--weights", str(straight[1].last_checkpoint), "--anchors", "default"]
    argv += ["--augment", "none"]
    assert main(argv) == 0
    config = load_checkpoint(tmp_path / "run" / "last.pt")["config"]
    assert (config["optimizer"], config["lr"], config["augment"]) == ("sgd", 0.01, "none")
    assert "from scratch" not in capsys.readouterr().out


def test_cli_resume_of_a_run_from_before_augment_uses_light(
    straight: tuple[nn.Module, FitResult],
    board: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A checkpoint whose config predates --augment (trained with horizontal flips) resumes
    with the light policy, and says so; a given --augment wins."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(straight[1].out_dir, run)
    state = load_checkpoint(run / "last.pt")
    for key in ("augment", "crop_size", "loss_norm"):
        del state["config"][key]
    del state["loss_norm"]
    torch.save(state, run / "last.pt")
    argv = ["train", "--resume", str(run / "last.pt"), "--data", str(board)]
    assert main([*argv, "--epochs", "3"]) == 0
    assert f"note: {run / 'last.pt'} predates --augment" in capsys.readouterr().out
    resumed = load_checkpoint(run / "last.pt")
    assert resumed["epoch"] == 3 and resumed["config"]["augment"] == "light"
    assert main([*argv, "--epochs", "4", "--augment", "none"]) == 0
    assert "predates" not in capsys.readouterr().out
    assert load_checkpoint(run / "last.pt")["config"]["augment"] == "none"


def test_cli_train_reads_coco_images_from_images_root(
    board: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``train --images-root`` (issue 13): COCO files kept apart from their images train, with
    relative paths, and the reader option is kept in the checkpoint for resume."""
    from yolo2retina.formats import load_splits, write_annotations

    write_annotations(load_splits(board), tmp_path / "coco", "coco")
    (tmp_path / "ann").mkdir()
    for split in ("train", "val"):
        d = json.loads(next((tmp_path / "coco" / split).glob("*.json")).read_text())
        for im in d["images"]:
            im["file_name"] = f"{split}/{im['file_name']}"
        (tmp_path / "ann" / f"{split}.json").write_text(json.dumps(d))
        next((tmp_path / "coco" / split).glob("*.json")).unlink()
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "ann", *TINY, "--out", "run"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not found" in err, err
    argv = ["train", "--data", "ann", "--images-root", "coco", *TINY, "--out", "run"]
    assert main(argv) == 0
    meta = load_checkpoint(tmp_path / "run" / "last.pt")["meta"]
    assert meta["reader_options"] == {"images_root": "coco"}
    assert main(["train", "--images-root", "coco", *TINY, "--out", "run2"]) == 2  # no --data


def test_remove_stale_temp_files_knows_the_atomic_writers_names(tmp_path: Path) -> None:
    """The temporary names of yolo2retina.atomic (no pid in them) are removed once old, never
    while fresh: their writer may still be saving."""
    import os

    from yolo2retina.atomic import atomic_path

    with atomic_path(tmp_path / "last.pt") as tmp:
        tmp.write_bytes(b"x" * 10)
        fresh = tmp.name
        assert remove_stale_temp_files(tmp_path) == []  # a save in progress
        (tmp_path / "kept").write_bytes(tmp.read_bytes())
    old = tmp_path / ".best.pt.k2_9xq0a.tmp"
    old.write_bytes(b"x" * 7)
    os.utime(old, (1_000_000_000, 1_000_000_000))
    assert fresh.startswith(".last.pt.") and fresh.endswith(".tmp")
    assert remove_stale_temp_files(tmp_path) == [(old, 7)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "last.pt"]


def test_library_resume_through_resume_config_and_run_training(
    straight: tuple[nn.Module, FitResult], board: Path, tmp_path: Path
) -> None:
    """A library user resumes as the CLI does: resume_config reads the run's own settings
    (overrides applied, the checkpoint's folder as out_dir), run_training continues it; a
    best.pt or a checkpoint without settings is refused naming the file."""
    import shutil

    from yolo2retina.train import resume_config, run_training

    run = tmp_path / "run"
    shutil.copytree(straight[1].out_dir, run)
    lines: list[str] = []
    config = resume_config(run / "last.pt", epochs=3, patience=None, log=lines.append)
    assert config.epochs == 3 and config.resume == str(run / "last.pt")
    assert config.out_dir == str(run) and not config.overwrite
    assert config.to_dict() | {"epochs": 2, "resume": None} == _config(
        straight[1].out_dir, **RESUMABLE
    ).to_dict() | {"out_dir": str(run)}
    assert lines == []  # the run knows its augmentation
    result = run_training(board, config, log=lines.append)
    assert result.epochs_completed == 3 and load_checkpoint(run / "last.pt")["epoch"] == 3
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [
        1,
        2,
        3,
    ]
    with pytest.raises(ConfigError, match=r"best\.pt: cannot resume from it"):
        resume_config(run / "best.pt")
    state = load_checkpoint(run / "last.pt")
    del state["config"]
    torch.save(state, tmp_path / "old.pt")
    with pytest.raises(ConfigError, match=r"old\.pt: cannot resume from it: it holds no training"):
        resume_config(tmp_path / "old.pt")
