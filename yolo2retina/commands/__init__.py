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
    """Add ``--images-root`` (COCO / VOC: the folder ``file_name`` / ``<filename>`` is
    relative to)."""
    p.add_argument(
        "--images-root",
        default=None,
        metavar="DIR",
        help="COCO / VOC: folder that file_name / <filename> is relative to, for annotations "
        "kept apart from their images (default: found from the layout, see docs/formats/)",
    )


def add_no_cache(p: argparse.ArgumentParser) -> None:
    """Add ``--no-cache`` (neither read nor write the load cache)."""
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the load cache (YOLO, COCO; kept in "
        "$YOLO2RETINA_CACHE_DIR or ~/.cache/yolo2retina, never in the dataset)",
    )


def add_threads(p: argparse.ArgumentParser) -> None:
    """Add ``--threads N`` (predict, evaluate: the CPU threads the model may use)."""
    from yolo2retina.cli import positive_int

    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="onnxruntime / torch CPU threads: bound the CPU the model uses (an .onnx "
        "model's onnxruntime session, and torch's threads, restored afterwards); "
        "default: their own choice",
    )


def reader_options(args: argparse.Namespace, fmt: str) -> dict[str, Any]:
    """Reader keywords from the command line: ``images_root=`` when ``--images-root`` is
    given, ``cache=False`` for ``--no-cache`` (for the formats that have a load cache).

    Raises:
        ConfigError: ``--images-root`` for YOLO, whose image paths come from the layout
            itself.
    """
    from yolo2retina.errors import ConfigError
    from yolo2retina.formats import get_format
    from yolo2retina.formats.cache import accepts_cache

    options: dict[str, Any] = {}
    if getattr(args, "no_cache", False) and accepts_cache(get_format(fmt)):
        options["cache"] = False
    if args.images_root is None:
        return options
    if fmt == "yolo":
        raise ConfigError(
            "--images-root applies to COCO and VOC datasets (file_name / <filename> is "
            "relative to it); this dataset is yolo, whose images are found from its layout"
        )
    return options | {"images_root": args.images_root}
