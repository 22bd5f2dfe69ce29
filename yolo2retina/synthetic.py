"""A synthetic dataset: a procedurally generated varroa sticky board in YOLO layout.

:func:`synthetic_sticky_board` writes a small detection dataset that needs no download
and trains on a CPU in minutes, so the library can be tried (and tested) anywhere.
It imitates photos of the sticky boards beekeepers slide under a hive to count
varroa mites: a pale, textured board with grid lines, lots of debris (wax, pollen,
grey specks, fibres, seed husks) and small dark reddish-brown oval mites, the only
labelled objects.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml
from PIL import Image, ImageDraw, ImageFilter

from yolo2retina import boxes as box_ops
from yolo2retina.errors import ConfigError

__all__ = ["synthetic_sticky_board"]

_MANIFEST = "synthetic.json"
_GENERATOR_VERSION = 1
_SUPERSAMPLE = 2  # draw at 2x and downsample: anti-aliased edges for free

Rng = np.random.Generator
Color = tuple[int, int, int]


def _rgb(values: Any) -> Color:
    v = np.clip(np.round(np.asarray(values, dtype=np.float64)), 0, 255).astype(int)
    return int(v[0]), int(v[1]), int(v[2])


def _blob(
    rng: Rng, cx: float, cy: float, radius: float, elong: float, jag: float
) -> list[tuple[float, float]]:
    """An irregular, rounded closed polygon around ``(cx, cy)`` (a few low harmonics)."""
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    r = np.ones_like(t)
    for k in (2, 3, 5):
        r += rng.uniform(0, jag / k * 2) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    r = radius * np.clip(r, 0.35, None)
    theta = rng.uniform(0, np.pi)
    x, y = r * np.cos(t) * elong, r * np.sin(t)
    c, s = math.cos(theta), math.sin(theta)
    return [(cx + c * xi - s * yi, cy + s * xi + c * yi) for xi, yi in zip(x, y, strict=True)]


def _ellipse(
    cx: float, cy: float, a: float, b: float, theta: float, n: int = 40
) -> list[tuple[float, float]]:
    """Polygon of an ellipse with semi-axes ``a`` (along ``theta``) and ``b``."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = math.cos(theta), math.sin(theta)
    x, y = a * np.cos(t), b * np.sin(t)
    return [(cx + c * xi - s * yi, cy + s * xi + c * yi) for xi, yi in zip(x, y, strict=True)]


