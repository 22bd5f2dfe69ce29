"""``yolo2retina stats``: counts, box sizes and a box-size histogram of a dataset."""

from __future__ import annotations

import argparse

from yolo2retina.cli import add_output_flags
from yolo2retina.commands import add_images_root, add_no_cache

NAME = "stats"
HELP = "Print images, background images, boxes per class and box sizes; save a histogram PNG."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add this command's options."""
    p.add_argument("src", help="data.yaml, dataset folder, VOC folder or COCO .json")
    p.add_argument("--format", default="auto", help="dataset format (default: auto-detect)")
    add_images_root(p)
    add_no_cache(p)
    p.add_argument("--split", action="append", default=None, help="only this split (repeatable)")
    p.add_argument(
        "--histogram",
        default="box_sizes.png",
        metavar="PNG",
        help="where to save the box-size histogram, outside the dataset (default: "
        "box_sizes.png in the current folder; needs matplotlib)",
    )
    p.add_argument("--no-histogram", action="store_true", help="do not draw the histogram")
    add_output_flags(p, folder=False)


def run(args: argparse.Namespace) -> int:
    """Print statistics per split and for all splits, then save the histogram."""
    from yolo2retina.commands import dataset_format, reader_options
    from yolo2retina.formats import load_splits
    from yolo2retina.outputs import check_output_file, dataset_folders
    from yolo2retina.stats import dataset_stats, save_box_size_histogram

    fmt = dataset_format(args.src, args.format)
    data = load_splits(args.src, fmt, args.split, **reader_options(args, fmt))
    if not args.no_histogram:  # refuse before printing anything
        check_output_file(
            args.histogram,
            inputs=dataset_folders(data.values(), args.src),
            overwrite=args.overwrite,
        )
    for name, ann in data.items():
        print(f"== {name}")
        print(dataset_stats(ann))
    if len(data) > 1:
        print("== all splits")
        print(dataset_stats(list(data.values())))
    if not args.no_histogram:
        out = save_box_size_histogram(list(data.values()), args.histogram, overwrite=args.overwrite)
        print(f"histogram: {out}")
    return 0
