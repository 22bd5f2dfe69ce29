"""The unified per-image annotation that every format reader produces."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from yolo2retina import boxes as box_ops
from yolo2retina.errors import AnnotationError

__all__ = ["FLAG_CROWD", "FLAG_DIFFICULT", "FLAG_TRUNCATED", "Target"]

#: Per-box flag bits (``Target.flags``). Crowd and difficult boxes are "ignore"
#: regions in evaluation and are left out of training targets by default.
FLAG_CROWD = 1
FLAG_DIFFICULT = 2
FLAG_TRUNCATED = 4


def _as_boxes(value: Any) -> npt.NDArray[np.float32]:
    a = np.asarray(value, dtype=np.float32)
    if a.size == 0:
        return np.zeros((0, 4), dtype=np.float32)
    if a.ndim == 1 and a.shape[0] == 4:
        a = a.reshape(1, 4)
    return np.ascontiguousarray(a)


def _as_labels(value: Any) -> npt.NDArray[np.int64]:
    return np.ascontiguousarray(np.asarray(value, dtype=np.int64).reshape(-1))


def _as_scores(value: Any) -> npt.NDArray[np.float32] | None:
    if value is None:
        return None
    return np.ascontiguousarray(np.asarray(value, dtype=np.float32).reshape(-1))


def _as_flags(value: Any) -> npt.NDArray[np.uint8] | None:
    if value is None:
        return None
    return np.ascontiguousarray(np.asarray(value, dtype=np.uint8).reshape(-1))


def _eq(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return bool(np.array_equal(a, b))


@attrs.frozen(eq=True)
class Target:
    """Boxes and labels of one image.

    Attributes:
        boxes: ``(N, 4) float32`` x1, y1, x2, y2 in absolute pixels of the
            EXIF-corrected image; pixel ``i`` spans ``[i, i + 1)``.
        labels: ``(N,) int64`` class indices in ``0..K-1``. There is no background class.
        scores: ``(N,) float32`` detection confidences, or ``None`` for ground truth.
        flags: ``(N,) uint8`` bit set of :data:`FLAG_CROWD`, :data:`FLAG_DIFFICULT`,
            :data:`FLAG_TRUNCATED`, or ``None`` when no box has a flag.

    Example:
        >>> t = Target.from_yolo([[0.5, 0.5, 0.2, 0.4]], [0], image_wh=(100, 50))
        >>> t.boxes.tolist()
        [[40.0, 15.0, 60.0, 35.0]]
    """

    boxes: npt.NDArray[np.float32] = attrs.field(
        converter=_as_boxes, eq=attrs.cmp_using(eq=np.array_equal)
    )
    labels: npt.NDArray[np.int64] = attrs.field(
        converter=_as_labels, eq=attrs.cmp_using(eq=np.array_equal)
    )
    scores: npt.NDArray[np.float32] | None = attrs.field(
        default=None, converter=_as_scores, eq=attrs.cmp_using(eq=_eq)
    )
    flags: npt.NDArray[np.uint8] | None = attrs.field(
        default=None, converter=_as_flags, eq=attrs.cmp_using(eq=_eq)
    )

    def __attrs_post_init__(self) -> None:
        b, n = self.boxes, self.labels.shape[0]
        if b.ndim != 2 or b.shape[1] != 4:
            raise AnnotationError("Target", f"boxes must have shape (N, 4), got {b.shape}")
        if b.shape[0] != n:
            raise AnnotationError("Target", f"{b.shape[0]} boxes but {n} labels")
        for name in ("scores", "flags"):
            v = getattr(self, name)
            if v is not None and v.shape[0] != n:
                raise AnnotationError("Target", f"{n} boxes but {v.shape[0]} {name}")
        if n == 0:
            return
        if not np.isfinite(b).all():
            raise AnnotationError("Target", "box coordinates must be finite")
        bad = np.flatnonzero((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))
        if bad.size:
            i = int(bad[0])
            raise AnnotationError(
                "Target", f"box {i} {b[i].tolist()} needs x1 < x2 and y1 < y2 (XYXY)"
            )
        if (self.labels < 0).any():
            raise AnnotationError("Target", "labels must be >= 0 (0..K-1, no background)")
        if self.scores is not None and not np.isfinite(self.scores).all():
            raise AnnotationError("Target", "scores must be finite")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    # -- named constructors ------------------------------------------------------------

    @classmethod
    def empty(cls) -> Target:
        """A target with no boxes (a background image)."""
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.int64))

    @classmethod
    def from_xyxy(
        cls,
        boxes: npt.ArrayLike,
        labels: npt.ArrayLike,
        scores: npt.ArrayLike | None = None,
        flags: npt.ArrayLike | None = None,
    ) -> Target:
        """From ``(N, 4)`` pixel x1, y1, x2, y2 (torchvision's convention)."""
        return cls(boxes, labels, scores, flags)

    @classmethod
    def from_yolo(
        cls, cxcywh_norm: npt.ArrayLike, labels: npt.ArrayLike, *, image_wh: tuple[int, int]
    ) -> Target:
        """From YOLO ``(N, 4)`` normalized cx, cy, w, h and the image ``(width, height)``."""
        return cls(box_ops.cxcywh_norm_to_xyxy(cxcywh_norm, image_wh), labels)

    @classmethod
    def from_coco(
        cls,
        xywh: npt.ArrayLike,
        labels: npt.ArrayLike,
        scores: npt.ArrayLike | None = None,
        flags: npt.ArrayLike | None = None,
    ) -> Target:
        """From COCO ``(N, 4)`` pixel x, y, w, h."""
        return cls(box_ops.xywh_to_xyxy(xywh), labels, scores, flags)

    @classmethod
    def from_voc(
        cls, xyxy_1based: npt.ArrayLike, labels: npt.ArrayLike, flags: npt.ArrayLike | None = None
    ) -> Target:
        """From Pascal VOC ``(N, 4)`` xmin, ymin, xmax, ymax.

        VOC counts pixels from 1 and its max corner is inclusive, so a box covering
        a whole ``W x H`` image is ``(1, 1, W, H)``. It becomes ``(0, 0, W, H)``:
        ``x1 = xmin - 1``, ``y1 = ymin - 1``, ``x2 = xmax``, ``y2 = ymax``.
        """
        b = np.asarray(xyxy_1based, dtype=np.float64).reshape(-1, 4).copy()
        b[:, :2] -= 1.0
        return cls(b, labels, None, flags)

    # -- conversions -------------------------------------------------------------------

    def to_yolo(self, image_wh: tuple[int, int]) -> npt.NDArray[np.float64]:
        """``(N, 4) float64`` normalized cx, cy, w, h for an image of ``(width, height)``."""
        return box_ops.xyxy_to_cxcywh_norm(self.boxes, image_wh)

    def to_coco(self) -> npt.NDArray[np.float64]:
        """``(N, 4) float64`` pixel x, y, w, h."""
        return box_ops.xyxy_to_xywh(self.boxes)

    def to_voc(self) -> npt.NDArray[np.float64]:
        """``(N, 4) float64`` 1-based VOC xmin, ymin, xmax, ymax (inverse of :meth:`from_voc`)."""
        b = self.boxes.astype(np.float64)
        b[:, :2] += 1.0
        return b

    def select(self, keep: npt.ArrayLike) -> Target:
        """A new target with only the boxes picked by a boolean mask or index array."""
        k = np.asarray(keep)
        return Target(
            self.boxes[k],
            self.labels[k],
            None if self.scores is None else self.scores[k],
            None if self.flags is None else self.flags[k],
        )

    def ignore_mask(self) -> npt.NDArray[np.bool_]:
        """``(N,) bool``: crowd or difficult boxes, ignored in training and evaluation."""
        if self.flags is None:
            return np.zeros(len(self), dtype=bool)
        mask: npt.NDArray[np.bool_] = (self.flags & (FLAG_CROWD | FLAG_DIFFICULT)) != 0
        return mask
