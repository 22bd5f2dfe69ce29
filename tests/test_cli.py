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


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The single stderr line of a failed command (no traceback, no usage block)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_raw_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Inputs that used to end in a traceback, or in exit 0 with nothing done, are one line.

    `evaluate --batch-size 0` (DataLoader ValueError), `predict --out <a file>`
    (FileExistsError), `stats --histogram <a folder>` (IsADirectoryError) and
    `predict --score nan` (exit 0, every detection silently dropped).
    """
    from tests._prediction_helpers import photo, tiny_checkpoint

    y = make_yolo_dataset(tmp_path / "ds", {"a": ["0 0.5 0.5 0.1 0.1"]})
    ckpt = tiny_checkpoint(tmp_path / "best.pt")
    img = photo(tmp_path / "in" / "a.png", (1, 1, 5, 5))
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    predict = ["predict", "--weights", str(ckpt), "--source", str(img), "--no-progress"]

    assert main(["evaluate", "--data", str(y), "--weights", str(ckpt), "--batch-size", "0"]) == 2
    assert "--batch-size: expected a whole number >= 1" in one_error_line(capsys)
    assert main([*predict, "--out", str(a_file)]) == 1
    assert f"{a_file}: exists and is not a folder" in one_error_line(capsys)
    assert a_file.read_text() == "mine"
    assert main(["stats", str(y), "--histogram", str(tmp_path / "in")]) == 1
    assert f"{tmp_path / 'in'}: is a folder" in one_error_line(capsys)
    for bad in ("nan", "inf", "-0.1", "1.5", "x"):
        assert main([*predict, "--out", str(tmp_path / "o"), "--score", bad]) == 2
        assert f"--score: expected a number from 0 to 1, got '{bad}'" in one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_score_threshold_nan_is_refused_by_the_library() -> None:
    """predict(score_threshold=nan) kept nothing and said nothing; now a ConfigError."""
    import torch

    from yolo2retina.errors import ConfigError
    from yolo2retina.prediction import predict

    with pytest.raises(ConfigError, match="score_threshold"):
        predict(lambda imgs: [], torch.zeros(3, 8, 8), score_threshold=float("nan"))
