"""Tests for yolo2retina.evaluation: predict_dataset, evaluate, write_evaluation and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from yolo2retina.annotations import AnnotationsBuilder
from yolo2retina.coco_metric import coco_map
from yolo2retina.dataset import DetectionDataset
from yolo2retina.evaluation import evaluate, predict_dataset, write_evaluation

from ._eval_helpers import build, pred
from .conftest import write_image

# -- evaluate() with a model -----------------------------------------------------------------------


class CentreBoxModel(torch.nn.Module):
    """Predicts one box covering the middle half of whatever image it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen_training: list[bool] = []

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        self.seen_training.append(self.training)
        out = []
        for img in images:
            h, w = img.shape[-2:]
            box = torch.tensor([[w / 4, h / 4, 3 * w / 4, 3 * h / 4]], dtype=torch.float32)
            out.append(
                {"boxes": box, "labels": torch.zeros(1, dtype=torch.int64), "scores": torch.ones(1)}
            )
        return out


def centre_dataset(tmp_path: Path, max_size: int | None) -> DetectionDataset:
    """Three 160x120 images whose only box is the middle half."""
    b = AnnotationsBuilder()
    for i in range(3):
        p = write_image(tmp_path / f"{i}.png", (160, 120))
        b.add(p, (120, 160), [[40, 30, 120, 90]], [0])
    return DetectionDataset(b.build(["thing"]), max_size=max_size)


@pytest.mark.parametrize("max_size", [None, 64])
def test_evaluate_maps_boxes_back_to_the_original_frame(
    tmp_path: Path, max_size: int | None
) -> None:
    """Boxes predicted on shrunk images are scaled back, and the model's train mode is restored."""
    ds = centre_dataset(tmp_path, max_size)
    model = CentreBoxModel()
    model.train()
    m = evaluate(model, ds, batch_size=2, progress=False)
    assert m.map == pytest.approx(1.0)
    assert model.seen_training == [False, False]
    assert model.training


