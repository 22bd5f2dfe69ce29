"""Decode speed of phone-sized JPEGs to a 640-px longer side, one thread.

Generates ~20 noisy 4000x3000 JPEGs in a temporary folder (30% stored rotated with
EXIF orientation 6, as phones do), then times four ways of getting an upright
640-px RGB image:

* ``yolo2retina``: :func:`yolo2retina.image.load_image` with ``max_size=640``
  (PIL ``draft`` decodes at 1/4 scale, then an exact resize);
* ``PIL+EXIF``: ``Image.open`` + ``ImageOps.exif_transpose`` + ``resize``;
* ``PIL draft+EXIF``: the same with ``Image.draft`` first (libjpeg decodes at a reduced
  scale): the strongest plain-PIL peer, and what ``load_image`` does inside;
* ``torchvision+EXIF``: ``decode_jpeg(apply_exif_orientation=True)`` + ``resize`` (antialiased).

Each method's output is checked for orientation: every image has a bright marker in
its upright top-left corner, which must come out top-left.

Run: ``python bench/decode.py [--n 20] [--repeat 2]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchvision.io as tvio
import torchvision.transforms.v2.functional as F
from PIL import Image, ImageOps

from yolo2retina.image import load_image, reduced_size

MAX_SIZE = 640


def make_jpegs(root: Path, n: int, seed: int = 0) -> list[Path]:
    """Write ``n`` 4000x3000 upright-looking photos; 30% stored rotated with orientation 6."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        # smooth background + fine noise: compresses like a real photo (a few MB)
        base = rng.integers(90, 170, (30, 40, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((4000, 3000), Image.Resampling.BILINEAR)
        a = np.asarray(img, dtype=np.int16) + rng.integers(-12, 13, (3000, 4000, 1), dtype=np.int16)
        a = np.clip(a, 0, 255).astype(np.uint8)
        a[:400, :400] = 255  # upright top-left marker
        upright = Image.fromarray(a)
        p = root / f"photo_{i:02d}.jpg"
        if i % 10 < 3:  # 30%: stored rotated, EXIF says "rotate 90° clockwise to view"
            exif = Image.Exif()
            exif[0x0112] = 6
            upright.transpose(Image.Transpose.ROTATE_90).save(p, quality=90, exif=exif.tobytes())
        else:
            upright.save(p, quality=90)
        paths.append(p)
    return paths


def ours(p: Path) -> np.ndarray:
    return np.asarray(load_image(p, max_size=MAX_SIZE))


def pil_exif(p: Path) -> np.ndarray:
    with Image.open(p) as im:
        up = ImageOps.exif_transpose(im)
        size = reduced_size(up.size, MAX_SIZE)
        return np.asarray(up.convert("RGB").resize(size, Image.Resampling.BILINEAR))


def pil_draft_exif(p: Path) -> np.ndarray:
    with Image.open(p) as im:
        w, h = im.size
        upright = (h, w) if im.getexif().get(0x0112) in (5, 6, 7, 8) else (w, h)
        size = reduced_size(upright, MAX_SIZE)
        scale = MAX_SIZE / max(w, h)
        im.draft("RGB", (max(1, round(w * scale)), max(1, round(h * scale))))
        up = ImageOps.exif_transpose(im)
        return np.asarray(up.convert("RGB").resize(size, Image.Resampling.BILINEAR))


def tv_exif(p: Path) -> np.ndarray:
    data = tvio.read_file(str(p))
    t = tvio.decode_jpeg(data, apply_exif_orientation=True)
    h, w = t.shape[-2:]
    nw, nh = reduced_size((w, h), MAX_SIZE)
    t = F.resize(t, [nh, nw], antialias=True)
    return t.permute(1, 2, 0).numpy()


def upright_ok(a: np.ndarray) -> bool:
    """The bright marker is in the top-left corner and nowhere else."""
    h, w = a.shape[:2]
    m = max(2, min(h, w) // 20)
    corners = [a[:m, :m], a[:m, -m:], a[-m:, :m], a[-m:, -m:]]
    means = [float(c.mean()) for c in corners]
    return means[0] > 235 and max(means[1:]) < 200


def bench(fn: Callable[[Path], np.ndarray], paths: list[Path], repeat: int) -> tuple[float, bool]:
    ok = all(upright_ok(fn(p)) and fn(p).shape[:2] == (480, 640) for p in paths)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for p in paths:
            fn(p)
        best = min(best, time.perf_counter() - t0)
    return len(paths) / best, ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="number of JPEGs")
    ap.add_argument("--repeat", type=int, default=2, help="timed passes (best is kept)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        paths = make_jpegs(Path(d), args.n)
        mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
        print(f"{len(paths)} JPEGs 4000x3000 (~{mb:.1f} MB each, 30% EXIF orientation 6) -> 640 px")
        rows = [
            ("PIL open+exif_transpose+resize", pil_exif),
            ("PIL draft+exif_transpose+resize", pil_draft_exif),
            ("torchvision decode_jpeg(exif)+resize", tv_exif),
            ("yolo2retina load_image(max_size=640)", ours),
        ]
        results = [(name, *bench(fn, paths, args.repeat)) for name, fn in rows]
    base = results[0][1]
    print()
    print(f"| {'method':<38} | {'images/s':>8} | {'vs PIL':>6} | upright |")
    print(f"|{'-' * 40}|{'-' * 10}|{'-' * 8}|---------|")
    for name, ips, ok in results:
        print(f"| {name:<38} | {ips:8.1f} | {ips / base:5.2f}x | {'yes' if ok else 'NO':<7} |")


if __name__ == "__main__":
    main()
