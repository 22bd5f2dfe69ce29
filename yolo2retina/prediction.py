"""Prediction on real photos: whole images or overlapping tiles, in the upright photo's frame.

:func:`predict` runs a detection model over paths, PIL images or tensors, each decoded
EXIF-upright; ``tile=N`` cuts a large photo into overlapping full-resolution tiles and
merges their detections (:mod:`yolo2retina.tiling`).
:class:`~yolo2retina.predictor.Predictor` is a trained checkpoint ready for it. :func:`outputs_to_targets` is the one way a model's raw output
becomes a :class:`~yolo2retina.target.Target` in the image's own frame; evaluation uses
it too.

Example:
    >>> from yolo2retina.predictor import Predictor
    >>> predictor = Predictor.from_checkpoint("runs/demo/best.pt")  # doctest: +SKIP
    >>> [t] = predict(predictor, "board.jpg", tile="auto")  # doctest: +SKIP
    >>> predictor.counts(t)  # doctest: +SKIP
    {'varroa': 57}
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import attrs
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as nnf
from PIL import Image

from yolo2retina import boxes as box_ops
from yolo2retina.device import resolve_device
from yolo2retina.errors import ConfigError, ImageReadError
from yolo2retina.image import image_to_tensor, load_image, upright
from yolo2retina.target import Target
from yolo2retina.tiling import TileArg, merge_tile_detections, resolve_tile, tile_windows

__all__ = [
    "ImagePrediction",
    "OutputTargets",
    "crop_tile",
    "iter_predict",
    "merge_tile_outputs",
    "outputs_to_targets",
    "predict",
]

#: What :func:`predict` accepts per image: a path, a PIL image or a ``(C, H, W)`` tensor.
ImageInput = str | os.PathLike[str] | Image.Image | torch.Tensor
#: A detection model: ``model(list of (3, H, W) float tensors) -> list of dicts`` with
#: ``boxes`` ``(N, 4)`` XYXY, ``labels`` ``(N,)`` and ``scores`` ``(N,)``.
DetectionModel = Callable[[list[torch.Tensor]], Sequence[Mapping[str, torch.Tensor]]]


@attrs.frozen
class ImagePrediction:
    """The result for one input image.

    Attributes:
        source: the input as given (path, or ``"<image 3>"`` for in-memory images).
        target: the detections with scores in the upright image's pixels; ``None`` on error.
        image_hw: ``(height, width)`` of the upright image; ``None`` on error.
        error: why the image could not be read, or ``None``.
    """

    source: str
    target: Target | None
    image_hw: tuple[int, int] | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """The image was read and predicted."""
        return self.error is None


# -- model output -> Target ------------------------------------------------------------------


class OutputTargets(NamedTuple):
    """What :func:`outputs_to_targets` made of a batch of model outputs.

    Attributes:
        targets: one :class:`Target` with scores per image, in input order.
        dropped: boxes dropped for zero width or height after clipping, over the batch.
    """

    targets: list[Target]
    dropped: int


def outputs_to_targets(
    outputs: Sequence[Mapping[str, torch.Tensor]],
    images_hw: Sequence[tuple[int, int]],
    *,
    inputs_hw: Sequence[tuple[int, int]] | None = None,
    score_threshold: float | None = None,
    sort: bool = True,
) -> OutputTargets:
    """Detection model outputs -> Targets in each image's own frame.

    For each image: detections under ``score_threshold`` are dropped, boxes are scaled
    from the tensor the model saw (``inputs_hw``) to the image (``images_hw``), clipped
    to the image, boxes of zero width or height (in ``float32``) are dropped and counted,
    and, with ``sort``, the rest ordered by decreasing score (a stable sort).

    Args:
        outputs: one dict per image with ``boxes`` ``FloatTensor[N, 4]`` XYXY, ``labels``
            ``Int64Tensor[N]`` and ``scores`` ``FloatTensor[N]`` (torchvision's detection
            output), on any device.
        images_hw: ``(height, width)`` of each image, the frame the boxes go to.
        inputs_hw: ``(height, width)`` of each tensor the model saw, when it differs from
            the image (a dataset that decoded a smaller copy, a resize); ``None``: the same.
        score_threshold: keep detections with at least this score; ``None`` keeps all.
        sort: order each image's detections by decreasing score.

    Raises:
        ConfigError: the model returned a different number of results than images.

    Example:
        >>> out = {"boxes": torch.tensor([[-5.0, 2.0, 30.0, 8.0]]),
        ...        "labels": torch.tensor([1]), "scores": torch.tensor([0.9])}
        >>> outputs_to_targets([out], [(10, 20)]).targets[0].boxes.tolist()
        [[0.0, 2.0, 20.0, 8.0]]
    """
    if len(outputs) != len(images_hw):
        raise ConfigError(f"the model returned {len(outputs)} results for {len(images_hw)} images")
    if inputs_hw is not None and len(inputs_hw) != len(images_hw):
        raise ConfigError(f"{len(inputs_hw)} input sizes for {len(images_hw)} images")
    targets, dropped = [], 0
    for k, o in enumerate(outputs):
        target, n = _to_frame(
            o["boxes"].detach().to("cpu", torch.float64).numpy(),
            o["labels"].detach().cpu().numpy(),
            o["scores"].detach().to("cpu", torch.float32).numpy(),
            images_hw[k],
            input_hw=inputs_hw[k] if inputs_hw is not None else None,
            score_threshold=score_threshold,
            sort=sort,
        )
        targets.append(target)
        dropped += n
    return OutputTargets(targets, dropped)


def _to_frame(
    boxes: npt.ArrayLike,
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    image_hw: tuple[int, int],
    *,
    input_hw: tuple[int, int] | None = None,
    score_threshold: float | None = None,
    sort: bool = True,
) -> tuple[Target, int]:
    """:func:`outputs_to_targets` for one image's arrays; the Target and the boxes dropped."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    sc = np.asarray(scores).reshape(-1)
    if score_threshold is not None:
        keep = sc >= score_threshold
        b, lab, sc = b[keep], lab[keep], sc[keep]
    h, w = image_hw
    if input_hw is not None and tuple(input_hw) != (h, w):
        th, tw = input_hw
        b = b * np.array([w / tw, h / th, w / tw, h / th])
    xyxy = box_ops.clip_xyxy(b, (w, h)).astype(np.float32)
    ok = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    xyxy, lab, sc = xyxy[ok], lab[ok], sc[ok]
    if sort:
        order = np.argsort(-sc, kind="stable")
        xyxy, lab, sc = xyxy[order], lab[order], sc[order]
    return Target(xyxy, lab, sc), int((~ok).sum())


