"""``yolo2retina split``: deterministic train/val/test image lists and a new data.yaml."""

from __future__ import annotations

import argparse

from yolo2retina.cli import add_output_flags
from yolo2retina.commands import add_images_root, add_no_cache

NAME = "split"
HELP = "Split a dataset into train/val(/test) image lists and a data.yaml; moves no file."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add this command's options."""
    p.add_argument("src", help="data.yaml, dataset folder, VOC folder or COCO .json")
    p.add_argument(
        "--out",
        default=None,
        help="output folder for the lists and data.yaml (default: split-seed<SEED> beside SRC)",
    )
    p.add_argument(
        "--ratios",
        nargs="+",
        type=float,
        default=[0.8, 0.1, 0.1],
        metavar="R",
        help="train val [test] fractions summing to 1 (default: 0.8 0.1 0.1)",
    )
    p.add_argument("--seed", type=int, default=0, help="shuffling seed (default: 0)")
    p.add_argument("--format", default="auto", help="dataset format (default: auto-detect)")
    add_images_root(p)
    add_no_cache(p)
    add_output_flags(p)


def run(args: argparse.Namespace) -> int:
    """Write the lists and print how many images each split got."""
    from pathlib import Path

    from yolo2retina.commands import dataset_format, reader_options
    from yolo2retina.split import split_dataset

    src = Path(args.src)
    base = src.parent if src.is_file() else src
    out = Path(args.out) if args.out else base / f"split-seed{args.seed}"
    fmt = dataset_format(src, args.format)
    print(
        split_dataset(
            src,
            out,
            ratios=args.ratios,
            seed=args.seed,
            format=fmt,
            exist_ok=args.exist_ok,
            overwrite=args.overwrite,
            **reader_options(args, fmt),
        )
    )
    return 0
