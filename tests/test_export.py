"""Prediction exports (YOLO txt with confidence, COCO results, VOC, counts.csv) and the predict CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from yolo2retina.cli import main
from yolo2retina.errors import ConfigError
from yolo2retina.export import (
    counts_line,
    predict_to_folder,
    predictions_to_annotations,
    write_counts_csv,
    write_predictions_coco,
    write_predictions_voc,
    write_yolo_txt,
    yolo_txt_lines,
)
from yolo2retina.predict import ImagePrediction
from yolo2retina.target import Target

NAMES = ["varroa", "bee"]


def bright_model(images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Stand-in: one class-0 box around the bright pixels, score 0.8."""
    out = []
    for t in images:
        ys, xs = torch.nonzero(t.mean(0) > 0.6, as_tuple=True)
        n = int(ys.numel() > 0)
        box = [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]] if n else []
        out.append(
            {
                "boxes": torch.tensor(box, dtype=torch.float32).reshape(n, 4),
                "labels": torch.zeros(n, dtype=torch.int64),
                "scores": torch.full((n,), 0.8),
            }
        )
    return out


def photo(path: Path, box: tuple[int, int, int, int], size: tuple[int, int] = (80, 60)) -> Path:
    a = np.full((size[1], size[0], 3), 30, np.uint8)
    x0, y0, x1, y1 = box
    a[y0:y1, x0:x1] = 250
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)
    return path


def test_yolo_txt_rows_are_ultralytics_save_conf_layout(tmp_path: Path) -> None:
    """Rows are 'class cx cy w h conf', normalized to the image; empty targets give empty files."""
    t = Target.from_xyxy([[10, 20, 30, 60], [0, 0, 100, 50]], [1, 0], [0.5, 0.25])
    text = yolo_txt_lines(t, (100, 200))
    assert text == "1 0.1 0.4 0.1 0.4 0.5\n0 0.25 0.25 0.5 0.5 0.25\n"
    p = write_yolo_txt(
        Target.from_xyxy(np.zeros((0, 4)), [], []), (10, 10), tmp_path / "l" / "a.txt"
    )
    assert p.read_text() == ""
    with pytest.raises(ConfigError, match="scores"):
        yolo_txt_lines(Target.from_xyxy([[0, 0, 1, 1]], [0]), (10, 10))


def test_coco_results_voc_and_counts_round_trip(tmp_path: Path) -> None:
    """COCO results map back to the boxes; VOC reads back; counts.csv has ids, counts and errors."""
    from yolo2retina.formats.voc import read_voc

    a = photo(tmp_path / "a.png", (10, 10, 20, 30))
    b = photo(tmp_path / "b.png", (0, 0, 5, 5))
    ta = Target.from_xyxy([[10, 10, 20, 30], [40, 5, 50, 15]], [0, 1], [0.9, 0.6])
    preds = [
        ImagePrediction(str(a), ta, (60, 80)),
        ImagePrediction("c.jpg", None, None, "c.jpg: not a readable image"),
        ImagePrediction(str(b), Target.from_xyxy(np.zeros((0, 4)), [], []), (60, 80)),
    ]
    res = json.loads(write_predictions_coco(preds, NAMES, tmp_path / "p.json").read_text())
    assert [(r["image_id"], r["category_id"], r["bbox"], r["score"]) for r in res] == [
        (0, 1, [10.0, 10.0, 10.0, 20.0], pytest.approx(0.9)),
        (0, 2, [40.0, 5.0, 10.0, 10.0], pytest.approx(0.6)),
    ]
    ann = predictions_to_annotations(preds, NAMES)
    assert len(ann) == 2 and ann.image_ids.tolist() == [0, 2]
    write_predictions_voc(preds, NAMES, tmp_path / "voc", images="copy")
    back = read_voc(tmp_path / "voc", "train")
    np.testing.assert_allclose(back.target(0).boxes, ta.boxes)
    assert back.target(0).labels.tolist() == [0, 1] and len(back.target(1)) == 0
    rows = list(csv.DictReader(write_counts_csv(preds, NAMES, tmp_path / "c.csv").open()))
    assert [r["image_id"] for r in rows] == ["0", "1", "2"]
    assert (rows[0]["total"], rows[0]["varroa"], rows[0]["bee"]) == ("2", "1", "1")
    assert rows[1]["error"].startswith("c.jpg") and rows[2]["total"] == "0"
    assert counts_line(preds[0], NAMES) == "a.png: 1 varroa, 1 bee"
    assert counts_line(preds[1], NAMES).startswith("c.jpg: ERROR")


def test_predict_to_folder_skips_unreadable_images(tmp_path: Path) -> None:
    """Broken images are reported and skipped; the others get drawings, labels and JSON."""
    src = tmp_path / "in"
    good = [photo(src / "a.jpg", (10, 10, 30, 30)), photo(src / "b.png", (40, 20, 60, 50))]
    bad = src / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    lines: list[str] = []
    run = predict_to_folder(
        bright_model,
        NAMES,
        [good[0], bad, good[1]],
        tmp_path / "out",
        tile=64,
        save_txt=True,
        save_json=True,
        log=lines.append,
    )
    out = tmp_path / "out"
    assert [p.ok for p in run.predictions] == [True, False, True]
    assert len(lines) == 3 and "ERROR" in lines[1] and "broken.jpg" in lines[1]
    assert {p.name for p in out.iterdir()} == {
        "a.png",
        "b.png",
        "labels",
        "counts.csv",
        "predictions.json",
    }
    assert (out / "labels" / "b.txt").read_text().startswith("0 0.625 0.583333 0.25 0.5 0.8")
    assert run.totals() == {"varroa": 2, "bee": 0}


def tiny_checkpoint(path: Path) -> Path:
    """A randomly initialised small RetinaNet saved as a training checkpoint."""
    from yolo2retina.model import build_args, build_retinanet

    torch.manual_seed(0)
    model = build_retinanet(
        num_classes=2,
        backbone="resnet18_fpn",
        min_size=64,
        max_size=64,
        score_thresh=0.0,
        detections_per_img=5,
    )
    torch.save(
        {
            "model": model.state_dict(),
            "model_args": build_args(model),
            "class_names": NAMES,
            "meta": {
                "train_image_size": 64,
                "box_size_px": {"median": 8.0, "p10": 6.0, "p90": 10.0},
            },
        },
        path,
    )
    return path


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


def test_decompression_bomb_is_counted_as_failed_and_counts_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image over Pillow's pixel limit fails alone; the run goes on and writes counts.csv."""
    src = tmp_path / "in"
    good = photo(src / "a.png", (10, 10, 30, 30))  # 80 x 60 = 4800 px
    bomb = photo(src / "huge.png", (1, 1, 5, 5), size=(200, 200))  # 40000 px
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    run = predict_to_folder(bright_model, NAMES, [bomb, good], tmp_path / "out")
    assert [p.ok for p in run.predictions] == [False, True]
    assert "huge.png" in str(run.failed[0].error) and "decompression bomb" in str(
        run.failed[0].error
    )
    rows = list(csv.DictReader((tmp_path / "out" / "counts.csv").open()))
    assert [Path(r["image"]).name for r in rows] == ["huge.png", "a.png"]
    assert "decompression bomb" in rows[0]["error"] and rows[1]["error"] == ""


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    return tiny_checkpoint(tmp_path / "best.pt")


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
