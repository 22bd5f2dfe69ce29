"""The NumPy half of an exported model (yolo2retina.onnx_runtime) against torchvision's code.

Each step the detector does around the ONNX graph (resize, anchors, box decoding, NMS) is
compared with the torch function it replaces; none of these tests needs onnxruntime.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf
from hypothesis import given, settings
from hypothesis import strategies as st

from yolo2retina.errors import ConfigError
from yolo2retina.onnx_runtime import (
    OnnxDetector,
    decode_boxes,
    grid_anchors,
    nms,
    preprocess,
    providers_for,
    read_sidecar,
    resize_bilinear,
)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 40),
    st.integers(1, 40),
    st.integers(1, 60),
    st.integers(1, 60),
    st.integers(0, 9),
)
def test_resize_bilinear_is_torch_interpolate(h: int, w: int, oh: int, ow: int, seed: int) -> None:
    """Up or down, any size: torch's bilinear, align_corners=False, without antialiasing."""
    img = np.random.default_rng(seed).random((3, h, w), dtype=np.float32)
    want = nnf.interpolate(
        torch.from_numpy(img)[None], size=(oh, ow), mode="bilinear", align_corners=False
    )[0].numpy()
    got = resize_bilinear(img, (oh, ow))
    assert got.dtype == np.float32 and got.shape == (3, oh, ow)
    np.testing.assert_allclose(got, want, atol=2e-6)


def test_preprocess_is_torchvisions_transform() -> None:
    """Normalise, resize by the min/max rule, pad to 32: the batch torchvision's transform makes."""
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    rng = np.random.default_rng(0)
    images = [
        rng.random((3, 100, 70), dtype=np.float32),
        rng.random((3, 45, 200), dtype=np.float32),
    ]
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    transform = GeneralizedRCNNTransform(96, 160, mean, std).eval()
    want, _ = transform([torch.from_numpy(a) for a in images])
    cfg = {"mean": mean, "std": std, "min_size": 96, "max_size": 160, "size_divisible": 32}
    batch, sizes = preprocess(images, cfg)
    assert sizes == [tuple(s) for s in want.image_sizes]
    assert batch.shape == tuple(want.tensors.shape)
    np.testing.assert_allclose(batch, want.tensors.numpy(), atol=1e-5)


@pytest.mark.parametrize("hw", [(64, 96), (96, 64), (160, 224), (32, 32)])
def test_grid_anchors_are_torchvisions(hw: tuple[int, int]) -> None:
    """Level grids of ceil(side / stride) and torchvision's side // grid anchor stride."""
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.image_list import ImageList

    from yolo2retina.anchors import DEFAULT_RATIOS, DEFAULT_SIZES, STRIDES

    gen = AnchorGenerator(DEFAULT_SIZES, DEFAULT_RATIOS)
    h, w = hw
    feats = [torch.zeros(1, 1, -(-h // s), -(-w // s)) for s in STRIDES]
    want = gen(ImageList(torch.zeros(1, 3, h, w), [(h, w)]), feats)[0].numpy()
    cfg = {"level_strides": list(STRIDES), "cell_anchors": [a.tolist() for a in gen.cell_anchors]}
    got = grid_anchors(cfg, hw)
    np.testing.assert_array_equal(np.concatenate(got), want)


def test_decode_boxes_is_torchvisions_box_coder() -> None:
    """Deltas against anchors, large dw/dh clipped as torchvision clips them."""
    from torchvision.models.detection._utils import BoxCoder

    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 300, (500, 2)).astype(np.float32)
    anchors = np.concatenate([xy, xy + rng.uniform(4, 90, (500, 2))], axis=1).astype(np.float32)
    deltas = rng.normal(0, 1.5, (500, 4)).astype(np.float32)
    deltas[:5, 2:] = 10.0  # beyond log(1000 / 16): clipped
    coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
    want = coder.decode_single(torch.from_numpy(deltas), torch.from_numpy(anchors)).numpy()
    got = decode_boxes(deltas, anchors, coder.bbox_xform_clip)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 120), st.sampled_from([0.3, 0.5, 0.7]), st.integers(0, 99))
