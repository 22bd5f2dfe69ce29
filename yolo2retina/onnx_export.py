"""Export a trained RetinaNet to ONNX: the network in the graph, the post-processing in NumPy.

The ONNX graph is the backbone, the FPN and the two heads of the torchvision RetinaNet:
normalised, zero-padded images ``(N, 3, H, W) float32`` in, the raw per-anchor outputs out
(``cls_logits`` ``(N, A, K)`` and ``bbox_regression`` ``(N, A, 4)``, anchors of every level
in order). Batch, height and width are dynamic (``H`` and ``W`` multiples of 32). What
torchvision does around the network (resize, normalisation, the anchor grid, box decoding,
the score threshold, per-class NMS, the top detections) is written down in a JSON sidecar,
``<model>.onnx.json``, and done in NumPy by :class:`yolo2retina.onnx_runtime.OnnxDetector`.

The exporter is torch's own (``torch.onnx.export(dynamo=True)``, which needs ``onnxscript``);
the ``onnx`` extra installs what it needs: ``pip install 'yolo2retina[onnx]'``.

Example:
    >>> export_onnx("runs/demo/best.pt", "model.onnx")  # doctest: +SKIP
    PosixPath('model.onnx')
"""

from __future__ import annotations

import copy
import importlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from yolo2retina._version import __version__
from yolo2retina.anchors import STRIDES
from yolo2retina.atomic import atomic_path, atomic_write_text
from yolo2retina.errors import ConfigError
from yolo2retina.model import LoadedModel, load_model
from yolo2retina.outputs import check_output_file, check_output_files

__all__ = ["DEFAULT_OPSET", "FORMAT", "FORMAT_VERSION", "export_onnx", "sidecar_path"]

#: The ONNX opset written by default (the lowest the torch.export-based exporter writes).
DEFAULT_OPSET = 18
#: ``format`` and ``format_version`` of the sidecar: what :class:`OnnxDetector` reads.
FORMAT = "yolo2retina-onnx"
FORMAT_VERSION = 1
#: Image sides are padded to a multiple of this, as torchvision's transform does.
SIZE_DIVISIBLE = 32
#: The largest raw-output difference (ONNX Runtime vs PyTorch) the export accepts.
_GRAPH_TOLERANCE = 1e-3
_EXTRA = "pip install 'yolo2retina[onnx]'"


def sidecar_path(model_path: str | os.PathLike[str]) -> Path:
    """The JSON sidecar of an exported model: ``model.onnx`` -> ``model.onnx.json``."""
    return Path(os.fspath(model_path) + ".json")


class _Network(nn.Module):
    """Backbone and heads: ``(N, 3, H, W)`` normalised images -> raw per-anchor outputs."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.backbone: Any = model.backbone
        self.head: Any = model.head

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = list(self.backbone(images).values())
        out = self.head(features)
        return out["cls_logits"], out["bbox_regression"]


def _require_exporter() -> None:
    if torch.__version__ < "2.5":  # TorchVersion compares as a version
        raise ConfigError(f"ONNX export needs torch>=2.5 (torch.export), found {torch.__version__}")
    for name in ("onnx", "onnxscript", "onnxruntime"):
        try:
            importlib.import_module(name)
        except ImportError:
            raise ConfigError(f"ONNX export needs the {name} package: {_EXTRA}") from None


def _loaded(model: LoadedModel | str | os.PathLike[str]) -> LoadedModel:
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_model(model)
    raise ConfigError(
        f"export_onnx needs a checkpoint path or a LoadedModel, got {type(model).__name__}"
    )


def _checked_retinanet(loaded: LoadedModel) -> Any:
    """A CPU copy of the model in eval mode, after checking its parts are the standard ones."""
    from torchvision.models.detection import RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    model = loaded.model
    if not isinstance(model, RetinaNet) or not isinstance(model.anchor_generator, AnchorGenerator):
        raise ConfigError(
            f"{loaded.path}: only torchvision RetinaNets with an AnchorGenerator export"
        )
    if tuple(model.box_coder.weights) != (1.0, 1.0, 1.0, 1.0):
        raise ConfigError(f"{loaded.path}: box coder weights {model.box_coder.weights} unsupported")
    return copy.deepcopy(model).cpu().eval()


def _level_strides(net: _Network, example: torch.Tensor, source: Path) -> list[int]:
    """The stride of each pyramid level, checked: a level's grid is ``ceil(side / stride)``."""
    with torch.inference_mode():
        features = list(net.backbone(example).values())
    h, w = example.shape[-2:]
    grids = [tuple(f.shape[-2:]) for f in features]
    strides = list(STRIDES)
    expected = [(math.ceil(h / s), math.ceil(w / s)) for s in strides]
    if grids != expected:
        raise ConfigError(
            f"{source}: feature grids {grids} for a {h}x{w} input are not ceil(side / stride) "
            f"for strides {strides}; this backbone cannot be exported"
        )
    return strides