# -- running the model -------------------------------------------------------------------------


def _source_name(src: object, i: int) -> str:
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    return f"<image {i}>"


def _as_tensor(src: ImageInput, i: int) -> torch.Tensor:
    """Any accepted input -> ``(3, H, W) float32`` in ``[0, 1]`` (upright)."""
    if isinstance(src, (str, os.PathLike, Image.Image)):
        pil = load_image(src) if not isinstance(src, Image.Image) else upright(src)
        out: torch.Tensor = image_to_tensor(pil).as_subclass(torch.Tensor)
        return out
    if isinstance(src, torch.Tensor):
        t = src.as_subclass(torch.Tensor)
        if t.ndim == 2:
            t = t.unsqueeze(0)
        if t.ndim != 3 or t.shape[0] not in (1, 3) or t.shape[1] < 1 or t.shape[2] < 1:
            raise ConfigError(f"image {i}: expected a (3, H, W) tensor, got {tuple(t.shape)}")
        if t.shape[0] == 1:
            t = t.expand(3, -1, -1)
        if t.dtype == torch.uint8:
            return t.to(torch.float32).div(255.0)
        if not t.is_floating_point():
            raise ConfigError(f"image {i}: tensor dtype must be uint8 or float, got {t.dtype}")
        return t.to(torch.float32)
    raise ConfigError(
        f"image {i}: expected a path, a PIL image or a tensor, got {type(src).__name__}"
    )


def _run(
    model: DetectionModel, batch: list[torch.Tensor], device: torch.device
) -> Sequence[Mapping[str, torch.Tensor]]:
    with torch.inference_mode():
        return model([t.to(device) for t in batch])


def crop_tile(img: torch.Tensor, window: Sequence[int], tile: int) -> torch.Tensor:
    """The ``window`` ``(x0, y0, x1, y1)`` of ``(3, H, W)`` ``img``, padded (black) to
    ``(3, tile, tile)``: one model input of predict's tiled path.

    Short edge tiles are padded so that the model's resize scales every tile the same
    way (objects keep one size).
    """
    x0, y0, x1, y1 = window
    crop = img[:, y0:y1, x0:x1]
    pad_w, pad_h = tile - (x1 - x0), tile - (y1 - y0)
    if pad_w > 0 or pad_h > 0:
        crop = nnf.pad(crop, (0, max(pad_w, 0), 0, max(pad_h, 0)))
    return crop


