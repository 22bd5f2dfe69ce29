"""Prediction on real photos: whole images or overlapping tiles, merged, in the photo's frame.

A phone photo of a sticky board is 4080x3072; the model was trained on 1024-px
tiles. Shrinking the photo to the model's 800-px input would shrink an 18-px mite to
4 px, so :func:`predict` can cut the photo into overlapping ``N x N`` tiles (``tile=N``)
at full resolution, run them in batches, and merge the detections:

1. every tile detection is shifted into the photo's frame and clipped to it;
2. an object larger than the overlap is cut by both tiles: its two pieces, each at an
   *interior* tile edge (an edge that is not the photo's border), facing each other,
   are stitched into their union;
3. a detection at an interior tile edge may be a clipped part of an object that the
   neighbouring tile sees whole; it is dropped when another tile has a same-class box
   covering at least half of it that is not itself at an interior edge (or is larger);
4. class-wise NMS (:func:`torchvision.ops.batched_nms`) removes the duplicates that
   both tiles of an overlap see whole;
5. a box of one tile lying (>= 80% of it) inside a higher-scoring same-class box of
   another tile is the same object, boxed a little differently by the two tiles.

``tile="auto"`` reads the checkpoint's ``meta``: tiles are as large as the training
images were as stored (``source_image_size``, else ``train_image_size``), so the
model's own resize shrinks a tile exactly as it shrank a training image and objects
keep their training size; the overlap is at least 1.5x the 90th-percentile training
box so that every object lies whole inside some tile.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import attrs
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as nnf
from PIL import Image
from torchvision.ops import batched_nms

from yolo2retina import boxes as box_ops
from yolo2retina.errors import ConfigError, ImageReadError
from yolo2retina.image import image_to_tensor, load_image, upright
from yolo2retina.target import Target

__all__ = [
    "ImagePrediction",
    "Predictor",
    "count_labels",
    "counts_table",
    "iter_predict",
    "merge_tile_detections",
    "predict",
    "resolve_tile",
    "tile_windows",
]

#: What :func:`predict` accepts per image: a path, a PIL image or a ``(C, H, W)`` tensor.
ImageInput = str | os.PathLike[str] | Image.Image | torch.Tensor
#: ``None`` (whole image), a tile side in pixels, or ``"auto"`` (from the checkpoint meta).
TileArg = int | Literal["auto"] | None
#: A detection model: ``model(list of (3, H, W) float tensors) -> list of dicts`` with
#: ``boxes`` ``(N, 4)`` XYXY, ``labels`` ``(N,)`` and ``scores`` ``(N,)``.
DetectionModel = Callable[[list[torch.Tensor]], Sequence[Mapping[str, torch.Tensor]]]

#: IoU above which two same-class detections from overlapping tiles are one object.
MERGE_IOU = 0.5
#: A box within this fraction of the tile side (at least :data:`MIN_EDGE_MARGIN_PX`)
#: of an interior tile edge may be clipped by the tile.
EDGE_MARGIN_FRACTION = 0.02
MIN_EDGE_MARGIN_PX = 3.0
#: A near-edge box is dropped when a better box from another tile covers this share of it.
COVER_FRACTION = 0.5
#: Two same-class boxes from different tiles are one object when their intersection is
#: at least this share of the smaller box (the lower score is dropped).
CONTAIN_FRACTION = 0.8


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


# -- tiling geometry -----------------------------------------------------------------------


def _axis_starts(length: int, tile: int, min_overlap_px: float) -> list[int]:
    if length <= tile:
        return [0]
    step = tile - min_overlap_px
    n = math.ceil((length - min_overlap_px) / step)
    n = max(n, 2)
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def tile_windows(
    image_hw: tuple[int, int], tile: int, overlap: float = 0.2, *, min_overlap_px: float = 0.0
) -> npt.NDArray[np.int64]:
    """Overlapping ``tile x tile`` windows covering an image, evenly spread.

    Windows are whole tiles whenever the image is at least ``tile`` wide (the last one
    is shifted back to end at the border, so overlaps are never smaller than asked);
    along a side shorter than ``tile`` the window is the whole side.

    Args:
        image_hw: ``(height, width)`` of the image.
        tile: tile side in pixels.
        overlap: minimum overlap of neighbouring tiles, as a fraction of ``tile``.
        min_overlap_px: minimum overlap in pixels (the larger of the two is used).

    Returns:
        ``(T, 4) int64`` windows ``x0, y0, x1, y1`` in image pixels, row by row.
    """
    if tile < 1:
        raise ConfigError(f"tile must be >= 1 pixel, got {tile}")
    if not 0.0 <= overlap < 1.0:
        raise ConfigError(f"overlap must be in [0, 1), got {overlap}")
    ov = max(overlap * tile, float(min_overlap_px))
    if ov >= tile:
        raise ConfigError(f"overlap of {ov:.0f} px must be smaller than the tile ({tile} px)")
    h, w = image_hw
    xs = _axis_starts(w, tile, ov)
    ys = _axis_starts(h, tile, ov)
    out = [[x, y, min(x + tile, w), min(y + tile, h)] for y in ys for x in xs]
    return np.asarray(out, dtype=np.int64).reshape(-1, 4)


def resolve_tile(
    tile: TileArg, meta: Mapping[str, Any] | None, overlap: float = 0.2
) -> tuple[int | None, float]:
    """The tile side and minimum overlap (pixels) that :func:`predict` will use.

    ``"auto"`` takes the side of the training images as stored,
    ``meta["source_image_size"]``, or else ``meta["train_image_size"]`` (the model's
    input size, right when training images were not shrunk), as the tile side. The
    model resizes a tile like it resized a training image, so objects keep their
    training size (for photos taken like the training images). The overlap is raised
    to 1.5x ``meta["box_size_px"]["p90"]`` when that is larger, so each object fits
    whole in some tile.

    Raises:
        ConfigError: ``"auto"`` without the needed meta, or a bad tile value.
    """
    if tile is None:
        return None, 0.0
    if tile == "auto":
        m = meta or {}
        size = m.get("source_image_size") or m.get("train_image_size")
        if not isinstance(size, (int, float)) or size < 1:
            raise ConfigError(
                "tile='auto' needs a checkpoint whose meta records 'train_image_size' "
                "(yolo2retina train writes it); pass tile=N instead"
            )
        side = int(size)
        box = m.get("box_size_px") or {}
        p90 = box.get("p90") if isinstance(box, Mapping) else None
        min_ov = 1.5 * float(p90) if isinstance(p90, (int, float)) else 0.0
        return side, min(min_ov, 0.5 * side)
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 16:
        raise ConfigError(f"tile must be None, 'auto' or an int >= 16 pixels, got {tile!r}")
    return tile, overlap * tile


# -- merging -------------------------------------------------------------------------------


def _edge_cuts(
    boxes: npt.NDArray[np.float64],
    windows: npt.NDArray[np.float64],
    image_wh: tuple[int, int],
    margin: npt.NDArray[np.float64],
) -> npt.NDArray[np.bool_]:
    """``(N, 4) bool``: box touches its tile's left, top, right, bottom *interior* edge."""
    w, h = image_wh
    x0, y0, x1, y1 = windows.T
    out: npt.NDArray[np.bool_] = np.stack(
        [
            (x0 > 0) & (boxes[:, 0] - x0 <= margin),
            (y0 > 0) & (boxes[:, 1] - y0 <= margin),
            (x1 < w) & (x1 - boxes[:, 2] <= margin),
            (y1 < h) & (y1 - boxes[:, 3] <= margin),
        ],
        axis=1,
    )
    return out


