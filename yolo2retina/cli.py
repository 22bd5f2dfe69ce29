"""The ``yolo2retina`` command line: a thin shell over the public API.

Each subcommand lives in ``yolo2retina/commands/<name>.py`` and defines ``NAME``,
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. Library errors print
one line and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from yolo2retina._version import __version__
from yolo2retina.errors import DatasetError, Yolo2RetinaError

__all__ = ["get_parser", "main"]

#: Subcommand modules under ``yolo2retina.commands``, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "train",
    "evaluate",
    "predict",
    "convert",
    "check",
    "stats",
    "split",
    "info",
    "formats",
)


def _modules() -> list[ModuleType]:
    return [importlib.import_module(f"yolo2retina.commands.{m}") for m in COMMANDS]


def get_parser() -> argparse.ArgumentParser:
    """The full argument parser (used by ``main`` and by the CLI reference generator)."""
    parser = argparse.ArgumentParser(
        prog="yolo2retina",
        description="Train and use torchvision RetinaNet on YOLO / VOC / COCO datasets.",
    )
    parser.add_argument("--version", action="version", version=f"yolo2retina {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in _modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def _one_line(e: Yolo2RetinaError) -> str:
    if isinstance(e, DatasetError) and e.problems:
        more = len(e.problems) - 1
        tail = f" (and {more} more; 'yolo2retina check' lists all)" if more else ""
        return f"{e.summary}: {e.problems[0]}{tail}"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 library error, 2 usage error)."""
    parser = get_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help / --version exit 0, usage errors exit 2
        return int(e.code) if isinstance(e.code, int) else 2
    try:
        return int(args._run(args))
    except Yolo2RetinaError as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
