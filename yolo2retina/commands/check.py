"""``yolo2retina check``: list every problem of a dataset, then a summary table."""

from __future__ import annotations

import argparse

from yolo2retina.commands import add_images_root, add_no_cache

NAME = "check"
HELP = "Check a dataset: print every problem as file:line and a summary; exit 1 on errors."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add this command's options."""
    p.add_argument("src", help="data.yaml, dataset folder, VOC folder or COCO .json")
    p.add_argument("--format", default="auto", help="dataset format (default: auto-detect)")
    add_images_root(p)
    add_no_cache(p)
    p.add_argument(
        "--split", action="append", default=None, help="check only this split (repeatable)"
    )
    p.add_argument(
        "--strict", action="store_true", help="count clipped and dropped boxes as errors"
    )
    p.add_argument("--quiet", action="store_true", help="print errors only, not clip/drop notes")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    """Print problems (errors, then notes) and the table; 1 when any split has errors."""
    from yolo2retina.check import check_dataset
    from yolo2retina.commands import dataset_format, reader_options

    fmt = dataset_format(args.src, args.format)
    result = check_dataset(
        args.src,
        format=fmt,
        splits=args.split,
        strict=args.strict,
        progress=not args.no_progress,
        **reader_options(args, fmt),
    )
    seen: set[str] = set()  # a note about the whole dataset (data.yaml path:) is printed once
    for s in result.splits:
        for line in s.errors:
            print(f"error: {line}")
        if not args.quiet:
            for line in s.warnings:
                if line not in seen:
                    print(f"note: {line}")
                seen.add(line)
    print(f"\n{result.source} ({result.format})")
    print(result.table())
    if not result.ok:
        print(f"\n{result.num_errors} error(s)")
        return 1
    print("\nno errors")
    return 0
