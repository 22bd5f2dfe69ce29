"""ONNX export (yolo2retina.onnx_export): onnxruntime gives PyTorch's detections.

One small resnet18-FPN model is exported once for the module (about half a minute on two
cores). Its classification and box heads are re-drawn with a wider spread than the
focal-loss prior gives a fresh model, so that scores are spread over 0.1-0.3 instead of
all sitting at 0.01 (near-equal scores would leave the order of detections to rounding).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install '.[onnx]')")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed (pip install '.[onnx]')")

from yolo2retina import onnx_export
from yolo2retina._version import __version__
from yolo2retina.errors import ConfigError, DatasetError
from yolo2retina.model import build_args, build_retinanet, load_model
from yolo2retina.onnx_export import export_onnx, sidecar_path
from yolo2retina.onnx_runtime import OnnxDetector

NAMES = ["varroa", "bee", "wax"]
SIZE = 128


def spread_checkpoint(path: Path) -> Path:
    """A 3-class resnet18-FPN checkpoint (128 px) whose heads give well-spread scores."""
    torch.manual_seed(0)
    model = build_retinanet(
        num_classes=len(NAMES), backbone="resnet18_fpn", min_size=SIZE, max_size=SIZE
    )
    with torch.no_grad():
        model.head.classification_head.cls_logits.weight.normal_(0.0, 0.05)
        model.head.classification_head.cls_logits.bias.fill_(-2.0)
        model.head.regression_head.bbox_reg.weight.normal_(0.0, 0.02)
    meta = {"train_image_size": SIZE, "box_size_px": {"median": 20.0, "p10": 16.0, "p90": 24.0}}
    torch.save(
        {
            "model": model.state_dict(),
            "model_args": build_args(model),
            "class_names": NAMES,
            "meta": meta,
        },
        path,
    )
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``model.onnx`` exported by relative paths from a folder holding ``best.pt``."""
    root = tmp_path_factory.mktemp("onnx")
    spread_checkpoint(root / "best.pt")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert export_onnx("best.pt", "model.onnx") == Path("model.onnx")
    return root


def _images() -> list[torch.Tensor]:
    """Two images at the model's size and two of other shapes (resized by the model)."""
    g = torch.Generator().manual_seed(1)
    shapes = [(SIZE, SIZE), (SIZE, SIZE), (300, 200), (90, 410)]
    return [torch.rand(3, h, w, generator=g) for h, w in shapes]


def _separated_threshold(scores: np.ndarray, margin: float) -> float:
    """A score threshold keeping at least 20 detections with no score within ``margin`` of it."""
    s = np.sort(scores)[::-1]
    for k in range(20, len(s)):
        if s[k - 1] - s[k] > 2 * margin:
            return float(s[k - 1] + s[k]) / 2
    raise AssertionError("no well-separated threshold")  # pragma: no cover


def _max_differences(want: dict[str, Any], got: dict[str, Any]) -> tuple[float, float]:
    """Pair PyTorch's detections (above a separated threshold) with ONNX's; max differences."""
    t = _separated_threshold(want["scores"].numpy(), 2e-5)
    keep_w, keep_g = want["scores"] >= t, got["scores"] >= t
    wb, wl, ws = (want[k][keep_w].numpy() for k in ("boxes", "labels", "scores"))
    gb, gl, gs = (got[k][keep_g].numpy() for k in ("boxes", "labels", "scores"))
    assert len(wb) == len(gb) >= 20
    cost = np.abs(wb[:, None, :] - gb[None, :, :]).max(axis=2) + 1e9 * (wl[:, None] != gl[None])
    pair = cost.argmin(axis=1)
    assert len(set(pair.tolist())) == len(pair)  # one to one, labels equal
    return float(cost[np.arange(len(pair)), pair].max()), float(np.abs(ws - gs[pair]).max())


def test_onnxruntime_matches_pytorch(exported: Path) -> None:
    """Boxes within 1e-3 px, equal labels, scores within 1e-4 on square and non-square images."""
    images = _images()
    with torch.inference_mode():
        want = load_model(exported / "best.pt").model(images)
    got = OnnxDetector(exported / "model.onnx")(images)
    assert len(got) == len(images)
    for w, g, img in zip(want, got, images, strict=True):
        assert g["boxes"].dtype == torch.float32 and g["labels"].dtype == torch.int64
        assert len(g["boxes"]) == len(w["boxes"]) == 300  # detections_per_image
        box_diff, score_diff = _max_differences(w, g)
        assert box_diff <= 1e-3 and score_diff <= 1e-4, (tuple(img.shape), box_diff, score_diff)
        print(
            f"{tuple(img.shape)}: max box diff {box_diff:.3g} px, max score diff {score_diff:.3g}"
        )
        assert float(g["boxes"][:, 2].max()) <= img.shape[2] + 1e-3  # clipped (float32 rescale)