def _stitch_groups(
    b: npt.NDArray[np.float64],
    lab: npt.NDArray[np.int64],
    ti: npt.NDArray[np.int64],
    cuts: npt.NDArray[np.bool_],
) -> npt.NDArray[np.int64]:
    """Group id per box: pieces of one object larger than the overlap, cut by two tiles.

    Piece ``i`` cut at its tile's far edge (right / bottom) and piece ``j`` cut at its
    tile's near edge (left / top), from different tiles, same class, overlapping along
    the cut axis and with IoU >= 0.5 along the other axis, are one object.
    """
    n = b.shape[0]
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    for axis in (0, 1):  # 0: x (left/right cuts), 1: y (top/bottom cuts)
        lo, hi = axis, axis + 2
        olo, ohi = 1 - axis, 3 - axis
        for i in np.flatnonzero(cuts[:, hi]):
            inter = np.minimum(b[:, ohi], b[i, ohi]) - np.maximum(b[:, olo], b[i, olo])
            union = np.maximum(b[:, ohi], b[i, ohi]) - np.minimum(b[:, olo], b[i, olo])
            pair = (
                cuts[:, lo]
                & (ti != ti[i])
                & (lab == lab[i])
                & (b[:, lo] > b[i, lo])
                & (b[:, hi] > b[i, hi])
                & (b[:, lo] < b[i, hi])
                & (inter >= 0.5 * np.maximum(union, 1e-9))
            )
            for j in np.flatnonzero(pair):
                parent[find(int(j))] = find(int(i))
    return np.array([find(i) for i in range(n)], dtype=np.int64)


