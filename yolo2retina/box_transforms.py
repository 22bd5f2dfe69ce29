"""Box-aware transforms that torchvision lacks: quarter turns, scale jitter, box-biased crops.

Each is a torchvision transforms v2 ``Transform``: it moves ``BoundingBoxes`` with the pixels
and works on tensors, ``tv_tensors.Image`` and PIL images. :mod:`yolo2retina.augment` builds
the training policies from them.

* :class:`RandomRot90` turns the image by 0, 90, 180 or 270 degrees (sticky boards have no up);
* :class:`RandomScale` resizes by a random factor (scale jitter);
* :class:`BoxBiasedCrop` cuts a fixed-size window, with probability ``p_box`` around a random
  box, clips the boxes it cuts and drops those of which less than ``min_visible`` of the area
  remains (:func:`crop_boxes`).

Every random draw goes through torch's global RNG.

Example:
    >>> import torch
    >>> boxes, keep = crop_boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0]]), (0, 5, 20, 20))
    >>> boxes.tolist(), keep.tolist()
    ([[0.0, 0.0, 5.0, 10.0]], [False])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import PIL.Image
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from yolo2retina.errors import ConfigError

__all__ = ["BoxBiasedCrop", "RandomRot90", "RandomScale", "crop_boxes"]

_XYXY = tv_tensors.BoundingBoxFormat.XYXY


# -- box geometry -----------------------------------------------------------------------------


def crop_boxes(
    boxes: torch.Tensor,
    window: tuple[int, int, int, int],
    *,
    min_visible: float = 0.6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes in the frame of a crop window; which of them to keep.

    Each box is shifted by the window's top-left corner and clipped to the window. A box is
    kept when it has a positive area and at least ``min_visible`` of that area lies inside
    the window.

    Args:
        boxes: ``(N, 4) float`` XYXY in the image frame.
        window: ``(top, left, height, width)`` in pixels.
        min_visible: the visible fraction a cut box needs to be kept, in ``(0, 1]``.

    Returns:
        ``(N, 4)`` clipped boxes in the window frame (all of them) and a ``(N,) bool`` mask
        of the ones to keep.

    Example:
        >>> b = torch.tensor([[0.0, 0.0, 10.0, 10.0], [15.0, 0.0, 25.0, 10.0]])
        >>> crop_boxes(b, (0, 0, 20, 20))[1].tolist()  # the second box is half outside
        [True, False]
    """
    if not 0.0 < min_visible <= 1.0:
        raise ConfigError(f"min_visible must lie in (0, 1]; got {min_visible!r}")
    top, left, height, width = window
    b = boxes.as_subclass(torch.Tensor).to(torch.float32)
    area = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    shifted = b - torch.tensor([left, top, left, top], dtype=b.dtype, device=b.device)
    clipped = torch.stack(
        [
            shifted[:, 0].clamp(0, width),
            shifted[:, 1].clamp(0, height),
            shifted[:, 2].clamp(0, width),
            shifted[:, 3].clamp(0, height),
        ],
        dim=1,
    )
    visible = (clipped[:, 2] - clipped[:, 0]).clamp(min=0) * (clipped[:, 3] - clipped[:, 1]).clamp(
        min=0
    )
    # visible / area >= min_visible, written without a division (area may be 0)
    keep = (area > 0) & (visible >= min_visible * area)
    return clipped.to(boxes.dtype), keep


def _rot90_boxes_xyxy(boxes: torch.Tensor, canvas_hw: tuple[int, int], k: int) -> torch.Tensor:
    """``(N, 4)`` XYXY boxes turned ``k`` quarter turns counter-clockwise with their canvas.

    One quarter turn maps pixel ``(x, y)`` of a ``W`` wide canvas to ``(y, W - x)``.
    """
    h, w = canvas_hw
    out = boxes
    for _ in range(k % 4):
        x1, y1, x2, y2 = out.unbind(dim=1)
        out = torch.stack([y1, w - x2, y2, w - x1], dim=1)
        h, w = w, h
    return out


# -- transforms ---------------------------------------------------------------------------


