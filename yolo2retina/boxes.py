"""Box formats and pure conversions between them.

All functions take and return NumPy arrays of shape ``(N, 4)`` (``(N, 2K)`` for
polygons), never modify their input, and do no validation: readers validate.
Pixel coordinates are continuous: a pixel ``i`` spans ``[i, i + 1)``, so a box
covering a whole ``W x H`` image is ``(0, 0, W, H)``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

__all__ = [
    "BoxFormat",
    "area",
    "clip_xyxy",
    "convert",
    "cxcywh_norm_to_xyxy",
    "cxcywh_to_xyxy",
    "polygon_norm_to_xyxy",
    "xywh_to_xyxy",
    "xyxy_norm_to_xyxy",
    "xyxy_to_cxcywh",
    "xyxy_to_cxcywh_norm",
    "xyxy_to_xywh",
]

FloatArray = npt.NDArray[np.floating]


class BoxFormat(str, enum.Enum):
    """Box layouts. ``*_NORM`` formats are divided by the image width/height."""

    XYXY = "xyxy"  #: x1, y1, x2, y2 in pixels (torchvision, Pascal VOC after the offset)
    XYWH = "xywh"  #: x1, y1, w, h in pixels (COCO)
    CXCYWH = "cxcywh"  #: centre x, centre y, w, h in pixels
    CXCYWH_NORM = "cxcywh_norm"  #: YOLO: centre and size divided by image width/height


def _f64(a: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return np.asarray(a, dtype=np.float64).reshape(-1, 4)


def xywh_to_xyxy(boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``(N, 4)`` x, y, w, h -> ``(N, 4)`` x1, y1, x2, y2."""
    b = _f64(boxes)
    out: npt.NDArray[np.float64] = b.copy()
    out[:, 2:] = b[:, :2] + b[:, 2:]
    return out


def xyxy_to_xywh(boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``(N, 4)`` x1, y1, x2, y2 -> ``(N, 4)`` x, y, w, h."""
    b = _f64(boxes)
    out: npt.NDArray[np.float64] = b.copy()
    out[:, 2:] = b[:, 2:] - b[:, :2]
    return out


def cxcywh_to_xyxy(boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``(N, 4)`` cx, cy, w, h -> ``(N, 4)`` x1, y1, x2, y2."""
    b = _f64(boxes)
    half = b[:, 2:] / 2.0
    out: npt.NDArray[np.float64] = np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)
    return out


