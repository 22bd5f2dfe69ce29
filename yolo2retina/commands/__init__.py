"""CLI subcommands, one module each (see :mod:`yolo2retina.cli`)."""

from __future__ import annotations

import os


def dataset_format(src: str | os.PathLike[str], fmt: str, flag: str = "--format") -> str:
    """``fmt``, or the detected format of ``src`` when ``fmt`` is ``"auto"``.

    Detection errors name the command's flag (``--format``, or ``--from`` for ``convert``)
    rather than the library's ``format=`` keyword.
    """
    from yolo2retina.formats import detect_format

    return detect_format(src, option=flag) if fmt == "auto" else fmt
