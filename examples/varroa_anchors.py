"""Anchors for tiny objects: torchvision's defaults against anchors fitted to real varroa boards.

Run from the repository root (needs ../shared/data, not part of the package):

    python examples/varroa_anchors.py [path/to/data.yaml]

The model resizes the 1024 px tiles so the shorter side is ``min_size``. At torchvision's
800 px the mites are about 13 px and almost none has an anchor at IoU >= 0.5 with the
default 32-512 px anchors; fitted anchors give every mite one. The script prints the
fit at 800 px and at the recommended native 1024 px, then a small table over sizes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from yolo2retina.anchors import (
    DEFAULT_RATIOS,
    DEFAULT_SIZES,
    anchor_coverage,
    fit_anchors,
    resized_box_wh,
)
from yolo2retina.formats.yolo import read_yolo

DEFAULT_YAML = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "varroa-sticky-board-yolo"
).resolve() / "data.yaml"
RECOMMENDED_MIN_SIZE = 1024  # the tiles' own size: no downscaling of 7-39 px mites


def main(argv: list[str]) -> int:
    yaml_path = Path(argv[0]) if argv else DEFAULT_YAML
    if not yaml_path.is_file():
        print(f"{yaml_path}: not found (pass the varroa data.yaml)", file=sys.stderr)
        return 1
    train = read_yolo(yaml_path, "train")
    print(f"{yaml_path}: {len(train)} training images, {train.num_boxes} boxes\n")
    for min_size in (800, RECOMMENDED_MIN_SIZE):
        tag = "torchvision's default" if min_size == 800 else "recommended"
        print(f"== min_size={min_size}, max_size=1333 ({tag})")
        print(fit_anchors(train, min_size=min_size, max_size=1333))
        print()

    print("min_size  median box  default  fitted  | on the stride grid: default  fitted")
    for min_size in (640, 800, 1024, 1333):
        fit = fit_anchors(train, min_size=min_size, max_size=max(1333, min_size))
        print(
            f"{min_size:8d}  {fit.box_size_px[1]:8.1f}px  {100 * fit.default_coverage:6.1f}%"
            f"  {100 * fit.fitted_coverage:5.1f}%  |"
            f"                     {100 * fit.default_grid_coverage:6.1f}%"
            f"  {100 * fit.fitted_grid_coverage:5.1f}%"
        )
    # The same figure over train + val, with the anchors fitted on train at 800 px.
    fit = fit_anchors(train, min_size=800, max_size=1333)
    val = read_yolo(yaml_path, "val")
    wh = np.concatenate([resized_box_wh(a, min_size=800, max_size=1333) for a in (train, val)])
    print(
        f"\ntrain + val at 800 px ({len(wh)} boxes): default anchors "
        f"{100 * anchor_coverage(wh, DEFAULT_SIZES, DEFAULT_RATIOS):.1f}%, anchors fitted on "
        f"train {100 * anchor_coverage(wh, fit.sizes, fit.aspect_ratios):.1f}%"
    )
    print(
        "\nCentred: an anchor centred on the box (the usual figure). On the stride grid: the\n"
        "anchors where the model really places them, every 8 px on P3; only those at IoU >= 0.5\n"
        "are foreground in training (the rest of the boxes fall back to their best match)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
