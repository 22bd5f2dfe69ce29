"""Run an exported model (:func:`yolo2retina.onnx_export.export_onnx`) with ONNX Runtime.

:class:`OnnxDetector` does in NumPy what torchvision's RetinaNet does around its network,
step for step, with the settings of the model's JSON sidecar:

1. normalise each ``(3, H, W)`` image in ``[0, 1]`` (``(x - mean) / std``), resize it
   bilinearly so that the shorter side is ``min_size`` unless the longer would exceed
   ``max_size``, and zero-pad the batch to multiples of 32;
2. run the graph: per-anchor class logits and box regressions;
3. per image and pyramid level: sigmoid scores above ``score_threshold``, the best
   ``topk_candidates`` of them, boxes decoded against the level's anchors and clipped;
4. per-class NMS at ``nms_threshold``, the best ``detections_per_image``, boxes scaled
   back to the image.

Called with a list of ``(3, H, W)`` float tensors it returns torchvision's output (one dict
of ``boxes``/``labels``/``scores`` tensors per image), so :func:`~yolo2retina.prediction.predict`
and its tiling take it like any model; :meth:`OnnxDetector.detect` is the same on NumPy
arrays without torch. ``onnxruntime`` loads when a detector is made, never at import.

Example:
    >>> det = OnnxDetector("model.onnx")  # doctest: +SKIP
    >>> [found] = det.detect([chw_float_array])  # doctest: +SKIP
    >>> found["boxes"].shape, found["labels"].dtype  # doctest: +SKIP
    ((12, 4), dtype('int64'))
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from yolo2retina.device import check_threads
from yolo2retina.errors import ConfigError

__all__ = [
    "OnnxDetector",
    "decode_boxes",
    "grid_anchors",
    "nms",
    "postprocess",
    "preprocess",
    "providers_for",
    "read_sidecar",
    "resize_bilinear",
]

F32 = npt.NDArray[np.float32]
_FORMAT = "yolo2retina-onnx"
_FORMAT_VERSION = 1
_EXTRA = "pip install 'yolo2retina[onnx]'"


def read_sidecar(model_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON sidecar ``<model>.onnx.json`` of an exported model, checked.

    Raises:
        ConfigError: the sidecar is missing, is not JSON, or is not a yolo2retina
            sidecar of a version this package reads.
    """
    path = Path(os.fspath(model_path) + ".json")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing; export_onnx writes it beside the model") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not a readable JSON sidecar ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise ConfigError(f"{path}: not a yolo2retina ONNX sidecar (format != {_FORMAT!r})")
    if doc.get("format_version") != _FORMAT_VERSION:
        raise ConfigError(
            f"{path}: sidecar format_version {doc.get('format_version')!r}; this yolo2retina "
            f"reads version {_FORMAT_VERSION}"
        )
    return doc


# -- preprocessing ---------------------------------------------------------------------------


def _source_index(
    n_in: int, n_out: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], F32]:
    """Bilinear (``align_corners=False``) source rows: lower index, upper index, weight."""
    scale = np.float32(n_in) / np.float32(n_out)
    src = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    weight = np.clip(src - lo.astype(np.float32), 0.0, 1.0).astype(np.float32)
    return lo, np.minimum(lo + 1, n_in - 1), weight


def resize_bilinear(image: F32, size_hw: tuple[int, int]) -> F32:
    """``(C, H, W)`` -> ``(C, h, w) float32``, as ``torch.nn.functional.interpolate``
    (bilinear, ``align_corners=False``, no antialiasing)."""
    h, w = size_hw
    y0, y1, wy = _source_index(image.shape[1], h)
    x0, x1, wx = _source_index(image.shape[2], w)
    top, bottom = image[:, y0, :], image[:, y1, :]
    rows = top + (bottom - top) * wy[None, :, None]
    left, right = rows[:, :, x0], rows[:, :, x1]
    out: F32 = (left + (right - left) * wx[None, None, :]).astype(np.float32, copy=False)
    return out


def _resized_hw(hw: tuple[int, int], min_size: int, max_size: int) -> tuple[int, int]:
    scale = min(min_size / min(hw), max_size / max(hw))
    return math.floor(hw[0] * scale), math.floor(hw[1] * scale)


