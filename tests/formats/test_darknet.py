"""Darknet and CVAT "YOLO 1.1" layouts, and class-name files (issue 13 item 1).

Each test builds its fixture tree under tmp_path; docs/formats/yolo.md shows the same trees.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_image, write_labels
from yolo2retina import YoloDataset
from yolo2retina.cli import main
from yolo2retina.errors import DatasetError
from yolo2retina.formats import detect_format, get_format, load_annotations, load_splits
from yolo2retina.formats.yolo import load_obj_data, read_yolo


def _cvat(root: Path, *, prefix: str = "data/", valid: bool = True) -> Path:
    """A CVAT "YOLO 1.1" export: obj.data, obj.names, obj_<subset>_data/, <subset>.txt."""
    subsets = {"train": ["a", "b"], **({"valid": ["c"]} if valid else {})}
    for subset, stems in subsets.items():
        folder = root / f"obj_{subset}_data"
        for stem in stems:
            write_image(folder / f"{stem}.jpg", (64, 48))
            write_labels(folder / f"{stem}.txt", ["1 0.5 0.5 0.25 0.5"])
        (root / f"{subset}.txt").write_text(
            "".join(f"{prefix}obj_{subset}_data/{s}.jpg\n" for s in stems)
        )
    (root / "obj.names").write_text("cat\ndog\n")
    (root / "obj.data").write_text(
        "classes = 2\n"
        f"train = {prefix}train.txt\n"
        + (f"valid = {prefix}valid.txt\n" if valid else "")
        + f"names = {prefix}obj.names  # the class names\n"
        "backup = backup/\n"
    )
    return root


@pytest.fixture
def cvat(tmp_path: Path) -> Path:
    return _cvat(tmp_path / "cvat")


def test_cvat_yolo11_export_loads_with_auto_detection(cvat: Path) -> None:
    """obj.data is found and read: splits train/val, names from obj.names, lists of images."""
    assert detect_format(cvat) == "yolo"
    assert get_format("yolo").splits(cvat) == ("train", "val")
    train = load_annotations(cvat)  # split=None: train
    assert train.class_names == ("cat", "dog")
    assert [Path(str(p)).name for p in train.paths] == ["a.jpg", "b.jpg"]
    assert train.labels.tolist() == [1, 1]
    assert any("without the leading 'data/'" in d for d in train.report.details)
    for split in ("val", "valid", "validation"):
        assert [Path(str(p)).name for p in load_annotations(cvat, split=split).paths] == ["c.jpg"]
    assert len(YoloDataset(cvat / "obj.data", split="valid")) == 1


def test_obj_data_paths_relative_to_its_folder(tmp_path: Path) -> None:
    """Keys without Darknet's data/ prefix are read relative to obj.data's folder too, and
    with no 'valid' key there is only a train split."""
    root = _cvat(tmp_path / "plain", prefix="", valid=False)
    dy = load_obj_data(root / "obj.data")
    assert sorted(dy.splits) == ["train"] and dy.class_names == ["cat", "dog"] and not dy.notes
    assert len(read_yolo(root / "obj.data", "train")) == 2
    assert sorted(load_splits(root)) == ["train"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("train = train.txt\nnames obj.names\n", r"obj\.data:2: expected 'key = value'"),
        ("classes = 3\ntrain = train.txt\nnames = obj.names\n", r"obj\.data:1: classes = 3"),
        ("classes = two\ntrain = train.txt\n", r"obj\.data:1: classes 'two'"),
        ("names = obj.names\n", r"no 'train' key"),
        ("train = a.txt\ntrain = b.txt\n", r"obj\.data:2: 'train' is given again"),
    ],
)
def test_bad_obj_data_names_the_line(cvat: Path, text: str, match: str) -> None:
    """A malformed obj.data is an error naming file:line, not 'expected a mapping'."""
    (cvat / "obj.data").write_text(text)
    with pytest.raises(DatasetError, match=match):
        load_annotations(cvat)


@pytest.mark.parametrize("names_file", ["obj.names", "classes.names", "classes.txt"])
def test_images_labels_folders_with_a_names_file(tmp_path: Path, names_file: str) -> None:
    """images/ + labels/ and a class-names file (any of the three) load with no class_names=."""
    for stem in ("a", "b"):
        write_image(tmp_path / "images" / f"{stem}.jpg", (64, 48))
        write_labels(tmp_path / "labels" / f"{stem}.txt", ["1 0.5 0.5 0.2 0.2"])
    (tmp_path / names_file).write_text("cat\n  dog \n\n")
    ds = YoloDataset(tmp_path)
    assert ds.class_names == ("cat", "dog") and len(ds) == 2
    assert main(["check", str(tmp_path)]) == 0  # no --format, no class names
    assert main(["stats", str(tmp_path), "--no-histogram"]) == 0


def test_two_names_files_that_disagree_are_an_error(tmp_path: Path) -> None:
    """obj.names and classes.txt side by side must list the same names."""
    write_image(tmp_path / "a.jpg", (64, 48))
    write_labels(tmp_path / "a.txt", ["0 0.5 0.5 0.2 0.2"])
    (tmp_path / "classes.txt").write_text("cat\n")
    (tmp_path / "obj.names").write_text("dog\n")
    with pytest.raises(DatasetError, match="list different class names"):
        read_yolo(tmp_path)
    (tmp_path / "obj.names").write_text("cat\n")
    assert read_yolo(tmp_path).class_names == ("cat",)


def test_flat_darknet_folder_with_an_image_list(tmp_path: Path) -> None:
    """A flat folder with obj.names and a train.txt image list (no obj.data): the list is
    skipped and counted, never read as a label file without an image."""
    for stem in ("a", "b"):
        write_image(tmp_path / f"{stem}.jpg", (64, 48))
        write_labels(tmp_path / f"{stem}.txt", ["0 0.5 0.5 0.2 0.2"])
    (tmp_path / "obj.names").write_text("cat\n")
    (tmp_path / "train.txt").write_text("data/a.jpg\ndata/b.jpg\n")
    ann = read_yolo(tmp_path)
    assert len(ann) == 2 and ann.report.skipped_files == 1
    assert "a list of image paths" in ann.report.details[0]
    assert main(["check", str(tmp_path)]) == 0
    (tmp_path / "stray.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DatasetError, match=r"stray\.txt: label file has no image"):
        read_yolo(tmp_path)


@pytest.mark.parametrize("how", ["relative", "dot", "symlink"])
def test_cvat_loads_the_same_however_the_path_is_written(
    cvat: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Relative, '.', and symlinked paths to a CVAT export give the same images."""
    expected = [str(p) for p in load_annotations(cvat, split="val").paths]
    if how == "relative":
        monkeypatch.chdir(cvat.parent)
        src = Path(cvat.name)
    elif how == "dot":
        monkeypatch.chdir(cvat)
        src = Path(".")
    else:
        src = cvat.parent / "link"
        src.symlink_to(cvat, target_is_directory=True)
    assert [str(p) for p in load_annotations(src, split="val").paths] == expected
    assert [str(p) for p in load_annotations(src / "obj.data", split="val").paths] == expected


@pytest.mark.parametrize("target", ["folder", "obj.data"])
def test_check_and_stats_load_cvat_with_no_flags(
    cvat: Path, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """yolo2retina check and stats read both splits of a CVAT export; convert writes it."""
    src = str(cvat if target == "folder" else cvat / "obj.data")
    assert main(["check", src]) == 0
    out = capsys.readouterr().out
    assert "no errors" in out and "\ntrain " in out and "\nval " in out
    assert out.count("without the leading 'data/'") == 1  # one note, not one per split
    assert main(["stats", src, "--no-histogram"]) == 0
    assert "== all splits" in capsys.readouterr().out
