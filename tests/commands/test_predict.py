"""``yolo2retina predict`` (yolo2retina.commands.predict): outputs, exit codes, refused outputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests._prediction_helpers import (
    board,
    photo,
    spread_checkpoint,
    spy_model_threads,
    tiny_checkpoint,
    tree,
)
from yolo2retina import cli
from yolo2retina.cli import main


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    return tiny_checkpoint(tmp_path / "best.pt")


def test_cli_predict_writes_outputs_and_exits_1_on_unreadable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI loads a checkpoint, tiles, writes drawings/counts/exports, and exits 1 for a bad file."""
    ckpt = tiny_checkpoint(tmp_path / "best.pt")
    src = tmp_path / "photos"
    photo(src / "one.jpg", (10, 10, 20, 20), size=(150, 100))
    photo(src / "two.jpg", (30, 30, 45, 45), size=(100, 150))
    (src / "bad.jpg").write_bytes(b"nope")
    out = tmp_path / "out"
    argv = [
        "predict",
        "--weights",
        str(ckpt),
        "--source",
        str(src),
        "--out",
        str(out),
        "--tile",
        "auto",
        "--score",
        "0.0",
        "--save-txt",
        "--save-json",
        "--save-voc",
        "--no-progress",
    ]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "bad.jpg" in captured.err and "one.jpg:" in captured.out
    rows = list(csv.DictReader((out / "counts.csv").open()))
    assert [Path(r["image"]).name for r in rows] == ["bad.jpg", "one.jpg", "two.jpg"]
    assert int(rows[1]["total"]) == int(rows[1]["varroa"]) + int(rows[1]["bee"]) > 0
    assert (out / "one.png").is_file() and (out / "labels" / "two.txt").is_file()
    assert (out / "voc" / "Annotations" / "one.xml").is_file()
    res = json.loads((out / "predictions.json").read_text())
    assert {r["image_id"] for r in res} == {1, 2}
    assert (
        main(
            [*argv[:4], str(src / "one.jpg"), "--out", str(out / "2"), "--no-draw", "--no-progress"]
        )
        == 0
    )
    assert not (out / "2" / "one.png").exists()


