"""predict_to_folder (yolo2retina.predict_folder): drawings, labels, counts and exports of a run."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from PIL import Image

from tests._prediction_helpers import NAMES, bright_model, photo
from yolo2retina.errors import DatasetError
from yolo2retina.predict_folder import predict_to_folder


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


def test_relative_folder_in_and_out_and_a_second_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative source folder (searched recursively) and output; the same run again is
    refused before anything is written, and with overwrite it writes the same files."""
    monkeypatch.chdir(tmp_path)
    photo(Path("photos/a.png"), (10, 10, 30, 30))
    photo(Path("photos/sub/b.png"), (40, 20, 60, 50))
    run = predict_to_folder(bright_model, NAMES, ["photos"], "out", save_txt=True)
    written = sorted(str(f.relative_to(run.out_dir)) for f in run.files)
    assert written == ["a.png", "b.png", "counts.csv", "labels/a.txt", "labels/b.txt"]
    assert [Path(p.source).name for p in run.predictions] == ["a.png", "b.png"]
    before = {f: f.read_bytes() for f in run.files}
    with pytest.raises(DatasetError, match="already exists"):
        predict_to_folder(bright_model, NAMES, ["photos"], "out", save_txt=True)
    again = predict_to_folder(bright_model, NAMES, ["photos"], "out", save_txt=True, overwrite=True)
    assert {f: f.read_bytes() for f in again.files} == before
