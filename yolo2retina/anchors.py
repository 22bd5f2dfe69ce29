"""Anchor sizes fitted to the boxes of a dataset, as the model will see them.

RetinaNet labels an anchor as foreground when its IoU with a ground-truth box is at
least 0.5. torchvision's anchors start at 32 px, so objects of 10-20 px (after the
model's own resize) have no anchor that good, and training can hardly learn them.
:func:`fit_anchors` simulates the resize of ``GeneralizedRCNNTransform``, measures for
every box the best IoU of an anchor centred on it, and picks per-level anchor sizes
(keeping 3 scales x 3 aspect ratios per level, so the head keeps its shape) that give
at least 99% of the boxes an anchor with IoU >= 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from yolo2retina import boxes as box_ops
from yolo2retina.annotations import Annotations
from yolo2retina.errors import ConfigError
from yolo2retina.target import FLAG_CROWD, FLAG_DIFFICULT

__all__ = [
    "AnchorFit",
    "anchor_coverage",
    "anchor_wh",
    "best_anchor_iou",
    "fit_anchors",
    "grid_anchor_iou",
    "resized_box_wh",
    "resized_boxes",
]

#: Strides of P3-P7, the levels of every backbone :func:`~yolo2retina.model.build_retinanet` makes.
STRIDES = (8, 16, 32, 64, 128)
#: Number of feature levels (P3-P7) of every backbone, as in torchvision's RetinaNet.
NUM_LEVELS = len(STRIDES)

#: torchvision's RetinaNet anchors (P3-P7) and aspect ratios (height / width).
DEFAULT_SIZES: tuple[tuple[float, ...], ...] = tuple(
    (float(x), float(int(x * 2 ** (1.0 / 3))), float(int(x * 2 ** (2.0 / 3))))
    for x in (4 * s for s in STRIDES)
)
DEFAULT_RATIOS: tuple[tuple[float, ...], ...] = ((0.5, 1.0, 2.0),) * NUM_LEVELS
_SCALES_PER_LEVEL = 3
_SEARCH_SAMPLE = 4_000  # boxes used to search; coverage is then measured on all
_CHUNK = 65_536

FloatArray = npt.NDArray[np.float64]
Levels = tuple[tuple[float, ...], ...]


# -- geometry ---------------------------------------------------------------------------------


def anchor_wh(
    sizes: Sequence[Sequence[float]], aspect_ratios: Sequence[Sequence[float]]
) -> FloatArray:
    """``(A, 2)`` widths and heights of all anchor shapes, exactly as torchvision makes them.

    torchvision's ``AnchorGenerator`` makes, per level, every size x ratio pair with
    ``h / w = ratio`` and area ``size ** 2``, then rounds the half-extents to integers.
    """
    out = []
    for level_sizes, level_ratios in zip(sizes, aspect_ratios, strict=True):
        s = np.asarray(level_sizes, dtype=np.float64)
        h_ratio = np.sqrt(np.asarray(level_ratios, dtype=np.float64))
        ws = (s[None, :] / h_ratio[:, None]).reshape(-1)
        hs = (s[None, :] * h_ratio[:, None]).reshape(-1)
        out.append(np.stack([2 * np.round(ws / 2), 2 * np.round(hs / 2)], axis=1))
    return np.concatenate(out).astype(np.float64)


def best_anchor_iou(box_wh: npt.ArrayLike, anchors_wh: npt.ArrayLike) -> FloatArray:
    """``(M,)`` best IoU of each ``(M, 2)`` box with any of ``(A, 2)`` anchors centred on it."""
    b = np.asarray(box_wh, dtype=np.float64).reshape(-1, 2)
    a = np.asarray(anchors_wh, dtype=np.float64).reshape(-1, 2)
    out = np.zeros(len(b), dtype=np.float64)
    area_a = a[:, 0] * a[:, 1]
    for start in range(0, len(b), _CHUNK):
        c = b[start : start + _CHUNK]
        inter = np.minimum(c[:, None, 0], a[None, :, 0]) * np.minimum(c[:, None, 1], a[None, :, 1])
        union = (c[:, 0] * c[:, 1])[:, None] + area_a[None, :] - inter
        out[start : start + len(c)] = (inter / np.maximum(union, 1e-12)).max(axis=1)
    return out


def _annotations_of(data: Any) -> tuple[Annotations, bool]:
    """The annotations behind a dataset-like object, and whether ignored boxes train."""
    if isinstance(data, Annotations):
        return data, False
    include_ignored = bool(getattr(data, "include_ignored", False))
    ann = getattr(data, "annotations", None)
    if isinstance(ann, Annotations):
        return ann, include_ignored
    inner, indices = getattr(data, "dataset", None), getattr(data, "indices", None)
    if inner is not None and indices is not None:  # torch.utils.data.Subset
        ann, include_ignored = _annotations_of(inner)
        return ann.subset(np.asarray(indices, dtype=np.int64)), include_ignored
    raise ConfigError(
        f"fit_anchors needs Annotations or a DetectionDataset, got {type(data).__name__}"
    )


def resized_boxes(dataset_or_annotations: Any, *, min_size: int, max_size: int) -> FloatArray:
    """``(M, 4)`` XYXY boxes in the frame of the model's resized image.

    ``GeneralizedRCNNTransform`` scales an image by
    ``min(min_size / min(h, w), max_size / max(h, w))`` and floors the new size; boxes
    follow. Crowd and difficult boxes are left out unless the dataset trains on them.
    """
    ann, include_ignored = _annotations_of(dataset_or_annotations)
    if min_size <= 0 or max_size < min_size:
        raise ConfigError(f"need 0 < min_size <= max_size, got {min_size}, {max_size}")
    hw = ann.image_hw_array.astype(np.float64)
    scale = np.minimum(min_size / hw.min(axis=1), max_size / hw.max(axis=1))
    ratio_hw = np.floor(hw * scale[:, None]) / hw
    ratio_xyxy = np.concatenate([ratio_hw[:, ::-1], ratio_hw[:, ::-1]], axis=1)
    xyxy = ann.boxes.astype(np.float64) * ratio_xyxy[ann.image_index()]
    keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    if not include_ignored:
        keep &= (ann.flags & (FLAG_CROWD | FLAG_DIFFICULT)) == 0
    out: FloatArray = xyxy[keep]
    return out


def resized_box_wh(dataset_or_annotations: Any, *, min_size: int, max_size: int) -> FloatArray:
    """``(M, 2)`` box widths and heights after the model's resize (see :func:`resized_boxes`)."""
    xyxy = resized_boxes(dataset_or_annotations, min_size=min_size, max_size=max_size)
    out: FloatArray = box_ops.xyxy_to_xywh(xyxy)[:, 2:]
    return out


