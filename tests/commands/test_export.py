"""``yolo2retina export`` (yolo2retina.commands.export): options, outputs and exit codes.

The graph export itself is stubbed here (it takes half a minute); the real one runs through
this command in tests/commands/test_predict.py and in tests/test_onnx_export.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests._prediction_helpers import tiny_checkpoint
from yolo2retina import cli, onnx_export
from yolo2retina.cli import main


@pytest.fixture(autouse=True)
def export_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """List ``export`` in the CLI's commands (until cli.COMMANDS has it)."""
    if "export" not in cli.COMMANDS:
        monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "export"))


@pytest.fixture
def stub_graph(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace the torch exporter by a stub that writes the opset; returns the opsets used."""
    opsets: list[int] = []

    def fake(net: Any, example: Any, path: Path, opset: int) -> None:
        opsets.append(opset)
        path.write_bytes(f"opset {opset}".encode())

    monkeypatch.setattr(onnx_export, "_export_graph", fake)
    monkeypatch.setattr(onnx_export, "_check_graph", lambda *a: None)
    return opsets


def test_export_writes_model_and_sidecar_by_relative_paths(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stub_graph: list[int],
) -> None:
    """Default output: the checkpoint's name with .onnx; the sidecar beside it; exit 0."""
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    tiny_checkpoint(tmp_path / "run" / "best.pt")
    assert main(["export", "--weights", "run/best.pt", "--format", "onnx"]) == 0
    assert "run/best.onnx" in capsys.readouterr().out
    doc = json.loads(Path("run/best.onnx.json").read_text())
    assert doc["class_names"] == ["varroa", "bee"] and doc["input"]["min_size"] == 64
    assert stub_graph == [18]
    argv = ["export", "--weights", "run/best.pt", "--out", "m.onnx", "--img-size", "96"]
    assert main([*argv, "--opset", "20"]) == 0
    assert json.loads(Path("m.onnx.json").read_text())["input"]["max_size"] == 96
    assert stub_graph == [18, 20]


def test_export_refuses_an_existing_output_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stub_graph: list[int],
) -> None:
    """A second run exits 1 naming the file and --overwrite; with --overwrite it replaces it."""
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    monkeypatch.chdir(tmp_path)
    tiny_checkpoint(tmp_path / "best.pt")
    argv = ["export", "--weights", "best.pt", "--out", "m.onnx"]
    assert main(argv) == 0
    Path("m.onnx").write_bytes(b"mine")
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "m.onnx" in err and "--overwrite" in err
    assert Path("m.onnx").read_bytes() == b"mine"
    assert main([*argv, "--overwrite"]) == 0
    assert Path("m.onnx").read_bytes() == b"opset 18"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--weights", "missing.pt"], "missing.pt"),
        (["--weights", "best.pt", "--out", "model.bin"], "must end in .onnx"),
        (["--weights", "best.pt", "--img-size", "16"], "img_size must be a whole number >= 32"),
        (["--weights", "best.pt", "--opset", "13"], "opset must be a whole number >= 18"),
    ],
)
def test_export_library_errors_exit_1(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    """A library error prints one line and exits 1; nothing is written."""
    monkeypatch.chdir(tmp_path)
    tiny_checkpoint(tmp_path / "best.pt")
    assert main(["export", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--weights", "best.pt", "--format", "tflite"],
        ["--weights", "best.pt", "--img-size", "0"],
        ["--weights", "best.pt", "--opset", "x"],
    ],
)
def test_export_usage_errors_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    """A missing --weights, an unknown format or a bad number is a usage error (exit 2)."""
    monkeypatch.chdir(tmp_path)
    assert main(["export", *argv]) == 2
    assert list(tmp_path.iterdir()) == []