def test_predict_dataset_runs_a_plain_callable(tmp_path: Path) -> None:
    """A detector that is not a torch module (an OnnxDetector is one) is called as it is,
    on CPU tensors, with the same boxes as the module; before, ``model.training`` failed."""
    module = CentreBoxModel()
    calls: list[str] = []

    def plain(images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        calls.extend(str(img.device) for img in images)
        return module.forward(images)

    ds = centre_dataset(tmp_path, 64)
    got = predict_dataset(plain, ds, batch_size=2, progress=False)
    want = predict_dataset(CentreBoxModel(), ds, batch_size=2, progress=False)
    assert [t.boxes.tolist() for t in got] == [t.boxes.tolist() for t in want]
    assert calls == ["cpu"] * 3
    assert evaluate(plain, ds, progress=False).map == pytest.approx(1.0)


def test_predict_dataset_rejects_a_zero_batch_size() -> None:
    """The library says which setting is wrong instead of a DataLoader ValueError."""
    from yolo2retina.errors import ConfigError

    with pytest.raises(ConfigError, match="batch_size"):
        predict_dataset(CentreBoxModel(), centre_dataset_in_memory(), batch_size=0)


def centre_dataset_in_memory() -> DetectionDataset:
    b = AnnotationsBuilder()
    b.add("x.png", (120, 160), [[40, 30, 120, 90]], [0])
    return DetectionDataset(b.build(["thing"]))


def test_write_evaluation_without_matplotlib_writes_json_and_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without matplotlib the JSON files are written and a warning names the plot extra."""
    ann = build([([[10, 10, 50, 50]], [0], [0])])
    preds = [pred([[10, 10, 50, 50]], [0], [0.9])]
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.warns(UserWarning, match=r"yolo2retina\[plot\]"):
        files = write_evaluation(tmp_path, coco_map(ann, preds), preds, ann)
    assert sorted(p.name for p in files) == ["metrics.json", "predictions.json"]
    assert json.loads((tmp_path / "metrics.json").read_text())["map50"] == pytest.approx(1.0)


# -- the CLI ----------------------------------------------------------------------------------------


def _board_and_untrained_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    """A 4-image 64-px synthetic board and an untrained resnet18-FPN ``run/best.pt`` for it."""
    from yolo2retina.model import build_retinanet
    from yolo2retina.synthetic import synthetic_sticky_board

    data = synthetic_sticky_board(tmp_path / "board", n_images=4, image_size=64, val_fraction=0.5)
    args = {"num_classes": 1, "backbone": "resnet18_fpn", "min_size": 64, "max_size": 64}
    torch.manual_seed(0)
    model = build_retinanet(**args)  # type: ignore[arg-type]
    ckpt = tmp_path / "run" / "best.pt"
    ckpt.parent.mkdir()
    torch.save({"model": model.state_dict(), "model_args": args, "class_names": ["varroa"]}, ckpt)
    return data, ckpt


def test_cli_evaluate_prints_the_table_and_writes_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`yolo2retina evaluate` runs a real RetinaNet, prints the table and writes its outputs."""
    from yolo2retina.cli import main

    data, ckpt = _board_and_untrained_checkpoint(tmp_path)

    rc = main(["evaluate", "--data", str(data), "--weights", str(ckpt), "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Average Precision  (AP) @[ IoU=0.50:0.95" in out
    folder = tmp_path / "run" / "eval-val"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert set(metrics["per_class"]) == {"varroa"}
    assert len(metrics["confusion_matrix"]["matrix"]) == 2
    assert isinstance(json.loads((folder / "predictions.json").read_text()), list)
    assert (folder / "confusion_matrix.png").is_file()


def test_cli_evaluate_refuses_other_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint trained on other classes is an error with exit code 1, in one line."""
    from yolo2retina.cli import main
    from yolo2retina.model import build_retinanet
    from yolo2retina.synthetic import synthetic_sticky_board

    data = synthetic_sticky_board(tmp_path / "board", n_images=2, image_size=64)
    args = {"num_classes": 1, "backbone": "resnet18_fpn", "min_size": 64, "max_size": 64}
    ckpt = tmp_path / "best.pt"
    model = build_retinanet(**args)  # type: ignore[arg-type]
    torch.save({"model": model.state_dict(), "model_args": args, "class_names": ["ant"]}, ckpt)
    assert main(["evaluate", "--data", str(data), "--weights", str(ckpt)]) == 1
    assert "trained on classes ['ant']" in capsys.readouterr().err


def board_and_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    """A 4-image synthetic board (data.yaml) and an untrained resnet18 checkpoint in run/."""

    data, ckpt = _board_and_untrained_checkpoint(tmp_path)
    return data, ckpt


def test_cli_evaluate_second_run_needs_a_flag_and_never_writes_into_the_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second evaluate into the same folder is refused (flags named); --overwrite replaces.

    Before, it overwrote metrics.json and the plots of the earlier run without notice.
    """
    from yolo2retina.cli import main

    data, ckpt = board_and_checkpoint(tmp_path)
    base = ["evaluate", "--data", str(data), "--weights", str(ckpt), "--quiet", "--no-plots"]
    assert main(base) == 0
    metrics = tmp_path / "run" / "eval-val" / "metrics.json"
    first = metrics.read_bytes()
    capsys.readouterr()
    assert main(base) == 1
    err = capsys.readouterr().err
    assert "eval-val: output folder already exists" in err
    assert "--exist-ok" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert main([*base, "--exist-ok"]) == 1
    assert "metrics.json" in capsys.readouterr().err
    assert metrics.read_bytes() == first
    assert main([*base, "--overwrite"]) == 0
    assert json.loads(metrics.read_text())["weights"] == str(ckpt)
    capsys.readouterr()
    inside = tmp_path / "board" / "eval"
    assert main([*base, "--out", str(inside), "--overwrite"]) == 1
    assert "no flag allows this" in capsys.readouterr().err and not inside.exists()


def test_cli_evaluate_batch_size_zero_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--batch-size 0 used to end in a raw ValueError from the DataLoader; now exit 2, one line."""
    from yolo2retina.cli import main

    rc = main(["evaluate", "--data", "d.yaml", "--weights", "w.pt", "--batch-size", "0"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--batch-size: expected a whole number >= 1, got '0'" in err
    assert "Traceback" not in err


def test_cli_evaluate_pycocotools_compat_reaches_coco_map(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`evaluate --pycocotools-compat` scores with coco_map(..., pycocotools_compat=True)."""
    import yolo2retina.coco_metric as ev
    from yolo2retina.cli import main

    data, ckpt = _board_and_untrained_checkpoint(tmp_path)
    seen: list[bool] = []
    real = ev.coco_map

    def spy(*a: Any, **kw: Any) -> Any:
        seen.append(bool(kw.get("pycocotools_compat", False)))
        return real(*a, **kw)

    monkeypatch.setattr(ev, "coco_map", spy)
    base = ["evaluate", "--data", str(data), "--weights", str(ckpt), "--quiet", "--no-plots"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--out", str(tmp_path / "b"), "--pycocotools-compat"]) == 0
    assert seen == [False, True]


def test_predict_dataset_resolves_device_auto(tmp_path: Path) -> None:
    """device="auto" picks a device like training does (it was torch.device("auto"): an error)."""
    ds = centre_dataset(tmp_path, None)
    auto = predict_dataset(CentreBoxModel(), ds, device="auto", progress=False)
    default = predict_dataset(CentreBoxModel(), ds, progress=False)
    assert [t.boxes.tolist() for t in auto] == [t.boxes.tolist() for t in default]


def test_the_metric_modules_load_no_torch(tmp_path: Path) -> None:
    """coco_metric, confusion, evaluation and plots import without torch; only running a
    model loads it."""
    script = (
        "import sys\n"
        "import yolo2retina.coco_metric, yolo2retina.confusion, yolo2retina.evaluation\n"
        "import yolo2retina.plots\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'torchvision'}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
