"""The data commands (convert, check, stats, split) run through cli.main."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_yolo_dataset
from tests.formats._helpers import make_coco
from yolo2retina.cli import main


@pytest.fixture
def yolo(tmp_path: Path) -> Path:
    """A small valid YOLO dataset with one background image."""
    return make_yolo_dataset(
        tmp_path / "ds", {"a": ["0 0.5 0.5 0.2 0.4", "1 0.3 0.3 0.1 0.1"], "b": [], "c": None}
    )


def test_convert_to_each_format(
    tmp_path: Path, yolo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """convert writes each target format, reports counts, and refuses to overwrite."""
    for fmt in ("coco", "voc", "yolo"):
        out = tmp_path / f"out_{fmt}"
        assert main(["convert", str(yolo), str(out), "--to", fmt, "--no-progress"]) == 0
        assert f"Wrote {fmt} dataset to {out}: 6 images, 4 boxes" in capsys.readouterr().out
    assert (tmp_path / "out_coco" / "train" / "_annotations.coco.json").is_file()
    assert main(["convert", str(yolo), str(tmp_path / "out_voc"), "--to", "voc"]) == 1
    assert "already exist" in capsys.readouterr().err
    assert main(["convert", str(yolo), str(tmp_path / "x"), "--to", "nope"]) == 1
    assert "Available formats" in capsys.readouterr().err


def test_convert_usage_error(yolo: Path) -> None:
    """A missing --to is a usage error (exit 2)."""
    assert main(["convert", str(yolo), "out"]) == 2


def test_check_clean_dataset(yolo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check exits 0 and prints a table with one row per split."""
    assert main(["check", str(yolo)]) == 0
    out = capsys.readouterr().out
    assert "no errors" in out
    assert out.count("\ntrain ") == 1 and out.count("\nval ") == 1


def test_check_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check prints each problem as file:line, a summary table, and exits 1."""
    y = make_yolo_dataset(
        tmp_path / "bad",
        {"a": ["0 0.5 0.5 0.2", "7 0.5 0.5 0.1 0.1"], "b": ["0 0.5 0.5 0.2 0.2 0.9"]},
    )
    assert main(["check", str(y), "--split", "train"]) == 1
    out = capsys.readouterr().out
    label = tmp_path / "bad" / "labels" / "train"
    assert f"error: {label / 'a.txt'}:1: expected 5 values" in out
    assert f"error: {label / 'a.txt'}:2: class id 7" in out
    assert f"error: {label / 'b.txt'}:1: expected 5 values" in out
    assert "errors" in out and "3 error(s)" in out


def test_check_notes_clipped_boxes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Clipped boxes are notes (exit 0), and errors with --strict (exit 1)."""
    f = make_coco(
        tmp_path, 1, [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [60, 1, 4.5, 4]}]
    )
    assert main(["check", str(f)]) == 0
    assert "note: " in capsys.readouterr().out
    assert main(["check", str(f), "--strict"]) == 1


