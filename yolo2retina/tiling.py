"""Tiling geometry and merging: overlapping tiles over a large photo, detections merged once.

A phone photo of a sticky board is 4080x3072; the model was trained on 1024-px
tiles. Shrinking the photo to the model's 800-px input would shrink an 18-px mite to
4 px, so prediction can cut the photo into overlapping ``N x N`` tiles at full
resolution (:func:`tile_windows`), run them, and merge the detections
(:func:`merge_tile_detections`):

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

``tile="auto"`` (:func:`resolve_tile`) reads the checkpoint's ``meta``: tiles are as
large as the training images were as stored (``source_image_size``, else
``train_image_size``), so the model's own resize shrinks a tile exactly as it shrank a
training image and objects keep their training size; the overlap is at least 1.5x the
90th-percentile training box so that every object lies whole inside some tile.

Example:
    >>> tile_windows((100, 150), 100, 0.2).tolist()
    [[0, 0, 100, 100], [50, 0, 150, 100]]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torchvision.ops import batched_nms

from yolo2retina import boxes as box_ops
from yolo2retina.errors import ConfigError
from yolo2retina.target import Target

__all__ = [
    "merge_tile_detections",
    "resolve_tile",
    "tile_windows",
]

#: ``None`` (whole image), a tile side in pixels, or ``"auto"`` (from the checkpoint meta).
TileArg = int | Literal["auto"] | None

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
    # 1. stitch pieces of objects larger than the overlap (b, sc, near, alive in place)
    _stitch(b, sc, near, alive, _stitch_groups(b, lab, ti, cuts))
    # 2. drop clipped partial boxes seen whole by another tile
    _drop_partials(b, lab, ti, near, alive)
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


def _stitch(
    b: npt.NDArray[np.float64],
    sc: npt.NDArray[np.float64],
    near: npt.NDArray[np.bool_],
    alive: npt.NDArray[np.bool_],
    groups: npt.NDArray[np.int64],
) -> None:
    """Replace each group's first box by the union of its pieces (in place); drop the rest.

    The union takes the best score of its pieces and stays "near" an interior edge: a
    stitched box can itself be a partial row of a larger stitch, and the larger union
    wins in the partial-box step.
    """
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        if members.size > 1:
            r = int(members[0])
            b[r, :2] = b[members, :2].min(axis=0)
            b[r, 2:] = b[members, 2:].max(axis=0)
            sc[r] = sc[members].max()
            near[r] = True
            alive[members[1:]] = False


def _drop_partials(
    b: npt.NDArray[np.float64],
    lab: npt.NDArray[np.int64],
    ti: npt.NDArray[np.int64],
    near: npt.NDArray[np.bool_],
    alive: npt.NDArray[np.bool_],
) -> None:
    """Clear ``alive`` (in place) for near-edge boxes another tile sees whole.

    A box at an interior tile edge goes when a live same-class box of another tile covers
    at least :data:`COVER_FRACTION` of it and is not itself near an edge, or is larger
    (ties: the earlier box wins).
    """
    n = b.shape[0]
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