class RandomRot90(v2.Transform):  # type: ignore[misc]  # torchvision is untyped
    """Turn the image by ``k`` quarter turns counter-clockwise, ``k`` uniform in 0..3.

    Images, masks and pure tensors turn with ``torch.rot90`` (exact, no interpolation), PIL
    images with ``transpose``; boxes follow, and their ``canvas_size`` swaps on odd ``k``.
    """

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """Draw the number of quarter turns ``k`` (0..3) for one sample."""
        return {"k": int(torch.randint(4, ()).item())}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Turn one image, mask or box set by ``params["k"]`` quarter turns."""
        k = int(params["k"]) % 4
        if k == 0:
            return inpt
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            fmt = inpt.format
            xyxy = F.convert_bounding_box_format(inpt, new_format=_XYXY)
            h, w = inpt.canvas_size
            turned = _rot90_boxes_xyxy(xyxy.as_subclass(torch.Tensor), (h, w), k)
            canvas = (w, h) if k % 2 else (h, w)
            out = tv_tensors.wrap(turned, like=xyxy, canvas_size=canvas)
            return F.convert_bounding_box_format(out, new_format=fmt)
        if isinstance(inpt, PIL.Image.Image):
            op = {
                1: PIL.Image.Transpose.ROTATE_90,
                2: PIL.Image.Transpose.ROTATE_180,
                3: PIL.Image.Transpose.ROTATE_270,
            }[k]
            return inpt.transpose(op)
        if isinstance(inpt, (tv_tensors.KeyPoints,)):
            raise ConfigError("RandomRot90 does not turn KeyPoints")
        if isinstance(inpt, torch.Tensor):
            turned = torch.rot90(inpt.as_subclass(torch.Tensor), k, dims=(-2, -1))
            if isinstance(inpt, tv_tensors.TVTensor):
                return tv_tensors.wrap(turned, like=inpt)
            return turned
        return inpt


def _canvas_hw(flat_inputs: Sequence[Any]) -> tuple[int, int]:
    for inpt in flat_inputs:
        if isinstance(inpt, (torch.Tensor, PIL.Image.Image)):
            h, w = F.get_size(inpt)  # PIL images are dispatched too
            return int(h), int(w)
    raise ConfigError("no image or boxes in the sample")


class RandomScale(v2.Transform):  # type: ignore[misc]  # torchvision is untyped
    """Resize by a factor drawn log-uniformly from ``scale_range`` (scale jitter).

    Args:
        scale_range: ``(low, high)``, ``0 < low <= high``. Log-uniform, so 0.8 and 1.25 are
            equally likely.
    """

    def __init__(self, scale_range: tuple[float, float]) -> None:
        super().__init__()
        lo, hi = (float(v) for v in scale_range)
        if not (0.0 < lo <= hi and math.isfinite(hi)):
            raise ConfigError(
                f"scale_range must be (low, high) with 0 < low <= high; got {scale_range!r}"
            )
        self.scale_range = (lo, hi)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """Draw the output size ``[height, width]`` for one sample."""
        h, w = _canvas_hw(flat_inputs)
        lo, hi = (math.log(v) for v in self.scale_range)
        s = math.exp(lo + (hi - lo) * float(torch.rand(())))
        return {"size": [max(1, round(h * s)), max(1, round(w * s))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Resize one image, mask or box set to ``params["size"]``."""
        return F.resize(inpt, params["size"], antialias=True)


def _place(lo: float, hi: float, window: int, u: float) -> int:
    """A window start (integer) that puts the span ``[lo, hi]`` inside the window.

    ``u`` in ``[0, 1)`` picks among the starts that do, uniformly; a span longer than the
    window (or one no integer start holds) gets a window centred on it.
    """
    first, last = math.ceil(hi - window), math.floor(lo)  # the starts that hold the span
    if first > last:
        return round((lo + hi - window) / 2)
    return min(first + int(u * (last - first + 1)), last)


