"""``yolo2retina evaluate`` (yolo2retina.commands.evaluate): an exported .onnx model, and the
confusion matrix's score threshold.

The ONNX tests export one small resnet18-FPN model for the module (about half a minute on two
cores). Its heads give well-spread scores, and the ground truth is the checkpoint's own
detections, shifted by a pixel or two, so that the mAP is far from 0 and a wrong box, label
or score from onnxruntime would show in it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from tests._prediction_helpers import board, spread_checkpoint, spy_model_threads, tiny_checkpoint
from tests.conftest import make_yolo_dataset
from yolo2retina.cli import main

SIZE = 128


def _labels_from_detections(model: Any, image: Path, rng: np.random.Generator) -> list[str]:
    """YOLO rows for the model's detections scoring >= 0.141 on ``image``, boxes shifted."""
    from yolo2retina.image import image_to_tensor, load_image

    tensor = image_to_tensor(load_image(image))
    with torch.inference_mode():
        [out] = model([tensor])
    keep = out["scores"] >= 0.141
    boxes = out["boxes"][keep].numpy() + rng.uniform(-2, 2, (int(keep.sum()), 4))
    boxes = boxes.clip(0, SIZE)
    rows = []
    for (x0, y0, x1, y1), label in zip(boxes, out["labels"][keep].tolist(), strict=True):
        if x1 - x0 > 1 and y1 - y0 > 1:
            cx, cy, w, h = (
                (x0 + x1) / 2 / SIZE,
                (y0 + y1) / 2 / SIZE,
                (x1 - x0) / SIZE,
                (y1 - y0) / SIZE,
            )
            rows.append(f"{label} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return rows[:12]


@pytest.fixture(scope="module")
def onnx_eval(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``best.pt``, ``best.onnx`` (exported by the CLI) and ``ds/data.yaml`` (split val)."""
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    from yolo2retina.model import load_model

    root = tmp_path_factory.mktemp("onnx_eval")
    spread_checkpoint(root / "best.pt")
    model = load_model(root / "best.pt").model
    rng = np.random.default_rng(0)
    images = root / "ds" / "images" / "val"
    images.mkdir(parents=True)
    labels = {}
    for k in range(3):
        Image.fromarray(board(rng, SIZE, 4)[0]).save(images / f"{k}.png")
        labels[str(k)] = _labels_from_detections(model, images / f"{k}.png", rng)
    assert sum(map(len, labels.values())) >= 10
    for stem, rows in labels.items():
        path = root / "ds" / "labels" / "val" / f"{stem}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{r}\n" for r in rows))
    (root / "ds" / "data.yaml").write_text("val: images/val\nnames: [varroa, bee]\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert main(["export", "--weights", "best.pt", "--format", "onnx"]) == 0
    return root


def _evaluate(weights: str, out: str, *more: str) -> dict[str, Any]:
    argv = ["evaluate", "--data", "ds/data.yaml", "--weights", weights, "--out", out]
    assert main([*argv, "--no-plots", "--quiet", *more]) == 0
    doc: dict[str, Any] = json.loads((Path(out) / "metrics.json").read_text())
    return doc


def _numbers(doc: Any, prefix: str = "") -> dict[str, float]:
    """Every number in a metrics.json document, by its path."""
    if isinstance(doc, dict):
        return {
            k: v for key, val in doc.items() for k, v in _numbers(val, f"{prefix}/{key}").items()
        }
    if isinstance(doc, list):
        return {
            k: v for i, val in enumerate(doc) for k, v in _numbers(val, f"{prefix}[{i}]").items()
        }
    if isinstance(doc, (int, float)) and not isinstance(doc, bool):
        return {prefix: float(doc)}
    return {}


def test_evaluate_onnx_gives_the_checkpoints_metrics(
    onnx_eval: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--weights best.onnx`` runs through onnxruntime (it was refused as "not a
    checkpoint") and writes the metrics, confusion matrix and predictions of best.pt."""
    monkeypatch.chdir(onnx_eval)
    want = _evaluate("best.pt", "eval-pt")
    got = _evaluate("best.onnx", "eval-onnx")
    assert want["map50"] > 0.3  # the ground truth is the model's own detections
    assert got["weights"] == "best.onnx" and got["data"] == want["data"]
    assert got["confusion_matrix"] == want["confusion_matrix"]
    w, g = _numbers(want), _numbers(got)
    assert w.keys() == g.keys()
    worst = max(abs(w[k] - g[k]) for k in w)
    print(f"map50 {want['map50']:.3f}, map {want['map']:.3f}, largest difference {worst:.2g}")
    assert worst <= 1e-3, worst
    pt = json.loads(Path("eval-pt/predictions.json").read_text())
    onnx = json.loads(Path("eval-onnx/predictions.json").read_text())
    assert len(pt) == len(onnx) > 0


def test_evaluate_takes_the_recorded_score_threshold_unless_given(
    onnx_eval: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --score-threshold the confusion matrix used 0.3 whatever training chose; now
    it uses the threshold recorded in the checkpoint or the .onnx sidecar, as predict does,
    and says which; --score-threshold wins."""
    monkeypatch.chdir(onnx_eval)
    said = (
        "confusion-matrix score threshold 0.141 (chosen on the validation set at training; "
        "--score-threshold overrides)"
    )
    for weights in ("best.pt", "best.onnx"):
        doc = _evaluate(weights, f"thr-{weights}")
        assert said in capsys.readouterr().out
        assert doc["confusion_matrix"]["score_threshold"] == pytest.approx(0.141)
    doc = _evaluate("best.onnx", "thr-given", "--score-threshold", "0.5")
    assert "score threshold 0.5 (given with --score-threshold)" in capsys.readouterr().out
    assert doc["confusion_matrix"]["score_threshold"] == 0.5


def test_evaluate_onnx_refuses_other_classes(
    onnx_eval: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sidecar's class names are checked against the dataset's, as a checkpoint's are."""
    monkeypatch.chdir(onnx_eval)
    Path("ds/other.yaml").write_text("val: images/val\nnames: [varroa, wax]\n")
    argv = ["evaluate", "--data", "ds/other.yaml", "--weights", "best.onnx", "--out", "o"]
    assert main([*argv, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "best.onnx was trained on classes ['varroa', 'bee']" in err
    assert "has ['varroa', 'wax']" in err and err.count("\n") == 1
    assert not Path("o").exists()


def test_evaluate_defaults_to_0_3_without_a_recorded_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint that records no threshold keeps 0.3, and the printed line says so."""
    monkeypatch.chdir(tmp_path)
    tiny_checkpoint(Path("best.pt"))
    make_yolo_dataset(
        Path("ds"), {"a": ["0 0.5 0.5 0.2 0.2"]}, split="val", names=["varroa", "bee"]
    )
    doc = _evaluate("best.pt", "eval")
    assert (
        "confusion-matrix score threshold 0.3 (the default; this checkpoint records none)"
        in capsys.readouterr().out
    )
    assert doc["confusion_matrix"]["score_threshold"] == 0.3


def test_evaluate_threads_bound_torch_and_onnxruntime(
    onnx_eval: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--threads 1``: a checkpoint's model runs on one torch thread (restored after), an
    .onnx model gets a one-thread onnxruntime session; 0 is a usage error."""
    import onnxruntime as ort

    monkeypatch.chdir(onnx_eval)
    seen = spy_model_threads(monkeypatch)
    options: list[Any] = []
    real_session = ort.InferenceSession

    def session(*args: Any, **kw: Any) -> Any:
        options.append(kw.get("sess_options"))
        return real_session(*args, **kw)

    monkeypatch.setattr(ort, "InferenceSession", session)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _evaluate("best.pt", "thr1-pt", "--threads", "1")
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
        _evaluate("best.onnx", "thr1-onnx", "--threads", "1")
        assert options and options[-1].intra_op_num_threads == 1
    finally:
        torch.set_num_threads(before)
    argv = ["evaluate", "--data", "ds/data.yaml", "--weights", "best.pt", "--out", "z"]
    assert main([*argv, "--threads", "0"]) == 2