def preprocess(images: Sequence[F32], cfg: Mapping[str, Any]) -> tuple[F32, list[tuple[int, int]]]:
    """``(3, H, W)`` images in ``[0, 1]`` -> the ``(N, 3, H', W')`` batch, resized sizes."""
    mean = np.asarray(cfg["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(cfg["std"], dtype=np.float32)[:, None, None]
    resized = []
    for img in images:
        norm = (np.asarray(img, dtype=np.float32) - mean) / std
        hw = _resized_hw((norm.shape[1], norm.shape[2]), cfg["min_size"], cfg["max_size"])
        resized.append(resize_bilinear(norm, hw))
    div = int(cfg["size_divisible"])
    sizes = [(int(r.shape[1]), int(r.shape[2])) for r in resized]
    ph = div * math.ceil(max(h for h, _ in sizes) / div)
    pw = div * math.ceil(max(w for _, w in sizes) / div)
    batch = np.zeros((len(resized), 3, ph, pw), dtype=np.float32)
    for k, r in enumerate(resized):
        batch[k, :, : r.shape[1], : r.shape[2]] = r
    return batch, sizes


# -- post-processing -------------------------------------------------------------------------


def grid_anchors(anchors: Mapping[str, Any], padded_hw: tuple[int, int]) -> list[F32]:
    """``(G_l * A_l, 4)`` XYXY anchors of each level for a padded batch of ``padded_hw``."""
    h, w = padded_hw
    out = []
    for stride, cell in zip(anchors["level_strides"], anchors["cell_anchors"], strict=True):
        gh, gw = math.ceil(h / stride), math.ceil(w / stride)
        sy, sx = h // gh, w // gw  # torchvision's anchor stride: side // grid
        ys, xs = np.meshgrid(np.arange(gh) * sy, np.arange(gw) * sx, indexing="ij")
        shifts = np.stack([xs, ys, xs, ys], axis=-1).reshape(-1, 1, 4).astype(np.float32)
        out.append((shifts + np.asarray(cell, dtype=np.float32)[None]).reshape(-1, 4))
    return out


def decode_boxes(deltas: F32, anchors: F32, clip: float) -> F32:
    """``(M, 4)`` dx, dy, dw, dh against ``(M, 4)`` XYXY anchors -> ``(M, 4)`` XYXY boxes."""
    widths = anchors[:, 2] - anchors[:, 0]
    heights = anchors[:, 3] - anchors[:, 1]
    cx = anchors[:, 0] + np.float32(0.5) * widths
    cy = anchors[:, 1] + np.float32(0.5) * heights
    dw = np.minimum(deltas[:, 2], np.float32(clip))
    dh = np.minimum(deltas[:, 3], np.float32(clip))
    pcx, pcy = deltas[:, 0] * widths + cx, deltas[:, 1] * heights + cy
    half_w = np.float32(0.5) * (np.exp(dw) * widths)  # torchvision's order of operations
    half_h = np.float32(0.5) * (np.exp(dh) * heights)
    out: F32 = np.stack([pcx - half_w, pcy - half_h, pcx + half_w, pcy + half_h], axis=1)
    return out.astype(np.float32, copy=False)


def nms(boxes: F32, scores: F32, iou_threshold: float) -> npt.NDArray[np.int64]:
    """Greedy non-maximum suppression: kept indices by decreasing score."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    removed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for pos, i in enumerate(order):
        if removed[i]:
            continue
        keep.append(i)
        rest = order[pos + 1 :]
        iw = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0)
        ih = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0)
        inter = iw * ih
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 for empty boxes: kept
            iou = inter / (areas[i] + areas[rest] - inter)
        removed[rest[iou > iou_threshold]] = True
    return np.asarray(keep, dtype=np.int64)


def _candidates(
    logits: F32, deltas: F32, anchors: F32, post: Mapping[str, Any], clip: float
) -> tuple[F32, F32, npt.NDArray[np.int64]]:
    """One level's best-scoring (anchor, class) pairs: boxes, scores, labels."""
    num_classes = logits.shape[1]
    scores = (1.0 / (1.0 + np.exp(-logits.astype(np.float32)))).astype(np.float32).reshape(-1)
    idx = np.flatnonzero(scores > post["score_threshold"])
    idx = idx[np.argsort(-scores[idx], kind="stable")[: int(post["topk_candidates"])]]
    anchor_idx, labels = idx // num_classes, idx % num_classes
    boxes = decode_boxes(deltas[anchor_idx], anchors[anchor_idx], clip)
    return boxes, scores[idx], labels.astype(np.int64)


def postprocess(
    logits: F32,
    deltas: F32,
    anchors: Sequence[F32],
    resized_hw: tuple[int, int],
    image_hw: tuple[int, int],
    cfg: Mapping[str, Any],
) -> dict[str, npt.NDArray[Any]]:
    """One image's raw outputs ``(A, K)`` and ``(A, 4)`` -> its detections in its own pixels."""
    post, clip = cfg["postprocess"], float(cfg["box_coder"]["bbox_xform_clip"])
    parts, start = [], 0
    for level in anchors:
        stop = start + len(level)
        parts.append(_candidates(logits[start:stop], deltas[start:stop], level, post, clip))
        start = stop
    boxes = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    labels = np.concatenate([p[2] for p in parts])
    h, w = resized_hw
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
    keep = [
        np.flatnonzero(labels == c)[
            nms(boxes[labels == c], scores[labels == c], post["nms_threshold"])
        ]
        for c in np.unique(labels)
    ]
    kept = np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
    kept = kept[np.argsort(-scores[kept], kind="stable")][: int(post["detections_per_image"])]
    ratio = np.asarray([image_hw[1], image_hw[0]], np.float32) / np.asarray([w, h], np.float32)
    out_boxes = (boxes[kept] * np.tile(ratio, 2)).astype(np.float32)
    return {"boxes": out_boxes, "labels": labels[kept], "scores": scores[kept]}


# -- the detector ------------------------------------------------------------------------------

_CPU, _CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"


def providers_for(device: str) -> list[str]:
    """ONNX Runtime providers for a device name: ``"cpu"``, ``"cuda"`` or ``"auto"``.

    Raises:
        ConfigError: another name (ONNX Runtime picks no GPU by index here).
    """
    if device == "cpu":
        return [_CPU]
    if device == "cuda":
        return [_CUDA, _CPU]
    if device == "auto":
        try:
            import onnxruntime as ort
        except ImportError:  # the detector says what to install
            return [_CPU]
        return [_CUDA, _CPU] if _CUDA in ort.get_available_providers() else [_CPU]
    raise ConfigError(f"an ONNX model runs on 'cpu', 'cuda' or 'auto', not {device!r}")


def _session(path: Path, providers: Sequence[str] | None, threads: int | None) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError(f"{path}: running an ONNX model needs onnxruntime: {_EXTRA}") from None
    if not path.is_file():
        raise ConfigError(f"{path}: no such model file")
    chosen = list(providers) if providers else [_CPU]
    missing = sorted(set(chosen) - set(ort.get_available_providers()))
    if missing:
        raise ConfigError(f"{path}: ONNX Runtime here has no {', '.join(missing)}")
    options = ort.SessionOptions()
    if threads is not None:  # None: onnxruntime's own choice (one thread per physical core)
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(os.fspath(path), sess_options=options, providers=chosen)
    except Exception as e:  # onnxruntime raises its own classes for a bad file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{path}: ONNX Runtime cannot load it ({first})") from None


class OnnxDetector:
    """An exported RetinaNet run by ONNX Runtime, with torchvision's pre- and post-processing.

    Attributes:
        path: the ``.onnx`` file.
        config: its sidecar (:func:`read_sidecar`).
        class_names: index = label.
        meta: the checkpoint's training meta (``train_image_size``, ``box_size_px``), which
            ``tile="auto"`` reads.
        threads: the CPU threads the session may use; ``None``: onnxruntime's choice.
        session: the ``onnxruntime.InferenceSession``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
    ) -> None:
        """Load ``path`` and its sidecar ``path + ".json"``.

        Args:
            path: an exported model (:func:`yolo2retina.onnx_export.export_onnx`).
            providers: ONNX Runtime execution providers, in order of preference;
                default: ``["CPUExecutionProvider"]``.
            threads: bound the CPU threads one model call uses (onnxruntime's
                ``intra_op_num_threads``; ``inter_op_num_threads`` is then 1); ``None``:
                onnxruntime's default, one thread per physical core.

        Raises:
            ConfigError: the model or its sidecar is missing or unreadable, onnxruntime
                is not installed, a provider is not available, or ``threads`` is not
                ``None`` or a whole number >= 1.
        """
        self.threads = check_threads(threads)
        self.path = Path(path)
        self.config = read_sidecar(self.path)
        self.class_names = tuple(str(n) for n in self.config["class_names"])
        self.meta: dict[str, Any] = dict(self.config.get("meta") or {})
        self.session = _session(self.path, providers, self.threads)

    def __repr__(self) -> str:
        return f"OnnxDetector({str(self.path)!r}, classes={len(self.class_names)})"

    def detect(self, images: Sequence[npt.ArrayLike]) -> list[dict[str, npt.NDArray[Any]]]:
        """Detections for ``(3, H, W)`` float images in ``[0, 1]``, in input order.

        Returns:
            One dict per image: ``boxes`` ``(N, 4) float32`` XYXY in the image's pixels,
            ``labels`` ``(N,) int64``, ``scores`` ``(N,) float32``, by decreasing score.
        """
        arrays = [np.asarray(a, dtype=np.float32) for a in images]
        for i, a in enumerate(arrays):
            if a.ndim != 3 or a.shape[0] != 3 or a.shape[1] < 1 or a.shape[2] < 1:
                raise ConfigError(f"image {i}: expected a (3, H, W) array, got {a.shape}")
        if not arrays:
            return []
        batch, sizes = preprocess(arrays, self.config["input"])
        logits, deltas = self.session.run(None, {self.config["input"]["name"]: batch})
        anchors = grid_anchors(self.config["anchors"], (batch.shape[2], batch.shape[3]))
        if logits.shape[1] != sum(len(a) for a in anchors):
            raise ConfigError(
                f"{self.path}: {logits.shape[1]} anchors from the graph, "
                f"{sum(len(a) for a in anchors)} from the sidecar; re-export the model"
            )
        return [
            postprocess(
                logits[k], deltas[k], anchors, sizes[k], (a.shape[1], a.shape[2]), self.config
            )
            for k, a in enumerate(arrays)
        ]

    def __call__(self, images: Sequence[Any]) -> list[dict[str, Any]]:
        """:meth:`detect` for ``(3, H, W)`` float tensors; tensors back (torchvision's form)."""
        import torch

        found = self.detect([t.detach().to("cpu", torch.float32).numpy() for t in images])
        return [{k: torch.from_numpy(v) for k, v in d.items()} for d in found]
