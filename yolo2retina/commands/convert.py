"""``yolo2retina convert``: rewrite a dataset in another format."""

from __future__ import annotations

import argparse

from yolo2retina.cli import add_output_flags
from yolo2retina.commands import add_images_root, add_no_cache

NAME = "convert"
HELP = "Convert a YOLO / VOC / COCO dataset (all splits) to another format."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add this command's options."""
    p.add_argument("src", help="source: data.yaml, dataset folder, VOC folder or COCO .json")
    p.add_argument(
        "dst", help="output folder: new or empty (see --exist-ok), outside the source dataset"
    )
    p.add_argument("--to", required=True, help="target format: yolo, voc, coco or a plug-in name")
    p.add_argument(
        "--from", dest="src_format", default="auto", help="source format (default: auto-detect)"
    )
    p.add_argument(
        "--split", action="append", default=None, help="convert only this split (repeatable)"
    )
    add_images_root(p)
    add_no_cache(p)
    p.add_argument(
        "--images",
        choices=("copy", "symlink", "hardlink"),
        default="copy",
        help="how images reach the output (default: copy)",
    )
    add_output_flags(p)
    p.add_argument("--quiet", action="store_true", help="do not print the clip/drop/skip notes")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Convert; print what was read (notes, the table of ``check``), written and lost."""
    import warnings

    from yolo2retina.commands import dataset_format, reader_options
    from yolo2retina.convert import convert_dataset

    fmt = dataset_format(args.src, args.src_format, "--from")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 'lost' lines are printed below
        report = convert_dataset(
            args.src,
            args.dst,
            args.to,
            src_format=fmt,
            splits=args.split,
            images=args.images,
            exist_ok=args.exist_ok,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            **reader_options(args, fmt),
        )
    if not args.quiet and report.notes:  # what the reader clipped, dropped or skipped
        print("\n".join(f"note: {line}" for line in report.notes) + "\n")
    print(report)
    return 0
