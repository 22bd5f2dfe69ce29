"""Tests for the CLI shell (yolo2retina/cli.py) and the `info` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_yolo_dataset
from yolo2retina.cli import main


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    """--help prints usage and exits 0."""
    assert main(["--help"]) == 0
    assert "usage: yolo2retina" in capsys.readouterr().out


def test_usage_error_exits_two(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown command is a usage error: exit 2."""
    assert main(["no-such-command"]) == 2
    assert main(["info"]) == 2


def test_info_prints_load_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`info` prints the load report and the classes."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.1 0.1"], "b": ""})
    assert main(["info", str(y), "--split", "train"]) == 0
    out = capsys.readouterr().out
    assert "images:              2 (1 background)" in out and "classes: a, b" in out


def test_library_error_is_one_line_exit_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad dataset prints one error line naming file:line and exits 1."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.1"]})
    assert main(["info", str(y), "--split", "train"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a.txt:1: expected 5 values" in err[0]