def test_nms_keeps_what_torchvision_keeps(n: int, iou: float, seed: int) -> None:
    """Greedy NMS: the same kept boxes, in decreasing score, as torchvision.ops.nms."""
    from torchvision.ops import nms as tv_nms

    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 40, (n, 2))], axis=1).astype(np.float32)
    scores = rng.permutation(n).astype(np.float32) / max(n, 1)  # no ties
    want = tv_nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou).numpy()
    np.testing.assert_array_equal(nms(boxes, scores, iou), want)


def _sidecar(path: Path, **changes: object) -> Path:
    doc = {"format": "yolo2retina-onnx", "format_version": 1, "class_names": ["a"], **changes}
    side = Path(str(path) + ".json")
    side.write_text(json.dumps(doc))
    return side


def test_read_sidecar_refuses_what_it_cannot_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Missing, not JSON, another format or version: one ConfigError naming the sidecar."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"m\.onnx\.json: missing"):
        read_sidecar("m.onnx")
    Path("m.onnx.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"m\.onnx\.json: not a readable JSON"):
        read_sidecar("m.onnx")
    _sidecar(Path("m.onnx"), format="other")
    with pytest.raises(ConfigError, match="not a yolo2retina ONNX sidecar"):
        read_sidecar("m.onnx")
    _sidecar(Path("m.onnx"), format_version=99)
    with pytest.raises(ConfigError, match="format_version 99"):
        read_sidecar("m.onnx")
    _sidecar(Path("m.onnx"))
    assert read_sidecar("m.onnx")["class_names"] == ["a"]


def test_detector_refuses_a_missing_or_broken_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sidecar without its model, or a model file that is not ONNX: a ConfigError, one line."""
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    monkeypatch.chdir(tmp_path)
    _sidecar(Path("m.onnx"))
    with pytest.raises(ConfigError, match=r"m\.onnx: no such model file"):
        OnnxDetector("m.onnx")
    Path("m.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(ConfigError, match=r"m\.onnx: ONNX Runtime cannot load it") as e:
        OnnxDetector("m.onnx")
    assert "\n" not in str(e.value)


def test_providers_for_devices() -> None:
    """cpu and cuda map to providers (CPU last); a GPU index or another device is refused."""
    assert providers_for("cpu") == ["CPUExecutionProvider"]
    assert providers_for("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers_for("auto")[-1] == "CPUExecutionProvider"
    for bad in ("cuda:1", "mps", "gpu"):
        with pytest.raises(ConfigError, match="runs on 'cpu', 'cuda' or 'auto'"):
            providers_for(bad)


def _identity_model(path: Path) -> Path:
    """A one-node ONNX graph and its sidecar: enough for a session, no torch export."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    onnx.save(model, path)
    _sidecar(path)
    return path


def test_detector_threads_bound_its_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``threads=N`` reaches onnxruntime: N intra-op threads, 1 inter-op; ``None`` (the
    default) leaves onnxruntime's own choice (0: one thread per physical core)."""
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    pytest.importorskip("onnx", reason="the onnx extra is not installed")
    monkeypatch.chdir(tmp_path)
    _identity_model(Path("m.onnx"))
    for n in (1, 3):
        det = OnnxDetector("m.onnx", threads=n)
        options = det.session.get_session_options()
        assert (options.intra_op_num_threads, options.inter_op_num_threads) == (n, 1)
        assert det.threads == n
    default = OnnxDetector("m.onnx")
    assert default.threads is None
    assert default.session.get_session_options().intra_op_num_threads == 0


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_detector_refuses_bad_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: object
) -> None:
    """Not None or a whole number >= 1: a ConfigError naming the value, before any file
    is read (no model or sidecar here)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ConfigError, match=rf"threads must be a whole number >= 1 or None, got {bad!r}"
    ):
        OnnxDetector("missing.onnx", threads=bad)  # type: ignore[arg-type]
