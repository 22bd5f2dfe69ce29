"""Tests for where a YOLO dataset's files are (yolo2retina/formats/yolo_layout.py): the
folder runs the reader lists, orders and maps to label files."""

from __future__ import annotations

import os
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import make_yolo_dataset, write_image, write_labels
from yolo2retina.annotations import LoadReport
from yolo2retina.errors import DatasetError
from yolo2retina.formats.yolo import read_yolo
from yolo2retina.formats.yolo_layout import (
    Run,
    image_runs,
    label_paths,
    label_runs,
    ordered_runs,
    path_order,
    runs_of,
    unmatched_label_files,
)

_PART = st.sampled_from(["a", "b", "b-c", "b.c", "B", "images", "x y", "é"])
_NAME = st.sampled_from(["a.jpg", "b.png", "b-c.jpg", "B.JPG", "a.b.jpeg", "z.jpg"])


def sep(path: str) -> str:
    """A ``/`` path with this system's separator."""
    return path.replace("/", os.sep)


def flat(runs: list[Run]) -> list[str]:
    return [prefix + n for prefix, names in runs for n in names]


@given(st.lists(st.tuples(st.lists(_PART, max_size=3), _NAME), max_size=12))
def test_ordered_runs_are_the_sorted_unique_paths(files: list[tuple[list[str], str]]) -> None:
    """Whatever the folders (siblings, nested ones, one folder listed twice), the runs hold
    each path once, in Path order, and a folder's files stay together where they are
    consecutive."""
    paths = [os.path.join(os.sep, "d", *parts, name) for parts, name in files]
    runs = ordered_runs(runs_of(paths))
    assert flat(runs) == sorted(set(paths), key=path_order)
    assert all(names and os.sep not in "".join(names) for _, names in runs)
    assert all(p.endswith(os.sep) for p, _ in runs)
    assert all(a[0] != b[0] for a, b in pairwise(runs))


def test_ordered_runs_of_sibling_folders_sort_names_only() -> None:
    """Sibling folders (no folder holds another one's files) keep their runs; ``b/`` comes
    before ``b-c/`` as Path objects sort."""
    runs = [(sep("/d/b-c/"), ["y.jpg", "x.jpg"]), (sep("/d/b/"), ["z.jpg", "a.jpg", "a.jpg"])]
    assert ordered_runs(runs) == [
        (sep("/d/b/"), ["a.jpg", "z.jpg"]),
        (sep("/d/b-c/"), ["x.jpg", "y.jpg"]),
    ]
    nested = [(sep("/d/"), ["c.jpg", "a.jpg"]), (sep("/d/b/"), ["x.jpg"])]
    assert ordered_runs(nested) == [
        (sep("/d/"), ["a.jpg"]),
        (sep("/d/b/"), ["x.jpg"]),
        (sep("/d/"), ["c.jpg"]),
    ]


def test_label_runs_map_each_folder_once() -> None:
    """``images`` -> ``labels`` (the last one), the stem kept as Path.stem keeps it."""
    runs = [
        (sep("/d/images/train/"), ["a.jpg", "a.b.PNG", ".x.jpg"]),
        (sep("/d/flat/"), ["c.jpeg"]),
    ]
    assert label_runs(runs) == [
        (sep("/d/labels/train/"), ["a.txt", "a.b.txt", ".x.txt"]),
        (sep("/d/flat/"), ["c.txt"]),
    ]
    assert label_paths([sep("/d/images/a.jpg"), sep("/e/images/b.jpg")]) == [
        sep("/d/labels/a.txt"),
        sep("/e/labels/b.txt"),
    ]