class BoxBiasedCrop(v2.Transform):  # type: ignore[misc]  # torchvision is untyped
    """Cut a ``size`` x ``size`` window at native scale; keep the boxes it cuts.

    With probability ``p_box`` (and when the image has boxes) the window is placed around a
    random box: at a uniform position among those that hold the whole box (centred on a box
    larger than the window), then shifted to lie inside the image. Otherwise the window is
    uniform. An image smaller than ``size`` along a side keeps that side whole.

    Boxes are clipped to the window and dropped, with their entries under ``per_box_keys``,
    when less than ``min_visible`` of their area remains (:func:`crop_boxes`).

    Unlike most v2 transforms it needs the whole ``(image, target)`` sample at once (to drop
    the labels with the boxes), so call it as ``crop(image, target)`` or ``crop((image,
    target))``, where ``target`` holds ``"boxes"``.

    Args:
        size: the window's side in pixels.
        p_box: probability of a box-centred window.
        min_visible: visible fraction a cut box needs to be kept, in ``(0, 1]``.
        per_box_keys: target entries with one row per box, filtered with the boxes.
    """

    def __init__(
        self,
        size: int,
        *,
        p_box: float = 0.5,
        min_visible: float = 0.6,
        per_box_keys: Sequence[str] = ("labels",),
    ) -> None:
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"crop size must be a positive integer; got {size!r}")
        if not 0.0 <= p_box <= 1.0:
            raise ConfigError(f"p_box must lie in [0, 1]; got {p_box!r}")
        if not 0.0 < min_visible <= 1.0:
            raise ConfigError(f"min_visible must lie in (0, 1]; got {min_visible!r}")
        self.size = size
        self.p_box = float(p_box)
        self.min_visible = float(min_visible)
        self.per_box_keys = tuple(per_box_keys)

    def window(self, boxes: torch.Tensor, canvas_hw: tuple[int, int]) -> tuple[int, int, int, int]:
        """Draw ``(top, left, height, width)`` for ``(N, 4)`` XYXY ``boxes`` on a canvas."""
        h, w = canvas_hw
        ch, cw = min(self.size, h), min(self.size, w)
        n = int(boxes.shape[0])
        if n and self.p_box > 0 and float(torch.rand(())) < self.p_box:
            x1, y1, x2, y2 = boxes[int(torch.randint(n, ()).item())].tolist()
            top = _place(y1, y2, ch, float(torch.rand(())))
            left = _place(x1, x2, cw, float(torch.rand(())))
            top = min(max(top, 0), h - ch)
            left = min(max(left, 0), w - cw)
        else:
            top = int(torch.randint(h - ch + 1, ()).item())
            left = int(torch.randint(w - cw + 1, ()).item())
        return top, left, ch, cw

    def forward(self, *inputs: Any) -> Any:
        """Crop ``(image, target)`` (two arguments or one tuple); returns ``(image, target)``."""
        sample = inputs if len(inputs) > 1 else inputs[0]
        if not (
            isinstance(sample, (tuple, list))
            and len(sample) == 2
            and isinstance(sample[1], dict)
            and isinstance(sample[1].get("boxes"), tv_tensors.BoundingBoxes)
        ):
            raise ConfigError(
                "BoxBiasedCrop takes (image, target) with target['boxes'] a tv_tensors.BoundingBoxes"
            )
        image, target = sample
        boxes: tv_tensors.BoundingBoxes = target["boxes"]
        n = int(boxes.shape[0])
        for key in self.per_box_keys:
            if key in target and len(target[key]) != n:
                raise ConfigError(f"target[{key!r}] has {len(target[key])} rows for {n} boxes")
        xyxy = F.convert_bounding_box_format(boxes, new_format=_XYXY)
        h, w = _canvas_hw([image])
        top, left, ch, cw = self.window(xyxy, (h, w))
        clipped, keep = crop_boxes(xyxy, (top, left, ch, cw), min_visible=self.min_visible)
        new_boxes = tv_tensors.wrap(clipped[keep], like=xyxy, canvas_size=(ch, cw))
        out = dict(target)
        out["boxes"] = F.convert_bounding_box_format(new_boxes, new_format=boxes.format)
        for key in self.per_box_keys:
            if key in target:
                out[key] = target[key][keep]
        return F.crop(image, top, left, ch, cw), out

    def extra_repr(self) -> str:
        """The settings, for ``repr``."""
        return f"size={self.size}, p_box={self.p_box}, min_visible={self.min_visible}"