def _board(rng: Rng, size: int) -> tuple[Image.Image, Color]:
    """A ``size`` x ``size`` pale yellow board, mottled and unevenly lit, and its mean colour."""
    brightness = rng.uniform(0.93, 1.04)
    base = (np.array([218.0, 206.0, 148.0]) * brightness + rng.uniform(-4, 4, 3)).astype(np.float32)
    coarse = rng.normal(0, 1, (size // 16 + 2, size // 16 + 2)).astype(np.float32)
    mottle = np.asarray(
        Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BICUBIC)
    )
    ramp = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    gx, gy = rng.uniform(-0.1, 0.1, 2).astype(np.float32)
    light = 1.0 + gx * ramp[None, :] + gy * ramp[:, None]
    board = (base + 7.0 * mottle[..., None]) * light[..., None]
    img = Image.fromarray(np.clip(board, 0, 255).astype(np.uint8), mode="RGB")
    return img, _rgb(base)


def _draw_grid(draw: ImageDraw.ImageDraw, rng: Rng, size: int, base: Color) -> None:
    spacing = size * rng.uniform(0.22, 0.32)
    width = max(1, round(_SUPERSAMPLE * rng.uniform(1.0, 2.0)))
    color = _rgb(np.array(base) * 0.84)
    for axis in (0, 1):
        pos = rng.uniform(0, spacing)
        while pos < size:
            if axis == 0:
                draw.line([(pos, 0), (pos, size)], fill=color, width=width)
            else:
                draw.line([(0, pos), (size, pos)], fill=color, width=width)
            pos += spacing


def _draw_debris(draw: ImageDraw.ImageDraw, rng: Rng, size: int, area_scale: float) -> None:
    """Unlabelled clutter; some of it is mite-sized, none is a dark reddish oval."""
    s = _SUPERSAMPLE

    def count(lo: int, hi: int) -> int:
        return int(rng.integers(lo, hi + 1) * area_scale)

    def pos() -> tuple[float, float]:
        return float(rng.uniform(0, size)), float(rng.uniform(0, size))

    # wax and pollen: orange-yellow irregular patches, often large
    for _ in range(count(4, 12)):
        col = _rgb(np.array([205.0, 150.0, 55.0]) + rng.normal(0, [12, 15, 15]))
        draw.polygon(
            _blob(rng, *pos(), s * rng.uniform(3, 14), rng.uniform(1, 1.8), 0.45), fill=col
        )
    # light-brown crumbs: paler and more angular than a mite
    for _ in range(count(2, 6)):
        col = _rgb(np.array([160.0, 118.0, 70.0]) + rng.normal(0, 10, 3))
        draw.polygon(
            _blob(rng, *pos(), s * rng.uniform(4, 11), rng.uniform(1.3, 2.4), 0.5), fill=col
        )
    # grey-black specks, from dust to mite-sized
    for _ in range(count(10, 28)):
        g = rng.uniform(35, 110)
        col = _rgb(np.array([g, g, g * 0.95]) + rng.normal(0, 4, 3))
        r = s * (rng.uniform(0.7, 2.5) if rng.random() < 0.7 else rng.uniform(3, 7))
        draw.polygon(_blob(rng, *pos(), r, rng.uniform(1, 1.6), 0.6), fill=col)
    # seed husks and wing fragments: dark grey-brown, long and pointed
    for _ in range(count(0, 3)):
        col = _rgb(np.array([70.0, 62.0, 50.0]) + rng.normal(0, 8, 3))
        cx, cy = pos()
        length = s * rng.uniform(8, 16)
        draw.polygon(
            _ellipse(cx, cy, length, length / rng.uniform(2.8, 4.5), rng.uniform(0, np.pi), 16),
            fill=col,
        )
    # fibres and hairs: thin random walks
    for _ in range(count(1, 4)):
        x, y = pos()
        heading = rng.uniform(0, 2 * np.pi)
        points = [(x, y)]
        for _ in range(int(rng.integers(3, 7))):
            heading += rng.normal(0, 0.5)
            step = s * rng.uniform(4, 12)
            x, y = x + step * math.cos(heading), y + step * math.sin(heading)
            points.append((x, y))
        g = rng.uniform(70, 130)
        draw.line(
            points,
            fill=_rgb([g, g * 0.95, g * 0.85]),
            width=max(1, round(s * rng.uniform(0.6, 1.4))),
        )


def _draw_mite(
    draw: ImageDraw.ImageDraw,
    rng: Rng,
    cx: float,
    cy: float,
    a: float,
    b: float,
    theta: float,
    board: Color,
) -> None:
    """A varroa seen from above: a shiny dark reddish-brown oval (coordinates supersampled)."""
    red = rng.uniform(80, 120)
    body = np.array([red, red * rng.uniform(0.38, 0.48), red * rng.uniform(0.18, 0.28)])
    # soft shadow on the board
    draw.polygon(
        _ellipse(cx + 0.12 * b, cy + 0.18 * b, a * 1.06, b * 1.08, theta),
        fill=_rgb(np.array(board) * 0.78),
    )
    draw.polygon(_ellipse(cx, cy, a, b, theta), fill=_rgb(body * 0.72))  # dark rim
    draw.polygon(_ellipse(cx, cy, a * 0.86, b * 0.84, theta), fill=_rgb(body))
    draw.polygon(_ellipse(cx, cy, a * 0.55, b * 0.5, theta), fill=_rgb(body * 1.18))
    # specular highlight towards the light
    hx, hy = cx - 0.3 * a * math.cos(theta) - 0.2 * b, cy - 0.3 * a * math.sin(theta) - 0.25 * b
    draw.polygon(_ellipse(hx, hy, a * 0.22, b * 0.16, theta, 16), fill=_rgb(body * 1.6 + 30))


def _render_image(
    rng: Rng, size: int, background: bool, max_mites: int
) -> tuple[Image.Image, npt.NDArray[np.float64]]:
    """One board image and its ``(N, 4)`` XYXY mite boxes in pixels."""
    s = _SUPERSAMPLE
    big = size * s
    area_scale = (size / 320.0) ** 2
    board, base = _board(rng, size)
    img = board.resize((big, big), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img)
    _draw_grid(draw, rng, big, base)
    _draw_debris(draw, rng, big, area_scale)

    boxes: list[list[float]] = []
    n_mites = 0 if background else int(rng.integers(max(2, max_mites // 3), max_mites + 1))
    for _ in range(n_mites):
        for _try in range(30):
            length = rng.uniform(9.0, 30.0)  # long axis in output pixels
            width = max(8.0, length / rng.uniform(1.1, 1.45))
            a, b = length / 2, width / 2
            theta = rng.uniform(0, np.pi)
            hw = math.hypot(a * math.cos(theta), b * math.sin(theta))
            hh = math.hypot(a * math.sin(theta), b * math.cos(theta))
            cx = rng.uniform(hw + 1, size - hw - 1)
            cy = rng.uniform(hh + 1, size - hh - 1)
            box = [cx - hw, cy - hh, cx + hw, cy + hh]
            if all(
                box[0] > o[2] + 2 or box[2] < o[0] - 2 or box[1] > o[3] + 2 or box[3] < o[1] - 2
                for o in boxes
            ):
                break
        else:
            continue  # the board is crowded; skip this mite
        boxes.append(box)
        _draw_mite(draw, rng, cx * s, cy * s, a * s, b * s, theta, base)

    img = img.resize((size, size), Image.Resampling.BOX).filter(ImageFilter.GaussianBlur(0.5))
    noise = rng.normal(0, 2.5, (size, size, 3)).astype(np.float32)
    pixels = np.asarray(img, dtype=np.float32) + noise
    out = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB")
    xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return out, box_ops.clip_xyxy(xyxy, (size, size))


def _params(
    n_images: int,
    image_size: int,
    seed: int,
    val_fraction: float,
    background_fraction: float,
    max_mites: int,
) -> dict[str, Any]:
    return {
        # The module was yolo2retina.datasets in 0.1; the manifest keeps that name so
        # boards generated before the move are reused, not regenerated.
        "generator": "yolo2retina.datasets.synthetic_sticky_board",
        "version": _GENERATOR_VERSION,
        "n_images": n_images,
        "image_size": image_size,
        "seed": seed,
        "val_fraction": val_fraction,
        "background_fraction": background_fraction,
        "max_mites": max_mites,
    }


def synthetic_sticky_board(
    root: str | os.PathLike[str],
    *,
    n_images: int = 96,
    image_size: int = 320,
    seed: int = 0,
    val_fraction: float = 0.25,
    background_fraction: float = 0.1,
    max_mites: int = 12,
) -> Path:
    """Write a procedurally generated varroa sticky-board dataset in Ultralytics YOLO layout.

    Each image is a pale, mottled board with grid lines and unlabelled debris: orange
    wax and pollen, light-brown crumbs, grey-black specks (some mite-sized), seed husks
    and fibres. Mites are dark reddish-brown shiny ovals, 8 to 30 px long, drawn on top
    and labelled (class 0, ``varroa``). About ``background_fraction`` of the images have
    no mite. The same arguments always give the same files; image ``i`` does not depend
    on ``n_images``.

    Layout: ``root/images/{train,val}/board_0000.jpg``, ``root/labels/{train,val}/board_0000.txt``
    and ``root/data.yaml``. A ``synthetic.json`` manifest records the arguments: calling
    again with the same arguments returns at once, with others regenerates the files.

    Args:
        root: output folder; created if needed. It must be empty or hold an earlier
            synthetic board (never overwrites anything else).
        n_images: images in total (train + val), >= 2.
        image_size: side of the square images in pixels, >= 64.
        seed: random seed.
        val_fraction: share of images in the ``val`` split (at least one image each way).
        background_fraction: share of images without mites.
        max_mites: most mites on one 320 x 320 board; it scales with the image area, but
            never below 4. A board with mites has between a third of that and all of it.

    Returns:
        The path of ``data.yaml``.

    Raises:
        ConfigError: bad arguments, or ``root`` holds files that are not a synthetic board.

    Example:
        >>> yaml_path = synthetic_sticky_board(tmp_path, n_images=8, image_size=128)  # doctest: +SKIP
        >>> YoloDataset(yaml_path, split="val")  # doctest: +SKIP
    """
    _check_arguments(n_images, image_size, val_fraction, background_fraction, max_mites)
    out = Path(root).expanduser().resolve()
    params = _params(n_images, image_size, seed, val_fraction, background_fraction, max_mites)
    yaml_path = out / "data.yaml"
    if _reuse_or_clear(out, params):
        return yaml_path
    files = _write_images(out, params)
    spec = {
        "path": str(out),
        "train": "images/train",
        "val": "images/val",
        "nc": 1,
        "names": ["varroa"],
    }
    yaml_path.write_text(
        "# Synthetic varroa sticky boards made by yolo2retina.synthetic.synthetic_sticky_board\n"
        + yaml.safe_dump(spec, sort_keys=False),
        encoding="utf-8",
    )
    files.append("data.yaml")
    (out / _MANIFEST).write_text(
        json.dumps({"params": params, "files": files}, indent=1), encoding="utf-8"
    )
    return yaml_path


def _check_arguments(
    n_images: int,
    image_size: int,
    val_fraction: float,
    background_fraction: float,
    max_mites: int,
) -> None:
    if n_images < 2:
        raise ConfigError(f"n_images must be >= 2 (train and val), got {n_images}")
    if image_size < 64:
        raise ConfigError(f"image_size must be >= 64 px, got {image_size}")
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    if not 0.0 <= background_fraction <= 1.0:
        raise ConfigError(f"background_fraction must lie in [0, 1], got {background_fraction}")
    if max_mites < 2:
        raise ConfigError(f"max_mites must be >= 2, got {max_mites}")


def _reuse_or_clear(out: Path, params: dict[str, Any]) -> bool:
    """True when ``out`` already holds the board of ``params``; else delete an earlier
    board's files (only those its manifest lists) and return False.

    Raises:
        ConfigError: ``out`` is a file, or a non-empty folder without a manifest.
    """
    manifest = out / _MANIFEST
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    if not (out.exists() and any(out.iterdir())):
        return False
    if not manifest.is_file():
        raise ConfigError(
            f"{out}: folder is not empty and holds no synthetic board ({_MANIFEST}); "
            "choose an empty or new folder"
        )
    old = json.loads(manifest.read_text(encoding="utf-8"))
    if old.get("params") == params and (out / "data.yaml").is_file():
        return True
    for rel in old.get("files", []):
        (out / rel).unlink(missing_ok=True)
    return False


def _write_images(out: Path, params: dict[str, Any]) -> list[str]:
    """Render and write every image and label file; their paths relative to ``out``."""
    n_images, image_size, seed = params["n_images"], params["image_size"], params["seed"]
    n_val = min(n_images - 1, max(1, round(n_images * params["val_fraction"])))
    order = np.random.default_rng([seed, 1]).permutation(n_images)
    val_ids = set(order[:n_val].tolist())
    n_background = round(n_images * params["background_fraction"])
    background_ids = set(
        np.random.default_rng([seed, 2]).permutation(n_images)[:n_background].tolist()
    )
    max_per_image = max(4, round(params["max_mites"] * (image_size / 320.0) ** 2))
    files: list[str] = []
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        rng = np.random.default_rng([seed, 0, i])
        img, xyxy = _render_image(rng, image_size, i in background_ids, max_per_image)
        split = "val" if i in val_ids else "train"
        image_rel = f"images/{split}/board_{i:04d}.jpg"
        label_rel = f"labels/{split}/board_{i:04d}.txt"
        img.save(out / image_rel, quality=92)
        rows = box_ops.xyxy_to_cxcywh_norm(xyxy, (image_size, image_size))
        (out / label_rel).write_text(
            "".join(f"0 {r[0]:.6f} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f}\n" for r in rows),
            encoding="utf-8",
        )
        files += [image_rel, label_rel]
    return files