def odd_folder(folder: Path) -> None:
    """Images beside every kind of name an image folder can hold."""
    for name in ("b.jpg", "a.JPG", "c.Png", ".hidden.jpg", "notes.txt", "x.", ".jpg"):
        (folder / name).write_bytes(b"x")  # listing reads no file
    (folder / "sub.jpg").mkdir()  # a real folder named like an image: walked into
    (folder / "sub.jpg" / "in.png").write_bytes(b"x")
    os.symlink(folder / "sub.jpg", folder / "linkdir.jpg")  # a linked folder: a problem
    os.symlink(folder / "nowhere.jpg", folder / "broken.jpg")  # a broken link: a problem
    os.symlink(folder / "b.jpg", folder / "link.jpg")  # a link to an image: an image


def test_image_runs_sort_out_every_kind_of_entry(tmp_path: Path) -> None:
    """A folder that is not all plain images is looked at entry by entry: hidden names,
    names without a real suffix, folders, links to folders and broken links."""
    folder = tmp_path / "images"
    folder.mkdir()
    odd_folder(folder)
    problems: list[str] = []
    runs = image_runs(folder, problems)
    got = {prefix: sorted(names) for prefix, names in runs}
    assert got == {
        f"{folder}{os.sep}": [".hidden.jpg", "a.JPG", "b.jpg", "c.Png", "link.jpg"],
        f"{folder / 'sub.jpg'}{os.sep}": ["in.png"],
    }
    assert sorted(problems) == [
        f"{folder / 'broken.jpg'}: not a regular file (a FIFO, device, socket, folder or "
        "broken link); not opened",
        f"{folder / 'linkdir.jpg'}: not a regular file (a FIFO, device, socket, folder or "
        "broken link); not opened",
    ]


@pytest.mark.parametrize("spelled", ["relative", "dot", "absolute"])
def test_image_runs_of_a_folder_of_images_are_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelled: str
) -> None:
    """A folder of plain images (the fast path) gives absolute paths however it is named."""
    for name in ("b.jpg", "a.JPG", "c.png"):
        write_image(tmp_path / "imgs" / name)
    monkeypatch.chdir(tmp_path / "imgs" if spelled == "dot" else tmp_path)
    arg = {"relative": "imgs", "dot": ".", "absolute": str(tmp_path / "imgs")}[spelled]
    problems: list[str] = []
    runs = image_runs(arg, problems)
    assert [(p, sorted(names)) for p, names in runs] == [
        (f"{tmp_path / 'imgs'}{os.sep}", ["a.JPG", "b.jpg", "c.png"])
    ]
    assert problems == []


def test_unmatched_label_files_in_nested_folders(tmp_path: Path) -> None:
    """A label file without an image is found in nested label folders too; the label files
    of the images, classes.txt, caches and image lists are not problems."""
    lab = tmp_path / "labels" / "train"
    for rel in ("a.txt", "sub/b.txt", "sub/orphan.txt", "orphan.txt", "classes.txt"):
        write_labels(lab / rel, ["0 0.5 0.5 0.1 0.1"])
    (lab / "sub" / "x.cache").write_bytes(b"\0")
    (lab / "sub" / "list.txt").write_text("images/train/a.jpg\n")
    images = tmp_path / "images" / "train"
    known = label_runs([(f"{images}{os.sep}", ["a.jpg"]), (f"{images / 'sub'}{os.sep}", ["b.png"])])
    report, problems = LoadReport(source="x"), list[str]()
    unmatched_label_files([images], known, report, problems)
    assert sorted(problems) == [
        f"{lab / 'orphan.txt'}: label file has no image",
        f"{lab / 'sub' / 'orphan.txt'}: label file has no image",
    ]
    assert report.skipped_files == 2


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_a_fifo_named_like_a_label_file_is_never_opened(tmp_path: Path, no_hang: None) -> None:
    """A FIFO ``p.txt`` in a label folder (no image of that name) is a label file without an
    image; it is not opened to see whether it is an image list (that blocked for ever)."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.1 0.1"]})
    fifo = tmp_path / "labels" / "train" / "p.txt"
    os.mkfifo(fifo)
    with pytest.raises(DatasetError) as info:
        read_yolo(y, "train", cache=False)
    assert info.value.problems == [f"{fifo}: label file has no image"]
