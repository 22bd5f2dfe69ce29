"""Drawings of detections: boxes, class names, scores and a count caption, saved as PNG.

Drawn with Pillow (no matplotlib). torch is imported only to read an image tensor.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from yolo2retina import boxes as box_ops
from yolo2retina.atomic import atomic_path
from yolo2retina.errors import ConfigError
from yolo2retina.image import load_image, upright
from yolo2retina.target import Target

if TYPE_CHECKING:
    import torch

__all__ = ["class_color", "draw"]

_Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


def class_color(label: int) -> tuple[int, int, int]:
    """A bright colour per class, well apart for neighbouring labels (golden-ratio hues)."""
    hue = (0.12 + 0.618034 * label) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.9, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _font(size: int) -> _Font:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one fixed-size bitmap font
        return ImageFont.load_default()


def _as_pil(image: object) -> Image.Image:
    """A path (decoded upright), a PIL image or a ``(3, H, W)`` tensor -> an RGB copy."""
    if isinstance(image, Image.Image):
        return upright(image).copy()
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    import torch  # only here: drawing from a path or a PIL image needs no torch

    if not isinstance(image, torch.Tensor):
        raise ConfigError(
            f"expected a path, a PIL image or a (3, H, W) tensor, got {type(image).__name__}"
        )
    t = image.detach().cpu()
    if t.ndim != 3 or t.shape[0] not in (1, 3):
        raise ConfigError(f"expected a (3, H, W) image tensor, got {tuple(t.shape)}")
    if t.is_floating_point():
        t = (t.clamp(0, 1) * 255).round().to(torch.uint8)
    a = t.expand(3, -1, -1).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(a), "RGB")


def _caption(target: Target, class_names: Sequence[str]) -> str:
    counts: npt.NDArray[np.int64] = np.bincount(target.labels, minlength=len(class_names))
    parts = [f"{name}: {int(counts[k])}" for k, name in enumerate(class_names)]
    return f"{len(target)} detections  |  " + "  ".join(parts)


def draw(
    image: str | os.PathLike[str] | Image.Image | torch.Tensor,
    target: Target,
    class_names: Sequence[str],
    path: str | os.PathLike[str] | None = None,
    *,
    show_labels: bool = True,
    line_width: int | None = None,
) -> Image.Image:
    """Draw detections on an image, with a caption counting them per class.

    Args:
        image: the image the boxes belong to: a path (decoded EXIF-upright, like
            :func:`yolo2retina.prediction.predict` does), a PIL image or a ``(3, H, W)``
            tensor (float in ``[0, 1]`` or uint8).
        target: boxes in that image's pixels; scores are printed when present.
        class_names: index = label.
        path: where to save the drawing as PNG (parent folders are created).
        show_labels: print ``name score`` above each box.
        line_width: box outline width; default: a tenth of the median box side, at least
            1 px and at most 2 px per 1000 px of image.

    Returns:
        The drawing: the image with a caption bar on top, RGB.

    Raises:
        ConfigError: a label has no class name, or the image tensor has a bad shape.
    """
    if len(target) and int(target.labels.max()) >= len(class_names):
        raise ConfigError(
            f"label {int(target.labels.max())} has no class name ({len(class_names)} names)"
        )
    img = _as_pil(image)
    w, h = img.size
    # outlines and labels follow the size of the boxes (tiny mites on a 12-MP photo must
    # not vanish under thick lines), within bounds set by the image size
    side = float(np.median(np.sqrt(box_ops.area(target.boxes)))) if len(target) else 50.0
    cap = max(2, round(max(w, h) / 500))
    lw = line_width if line_width is not None else int(np.clip(round(side / 10), 1, cap))
    font = _font(max(10, round(max(w, h) / 90)))
    label_font = _font(int(np.clip(round(side * 0.6), 9, max(9, round(max(w, h) / 160)))))
    canvas = ImageDraw.Draw(img)
    scores = target.scores
    for i in np.argsort(scores if scores is not None else np.zeros(len(target)), kind="stable"):
        x1, y1, x2, y2 = (float(v) for v in target.boxes[i])
        color = class_color(int(target.labels[i]))
        canvas.rectangle([x1, y1, x2 - 1, y2 - 1], outline=color, width=lw)
        if show_labels:
            text = class_names[int(target.labels[i])]
            if scores is not None:
                text += f" {float(scores[i]):.2f}"
            tx0, ty0, tx1, ty1 = canvas.textbbox((0, 0), text, font=label_font)
            th = ty1 - ty0 + 2
            ty = y1 - th - lw if y1 - th - lw >= 0 else y2 + lw
            canvas.rectangle([x1, ty, x1 + tx1 - tx0 + 4, ty + th], fill=color)
            canvas.text((x1 + 2, ty - ty0 + 1), text, fill=(0, 0, 0), font=label_font)
    caption = _caption(target, class_names)
    _, cy0, _, cy1 = ImageDraw.Draw(img).textbbox((0, 0), caption, font=font)
    text_h = int(cy1 - cy0)
    pad = max(4, lw * 2)
    bar = text_h + 2 * pad
    out = Image.new("RGB", (w, h + bar), (20, 20, 20))
    out.paste(img, (0, bar))
    ImageDraw.Draw(out).text((pad, pad - cy0), caption, fill=(255, 255, 255), font=font)
    if path is not None:  # under a temporary name, then renamed: never a half-written PNG
        with atomic_path(path) as tmp:
            out.save(tmp, format="PNG", compress_level=1)
    return out