def merge_tile_detections(
    boxes: npt.ArrayLike,
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    tile_index: npt.ArrayLike,
    windows: npt.ArrayLike,
    image_hw: tuple[int, int],
    *,
    iou_threshold: float = MERGE_IOU,
) -> Target:
    """Merge the detections of overlapping tiles so that each object is counted once.

    1. *Stitch*: an object larger than the overlap is cut by both tiles; its two pieces
       (each touching an interior tile edge, facing each other) become their union.
    2. *Drop partials*: a box touching an interior tile edge is dropped when a box of the
       same class from another tile covers at least half of it and is not itself at an
       interior edge (or is larger): that box is the object seen whole.
    3. *NMS*: class-wise NMS removes objects seen whole by two tiles.
    4. *Containment*: a box of one tile lying (>= 80% of it) inside a higher-scoring
       same-class box of another tile is the same object boxed a little differently
       by the two tiles; it is dropped.

    Args:
        boxes: ``(N, 4)`` XYXY in image pixels (already shifted out of the tiles).
        labels: ``(N,)`` class indices.
        scores: ``(N,)`` confidences.
        tile_index: ``(N,)`` the row of ``windows`` each detection came from.
        windows: ``(T, 4)`` tile windows ``x0, y0, x1, y1`` (see :func:`tile_windows`).
        image_hw: ``(height, width)`` of the image.
        iou_threshold: class-wise NMS threshold for duplicates seen whole by two tiles.

    Returns:
        The merged detections with scores, by decreasing score.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    sc = np.asarray(scores, dtype=np.float64).reshape(-1).copy()
    ti = np.asarray(tile_index, dtype=np.int64).reshape(-1)
    win = np.asarray(windows, dtype=np.float64).reshape(-1, 4)
    n = b.shape[0]
    if n == 0:
        return Target(np.zeros((0, 4)), np.zeros((0,), np.int64), np.zeros((0,)))
    h, w = image_hw
    own = win[ti]
    side = np.maximum(own[:, 2] - own[:, 0], own[:, 3] - own[:, 1])
    margin = np.maximum(MIN_EDGE_MARGIN_PX, EDGE_MARGIN_FRACTION * side)
    cuts = _edge_cuts(b, own, (w, h), margin)
    near: npt.NDArray[np.bool_] = np.asarray(cuts.any(axis=1), dtype=bool)
    alive = np.ones(n, dtype=bool)
    # 1. stitch pieces of objects larger than the overlap
    groups = _stitch_groups(b, lab, ti, cuts)
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        if members.size > 1:
            r = int(members[0])
            b[r, :2] = b[members, :2].min(axis=0)
            b[r, 2:] = b[members, 2:].max(axis=0)
            sc[r] = sc[members].max()
            # still "near": a stitched box can itself be a partial row of a larger
            # stitch; the larger union wins in step 2
            near[r] = True
            alive[members[1:]] = False
    # 2. drop clipped partial boxes seen whole by another tile
    areas = box_ops.area(b)
    order = np.arange(n)
    for i in np.flatnonzero(near & alive):
        iw = np.minimum(b[i, 2], b[:, 2]) - np.maximum(b[i, 0], b[:, 0])
        ih = np.minimum(b[i, 3], b[:, 3]) - np.maximum(b[i, 1], b[:, 1])
        inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        better = ~near | (areas > areas[i]) | ((areas == areas[i]) & (order < i))
        cover = (
            alive
            & (ti != ti[i])
            & (lab == lab[i])
            & better
            & (inter >= COVER_FRACTION * max(areas[i], 1e-9))
        )
        cover[i] = False
        if cover.any():
            alive[i] = False
    # 3. duplicates seen whole by two tiles
    idx = np.flatnonzero(alive)
    keep = batched_nms(
        torch.from_numpy(b[idx]).float(),
        torch.from_numpy(sc[idx]).float(),
        torch.from_numpy(lab[idx]),
        iou_threshold,
    ).numpy()
    k = idx[keep]
    # 4. one object boxed a little differently by two tiles (IoU under the NMS threshold,
    #    but one box nearly inside the other)
    k = k[_cross_tile_contained(b[k], lab[k], sc[k], ti[k], win)]
    return Target(b[k], lab[k], sc[k])


def _cross_tile_contained(
    b: npt.NDArray[np.float64],
    lab: npt.NDArray[np.int64],
    sc: npt.NDArray[np.float64],
    ti: npt.NDArray[np.int64],
    win: npt.NDArray[np.float64],
) -> npt.NDArray[np.int64]:
    """Indices (by decreasing score) surviving cross-tile containment suppression.

    Only pairs from two overlapping tiles are compared (so the cost grows with the
    number of tiles, not with the square of the detections): a box is dropped when a
    higher-scoring same-class box from another tile overlaps it by at least
    :data:`CONTAIN_FRACTION` of the smaller of the two.
    """
    n = b.shape[0]
    order = np.argsort(-sc, kind="stable")
    if n < 2:
        return order.astype(np.int64)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    areas = box_ops.area(b)
    by_tile = {int(t): np.flatnonzero(ti == t) for t in np.unique(ti)}
    tiles = sorted(by_tile)
    partners: dict[int, list[int]] = {}
    for a_pos, t in enumerate(tiles):
        for u in tiles[a_pos + 1 :]:
            wt, wu = win[t], win[u]
            if wt[0] >= wu[2] or wu[0] >= wt[2] or wt[1] >= wu[3] or wu[1] >= wt[3]:
                continue
            it, iu = by_tile[t], by_tile[u]
            bt, bu = b[it][:, None, :], b[iu][None, :, :]
            iw = np.minimum(bt[..., 2], bu[..., 2]) - np.maximum(bt[..., 0], bu[..., 0])
            ih = np.minimum(bt[..., 3], bu[..., 3]) - np.maximum(bt[..., 1], bu[..., 1])
            inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
            smaller = np.minimum(areas[it][:, None], areas[iu][None, :])
            hit = (inter >= CONTAIN_FRACTION * np.maximum(smaller, 1e-9)) & (
                lab[it][:, None] == lab[iu][None, :]
            )
            for x, y in zip(*np.nonzero(hit), strict=True):
                i, j = int(it[x]), int(iu[y])
                hi, lo = (i, j) if rank[i] < rank[j] else (j, i)
                partners.setdefault(hi, []).append(lo)
    dropped = np.zeros(n, dtype=bool)
    for i in order:
        if not dropped[i]:
            for j in partners.get(int(i), ()):
                dropped[j] = True
    out: npt.NDArray[np.int64] = order[~dropped[order]].astype(np.int64)
    return out


# -- running the model ---------------------------------------------------------------------


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


def _model_device(model: object, device: str | torch.device | None) -> torch.device:
    if isinstance(model, torch.nn.Module):
        if device is not None:
            model.to(device)
            return torch.device(device)
        p = next(model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")
    return torch.device(device) if device is not None else torch.device("cpu")


def _run(
    model: DetectionModel, batch: list[torch.Tensor], device: torch.device
) -> list[tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
    with torch.inference_mode():
        outs = model([t.to(device) for t in batch])
    if len(outs) != len(batch):
        raise ConfigError(f"the model returned {len(outs)} results for {len(batch)} images")
    res = []
    for o in outs:
        b = o["boxes"].detach().float().cpu().numpy().astype(np.float64).reshape(-1, 4)
        lab = o["labels"].detach().cpu().numpy().astype(np.int64).reshape(-1)
        sc = o["scores"].detach().float().cpu().numpy().astype(np.float64).reshape(-1)
        res.append((b, lab, sc))
    return res


def _finish(
    b: npt.NDArray[np.float64],
    lab: npt.NDArray[np.int64],
    sc: npt.NDArray[np.float64],
    image_hw: tuple[int, int],
) -> Target:
    h, w = image_hw
    b = box_ops.clip_xyxy(b, (w, h))
    ok = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    order = np.argsort(-sc[ok], kind="stable")
    return Target(b[ok][order], lab[ok][order], sc[ok][order])


def _predict_tiled(
    model: DetectionModel,
    img: torch.Tensor,
    tile: int,
    min_overlap_px: float,
    batch_size: int,
    device: torch.device,
    score_threshold: float,
) -> Target:
    h, w = int(img.shape[1]), int(img.shape[2])
    windows = tile_windows((h, w), tile, 0.0, min_overlap_px=min_overlap_px)
    all_b, all_l, all_s, all_t = [], [], [], []
    for start in range(0, len(windows), batch_size):
        chunk = windows[start : start + batch_size]
        crops = []
        for x0, y0, x1, y1 in chunk.tolist():
            crop = img[:, y0:y1, x0:x1]
            # pad short edge tiles to tile x tile so the model's resize scales every
            # tile the same way (objects keep one size); padding is black
            pad_w, pad_h = tile - (x1 - x0), tile - (y1 - y0)
            if pad_w > 0 or pad_h > 0:
                crop = nnf.pad(crop, (0, max(pad_w, 0), 0, max(pad_h, 0)))
            crops.append(crop)
        for k, (b, lab, sc) in enumerate(_run(model, crops, device)):
            x0, y0, x1, y1 = chunk[k].tolist()
            sel = sc >= score_threshold
            b, lab, sc = b[sel], lab[sel], sc[sel]
            b = box_ops.clip_xyxy(b, (x1 - x0, y1 - y0)) + np.array([x0, y0, x0, y0])
            valid = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
            all_b.append(b[valid])
            all_l.append(lab[valid])
            all_s.append(sc[valid])
            all_t.append(np.full(int(valid.sum()), start + k, dtype=np.int64))
    boxes = np.concatenate(all_b) if all_b else np.zeros((0, 4))
    labels = np.concatenate(all_l) if all_l else np.zeros((0,), np.int64)
    scores = np.concatenate(all_s) if all_s else np.zeros((0,))
    tiles = np.concatenate(all_t) if all_t else np.zeros((0,), np.int64)
    merged = merge_tile_detections(boxes, labels, scores, tiles, windows, (h, w))
    merged_scores = merged.scores if merged.scores is not None else np.zeros(len(merged))
    return _finish(
        merged.boxes.astype(np.float64), merged.labels, merged_scores.astype(np.float64), (h, w)
    )


def _unwrap(model: Any) -> tuple[DetectionModel, Mapping[str, Any] | None]:
    """A Predictor / LoadedModel -> (callable model, meta); anything else passes through."""
    if isinstance(model, Predictor):
        return model.model, model.meta
    inner = getattr(model, "model", None)
    meta = getattr(model, "meta", None)
    if inner is not None and callable(inner) and isinstance(meta, Mapping):
        return inner, meta
    if not callable(model):
        raise ConfigError(f"model must be callable, got {type(model).__name__}")
    return model, None


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
    dev = _model_device(net, device)
    if isinstance(net, torch.nn.Module):
        net.eval()
    group: list[tuple[str, torch.Tensor | None, str | None]] = []

    def flush() -> Iterator[ImagePrediction]:
        ready = [(i, t) for i, (_, t, _) in enumerate(group) if t is not None]
        outs = _run(net, [t for _, t in ready], dev) if ready else []
        by_pos = {i: o for (i, _), o in zip(ready, outs, strict=True)}
        for i, (name, t, err) in enumerate(group):
            if t is None:
                yield ImagePrediction(name, None, None, err)
                continue
            b, lab, sc = by_pos[i]
            keep = sc >= score_threshold
            hw = (int(t.shape[1]), int(t.shape[2]))
            yield ImagePrediction(name, _finish(b[keep], lab[keep], sc[keep], hw), hw)
        group.clear()

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
                yield from flush()
                hw = (int(img.shape[1]), int(img.shape[2]))
                target = _predict_tiled(net, img, tile_px, min_ov, batch_size, dev, score_threshold)
                yield ImagePrediction(name, target, hw)
                continue
            group.append((name, img, None))
        if len(group) >= batch_size:
            yield from flush()
    yield from flush()


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
        model: a torchvision detection model, a :class:`Predictor`, a loaded checkpoint
            (``yolo2retina.model.load_model``), or any callable taking a list of
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
        device: where to run; default: where the model's parameters are (CPU for a callable).

    Returns:
        One :class:`Target` with scores per image, boxes ``(N, 4) float32`` XYXY in the
        upright image's pixels, by decreasing score.

    Raises:
        ImageReadError: an image cannot be read (use :func:`iter_predict` with
            ``skip_errors=True`` to go on).
        ConfigError: bad settings, or ``tile="auto"`` without checkpoint meta.

    Example:
        >>> predictor = Predictor.from_checkpoint("runs/demo/best.pt")  # doctest: +SKIP
        >>> [t] = predict(predictor, "board.jpg", tile="auto")  # doctest: +SKIP
        >>> count_labels(t, predictor.class_names)  # doctest: +SKIP
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


# -- counts --------------------------------------------------------------------------------


def count_labels(target: Target, class_names: Sequence[str]) -> dict[str, int]:
    """Number of detections per class name (every class listed, zeros included)."""
    n = np.bincount(target.labels, minlength=len(class_names)) if len(target) else None
    counts = {name: int(n[k]) if n is not None else 0 for k, name in enumerate(class_names)}
    extra = int(target.labels.max()) + 1 - len(class_names) if len(target) else 0
    if extra > 0:
        raise ConfigError(
            f"a label {int(target.labels.max())} has no class name ({len(class_names)} names)"
        )
    return counts


def counts_table(
    predictions: Iterable[ImagePrediction], class_names: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per image: ``image``, ``total``, one column per class, ``error``."""
    rows: list[dict[str, Any]] = []
    for p in predictions:
        row: dict[str, Any] = {"image": p.source}
        if p.target is None:
            row.update({"total": "", **dict.fromkeys(class_names, ""), "error": p.error})
        else:
            c = count_labels(p.target, class_names)
            row.update({"total": len(p.target), **c, "error": ""})
        rows.append(row)
    return rows