def _export_graph(net: _Network, example: torch.Tensor, path: Path, opset: int) -> None:
    from torch.export import Dim

    dims = {"images": {0: Dim.DYNAMIC, 2: Dim.DYNAMIC, 3: Dim.DYNAMIC}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own deprecation and tracing notes
        torch.onnx.export(
            net,
            (example,),
            path,
            dynamo=True,
            dynamic_shapes=dims,
            input_names=["images"],
            output_names=["cls_logits", "bbox_regression"],
            opset_version=opset,
            external_data=False,
            verbose=False,
        )


def _check_graph(net: _Network, example: torch.Tensor, path: Path, source: Path) -> None:
    """Run the written graph once in ONNX Runtime; its outputs must match PyTorch's."""
    import onnxruntime as ort

    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": example.numpy()})
    with torch.inference_mode():
        want = [t.numpy() for t in net(example)]
    diff = max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True))
    if not diff <= _GRAPH_TOLERANCE:
        raise ConfigError(f"{source}: the exported graph differs from PyTorch by {diff:.3g}")


def _sidecar(
    loaded: LoadedModel, model: Any, path: Path, sizes: tuple[int, int], strides: list[int]
) -> dict[str, Any]:
    """What the runtime needs besides the graph: preprocessing, anchors, post-processing."""
    gen, transform = model.anchor_generator, model.transform
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "yolo2retina_version": __version__,
        "model_file": path.name,
        "source": str(loaded.path),
        "class_names": list(loaded.class_names),
        "input": {
            "name": "images",
            "layout": "NCHW float32 RGB, normalised, zero-padded at the bottom and right",
            "min_size": sizes[0],
            "max_size": sizes[1],
            "size_divisible": SIZE_DIVISIBLE,
            "resize": "bilinear, align_corners=False; scale = min(min_size / shorter side, "
            "max_size / longer side); new side = floor(side * scale)",
            "mean": [float(v) for v in transform.image_mean],
            "std": [float(v) for v in transform.image_std],
        },
        "outputs": {
            "cls_logits": "(N, anchors, num_classes) logits (sigmoid for scores)",
            "bbox_regression": "(N, anchors, 4) dx, dy, dw, dh against each anchor",
        },
        "anchors": {
            "level_strides": strides,
            "grid": "level grid = ceil(side / level stride); anchor stride = side // grid",
            "cell_anchors": [a.tolist() for a in gen.cell_anchors],
            "order": "per level, row-major over the grid, then the level's cell anchors",
        },
        "box_coder": {
            "weights": [float(v) for v in model.box_coder.weights],
            "bbox_xform_clip": float(model.box_coder.bbox_xform_clip),
        },
        "postprocess": {
            "score_threshold": float(model.score_thresh),
            "topk_candidates": int(model.topk_candidates),
            "nms_threshold": float(model.nms_thresh),
            "detections_per_image": int(model.detections_per_img),
        },
        "meta": json.loads(json.dumps(loaded.meta, default=str)),
    }


def _sizes(model: Any, img_size: int | None) -> tuple[int, int]:
    if img_size is None:
        return int(model.transform.min_size[-1]), int(model.transform.max_size)
    if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < SIZE_DIVISIBLE:
        raise ConfigError(f"img_size must be a whole number >= {SIZE_DIVISIBLE}, got {img_size!r}")
    return img_size, img_size


def export_onnx(
    model: LoadedModel | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    img_size: int | None = None,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
) -> Path:
    """Write ``path`` (an ONNX model) and its sidecar ``path + ".json"``.

    Args:
        model: a checkpoint (``best.pt``) or a model :func:`~yolo2retina.model.load_model`
            loaded. It is copied to the CPU; the given one is not changed.
        path: the ``.onnx`` file to write (folders are created).
        img_size: the longer image side the runtime resizes to (``min_size = max_size``);
            default: the model's own ``min_size`` / ``max_size``. The graph takes any size.
        opset: the ONNX opset (>= 18).
        overwrite: replace an existing model and sidecar.

    Returns:
        ``Path(path)``.

    Raises:
        ConfigError: not a RetinaNet checkpoint, a bad option, the ``onnx`` extra is not
            installed, or the exported graph does not match PyTorch.
        DatasetError: the output exists (without ``overwrite``), is a folder or is the
            checkpoint itself.
    """
    out = Path(path)
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"{out}: the model file name must end in .onnx")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < DEFAULT_OPSET:
        raise ConfigError(f"opset must be a whole number >= {DEFAULT_OPSET}, got {opset!r}")
    inputs = [model] if isinstance(model, (str, os.PathLike)) else []
    check_output_file(out, inputs=inputs, overwrite=overwrite)
    check_output_files([sidecar_path(out)], overwrite=overwrite)
    _require_exporter()
    loaded = _loaded(model)
    net_model = _checked_retinanet(loaded)
    sizes = _sizes(net_model, img_size)
    side = SIZE_DIVISIBLE * math.ceil(sizes[1] / SIZE_DIVISIBLE)
    # two images, and a width that is no multiple of 64: no size can be taken for a constant
    example = torch.rand(
        2, 3, side, side + SIZE_DIVISIBLE, generator=torch.Generator().manual_seed(0)
    )
    net = _Network(net_model).eval()
    strides = _level_strides(net, example, loaded.path)
    with atomic_path(out) as tmp:
        _export_graph(net, example, tmp, opset)
        _check_graph(net, example, tmp, loaded.path)
    doc = _sidecar(loaded, net_model, out, sizes, strides)
    atomic_write_text(sidecar_path(out), json.dumps(doc, indent=2) + "\n")
    return out