def grid_anchor_iou(
    xyxy: npt.ArrayLike,
    sizes: Sequence[Sequence[float]],
    aspect_ratios: Sequence[Sequence[float]],
    strides: Sequence[int] = STRIDES,
) -> FloatArray:
    """``(M,)`` best IoU of each ``(M, 4)`` box with the anchors the model really places.

    torchvision puts the anchors of a level with stride ``s`` at ``(k * s, m * s)``, so
    a box is usually off-centre from its nearest anchor by up to ``s / 2``; this is what
    the matcher sees, and it is lower than the centred IoU for objects near the stride.
    """
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    wh = b[:, 2:] - b[:, :2]
    centre = (b[:, :2] + b[:, 2:]) / 2
    out = np.zeros(len(b), dtype=np.float64)
    for level, stride in enumerate(strides):
        a = anchor_wh(sizes[level : level + 1], aspect_ratios[level : level + 1])
        off = centre - np.round(centre / stride) * stride  # (M, 2) offset to the nearest anchor
        for start in range(0, len(b), _CHUNK):
            o, w = off[start : start + _CHUNK, None, :], wh[start : start + _CHUNK, None, :]
            lo = np.maximum(-w / 2, o - a[None] / 2)
            hi = np.minimum(w / 2, o + a[None] / 2)
            inter = np.clip(hi - lo, 0, None).prod(axis=2)
            union = w.prod(axis=2) + a.prod(axis=1)[None] - inter
            iou = (inter / np.maximum(union, 1e-12)).max(axis=1)
            np.maximum(out[start : start + len(w)], iou, out=out[start : start + len(w)])
    return out


