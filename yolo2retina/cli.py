"""The ``yolo2retina`` command line: a thin shell over the public API.

Each subcommand lives in ``yolo2retina/commands/<name>.py`` and defines ``NAME``,
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. Library errors print
one line and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Collection, Sequence
from types import ModuleType
from typing import NoReturn

from yolo2retina._version import __version__
from yolo2retina.errors import DatasetError, Yolo2RetinaError

__all__ = ["add_output_flags", "fraction", "get_parser", "main", "positive_int"]

#: Subcommand modules under ``yolo2retina.commands``, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "train",
    "evaluate",
    "predict",
    "export",
    "convert",
    "check",
    "stats",
    "split",
    "info",
    "formats",
)


def positive_int(value: str) -> int:
    """argparse type: a whole number >= 1 (a usage error, exit 2, otherwise)."""
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value!r}")
    return n


def fraction(value: str) -> float:
    """argparse type: a finite number from 0 to 1 (``nan`` is a usage error, exit 2)."""
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {value!r}") from None
    if not (math.isfinite(x) and 0.0 <= x <= 1.0):
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {value!r}")
    return x


def add_output_flags(p: argparse.ArgumentParser, *, folder: bool = True) -> None:
    """Add ``--exist-ok`` (output folders only) and ``--overwrite``: see docs/outputs.md."""
    if folder:
        p.add_argument(
            "--exist-ok",
            action="store_true",
            help="write into an existing output folder that holds files; only new files are "
            "written (an existing output file is still an error)",
        )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing output files"
        + (" (implies --exist-ok; other files in the folder are kept)" if folder else ""),
    )


def _modules() -> list[ModuleType]:
    return [importlib.import_module(f"yolo2retina.commands.{m}") for m in COMMANDS]


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names: its first word that is not an option.

    The top-level parser has no option that takes a value, so that word is the command
    (or a misspelt one, which argparse then refuses).
    """
    return next((a for a in argv if not a.startswith("-")), None)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: ``error: ...`` (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def get_parser() -> argparse.ArgumentParser:
    """The full argument parser, every subcommand's options included (the CLI reference)."""
    return _build_parser(None)


def _build_parser(with_options: Collection[str] | None) -> argparse.ArgumentParser:
    """The parser, with the options of the subcommands named in ``with_options`` (all: ``None``).

    Every subcommand is listed either way (``--help`` shows them all). ``main`` adds only
    the options of the command it runs, so what another command imports to set up its
    options (``train`` imports torch for its choices) stays off a data-only command such
    as ``check`` or ``convert``.
    """
    parser = _Parser(
        prog="yolo2retina",
        description="Train and use torchvision RetinaNet on YOLO / VOC / COCO datasets.",
    )
    parser.add_argument("--version", action="version", version=f"yolo2retina {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in _modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        if with_options is None or mod.NAME in with_options:
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
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_in(argv)
    parser = _build_parser(() if command is None else (command,))
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
