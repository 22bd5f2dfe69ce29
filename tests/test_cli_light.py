"""Every ``yolo2retina ... --help`` runs without importing torch or torchvision (issue 15).

``train --help`` used to import torch (about 5 s on a CPU) only to list its choices: the
backbone names from the model, the augmentation policies and the loss norms. Each check runs
a fresh interpreter, as the ``yolo2retina`` script does, and reads its ``sys.modules``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from yolo2retina.cli import COMMANDS

_SCRIPT = """
import contextlib, io, sys
sys.argv = ["yolo2retina", *sys.argv[1:]]
from yolo2retina.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    rc = main()
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "torchvision"})
print(rc, heavy, "usage: yolo2retina" in out.getvalue())
"""


def _help(argv: list[str], cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_loads_no_torch(command: str, tmp_path: Path) -> None:
    assert _help([command, "--help"], tmp_path) == "0 [] True"


def test_top_level_help_loads_no_torch(tmp_path: Path) -> None:
    assert _help(["--help"], tmp_path) == "0 [] True"


def test_the_probe_sees_torch(tmp_path: Path) -> None:
    """The check itself: a run that imports torch is reported (``train`` does, to train)."""
    out = subprocess.run(
        [sys.executable, "-c", "import torch\n" + _SCRIPT, "formats"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert out.splitlines()[-1] == "0 ['torch'] False"