def anchor_coverage(
    box_wh: npt.ArrayLike,
    sizes: Sequence[Sequence[float]],
    aspect_ratios: Sequence[Sequence[float]],
    *,
    iou_threshold: float = 0.5,
) -> float:
    """Share of ``(M, 2)`` boxes whose best centred anchor has IoU >= ``iou_threshold``."""
    ious = best_anchor_iou(box_wh, anchor_wh(sizes, aspect_ratios))
    return float((ious >= iou_threshold).mean()) if len(ious) else 0.0


# -- fitting ----------------------------------------------------------------------------------


def _pyramid(base: float, octave: float) -> Levels:
    """Sizes ``base * octave ** (level + j / 3)``: 3 scales per level, one octave per level."""
    return tuple(
        tuple(
            round(base * octave ** (level + j / _SCALES_PER_LEVEL), 1)
            for j in range(_SCALES_PER_LEVEL)
        )
        for level in range(NUM_LEVELS)
    )


def _ratio_candidates(wh: FloatArray) -> list[Levels]:
    log_r = np.log(wh[:, 1] / wh[:, 0])
    lo, mid, hi = np.exp(np.quantile(log_r, [1 / 6, 0.5, 5 / 6]))
    data_ratios = tuple(round(float(v), 2) for v in (lo, mid, hi))
    candidates = [(0.5, 1.0, 2.0), data_ratios, (1 / 3, 1.0, 3.0), (0.25, 1.0, 4.0)]
    out: list[Levels] = []
    for c in candidates:
        if len(set(c)) == 3 and (c,) * NUM_LEVELS not in out:
            out.append((c,) * NUM_LEVELS)
    return out


@attrs.frozen
class _Candidate:
    sizes: Levels
    ratios: Levels
    coverage: float  # centred
    grid_mean_iou: float


def _search(xyxy: FloatArray, ratios: Levels, threshold: float, target: float) -> _Candidate:
    """The base size and octave step for these ratios.

    Best centred coverage (counted up to ``target``) first; ties are broken by the mean
    IoU on the real anchor grid, which puts small objects on the fine levels.
    """
    wh = xyxy[:, 2:] - xyxy[:, :2]
    side = np.sqrt(wh[:, 0] * wh[:, 1])
    lo = max(1.0, float(np.quantile(side, 0.001)) / 2)
    bases = np.exp(np.linspace(math.log(lo), math.log(64.0), 40)) if lo < 64 else np.array([64.0])
    best: _Candidate | None = None
    best_key = (-1.0, -1.0)
    for octave in (2.0, 2.5, 3.0, 4.0, 5.0):
        for base in bases:
            sizes = _pyramid(float(base), octave)
            coverage = float((best_anchor_iou(wh, anchor_wh(sizes, ratios)) >= threshold).mean())
            if min(coverage, target) < best_key[0]:
                continue  # cannot win: skip the costlier grid IoU
            grid = float(grid_anchor_iou(xyxy, sizes, ratios).mean())
            key = (min(coverage, target), grid)
            if key > best_key:
                best, best_key = _Candidate(sizes, ratios, coverage, grid), key
    if best is None:  # pragma: no cover - the loops always run
        raise ConfigError("anchor search found no candidate")
    return best