def test_cli_predict_usage_errors(tmp_path: Path) -> None:
    """A bad --tile is a usage error (exit 2); a missing checkpoint or source is exit 1."""
    img = photo(tmp_path / "a.png", (1, 1, 5, 5))
    base = ["predict", "--source", str(img), "--out", str(tmp_path / "o")]
    assert main([*base, "--weights", "x.pt", "--tile", "big"]) == 2
    assert main([*base, "--weights", str(tmp_path / "missing.pt")]) == 1
    ckpt = tiny_checkpoint(tmp_path / "best.pt")
    assert (
        main(
            [
                "predict",
                "--weights",
                str(ckpt),
                "--source",
                str(tmp_path / "none*.jpg"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 1
    )


def test_cli_predict_never_writes_into_its_sources(
    tmp_path: Path, ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out = the source folder used to overwrite photos with drawings (a.png); --save-txt
    into a dataset root used to overwrite ground-truth labels. Both are refused, whatever
    the flags, and nothing changes."""
    from tests.conftest import make_yolo_dataset

    photos = tmp_path / "photos"
    photo(photos / "a.png", (10, 10, 30, 30))
    ds = make_yolo_dataset(tmp_path / "ds", {"a": ["0 0.5 0.5 0.2 0.2"]}, split="").parent
    before = {p: tree(p) for p in (photos, ds)}
    base = ["predict", "--weights", str(ckpt), "--no-progress", "--score", "0"]
    cases = [
        ["--source", str(photos), "--out", str(photos)],
        ["--source", str(photos), "--out", str(photos / "pred")],
        ["--source", str(photos / "a.png"), "--out", str(photos)],
        ["--source", str(ds / "images"), "--out", str(ds), "--save-txt"],
    ]
    for case in cases:
        for flag in ([], ["--exist-ok"], ["--overwrite"]):
            assert main([*base, *case, *flag]) == 1
            err = capsys.readouterr().err
            assert "no flag allows this" in err and "Traceback" not in err
    assert {p: tree(p) for p in (photos, ds)} == before
    assert not (photos / "pred").exists()


def test_cli_predict_second_run_needs_a_flag(
    tmp_path: Path, ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second predict into the same folder is refused naming the flags; --overwrite redoes it."""
    src = tmp_path / "photos"
    photo(src / "a.png", (10, 10, 30, 30))
    photo(src / "b.png", (40, 20, 60, 50))
    out = tmp_path / "out"
    argv = ["predict", "--weights", str(ckpt), "--source", str(src), "--out", str(out)]
    argv += ["--no-progress", "--score", "0", "--save-txt", "--save-json", "--save-voc"]
    assert main(argv) == 0
    first = tree(out)
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"{out}: output folder already exists" in err and "--exist-ok" in err
    assert main([*argv, "--exist-ok"]) == 1
    err = capsys.readouterr().err
    assert "already exist: " in err and "counts.csv" in err and "--overwrite" in err
    assert tree(out) == first
    assert main([*argv, "--overwrite"]) == 0
    assert tree(out).keys() == first.keys()
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    # --exist-ok: a folder that holds other files is reused, and they are kept
    notes = tmp_path / "results" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("mine")
    argv[argv.index(str(out))] = str(notes.parent)
    assert main(argv) == 1
    assert main([*argv, "--exist-ok"]) == 0
    assert notes.read_text() == "mine" and (notes.parent / "counts.csv").is_file()


# -- an exported ONNX model ------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``best.pt``, ``best.onnx`` (exported by the CLI) and ``photos/``."""
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    pytest.importorskip("onnxscript", reason="the onnx extra is not installed")
    root = tmp_path_factory.mktemp("onnx_predict")
    spread_checkpoint(root / "best.pt")
    rng = np.random.default_rng(0)
    (root / "photos").mkdir()
    for name, size in (("a.png", 200), ("b.png", 150)):
        Image.fromarray(board(rng, size, 6)[0]).save(root / "photos" / name)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        if "export" not in cli.COMMANDS:  # until the CLI lists it
            mp.setattr(cli, "COMMANDS", (*cli.COMMANDS, "export"))
        assert main(["export", "--weights", "best.pt", "--format", "onnx"]) == 0
    return root


def _label_rows(folder: Path) -> dict[str, np.ndarray]:
    return {
        p.name: np.loadtxt(p, ndmin=2).reshape(-1, 6) for p in sorted((folder / "labels").iterdir())
    }


def test_cli_predict_with_onnx_model_and_tiles_matches_pytorch(
    onnx_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--weights best.onnx --tile`` runs through onnxruntime: PyTorch's counts and boxes."""
    monkeypatch.chdir(onnx_run)
    common = ["--source", "photos", "--tile", "96", "--score", "0.141", "--save-txt"]
    common += ["--no-draw", "--no-progress"]
    assert main(["predict", "--weights", "best.pt", "--out", "pt", *common]) == 0
    assert main(["predict", "--weights", "best.onnx", "--out", "onnx", *common]) == 0
    assert "2 image(s)" in capsys.readouterr().out
    counts_pt = (onnx_run / "pt" / "counts.csv").read_text()
    assert (onnx_run / "onnx" / "counts.csv").read_text() == counts_pt
    rows_pt, rows_onnx = _label_rows(onnx_run / "pt"), _label_rows(onnx_run / "onnx")
    assert rows_pt.keys() == rows_onnx.keys() == {"a.txt", "b.txt"}
    for name, want in rows_pt.items():
        assert len(want) > 0
        order_w, order_g = np.lexsort(want.T[::-1]), np.lexsort(rows_onnx[name].T[::-1])
        got = rows_onnx[name][order_g]
        np.testing.assert_array_equal(got[:, 0], want[order_w][:, 0])  # labels
        np.testing.assert_allclose(got[:, 1:], want[order_w][:, 1:], atol=1e-4)


def test_cli_predict_onnx_uses_the_threshold_its_sidecar_carries(
    onnx_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """export copies the checkpoint's meta into best.onnx.json, score_threshold included:
    without --score, the .onnx model keeps what best.pt keeps with its recorded threshold."""
    monkeypatch.chdir(onnx_run)
    common = ["--source", "photos", "--no-draw", "--no-progress"]
    assert main(["predict", "--weights", "best.onnx", "--out", "onnx_default", *common]) == 0
    said = "score threshold 0.141 (chosen on the validation set at training; --score overrides)"
    assert said in capsys.readouterr().out
    assert main(["predict", "--weights", "best.pt", "--out", "pt_default", *common]) == 0
    assert said in capsys.readouterr().out
    counts = (onnx_run / "pt_default" / "counts.csv").read_text()
    assert (onnx_run / "onnx_default" / "counts.csv").read_text() == counts


def test_cli_predict_onnx_without_sidecar_exits_1(
    onnx_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model copied without its sidecar: one line naming the missing .onnx.json."""
    lone = tmp_path / "lone.onnx"
    lone.write_bytes((onnx_run / "best.onnx").read_bytes())
    argv = ["predict", "--weights", str(lone), "--source", str(onnx_run / "photos")]
    assert main([*argv, "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lone.onnx.json: missing" in err


def test_cli_predict_threads_bound_the_onnx_session(
    onnx_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--threads 1`` with an .onnx model: a one-thread onnxruntime session, the same counts."""
    from yolo2retina.predictor import Predictor

    made: list[Predictor] = []
    real = Predictor.from_onnx

    def spy(path: Any, **kw: Any) -> Predictor:
        made.append(real(path, **kw))
        return made[-1]

    monkeypatch.setattr(Predictor, "from_onnx", spy)
    monkeypatch.chdir(onnx_run)
    common = ["--source", "photos", "--score", "0.141", "--no-draw", "--no-progress"]
    assert (
        main(["predict", "--weights", "best.onnx", "--out", "one", "--threads", "1", *common]) == 0
    )
    assert main(["predict", "--weights", "best.onnx", "--out", "any", *common]) == 0
    options = [p.model.session.get_session_options() for p in made]
    assert [(o.intra_op_num_threads, o.inter_op_num_threads) for o in options] == [(1, 1), (0, 0)]
    assert (onnx_run / "one" / "counts.csv").read_text() == (
        onnx_run / "any" / "counts.csv"
    ).read_text()


# -- CPU threads ------------------------------------------------------------------------------


def test_cli_predict_threads_bound_torch_and_are_restored(
    tmp_path: Path, ckpt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--threads 1`` with a checkpoint: the model runs with one torch thread, and the
    process's setting is back afterwards (also when an unreadable image makes it exit 1);
    0 is a usage error."""
    import torch

    seen = spy_model_threads(monkeypatch)
    monkeypatch.chdir(tmp_path)
    photo(Path("photos") / "a.png", (10, 10, 30, 30))
    photo(Path("photos") / "bad.png", (10, 10, 30, 30)).write_bytes(b"nope")
    argv = ["predict", "--weights", str(ckpt), "--source", "photos", "--no-progress"]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main([*argv, "--out", "one", "--threads", "1"]) == 1  # bad.png: exit 1
        assert seen == [1] and torch.get_num_threads() == 2
        assert main([*argv, "--out", "default"]) == 1
        assert seen == [1, 2]
    finally:
        torch.set_num_threads(before)
    assert main([*argv, "--out", "zero", "--threads", "0"]) == 2


# -- the score threshold ------------------------------------------------------------------------


def _totals(out: Path) -> int:
    return sum(int(r["total"]) for r in csv.DictReader((out / "counts.csv").open()))


def test_cli_predict_takes_the_checkpoints_threshold_unless_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --score, predict used 0.3 whatever training chose; now it uses the
    checkpoint's meta["score_threshold"] and says so, --score overrides it, and a
    checkpoint without one keeps 0.3 (the untrained model's scores are all ~0.01)."""
    import torch

    monkeypatch.chdir(tmp_path)
    state = torch.load(tiny_checkpoint(Path("old.pt")), weights_only=True)
    state["meta"]["score_threshold"] = {
        "score": 0.001, "f1": 0.5, "precision": 0.5, "recall": 0.5, "iou": 0.5,
    }  # fmt: skip
    torch.save(state, "best.pt")
    photo(Path("photos") / "a.png", (10, 10, 30, 30))
    base = ["predict", "--source", "photos", "--no-draw", "--no-progress"]
    assert main([*base, "--weights", "best.pt", "--out", "recorded"]) == 0
    out = capsys.readouterr().out
    assert (
        "score threshold 0.001 (chosen on the validation set at training; --score overrides)" in out
    )
    assert _totals(tmp_path / "recorded") > 0
    assert main([*base, "--weights", "best.pt", "--out", "given", "--score", "0.9"]) == 0
    assert "score threshold 0.9 (given with --score)" in capsys.readouterr().out
    assert _totals(tmp_path / "given") == 0
    assert main([*base, "--weights", "old.pt", "--out", "old"]) == 0
    assert (
        "score threshold 0.3 (the default; this checkpoint records none)" in capsys.readouterr().out
    )
    assert _totals(tmp_path / "old") == 0
    # a second run of the same command into the same folder still needs a flag
    assert main([*base, "--weights", "best.pt", "--out", "recorded", "--overwrite"]) == 0


def test_cli_predict_refuses_a_malformed_recorded_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand-edited meta["score_threshold"] is one error line naming the file, not a crash."""
    import torch

    monkeypatch.chdir(tmp_path)
    state = torch.load(tiny_checkpoint(Path("best.pt")), weights_only=True)
    state["meta"]["score_threshold"] = {"score": 7}
    torch.save(state, "best.pt")
    photo(Path("a.png"), (10, 10, 30, 30))
    argv = ["predict", "--weights", "best.pt", "--source", "a.png", "--out", "o", "--no-progress"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "best.pt: meta['score_threshold']" in err and "Traceback" not in err
    assert main([*argv, "--score", "0.5"]) == 0  # --score still works


def test_cli_predict_help_says_where_the_default_threshold_comes_from(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["predict", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "default: the threshold training chose on the validation set" in text
    assert "else 0.3" in text