def test_detect_takes_numpy_one_image_at_a_time(exported: Path) -> None:
    """``detect`` on one array matches PyTorch on that image alone (its own padding)."""
    model = load_model(exported / "best.pt").model
    det = OnnxDetector(exported / "model.onnx")
    for img in _images()[2:]:
        with torch.inference_mode():
            [want] = model([img])
        [alone] = det.detect([img.numpy()])
        got = {k: torch.from_numpy(v) for k, v in alone.items()}
        box_diff, score_diff = _max_differences(want, got)
        assert box_diff <= 1e-3 and score_diff <= 1e-4
    assert det.detect([]) == []
    with pytest.raises(ConfigError, match=r"image 0: expected a \(3, H, W\) array"):
        det.detect([np.zeros((5, 5))])


def test_sidecar_holds_what_the_runtime_needs(exported: Path) -> None:
    """Class names, input size, normalisation, thresholds, anchors, version and meta."""
    doc = json.loads(sidecar_path(exported / "model.onnx").read_text())
    assert sidecar_path("a/model.onnx") == Path("a/model.onnx.json")
    assert doc["format"] == "yolo2retina-onnx" and doc["yolo2retina_version"] == __version__
    assert doc["class_names"] == NAMES and doc["model_file"] == "model.onnx"
    inp = doc["input"]
    assert (inp["min_size"], inp["max_size"], inp["size_divisible"]) == (SIZE, SIZE, 32)
    assert inp["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert inp["std"] == pytest.approx([0.229, 0.224, 0.225])
    post = doc["postprocess"]
    assert post == {
        "score_threshold": pytest.approx(0.05),
        "topk_candidates": 1000,
        "nms_threshold": pytest.approx(0.5),
        "detections_per_image": 300,
    }
    assert doc["anchors"]["level_strides"] == [8, 16, 32, 64, 128]
    assert [len(level) for level in doc["anchors"]["cell_anchors"]] == [9] * 5
    assert doc["box_coder"]["weights"] == [1.0, 1.0, 1.0, 1.0]
    assert doc["meta"]["train_image_size"] == SIZE
    det = OnnxDetector(exported / "model.onnx")
    assert det.class_names == tuple(NAMES) and det.meta["box_size_px"]["p90"] == 24.0


def test_export_refuses_existing_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An existing model or sidecar is refused before any work; the files stay as they were."""
    monkeypatch.chdir(tmp_path)
    Path("best.pt").write_bytes(b"never read")
    Path("model.onnx").write_bytes(b"old")
    with pytest.raises(DatasetError, match=r"model\.onnx.*overwrite=True"):
        export_onnx("best.pt", "model.onnx")
    Path("model.onnx").unlink()
    Path("model.onnx.json").write_text("{}")
    with pytest.raises(DatasetError, match=r"model\.onnx\.json"):
        export_onnx("best.pt", "model.onnx")
    assert Path("model.onnx.json").read_text() == "{}" and not Path("model.onnx").exists()


def test_export_overwrite_replaces_both_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``overwrite=True`` writes a new model and sidecar over the old ones (the graph stubbed)."""

    def fake_graph(net: Any, example: Any, path: Path, opset: int) -> None:
        path.write_bytes(f"graph opset {opset}".encode())

    monkeypatch.setattr(onnx_export, "_export_graph", fake_graph)
    monkeypatch.setattr(onnx_export, "_check_graph", lambda *a: None)
    monkeypatch.chdir(tmp_path)
    spread_checkpoint(Path("best.pt"))
    Path("m.onnx").write_bytes(b"old")
    Path("m.onnx.json").write_text("{}")
    export_onnx("best.pt", "m.onnx", overwrite=True, opset=19, img_size=160)
    assert Path("m.onnx").read_bytes() == b"graph opset 19"
    doc = json.loads(Path("m.onnx.json").read_text())
    assert (doc["input"]["min_size"], doc["input"]["max_size"]) == (160, 160)
    assert doc["source"] == "best.pt"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path": "model.pt"}, r"model\.pt: the model file name must end in \.onnx"),
        ({"opset": 17}, "opset must be a whole number >= 18"),
        ({"img_size": 0}, "img_size must be a whole number >= 32"),
        ({"model": "missing.pt"}, r"missing\.pt"),
        ({"model": 3}, "needs a checkpoint path or a LoadedModel, got int"),
    ],
)
def test_export_refuses_bad_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], message: str
) -> None:
    """Bad arguments are a one-line ConfigError naming the value, and nothing is written."""
    monkeypatch.chdir(tmp_path)
    spread_checkpoint(Path("best.pt"))
    args: dict[str, Any] = {"model": "best.pt", "path": "model.onnx", **kwargs}
    with pytest.raises(ConfigError, match=message):
        export_onnx(args.pop("model"), args.pop("path"), **args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]