def _best_candidate(xyxy: FloatArray, threshold: float, target: float) -> _Candidate:
    """The first ratio set that reaches ``target`` (torchvision's first), else the best one."""
    best: _Candidate | None = None
    for ratios in _ratio_candidates(xyxy[:, 2:] - xyxy[:, :2]):
        cand = _search(xyxy, ratios, threshold, target)
        if cand.coverage >= target:
            return cand  # the first ratio set is torchvision's: keep it when it is enough
        if best is None or (cand.coverage, cand.grid_mean_iou) > (
            best.coverage,
            best.grid_mean_iou,
        ):
            best = cand
    if best is None:  # pragma: no cover
        raise ConfigError("fit_anchors found no candidate")
    return best


@attrs.frozen
class AnchorFit:
    """Anchors chosen for a dataset, with the coverage they reach.

    Coverage is the share of training boxes (after the model's resize) whose best
    centred anchor has IoU >= ``iou_threshold``, RetinaNet's foreground threshold.
    Grid coverage is the same with the anchors where the model really puts them (on a
    grid of stride 8-128 px, so usually off-centre): the share of boxes that get a
    foreground anchor in training without falling back to a low-quality match.

    Attributes:
        sizes: 5 levels (P3-P7) x 3 sizes in pixels, for ``build_retinanet(anchor_sizes=...)``.
        aspect_ratios: 5 levels x 3 ratios (height / width).
        default_coverage: coverage of torchvision's default anchors (32-512 px, ratios 0.5, 1, 2).
        fitted_coverage: coverage of ``sizes`` and ``aspect_ratios``.
        default_grid_coverage: grid coverage of the default anchors.
        fitted_grid_coverage: grid coverage of the fitted anchors.
        num_boxes: boxes measured.
        box_size_px: ``(p10, median, p90)`` of ``sqrt(w * h)`` after the resize, in pixels.
        min_size: the model's ``min_size`` used for the resize.
        max_size: the model's ``max_size`` used for the resize.
        iou_threshold: the IoU a box needs from its best anchor.
    """

    sizes: Levels
    aspect_ratios: Levels
    default_coverage: float
    fitted_coverage: float
    default_grid_coverage: float
    fitted_grid_coverage: float
    num_boxes: int
    box_size_px: tuple[float, float, float]
    min_size: int
    max_size: int
    iou_threshold: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (lists, floats), e.g. for a checkpoint's ``meta`` or a JSON log."""
        d: dict[str, Any] = attrs.asdict(self)
        d["sizes"] = [list(level) for level in self.sizes]
        d["aspect_ratios"] = [list(level) for level in self.aspect_ratios]
        d["box_size_px"] = list(self.box_size_px)
        return d

    def __str__(self) -> str:
        p10, med, p90 = self.box_size_px

        def fmt(levels: Levels) -> str:
            return ", ".join("(" + ", ".join(f"{v:g}" for v in level) + ")" for level in levels)

        same_ratios = len(set(self.aspect_ratios)) == 1
        lines = [
            f"Anchors for min_size={self.min_size}, max_size={self.max_size}: "
            f"{self.num_boxes} boxes of sqrt(w*h) {p10:.1f} / {med:.1f} / {p90:.1f} px "
            "(p10 / median / p90)",
            f"  boxes with an anchor at IoU >= {self.iou_threshold:g}: "
            f"default {100 * self.default_coverage:.1f}%, fitted {100 * self.fitted_coverage:.1f}% "
            f"(centred); default {100 * self.default_grid_coverage:.1f}%, "
            f"fitted {100 * self.fitted_grid_coverage:.1f}% (on the stride grid)",
            f"  sizes:  {fmt(self.sizes)}",
            f"  ratios: {fmt(self.aspect_ratios[:1])} on every level"
            if same_ratios
            else f"  ratios: {fmt(self.aspect_ratios)}",
        ]
        if p10 < STRIDES[0]:
            lines.append(
                f"  note: 10% of boxes are under {p10:.0f} px, near or below the finest stride "
                f"({STRIDES[0]} px); a larger min_size helps them most"
            )
        return "\n".join(lines)


