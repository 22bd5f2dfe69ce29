"""CLI subcommands, one module each (see :mod:`yolo2retina.cli`)."""

from __future__ import annotations

import argparse
import os
from typing import Any


def dataset_format(path: str | os.PathLike[str], fmt: str, flag: str = "--format") -> str:
    """``fmt``, or the detected format of ``path`` when ``fmt`` is ``"auto"``.

    Detection errors name the command's flag (``--format``, or ``--from`` for ``convert``)
    rather than the library's ``format=`` keyword.
    """
    from yolo2retina.formats import detect_format

    return detect_format(path, option=flag) if fmt == "auto" else fmt


def add_images_root(p: argparse.ArgumentParser) -> None:
    """Add ``--images-root`` (COCO: the folder ``file_name`` is relative to)."""
    p.add_argument(
        "--images-root",
        default=None,
        metavar="DIR",
        help="COCO: folder that file_name is relative to (default: found from the layout, "
        "see docs/formats/coco.md)",
    )


def reader_options(args: argparse.Namespace, fmt: str) -> dict[str, Any]:
    """Reader keywords from the command line (``images_root=`` when ``--images-root`` is given).

    Raises:
        ConfigError: ``--images-root`` for YOLO or VOC, whose image paths come from the
            layout itself.
    """
    from yolo2retina.errors import ConfigError

    if args.images_root is None:
        return {}
    if fmt in ("yolo", "voc"):
        raise ConfigError(
            f"--images-root applies to COCO datasets (file_name is relative to it); this "
            f"dataset is {fmt}, whose images are found from its layout"
        )
    return {"images_root": args.images_root}
