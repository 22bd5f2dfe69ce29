"""``yolo2retina info``: load a dataset and print its load report."""

from __future__ import annotations

import argparse

from yolo2retina.commands import add_images_root, add_no_cache

NAME = "info"
HELP = "Load a dataset split and print what was loaded, clipped and dropped."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add this command's options."""
    p.add_argument("source", help="data.yaml, dataset folder, VOC folder or COCO .json")
    p.add_argument("--split", default=None, help="split to load (train, val, test)")
    p.add_argument("--format", default="auto", help="dataset format (default: auto-detect)")
    add_images_root(p)
    add_no_cache(p)


def run(args: argparse.Namespace) -> int:
    """Print the load report of one split."""
    from yolo2retina.commands import dataset_format, reader_options
    from yolo2retina.formats import load_annotations  # torch-free, unlike a Dataset

    fmt = dataset_format(args.source, args.format)
    ann = load_annotations(args.source, format=fmt, split=args.split, **reader_options(args, fmt))
    print(ann.report)
    print(f"classes: {', '.join(ann.class_names)}")
    return 0