def xyxy_to_cxcywh(boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``(N, 4)`` x1, y1, x2, y2 -> ``(N, 4)`` cx, cy, w, h."""
    b = _f64(boxes)
    out: npt.NDArray[np.float64] = np.concatenate(
        [(b[:, :2] + b[:, 2:]) / 2.0, b[:, 2:] - b[:, :2]], axis=1
    )
    return out


def _scale_wh(image_wh: tuple[float, float]) -> npt.NDArray[np.float64]:
    w, h = image_wh
    return np.array([w, h, w, h], dtype=np.float64)


def cxcywh_norm_to_xyxy(
    boxes: npt.ArrayLike, image_wh: tuple[float, float]
) -> npt.NDArray[np.float64]:
    """YOLO ``(N, 4)`` normalized cx, cy, w, h -> ``(N, 4)`` pixel x1, y1, x2, y2.

    Args:
        boxes: normalized centre/size rows.
        image_wh: image ``(width, height)`` in pixels, after EXIF orientation.
    """
    return cxcywh_to_xyxy(_f64(boxes) * _scale_wh(image_wh))


def xyxy_to_cxcywh_norm(
    boxes: npt.ArrayLike, image_wh: tuple[float, float]
) -> npt.NDArray[np.float64]:
    """Pixel ``(N, 4)`` x1, y1, x2, y2 -> YOLO ``(N, 4)`` normalized cx, cy, w, h."""
    return xyxy_to_cxcywh(boxes) / _scale_wh(image_wh)


def xyxy_norm_to_xyxy(
    boxes: npt.ArrayLike, image_wh: tuple[float, float]
) -> npt.NDArray[np.float64]:
    """``(N, 4)`` x1, y1, x2, y2 divided by the image size -> ``(N, 4)`` pixels."""
    return _f64(boxes) * _scale_wh(image_wh)


def polygon_norm_to_xyxy(
    polygon: npt.ArrayLike, image_wh: tuple[float, float]
) -> npt.NDArray[np.float64]:
    """Normalized polygons ``(N, 2K)`` (x1 y1 ... xK yK) -> enclosing pixel boxes ``(N, 4)``."""
    p = np.asarray(polygon, dtype=np.float64)
    p = p.reshape(p.shape[0] if p.ndim > 1 else 1, -1)
    xs = p[:, 0::2] * float(image_wh[0])
    ys = p[:, 1::2] * float(image_wh[1])
    out: npt.NDArray[np.float64] = np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], axis=1)
    return out


def clip_xyxy(boxes: npt.ArrayLike, image_wh: tuple[float, float]) -> npt.NDArray[np.float64]:
    """Clip pixel ``(N, 4)`` x1, y1, x2, y2 boxes to ``[0, W] x [0, H]``."""
    b: npt.NDArray[np.float64] = _f64(boxes).copy()
    w, h = float(image_wh[0]), float(image_wh[1])
    np.clip(b[:, 0::2], 0.0, w, out=b[:, 0::2])
    np.clip(b[:, 1::2], 0.0, h, out=b[:, 1::2])
    return b


def area(boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Areas ``(N,)`` of ``(N, 4)`` x1, y1, x2, y2 boxes (0 for inverted boxes)."""
    b = _f64(boxes)
    out: npt.NDArray[np.float64] = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(
        b[:, 3] - b[:, 1], 0, None
    )
    return out


_Conv = Callable[[npt.ArrayLike, tuple[float, float]], npt.NDArray[np.float64]]
_TO_XYXY: dict[BoxFormat, _Conv] = {
    BoxFormat.XYXY: lambda b, wh: _f64(b).copy(),
    BoxFormat.XYWH: lambda b, wh: xywh_to_xyxy(b),
    BoxFormat.CXCYWH: lambda b, wh: cxcywh_to_xyxy(b),
    BoxFormat.CXCYWH_NORM: lambda b, wh: cxcywh_norm_to_xyxy(b, wh),
}
_FROM_XYXY: dict[BoxFormat, _Conv] = {
    BoxFormat.XYXY: lambda b, wh: _f64(b).copy(),
    BoxFormat.XYWH: lambda b, wh: xyxy_to_xywh(b),
    BoxFormat.CXCYWH: lambda b, wh: xyxy_to_cxcywh(b),
    BoxFormat.CXCYWH_NORM: lambda b, wh: xyxy_to_cxcywh_norm(b, wh),
}


def convert(
    boxes: npt.ArrayLike,
    src: BoxFormat | str,
    dst: BoxFormat | str,
    image_wh: tuple[float, float] | None = None,
) -> npt.NDArray[np.float64]:
    """Convert ``(N, 4)`` boxes between any two :class:`BoxFormat` layouts.

    ``image_wh`` is required when either side is normalized.
    """
    s, d = BoxFormat(src), BoxFormat(dst)
    if BoxFormat.CXCYWH_NORM in (s, d) and image_wh is None:
        raise ValueError("image_wh is required to convert normalized boxes")
    wh = image_wh if image_wh is not None else (1.0, 1.0)
    return _FROM_XYXY[d](_TO_XYXY[s](boxes, wh), wh)


def clip_xyxy_each(boxes: npt.ArrayLike, images_wh: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Clip pixel ``(N, 4)`` x1, y1, x2, y2 boxes, each to its own ``(N, 2)`` image (w, h)."""
    b: npt.NDArray[np.float64] = _f64(boxes).copy()
    wh = np.asarray(images_wh, dtype=np.float64).reshape(-1, 2)
    b[:, 0::2] = np.clip(b[:, 0::2], 0.0, wh[:, :1])
    b[:, 1::2] = np.clip(b[:, 1::2], 0.0, wh[:, 1:])
    return b