def merge_tile_outputs(
    runs: Sequence[tuple[Sequence[Sequence[int]], Sequence[Mapping[str, torch.Tensor]]]],
    windows: npt.NDArray[np.int64],
    image_hw: tuple[int, int],
    score_threshold: float,
) -> Target:
    """The model outputs of an image's tiles -> one :class:`Target` in the image's frame.

    Args:
        runs: ``(windows of one model call, its outputs)``, in the order of ``windows``.
        windows: ``(T, 4) int64`` every tile window of the image
            (:func:`~yolo2retina.tiling.tile_windows`).
        image_hw: the image's ``(height, width)``.
        score_threshold: detections below it are dropped before the merge.

    Returns:
        Detections with ``scores``; an object seen by two tiles is counted once
        (:func:`~yolo2retina.tiling.merge_tile_detections`).
    """
    all_b, all_l, all_s, all_t = [], [], [], []
    start = 0
    for chunk, outs in runs:
        sizes = [(y1 - y0, x1 - x0) for x0, y0, x1, y1 in chunk]
        found = outputs_to_targets(outs, sizes, score_threshold=score_threshold, sort=False)
        for k, ((x0, y0, _, _), t) in enumerate(zip(chunk, found.targets, strict=True)):
            all_b.append(t.boxes.astype(np.float64) + np.array([x0, y0, x0, y0]))
            all_l.append(t.labels)
            all_s.append(t.scores if t.scores is not None else np.zeros(len(t)))
            all_t.append(np.full(len(t), start + k, dtype=np.int64))
        start += len(chunk)
    boxes = np.concatenate(all_b) if all_b else np.zeros((0, 4))
    labels = np.concatenate(all_l) if all_l else np.zeros((0,), np.int64)
    scores = np.concatenate(all_s) if all_s else np.zeros((0,))
    tiles = np.concatenate(all_t) if all_t else np.zeros((0,), np.int64)
    merged = merge_tile_detections(boxes, labels, scores, tiles, windows, image_hw)
    merged_scores = merged.scores if merged.scores is not None else np.zeros(len(merged))
    return _to_frame(merged.boxes, merged.labels, merged_scores, image_hw)[0]


def _predict_tiled(
    model: DetectionModel,
    img: torch.Tensor,
    tile: int,
    min_overlap_px: float,
    batch_size: int,
    device: torch.device,
    score_threshold: float,
) -> Target:
    """One ``(3, H, W)`` image as overlapping tiles, merged (see :mod:`yolo2retina.tiling`)."""
    h, w = int(img.shape[1]), int(img.shape[2])
    windows = tile_windows((h, w), tile, 0.0, min_overlap_px=min_overlap_px)
    runs = []
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size].tolist()
        runs.append((chunk, _run(model, [crop_tile(img, win, tile) for win in chunk], device)))
    return merge_tile_outputs(runs, windows, (h, w), score_threshold)


def _unwrap(model: Any) -> tuple[DetectionModel, Mapping[str, Any] | None]:
    """A Predictor / LoadedModel -> (callable model, meta); anything else passes through.

    Anything with a callable ``model`` and a mapping ``meta`` counts as a loaded checkpoint.
    """
    inner = getattr(model, "model", None)
    meta = getattr(model, "meta", None)
    if inner is not None and callable(inner) and isinstance(meta, Mapping):
        return inner, meta
    if not callable(model):
        raise ConfigError(f"model must be callable, got {type(model).__name__}")
    return model, None


#: An image waiting for a whole-image batch: (name, tensor or None, read error or None).
_Pending = tuple[str, torch.Tensor | None, str | None]


def _flush(
    model: DetectionModel, group: list[_Pending], device: torch.device, score_threshold: float
) -> Iterator[ImagePrediction]:
    """Predict the readable images of ``group`` in one call; yield all in order, then clear it."""
    ready = [(i, t) for i, (_, t, _) in enumerate(group) if t is not None]
    outs = _run(model, [t for _, t in ready], device) if ready else []
    sizes = [(int(t.shape[1]), int(t.shape[2])) for _, t in ready]
    found = outputs_to_targets(outs, sizes, score_threshold=score_threshold).targets
    by_pos = {i: (target, hw) for (i, _), target, hw in zip(ready, found, sizes, strict=True)}
    for i, (name, _, err) in enumerate(group):
        target, hw = by_pos.get(i, (None, None))
        yield ImagePrediction(name, target, hw, err)
    group.clear()


