"""Every ``yolo2retina ... --help`` runs without importing torch or torchvision (issue 15).

``train --help`` used to import torch (about 5 s on a CPU) only to list its choices: the
backbone names from the model, the augmentation policies and the loss norms. Each check runs
a fresh interpreter, as the ``yolo2retina`` script does, and reads its ``sys.modules``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_import import _run
from yolo2retina.cli import COMMANDS


def _help(argv: list[str], cwd: Path, before: str = "") -> str:
    """``yolo2retina ARGV`` in a fresh interpreter: ``"<exit code> <torch modules loaded>
    <usage printed>"`` (``before``: code run first)."""
    lines = _run(
        f"""
        import contextlib, io
        {before}
        from yolo2retina.cli import main
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = main({argv!r})
        print(rc, heavy(), "usage: yolo2retina" in out.getvalue())
        """,
        cwd,
    )
    return lines[-1]


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_loads_no_torch(command: str, tmp_path: Path) -> None:
    assert _help([command, "--help"], tmp_path) == "0 [] True"


def test_top_level_help_loads_no_torch(tmp_path: Path) -> None:
    assert _help(["--help"], tmp_path) == "0 [] True"


def test_the_probe_sees_torch(tmp_path: Path) -> None:
    """The check itself: a run that imports torch is reported (``train`` does, to train)."""
    assert _help(["formats"], tmp_path, before="import torch") == "0 ['torch'] False"