# -- a checkpoint as a ready predictor -------------------------------------------------------


@attrs.define
class Predictor:
    """A model with its class names and training meta, ready for :func:`predict`.

    Attributes:
        model: the detection model (eval mode) or any model callable.
        class_names: index = label.
        meta: training facts from the checkpoint (``train_image_size``, ``box_size_px``).
        source: where it was loaded from, for messages.
    """

    model: Any
    class_names: tuple[str, ...] = attrs.field(converter=tuple)
    meta: dict[str, Any] = attrs.field(factory=dict)
    source: str = ""

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
    ) -> Predictor:
        """Load a training checkpoint (``best.pt``/``last.pt``) into a ready predictor.

        Raises:
            ConfigError: the file is missing or is not a yolo2retina checkpoint.
        """
        # yolo2retina.model rebuilds the RetinaNet from the checkpoint's model_args
        loaded = importlib.import_module("yolo2retina.model").load_model(path, device=device)
        return cls(loaded.model, loaded.class_names, dict(loaded.meta), str(path))

    def predict(
        self,
        images: ImageInput | Iterable[ImageInput],
        *,
        score_threshold: float = 0.3,
        tile: TileArg = None,
        overlap: float = 0.2,
        batch_size: int = 4,
        device: str | torch.device | None = None,
    ) -> list[Target]:
        """:func:`predict` with this model (``tile="auto"`` works here)."""
        return predict(
            self,
            images,
            score_threshold=score_threshold,
            tile=tile,
            overlap=overlap,
            batch_size=batch_size,
            device=device,
        )

    def counts(self, target: Target) -> dict[str, int]:
        """Detections per class name for one image."""
        return count_labels(target, self.class_names)
