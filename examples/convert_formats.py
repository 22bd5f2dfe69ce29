"""Convert a dataset YOLO -> COCO -> VOC and check that nothing moved on the way.

    python examples/convert_formats.py                           # the real varroa export
    python examples/convert_formats.py --data my/data.yaml --out converted
    python examples/convert_formats.py --fast                    # a generated board (CI)

Each step prints the writer's report (what a format could not hold is listed under
"lost"), then the boxes of every image are compared with the original, within 1e-4 px.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from yolo2retina import Annotations, load_annotations, write_annotations

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "varroa-sticky-board-yolo"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA / "data.yaml", help="a YOLO data.yaml")
    p.add_argument("--split", default="val", help="the split to convert")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: a temp dir)")
    p.add_argument("--fast", action="store_true", help="use a small generated board instead")
    return p


def same(a: Annotations, b: Annotations) -> None:
    """Raise unless both hold the same images, boxes, labels and class names."""
    if a.class_names != b.class_names or len(a) != len(b):
        raise SystemExit(f"mismatch: {a.class_names} / {len(a)} vs {b.class_names} / {len(b)}")
    by_name = {b.image_path(i).name: i for i in range(len(b))}
    for i in range(len(a)):
        ta, tb = a.target(i), b.target(by_name[a.image_path(i).name])
        np.testing.assert_allclose(tb.boxes, ta.boxes, atol=1e-4)
        np.testing.assert_array_equal(tb.labels, ta.labels)


def main(args: argparse.Namespace) -> int:
    out = args.out or Path(tempfile.mkdtemp(prefix="y2r-convert-"))
    if args.fast:
        from yolo2retina.synthetic import synthetic_sticky_board

        args.data = synthetic_sticky_board(out / "board", n_images=6, image_size=128, seed=0)
    if not args.data.is_file():
        print(f"{args.data} not found (the real data lives in ../shared/data)", file=sys.stderr)
        return 1
    yolo = load_annotations(args.data, format="yolo", split=args.split)
    print(yolo.report)

    print(write_annotations({args.split: yolo}, out / "coco", "coco", images="symlink"))
    coco = load_annotations(out / "coco", format="coco", split=args.split)
    same(yolo, coco)

    print(write_annotations({args.split: coco}, out / "voc", "voc", images="symlink"))
    voc = load_annotations(out / "voc", format="voc", split=args.split)
    same(yolo, voc)

    print(
        f"YOLO -> COCO -> VOC: {len(voc)} images, {voc.num_boxes} boxes, all equal. Output: {out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(get_args_parser().parse_args()))