# Long only by its docstring (the search it documents); the body is four steps.
def fit_anchors(
    dataset_or_annotations: Any,
    *,
    min_size: int = 800,
    max_size: int = 1333,
    target_coverage: float = 0.99,
    iou_threshold: float = 0.5,
    seed: int = 0,
) -> AnchorFit:
    """Choose anchor sizes (and, only if needed, aspect ratios) for a dataset.

    The boxes are resized as the model will resize their images (see
    :func:`resized_boxes`). The sizes keep torchvision's structure, 3 scales per level
    a third of a step apart, on 5 levels; the search picks the base size and the step
    between levels (2 as in torchvision, up to 5 for very wide size ranges). Among the
    choices that reach ``target_coverage`` (best IoU of a centred anchor >=
    ``iou_threshold``) it takes the one with the highest mean IoU on the real anchor grid
    (:func:`grid_anchor_iou`), which keeps small objects on the fine levels. Aspect
    ratios stay (0.5, 1, 2) unless no size choice reaches ``target_coverage`` with them;
    then ratios from the data's quantiles and wider sets are tried and the best wins.

    Args:
        dataset_or_annotations: ``Annotations``, a ``DetectionDataset`` or a ``Subset`` of one.
        min_size: the model's ``min_size``.
        max_size: the model's ``max_size``.
        target_coverage: share of boxes that should have an anchor with IoU >= ``iou_threshold``.
        iou_threshold: RetinaNet's foreground IoU (0.5).
        seed: seed of the subsample used for the search on datasets above 4000 boxes
            (the reported coverage always uses every box).

    Returns:
        The chosen anchors with the coverage of the default and of the fitted ones.

    Raises:
        ConfigError: no boxes, or bad sizes.

    Example:
        >>> fit = fit_anchors(train_ds, min_size=800, max_size=1333)  # doctest: +SKIP
        >>> print(fit)  # doctest: +SKIP
        >>> model = build_retinanet(num_classes=1, anchor_sizes=fit.sizes)  # doctest: +SKIP
    """
    if not 0.0 < target_coverage <= 1.0 or not 0.0 < iou_threshold < 1.0:
        raise ConfigError(
            f"target_coverage must lie in (0, 1] and iou_threshold in (0, 1), "
            f"got {target_coverage}, {iou_threshold}"
        )
    xyxy = resized_boxes(dataset_or_annotations, min_size=min_size, max_size=max_size)
    if len(xyxy) == 0:
        raise ConfigError("fit_anchors: the dataset has no boxes to fit anchors to")
    search = xyxy
    if len(xyxy) > _SEARCH_SAMPLE:
        pick = np.random.default_rng(seed).choice(len(xyxy), _SEARCH_SAMPLE, replace=False)
        search = xyxy[np.sort(pick)]
    best = _best_candidate(search, iou_threshold, target_coverage)

    wh = xyxy[:, 2:] - xyxy[:, :2]
    side = np.sqrt(wh[:, 0] * wh[:, 1])
    p10, med, p90 = (float(v) for v in np.quantile(side, [0.1, 0.5, 0.9]))

    def share(ious: FloatArray) -> float:
        return float((ious >= iou_threshold).mean())

    return AnchorFit(
        sizes=best.sizes,
        aspect_ratios=best.ratios,
        default_coverage=share(best_anchor_iou(wh, anchor_wh(DEFAULT_SIZES, DEFAULT_RATIOS))),
        fitted_coverage=share(best_anchor_iou(wh, anchor_wh(best.sizes, best.ratios))),
        default_grid_coverage=share(grid_anchor_iou(xyxy, DEFAULT_SIZES, DEFAULT_RATIOS)),
        fitted_grid_coverage=share(grid_anchor_iou(xyxy, best.sizes, best.ratios)),
        num_boxes=len(xyxy),
        box_size_px=(p10, med, p90),
        min_size=min_size,
        max_size=max_size,
        iou_threshold=iou_threshold,
    )
