"""``yolo2retina formats``: list the dataset formats that are registered, plug-ins included."""

from __future__ import annotations

import argparse

NAME = "formats"
HELP = "List the dataset formats this installation reads and writes (built-in and plug-ins)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """This command takes no options."""


def run(args: argparse.Namespace) -> int:
    """Print one line per registered format."""
    from yolo2retina.formats import get_format, list_formats

    for name in list_formats():
        print(f"{name:<8} {get_format(name).description}")
    return 0