def iter_predict(
    model: Any,
    images: Iterable[ImageInput],
    *,
    score_threshold: float = 0.3,
    tile: TileArg = None,
    overlap: float = 0.2,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    skip_errors: bool = False,
) -> Iterator[ImagePrediction]:
    """Predict image by image, yielding results in input order (see :func:`predict`).

    Args:
        skip_errors: yield an :class:`ImagePrediction` with ``error`` set for an image
            that cannot be read, instead of raising, and go on with the rest.

    Other arguments are those of :func:`predict`.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if not math.isfinite(score_threshold):  # NaN would silently drop every detection
        raise ConfigError(f"score_threshold must be a finite number, got {score_threshold}")
    net, meta = _unwrap(model)
    tile_px, min_ov = resolve_tile(tile, meta, overlap)
    module = net if isinstance(net, torch.nn.Module) else None
    dev = resolve_device(device, model=module)
    if module is not None:
        if device is not None:
            module.to(dev)
        module.eval()
    group: list[_Pending] = []
    for i, src in enumerate(images):
        name = _source_name(src, i)
        try:
            img = _as_tensor(src, i)
        except ImageReadError as e:
            if not skip_errors:
                raise
            group.append((name, None, str(e)))
        else:
            if tile_px is not None:
                yield from _flush(net, group, dev, score_threshold)
                hw = (int(img.shape[1]), int(img.shape[2]))
                target = _predict_tiled(net, img, tile_px, min_ov, batch_size, dev, score_threshold)
                yield ImagePrediction(name, target, hw)
                continue
            group.append((name, img, None))
        if len(group) >= batch_size:
            yield from _flush(net, group, dev, score_threshold)
    yield from _flush(net, group, dev, score_threshold)


def predict(
    model: Any,
    images: ImageInput | Iterable[ImageInput],
    *,
    score_threshold: float = 0.3,
    tile: TileArg = None,
    overlap: float = 0.2,
    batch_size: int = 4,
    device: str | torch.device | None = None,
) -> list[Target]:
    """Detect objects in images; boxes come back in each upright image's own pixels.

    Args:
        model: a torchvision detection model, a :class:`~yolo2retina.predictor.Predictor`,
            a loaded checkpoint
            (:func:`yolo2retina.model.load_model`), or any callable taking a list of
            ``(3, H, W)`` float tensors in ``[0, 1]`` and returning one dict per image
            with ``boxes`` ``(N, 4)`` XYXY, ``labels`` ``(N,)`` and ``scores`` ``(N,)``.
            A torch module is put in eval mode.
        images: one or a sequence of paths (decoded EXIF-upright), PIL images
            (EXIF applied if straight from ``Image.open``) or ``(3, H, W)`` tensors
            (float in ``[0, 1]`` or uint8), each already upright.
        score_threshold: detections below this confidence are dropped.
        tile: ``None`` runs each whole image (the model resizes it); ``N`` cuts it into
            overlapping ``N x N`` full-resolution tiles and merges their detections;
            ``"auto"`` uses the checkpoint's training image size (needs a Predictor or
            a loaded checkpoint).
        overlap: minimum overlap of neighbouring tiles, as a fraction of the tile.
        batch_size: images (or tiles) per model call.
        device: where to run (:func:`yolo2retina.device.resolve_device`; a torch module
            is moved there); default: where the model's parameters are (CPU for a callable).

    Returns:
        One :class:`Target` with scores per image, boxes ``(N, 4) float32`` XYXY in the
        upright image's pixels, by decreasing score.

    Raises:
        ImageReadError: an image cannot be read (use :func:`iter_predict` with
            ``skip_errors=True`` to go on).
        ConfigError: bad settings, or ``tile="auto"`` without checkpoint meta.

    Example:
        >>> from yolo2retina.predictor import Predictor
        >>> predictor = Predictor.from_checkpoint("runs/demo/best.pt")  # doctest: +SKIP
        >>> [t] = predict(predictor, "board.jpg", tile="auto")  # doctest: +SKIP
        >>> predictor.counts(t)  # doctest: +SKIP
        {'varroa': 57}
    """
    if isinstance(images, (str, os.PathLike, Image.Image, torch.Tensor)):
        images = [images]
    out = []
    for p in iter_predict(
        model,
        images,
        score_threshold=score_threshold,
        tile=tile,
        overlap=overlap,
        batch_size=batch_size,
        device=device,
    ):
        if p.target is None:  # pragma: no cover - skip_errors is False
            raise ImageReadError(p.error or p.source)
        out.append(p.target)
    return out