def test_stats_prints_counts_and_saves_histogram(
    tmp_path: Path, yolo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """stats prints images, background images, boxes per class and writes a PNG."""
    png = tmp_path / "h.png"
    assert main(["stats", str(yolo), "--split", "train", "--histogram", str(png)]) == 0
    out = capsys.readouterr().out
    assert "images:            3 (2 background)" in out
    assert "boxes:             2" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stats_without_matplotlib(
    tmp_path: Path, yolo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without matplotlib, stats still prints, then says how to install it (exit 1)."""
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["stats", str(yolo), "--histogram", str(tmp_path / "h.png")]) == 1
    captured = capsys.readouterr()
    assert "boxes:" in captured.out
    assert "pip install 'yolo2retina[plot]'" in captured.err
    assert main(["stats", str(yolo), "--no-histogram"]) == 0


def test_split_writes_lists_and_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """split writes train/val/test lists and a data.yaml that loads; same seed, same split."""
    rows: dict[str, Sequence[str] | str | None] = {
        f"im{i}": ["0 0.5 0.5 0.2 0.2"] for i in range(10)
    }
    y = make_yolo_dataset(tmp_path / "ds", rows)
    out = tmp_path / "split"
    assert (
        main(["split", str(y), "--out", str(out), "--ratios", "0.8", "0.1", "0.1", "--seed", "0"])
        == 0
    )
    assert "train: 8 images" in capsys.readouterr().out
    first = (out / "train.txt").read_text()
    doc = yaml.safe_load((out / "data.yaml").read_text())
    assert doc["train"] == "train.txt" and doc["names"] == ["a", "b"]
    assert main(["split", str(y), "--out", str(out)]) == 1  # refuses to overwrite
    assert main(["split", str(y), "--out", str(out), "--overwrite"]) == 0
    assert (out / "train.txt").read_text() == first
    assert main(["check", str(out / "data.yaml")]) == 0
    assert main(["split", str(y), "--out", str(out), "--ratios", "0.5", "0.6"]) == 1
    assert "sum to 1" in capsys.readouterr().err


def test_check_lists_every_bad_coco_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every annotation with an unknown image id is listed, not just the first."""
    anns = [
        {"id": k, "image_id": 100 + k, "category_id": 1, "bbox": [1, 1, 2, 2]} for k in range(25)
    ]
    f = make_coco(tmp_path, 1, anns)
    assert main(["check", str(f)]) == 1
    out = capsys.readouterr().out
    assert out.count("is not in 'images'") == 25
    assert "25 error(s)" in out


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_convert_never_writes_into_the_source_dataset(
    tmp_path: Path, yolo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`convert ds/data.yaml ds --to coco` used to write COCO files into the YOLO dataset
    (which then 'looks like coco and yolo'). Refused before anything is read or written,
    also for a folder inside the dataset or one that holds it, whatever the flags."""
    ds = yolo.parent
    before = tree(ds)
    for dst in (ds, ds / "coco", ds / "images", tmp_path):
        for flag in ([], ["--exist-ok"], ["--overwrite"]):
            assert main(["convert", str(yolo), str(dst), "--to", "coco", *flag]) == 1
            err = capsys.readouterr().err
            assert "no flag allows this" in err and str(dst) in err
    monkeypatch.chdir(ds)
    assert main(["convert", "data.yaml", ".", "--to", "voc", "--overwrite"]) == 1
    assert main(["convert", "data.yaml", "voc", "--to", "voc"]) == 1
    assert tree(ds) == before
    assert main(["check", str(yolo)]) == 0 and "(yolo)" in capsys.readouterr().out


def test_convert_second_run_and_the_flags(
    tmp_path: Path, yolo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Second run refused naming --exist-ok / --overwrite; --exist-ok still refuses to
    replace a file; --overwrite replaces and keeps the user's other files."""
    out = tmp_path / "out"
    argv = ["convert", str(yolo), str(out), "--to", "voc", "--no-progress"]
    assert main(argv) == 0
    (out / "notes.txt").write_text("mine")
    first = tree(out)
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"{out}: output folder already exists" in err
    assert "--exist-ok" in err and "--overwrite" in err
    assert main([*argv, "--exist-ok"]) == 1
    err = capsys.readouterr().err
    assert "output file(s) already exist" in err and "--overwrite" in err
    assert tree(out) == first
    assert main([*argv, "--overwrite"]) == 0
    assert tree(out) == first and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_stats_second_run_and_histogram_inside_the_dataset(
    tmp_path: Path, yolo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """stats used to replace an earlier histogram silently, and to drop box_sizes.png into
    the dataset when run from inside it. Refused, before the statistics are printed."""
    png = tmp_path / "h.png"
    argv = ["stats", str(yolo), "--histogram", str(png)]
    assert main(argv) == 0
    first = png.read_bytes()
    capsys.readouterr()
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert f"{png}" in captured.err and "--overwrite" in captured.err and captured.out == ""
    assert png.read_bytes() == first
    assert main([*argv, "--overwrite"]) == 0
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    monkeypatch.chdir(yolo.parent)
    assert main(["stats", "data.yaml"]) == 1  # default box_sizes.png: inside the dataset
    assert "box_sizes.png: the output would be written inside the input" in capsys.readouterr().err
    assert not (yolo.parent / "box_sizes.png").exists()
    assert main(["stats", "data.yaml", "--histogram", str(tmp_path / "b.png")]) == 0


def test_split_exist_ok_and_never_over_the_dataset(
    tmp_path: Path, yolo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """split: a folder with other files needs --exist-ok; the dataset folder itself (its
    data.yaml!) is refused even with --overwrite; the default folder inside it is fine."""
    out = tmp_path / "lists"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["split", str(yolo), "--out", str(out)]) == 1
    assert "--exist-ok" in capsys.readouterr().err
    assert main(["split", str(yolo), "--out", str(out), "--exist-ok"]) == 0
    assert (out / "notes.txt").read_text() == "mine" and (out / "train.txt").is_file()
    original = yolo.read_bytes()
    assert main(["split", str(yolo), "--out", str(yolo.parent), "--overwrite"]) == 1
    assert "no flag allows this" in capsys.readouterr().err
    assert yolo.read_bytes() == original
    assert main(["split", str(yolo)]) == 0  # default: split-seed0 inside the dataset
    assert (yolo.parent / "split-seed0" / "data.yaml").is_file()


def test_convert_shows_what_the_reader_clipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """convert used to clip a box silently; it now prints the note and the table of check."""
    f = make_coco(
        tmp_path / "coco",
        2,
        [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [60, 1, 4.5, 4]},
            {"id": 2, "image_id": 2, "category_id": 2, "bbox": [1, 1, 5, 5]},
        ],
    )
    out = tmp_path / "out"
    assert main(["convert", str(f), str(out), "--to", "yolo", "--no-progress"]) == 0
    text = capsys.readouterr().out
    notes = [ln for ln in text.splitlines() if ln.startswith("note: ")]
    assert len(notes) == 1 and "ann.json" in notes[0] and "clipped" in notes[0]
    head, row = [ln.split() for ln in text.splitlines() if ln.startswith(("split ", "train "))]
    assert head == [
        "split",
        "images",
        "background",
        "boxes",
        "clipped",
        "dropped",
        "skipped",
        "errors",
    ]
    assert row == ["train", "2", "0", "2", "1", "0", "0", "0"]
    assert f"Wrote yolo dataset to {out}: 2 images, 2 boxes" in text
    assert main(["convert", str(f), str(tmp_path / "q"), "--to", "voc", "--quiet"]) == 0
    assert "note: " not in capsys.readouterr().out


# -- small frictions (issue 13 item 8) ------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["check"], "--format"),
        (["stats", "--no-histogram"], "--format"),
        (["info"], "--format"),
        (["split"], "--format"),
        (["convert", "{out}", "--to", "coco"], "--from"),
    ],
)
def test_cli_detection_errors_name_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    """An undetectable dataset tells a CLI user to pass --format (--from for convert), not format=."""
    src = tmp_path / "nothing"
    src.mkdir()
    (src / "readme.md").write_text("not a dataset\n")
    args = [argv[0], str(src), *(a.replace("{out}", str(tmp_path / "o")) for a in argv[1:])]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"pass {flag} one of" in err and "format=" not in err


def test_evaluate_detection_error_names_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """evaluate --data on an undetectable folder names --format."""
    src = tmp_path / "nothing"
    src.mkdir()
    assert main(["evaluate", "--data", str(src), "--weights", str(tmp_path / "w.pt")]) == 1
    err = capsys.readouterr().err
    assert "pass --format one of" in err and "format=" not in err


def test_library_detection_error_still_names_the_keyword(tmp_path: Path) -> None:
    """The library's own message keeps format= (the keyword a Python caller passes)."""
    from yolo2retina.errors import DatasetError
    from yolo2retina.formats import detect_format

    with pytest.raises(DatasetError, match="pass format= one of"):
        detect_format(tmp_path)


def test_path_fallback_note_is_printed_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A data.yaml whose path: does not exist gets one note in check and convert, not one per split."""
    y = make_yolo_dataset(tmp_path / "ds", {"a": ["0 0.5 0.5 0.2 0.2"]})
    y.write_text(y.read_text().replace("path: .", "path: /elsewhere/ds"))
    assert main(["check", str(y)]) == 0
    out = capsys.readouterr().out
    assert out.count("does not exist; using") == 1, out
    assert main(["convert", str(y), str(tmp_path / "o"), "--to", "coco", "--no-progress"]) == 0
    assert capsys.readouterr().out.count("does not exist; using") == 1


def test_check_and_stats_name_a_single_split_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A flat VOC folder (one split) is 'train' in check's table as in stats and convert."""
    from tests.conftest import write_image
    from tests.formats._helpers import voc_xml

    write_image(tmp_path / "voc" / "a.jpg", (64, 48))
    (tmp_path / "voc" / "a.xml").write_text(
        voc_xml("a.jpg", (64, 48), [{"name": "x", "box": (2, 2, 20, 20)}])
    )
    assert main(["check", str(tmp_path / "voc")]) == 0
    check_rows = [ln.split()[0] for ln in capsys.readouterr().out.splitlines()[-5:-2]]
    assert main(["stats", str(tmp_path / "voc"), "--no-histogram"]) == 0
    stats_out = capsys.readouterr().out
    assert "== train" in stats_out and check_rows[-1] == "train", check_rows


def _settled(root: Path) -> None:
    """Back-date a dataset: files changed in the last 2 s are never cached."""
    import os
    import time

    t = time.time() - 60
    for p in [root, *root.rglob("*")]:
        os.utime(p, (t, t))


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "{src}"],
        ["info", "{src}", "--split", "train"],
        ["stats", "{src}", "--no-histogram"],
        ["convert", "{src}", "{out}", "--to", "coco", "--no-progress"],
        ["split", "{src}", "--out", "{out}"],
    ],
)
def test_no_cache_writes_no_cache_and_the_cache_prints_the_same(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    """--no-cache leaves the cache folder empty; without it, a second run is served from the
    cache (no label file is read) and prints what the first printed, notes included."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("YOLO2RETINA_CACHE_DIR", str(cache))
    src = make_yolo_dataset(
        tmp_path / "ds", {"a": ["0 0.995 0.5 0.02 0.2", "1 0.3 0.3 0.1 0.1"], "b": [], "c": None}
    )
    _settled(tmp_path / "ds")

    def run(*extra: str, out: str = "out") -> str:
        args = [a.format(src=src, out=tmp_path / out) for a in argv]
        assert main([*args, *extra]) == 0
        return capsys.readouterr().out.replace(str(tmp_path / out), "OUT")

    plain = run("--no-cache", out="o1")
    assert not cache.exists()
    assert run(out="o2") == plain
    assert cache.is_dir() and any(cache.iterdir())

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("a label file was read: the cache was not used")

    monkeypatch.setattr("yolo2retina.formats.yolo.read_label_text", fail)
    assert run(out="o3") == plain


def test_no_cache_is_accepted_for_formats_without_a_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """VOC has no load cache: --no-cache is accepted and changes nothing."""
    from tests.formats._helpers import make_voc

    monkeypatch.setenv("YOLO2RETINA_CACHE_DIR", str(tmp_path / "cache"))
    voc = make_voc(tmp_path / "voc", {"a": [{"name": "x", "box": (1, 1, 9, 9)}]})
    for cmd in (["check", str(voc)], ["info", str(voc)], ["stats", str(voc), "--no-histogram"]):
        assert main([*cmd, "--no-cache"]) == 0
    assert "images:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "command", ["check", "convert", "stats", "info", "split", "train", "evaluate"]
)
def test_every_data_command_takes_no_cache(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--no-cache is listed in the help of each command that loads a dataset."""
    assert main([command, "--help"]) == 0
    assert "--no-cache" in capsys.readouterr().out


@pytest.mark.slow  # a one-epoch training run (about a minute on a busy machine)
def test_train_no_cache_trains_without_the_cache_and_keeps_no_option(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``train --no-cache`` loads both splits without the cache; cache= is not kept in the
    checkpoint's reader options (a resumed run uses the cache again)."""
    pytest.importorskip("torch")
    from tests._train_helpers import TINY, make_board
    from yolo2retina.checkpoint import Checkpoint

    cache = tmp_path / "cache"
    monkeypatch.setenv("YOLO2RETINA_CACHE_DIR", str(cache))
    board = make_board(tmp_path_factory)
    _settled(board.parent)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", str(board), *TINY, "--out", "run", "--no-cache"]) == 0
    assert not cache.exists()
    meta = Checkpoint.load(tmp_path / "run" / "last.pt").meta
    assert meta["reader_options"] == {}


def test_voc_images_root_from_the_command_line_and_the_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """VOC annotations kept apart from their images read with ``--images-root`` (relative,
    from another working directory) and ``VocDataset(images_root=)``; YOLO still refuses it."""
    import shutil

    from yolo2retina.dataset import VocDataset
    from yolo2retina.formats import load_annotations, write_annotations

    yolo = make_yolo_dataset(
        tmp_path / "y", {"a": ["0 0.5 0.5 0.2 0.2"], "b": ["1 0.3 0.3 0.1 0.2"]}
    )
    write_annotations({"train": load_annotations(yolo, split="train")}, tmp_path / "voc", "voc")
    shutil.move(tmp_path / "voc" / "JPEGImages", tmp_path / "pics")
    monkeypatch.chdir(tmp_path)
    assert main(["check", "voc"]) == 1  # the images are gone from the layout
    capsys.readouterr()
    assert main(["check", "voc", "--images-root", "pics"]) == 0
    assert "no errors" in capsys.readouterr().out
    ds = VocDataset("voc", images_root="pics")
    assert len(ds) > 0 and all(
        p.startswith(str(tmp_path / "pics")) for p in map(str, ds.annotations.paths)
    )
    assert main(["check", str(yolo), "--images-root", "pics"]) == 1
    assert "applies to COCO and VOC" in capsys.readouterr().err
