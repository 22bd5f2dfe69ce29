"""Tests for the folder-by-folder stat of the load cache (``stat_runs`` in
yolo2retina/formats/cache.py) and for what a cached YOLO load still sees: every file is
listed and ``stat``-ed on every load, through nested folders, links and relative paths."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import write_image, write_labels
from tests.formats._helpers import settle
from yolo2retina.annotations import Annotations
from yolo2retina.errors import DatasetError
from yolo2retina.formats import cache as cache_mod
from yolo2retina.formats import yolo as yolo_mod
from yolo2retina.formats.cache import stat_files, stat_runs
from yolo2retina.formats.yolo import read_yolo
from yolo2retina.formats.yolo_layout import flat_paths

# -- stat_runs is stat_files, folder by folder ------------------------------------------------


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files, a folder linked to another, a broken link, a file where a folder is expected."""
    root = tmp_path_factory.mktemp("tree")
    for rel in ("a/x.txt", "a/y.jpg", "b/x.txt", "b/c/z.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    os.symlink(root / "a", root / "link")
    os.symlink(root / "nowhere", root / "a" / "broken.txt")
    return root


_FOLDER = st.sampled_from(["a", "b", "b/c", "link", "missing", "a/x.txt", ""])
_FILE = st.sampled_from(["x.txt", "y.jpg", "z.txt", "broken.txt", "c", "gone.txt"])


def as_paths(root: Path, runs: list[tuple[str, list[str]]]) -> list[str]:
    return [prefix + n for prefix, names in runs for n in names]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(st.lists(st.tuples(_FOLDER, st.lists(_FILE, max_size=4)), max_size=5))
def test_stat_runs_is_stat_files_of_the_paths(
    tree: Path, spec: list[tuple[str, list[str]]]
) -> None:
    """Same digest and newest mtime as stat_files over the joined paths, whatever the folders
    are: missing, linked, a file, holding missing files or broken links, or empty runs."""
    runs = [(os.path.join(tree, folder, ""), names) for folder, names in spec]
    assert stat_runs(runs) == stat_files(as_paths(tree, runs))


@pytest.mark.parametrize("how", ["no dir_fd", "folder cannot be opened"])
def test_stat_runs_without_an_open_folder_gives_the_same(
    tree: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Where os.stat takes no dir_fd (Windows) or a folder cannot be opened, files are
    stat-ed by path, to the same digest."""
    runs = [(f"{tree / 'a'}{os.sep}", ["x.txt", "y.jpg", "gone.txt"]), (f"{tree}{os.sep}", ["b"])]
    expected = stat_runs(runs)
    if how == "no dir_fd":
        monkeypatch.setattr(os, "supports_dir_fd", set())
    else:

        def refuse(*args: Any, **kwargs: Any) -> int:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(os, "open", refuse)
    assert stat_runs(runs) == expected == stat_files(as_paths(tree, runs))


def test_stat_runs_of_relative_folders(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative prefixes (and files of the working directory, prefix "") are stat-ed from the
    working directory, as stat_files does."""
    monkeypatch.chdir(tree)
    runs = [("a" + os.sep, ["x.txt"]), ("", ["b", "gone"]), ("link" + os.sep, ["y.jpg"])]
    files = [os.path.join("a", "x.txt"), "b", "gone", os.path.join("link", "y.jpg")]
    assert stat_runs(runs) == stat_files(files)
    absolute = stat_runs([(os.path.join(tree, p), n) for p, n in runs])
    assert stat_runs(runs).newest_ns == absolute.newest_ns  # the digest names the paths


def test_stat_runs_see_an_edit_in_place(tmp_path: Path) -> None:
    """Same size, mtime set back: the ctime still differs."""
    f = tmp_path / "a.txt"
    f.write_text("0 0.5")
    runs = [(f"{tmp_path}{os.sep}", ["a.txt"])]
    before, st0 = stat_runs(runs), f.stat()
    time.sleep(0.01)
    f.write_text("1 0.5")
    os.utime(f, ns=(st0.st_atime_ns, st0.st_mtime_ns))
    assert stat_runs(runs).digest != before.digest


# -- what a cached YOLO load sees --------------------------------------------------------------


def counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the loads that parse (not served from the cache)."""
    calls: list[int] = []
    parse: Callable[..., Annotations] = yolo_mod._parse

    def counted(*args: Any, **kwargs: Any) -> Annotations:
        calls.append(1)
        return parse(*args, **kwargs)

    monkeypatch.setattr(yolo_mod, "_parse", counted)
    return calls


ROW = "0 0.5 0.5 0.2 0.2"


def nested_set(root: Path) -> Path:
    """Images at the top of the split and in nested folders (the paths interleave)."""
    for rel in ("b.jpg", "a/x.jpg", "c.jpg", "a/deep/y.png", "b-c/z.jpg"):
        write_image(root / "images" / "train" / rel)
        write_labels(root / "labels" / "train" / Path(rel).with_suffix(".txt"), [ROW])
    y = root / "data.yaml"
    y.write_text("path: .\ntrain: images/train\nnames: [a, b]\n")
    settle(root)
    return y


def edit_label(root: Path) -> None:
    f = root / "labels" / "train" / "a" / "deep" / "y.txt"
    st0 = f.stat()
    f.write_text(ROW.replace("0 ", "1 ", 1) + "\n")  # same size
    os.utime(f, ns=(st0.st_atime_ns, st0.st_mtime_ns))


def edit_image(root: Path) -> None:
    f = root / "images" / "train" / "a" / "x.jpg"
    st0 = f.stat()
    write_image(f, (80, 60))
    os.utime(f, ns=(st0.st_atime_ns, st0.st_mtime_ns))


def add_image(root: Path) -> None:
    write_image(root / "images" / "train" / "a" / "deep" / "new.jpg")


def remove_image(root: Path) -> None:
    (root / "images" / "train" / "c.jpg").unlink()
    (root / "labels" / "train" / "c.txt").unlink()


def remove_image_keep_label(root: Path) -> None:
    (root / "images" / "train" / "a" / "deep" / "y.png").unlink()


def rename_image(root: Path) -> None:
    src = root / "images" / "train" / "a" / "x.jpg"
    src.rename(src.with_name("w.jpg"))
    lab = root / "labels" / "train" / "a" / "x.txt"
    lab.rename(lab.with_name("w.txt"))


def add_orphan(root: Path) -> None:
    write_labels(root / "labels" / "train" / "a" / "deep" / "orphan.txt", [ROW])


CHANGES = {
    "a nested label edited in place": edit_label,
    "a nested image edited in place": edit_image,
    "an image added in a nested folder": add_image,
    "an image and its label removed": remove_image,
    "an image removed, its label kept": remove_image_keep_label,
    "an image and its label renamed": rename_image,
    "a label without an image added in a nested folder": add_orphan,
}


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("spelled", ["absolute", "relative", "dot"])
def test_a_change_between_two_cached_loads_is_seen(
    tmp_path: Path,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
    spelled: str,
) -> None:
    """Two cached loads parse nothing; after the change the load equals an uncached one (or
    raises as it does)."""
    root = tmp_path / "ds"
    y = nested_set(root)
    monkeypatch.chdir(root if spelled == "dot" else tmp_path)
    arg = {"absolute": str(y), "relative": "ds/data.yaml", "dot": "."}[spelled]
    first = read_yolo(arg, "train")
    calls = counting(monkeypatch)
    again = read_yolo(arg, "train")
    assert calls == [] and again.paths.tolist() == first.paths.tolist()
    CHANGES[change](root)
    try:
        expected = read_yolo(arg, "train", cache=False)
    except DatasetError as e:
        with pytest.raises(DatasetError) as info:
            read_yolo(arg, "train")
        assert info.value.problems == e.problems
        return
    calls.clear()
    got = read_yolo(arg, "train")
    assert calls == [1]  # not served from the cache
    for name in ("paths", "image_hw_array", "offsets", "boxes", "labels"):
        assert getattr(got, name).tolist() == getattr(expected, name).tolist(), name
    assert str(got.report) == str(expected.report)


def test_a_linked_image_folder_pointed_elsewhere_is_seen(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``images/train`` is a link: pointing it at another folder (same names, other image
    sizes) between two cached loads is seen; the image paths keep the link."""
    root = tmp_path / "ds"
    for folder, size in (("one", (64, 48)), ("two", (32, 24))):
        write_image(root / folder / "a.jpg", size)
    write_labels(root / "labels" / "train" / "a.txt", [ROW])
    (root / "images").mkdir()
    os.symlink(root / "one", root / "images" / "train", target_is_directory=True)
    y = root / "data.yaml"
    y.write_text("path: .\ntrain: images/train\nnames: [a]\n")
    settle(root)
    first = read_yolo(y, "train")
    calls = counting(monkeypatch)
    assert read_yolo(y, "train").image_hw(0) == first.image_hw(0) == (48, 64) and calls == []
    (root / "images" / "train").unlink()
    os.symlink(root / "two", root / "images" / "train", target_is_directory=True)
    got = read_yolo(y, "train")
    assert calls == [1] and got.image_hw(0) == (24, 32)
    assert got.paths.tolist() == [str(root / "images" / "train" / "a.jpg")]


def test_a_cached_load_keeps_the_key_of_stat_files(tmp_path: Path, cache_dir: Path) -> None:
    """The key is the stat of the data.yaml, the ids sidecar, the images and the labels, in
    that order (an entry written before folder-by-folder stats is still used)."""
    root = tmp_path / "ds"
    y = nested_set(root)
    scan = yolo_mod._scan(y, "train", None)
    lc = yolo_mod._load_cache(scan, None, False)
    real = os.path.realpath(y)
    files = [real, os.path.join(os.path.dirname(real), yolo_mod.IDS_FILE)]
    expected = cache_mod.LoadCache(
        "yolo",
        real,
        "train",
        {
            "split": "train",
            "strict": False,
            "class_names": None,
            "names": ["a", "b"],
            "images": 5,
        },
        stat_files([*files, *flat_paths(scan.image_runs), *flat_paths(scan.label_runs)]),
    )
    assert lc.key == expected.key
    lab = root / "labels" / "train"
    got = [Path(p).relative_to(lab).as_posix() for p in flat_paths(scan.label_runs)]
    assert got == ["a/deep/y.txt", "a/x.txt", "b-c/z.txt", "b.txt", "c.txt"]  # Path order
