"""Tests for yolo2retina.commands.train: `yolo2retina train`, its run folder, resume and recipe line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from tests._train_helpers import (
    SIZE,
    TINY,
    _dead_pid,
    _fake_run,
    _losses,
    _relabelled,
    make_board,
    make_straight,
)
from yolo2retina.cli import main
from yolo2retina.train import (
    FitResult,
    TrainConfig,
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


def test_cli_from_scratch_uses_the_scratch_model_and_crops(
    board: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --weights or --backbone the CLI builds SCRATCH_MODEL (resnet18_fpn, 128-channel
    FPN) and trains with SCRATCH_CONFIG (512 px crops, batches of 2, the batch loss
    normaliser), and the recipe line names the model and the crops;
    --fpn-channels and --crop-size 0 (whole images) override them. Relative paths."""
    from yolo2retina.train import SCRATCH_CONFIG, SCRATCH_MODEL

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").symlink_to(board.parent)
    i = TINY.index("--batch-size")
    tiny = [a for a in TINY[:i] + TINY[i + 2 :] if a not in ("--backbone", "resnet18_fpn")]
    assert main(["train", "--data", f"data/{board.name}", *tiny, "--out", "run"]) == 0
    state = load_checkpoint(Path("run/last.pt"))
    assert state["model_args"]["backbone"] == SCRATCH_MODEL["backbone"] == "resnet18_fpn"
    assert state["model_args"]["fpn_channels"] == SCRATCH_MODEL["fpn_channels"] == 128
    assert state["config"]["crop_size"] == SCRATCH_CONFIG["crop_size"] == 512
    assert state["config"]["batch_size"] == SCRATCH_CONFIG["batch_size"] == 2
    assert state["config"]["loss_norm"] == SCRATCH_CONFIG["loss_norm"] == "batch"
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("no pretrained"))
    assert f"resnet18_fpn (128-channel FPN) at {SIZE} px, adamw lr 0.001" in line
    assert "512 px crops" in line

    argv = ["train", "--data", f"data/{board.name}", *tiny, "--out", "run2"]
    assert main([*argv, "--fpn-channels", "64", "--crop-size", "0"]) == 0
    state = load_checkpoint(Path("run2/last.pt"))
    assert state["model_args"]["fpn_channels"] == 64 and state["config"]["crop_size"] is None
    assert "crops" not in capsys.readouterr().out.split("no pretrained")[1].splitlines()[0]


def test_cli_refuses_narrow_fpn_with_coco_weights_in_one_line(
    board: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--weights DEFAULT with --fpn-channels 128 fails before any download, in one line."""
    argv = ["train", "--data", str(board), *TINY, "--out", str(tmp_path / "run")]
    assert main([*argv, "--weights", "DEFAULT", "--fpn-channels", "128"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "fpn_channels=128" in err


def test_recipe_line_of_the_defaults_is_the_documented_one() -> None:
    """With the from-scratch defaults the line gives the recipe's reason, word for word as
    docs/training.md shows it; with ImageNet backbone weights it does not say 'from scratch'."""
    from yolo2retina.commands.train import _recipe_line
    from yolo2retina.train import SCRATCH_CONFIG, SCRATCH_MODEL

    model = {**SCRATCH_MODEL, "img_size": 800}
    line = _recipe_line(
        TrainConfig(**SCRATCH_CONFIG), SCRATCH_CONFIG, None, demo=False, model=model
    )
    assert line.startswith("no pretrained weights: training from scratch with resnet18_fpn")
    docs = Path(__file__).resolve().parents[2] / "docs" / "training.md"
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
