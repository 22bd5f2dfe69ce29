"""Tests for the load cache (yolo2retina/formats/cache.py) through the YOLO and COCO readers.

Every test points ``YOLO2RETINA_CACHE_DIR`` at its own folder. Datasets are back-dated: a
file changed in the last ``RACY_SECONDS`` is never cached (its next change could keep the
same mtime), which a test of its own checks.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest

from tests.conftest import make_yolo_dataset, write_image, write_labels
from tests.formats._helpers import coco_ann, make_coco, make_voc, settle
from yolo2retina.annotations import Annotations
from yolo2retina.errors import DatasetError
from yolo2retina.formats import cache as cache_mod
from yolo2retina.formats import load_annotations, load_splits
from yolo2retina.formats.coco import read_coco
from yolo2retina.formats.yolo import read_yolo

ROWS = {
    "a": ["0 0.5 0.5 0.2 0.4", "1 0.3 0.3 0.1 0.1", "1 0.3 0.3 0.1 0.1"],  # a duplicate row
    "b": ["0 0.995 0.5 0.02 0.2"],  # clipped
    "c": [],
    "d": None,  # no label file
}


def yolo_set(tmp_path: Path) -> Path:
    y = make_yolo_dataset(tmp_path / "ds", ROWS)
    (tmp_path / "ds" / "labels" / "train" / "old.cache").write_bytes(b"x")  # skipped: a note
    settle(tmp_path / "ds")
    return y


def coco_set(tmp_path: Path) -> Path:
    anns = [
        coco_ann(1, 1, 1, [1, 2, 10, 20]),
        coco_ann(2, 1, 2, [60, 1, 4.5, 4]),  # clipped
        coco_ann(3, 2, 2, [3, 3, 5, 5], iscrowd=1),
    ]
    f = make_coco(tmp_path / "coco", 3, anns, categories=[(0, "unused"), (1, "a"), (2, "b")])
    settle(tmp_path / "coco")
    return f


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.npz")) if folder.is_dir() else []


def forbid(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    """Make ``target`` (a reader's parsing step) fail: a load that calls it was not cached."""

    def fail(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError(f"{target} called: the load was not served from the cache")

    monkeypatch.setattr(target, fail)


def assert_same(a: Annotations, b: Annotations) -> None:
    """Every field equal, the report included (and printed alike)."""
    for name in ("paths", "image_hw_array", "offsets", "boxes", "labels", "flags", "image_ids"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert (a.annotation_ids is None) == (b.annotation_ids is None)
    if a.annotation_ids is not None and b.annotation_ids is not None:
        assert np.array_equal(a.annotation_ids, b.annotation_ids)
    assert a.class_names == b.class_names and a.category_ids == b.category_ids
    assert a.report == b.report and str(a.report) == str(b.report)


# -- a cached load is the load ---------------------------------------------------------------


def test_yolo_cached_load_equals_the_first(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second load reads no label file or image header and returns the same, report too."""
    y = yolo_set(tmp_path)
    first = read_yolo(y, "train")
    assert first.report.clipped == 1 and first.report.dropped_duplicates == 1
    assert first.report.skipped_files == 1 and first.report.missing_label_files == 1
    assert len(entries(cache_dir)) == 1
    uncached = read_yolo(y, "train", cache=False)
    forbid(monkeypatch, "yolo2retina.formats.yolo.read_image_hw")
    forbid(monkeypatch, "yolo2retina.formats.yolo.read_label_text")
    cached = read_yolo(y, "train")
    assert_same(cached, first)
    assert_same(cached, uncached)
    assert_same(load_annotations(y, split="train"), uncached)


def test_coco_cached_load_equals_the_first(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second load parses no JSON and reads no image header; crowd flags, annotation
    ids, category ids and the report are kept."""
    f = coco_set(tmp_path)
    first = read_coco(f)
    assert first.report.clipped == 1 and first.category_ids == (0, 1, 2)
    uncached = read_coco(f, cache=False)
    with pytest.MonkeyPatch.context() as mp:
        forbid(mp, "yolo2retina.formats.coco.load_coco")
        forbid(mp, "yolo2retina.formats.coco_images.read_image_hw")
        assert_same(read_coco(f), first)
        assert_same(read_coco(f), uncached)
    trusted = read_coco(f, verify_images=False, cache=False)
    assert_same(read_coco(f, verify_images=False), trusted)  # rewrites the entry
    forbid(monkeypatch, "yolo2retina.formats.coco.load_coco")
    assert_same(read_coco(f, verify_images=False), trusted)


def test_a_dataset_written_just_now_is_not_cached(tmp_path: Path, cache_dir: Path) -> None:
    """Files younger than RACY_SECONDS: a second edit in the same timestamp step could keep
    the mtime, so nothing is written until the files have settled."""
    y = make_yolo_dataset(tmp_path / "ds", ROWS)
    read_yolo(y, "train")
    f = make_coco(tmp_path / "coco", 2)
    read_coco(f)
    assert entries(cache_dir) == []
    settle(tmp_path / "ds")
    read_yolo(y, "train")
    assert len(entries(cache_dir)) == 1


# -- what invalidates it ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["longer", "same size", "same size and mtime"])
def test_an_edited_label_file_invalidates_the_cache(
    tmp_path: Path, cache_dir: Path, how: str
) -> None:
    """Any edit is seen: one that keeps the size, and one whose mtime is set back (the
    ctime still changes)."""
    y = yolo_set(tmp_path)
    assert read_yolo(y, "train").labels.tolist()[:2] == [0, 1]
    label = tmp_path / "ds" / "labels" / "train" / "a.txt"
    before = label.stat()
    text = label.read_text()
    new = (
        text.replace("0 0.5", "1 0.5", 1)
        if how != "longer"
        else "1" + text[1:] + "0 0.1 0.1 0.1 0.1\n"
    )
    label.write_text(new)
    if how == "same size and mtime":
        os.utime(label, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (label.stat().st_size == before.st_size) == (how != "longer")
    ann = read_yolo(y, "train")
    assert_same(ann, read_yolo(y, "train", cache=False))
    assert ann.labels.tolist()[0] == 1


def test_a_replaced_image_or_a_new_label_file_invalidates_the_cache(
    tmp_path: Path, cache_dir: Path
) -> None:
    """An image of another size and a label file for a background image are seen."""
    y = yolo_set(tmp_path)
    read_yolo(y, "train")
    write_image(tmp_path / "ds" / "images" / "train" / "c.jpg", (80, 60))
    write_labels(tmp_path / "ds" / "labels" / "train" / "d.txt", ["1 0.5 0.5 0.5 0.5"])
    ann = read_yolo(y, "train")
    assert ann.image_hw(2) == (60, 80) and ann.boxes_per_image().tolist()[3] == 1
    assert_same(ann, read_yolo(y, "train", cache=False))


def test_a_new_image_or_orphan_label_is_seen(tmp_path: Path, cache_dir: Path) -> None:
    """The files are listed on every load: a new image loads, a label without an image is
    still an error."""
    y = yolo_set(tmp_path)
    read_yolo(y, "train")
    write_image(tmp_path / "ds" / "images" / "train" / "e.jpg")
    assert len(read_yolo(y, "train")) == 5
    write_labels(tmp_path / "ds" / "labels" / "train" / "zz.txt", ["0 0.5 0.5 0.1 0.1"])
    with pytest.raises(DatasetError, match=r"zz\.txt: label file has no image"):
        read_yolo(y, "train")


def test_coco_cache_sees_an_edited_json_and_replaced_images(
    tmp_path: Path, cache_dir: Path
) -> None:
    """The JSON's stat keys the entry; with verify_images each image's stat too."""
    f = coco_set(tmp_path)
    read_coco(f)
    write_image(f.parent / "im2.jpg", (80, 60))  # the JSON says 64x48: an error now
    with pytest.raises(DatasetError, match="64x48 but the image is 80x60"):
        read_coco(f)
    assert read_coco(f, verify_images=False).image_hw(2) == (48, 64)  # the JSON is trusted
    data = json.loads(f.read_text())
    data["images"][2].update(width=80, height=60)
    f.write_text(json.dumps(data))
    assert read_coco(f).image_hw(2) == (60, 80)


def test_coco_cache_sees_a_new_images_folder_that_the_layout_prefers(
    tmp_path: Path, cache_dir: Path
) -> None:
    """Images found in ``images/`` beside the JSON; once copies appear beside the JSON (the
    layout's first choice), those are read."""
    root = tmp_path / "c"
    make_coco(root / "images", 2, size_wh=(64, 48))
    shutil.move(root / "images" / "ann.json", root / "ann.json")
    settle(root)
    first = read_coco(root / "ann.json", verify_images=False)
    assert first.image_path(0).parent == root / "images"
    write_image(root / "im0.jpg")
    write_image(root / "im1.jpg")
    ann = read_coco(root / "ann.json", verify_images=False)
    assert ann.image_path(0).parent == root
    assert_same(ann, read_coco(root / "ann.json", verify_images=False, cache=False))


def test_a_cache_from_another_reader_option_is_not_used(tmp_path: Path, cache_dir: Path) -> None:
    """Each option that changes the result is part of the key (one entry per source and
    split, rewritten)."""
    y = yolo_set(tmp_path)
    read_yolo(y, "train")
    with pytest.raises(DatasetError, match="outside"):
        read_yolo(y, "train", strict=True)  # the cached load has a clipped box
    assert read_yolo(y, "train", class_names=["x", "y"]).class_names == ("x", "y")
    f = coco_set(tmp_path)
    data = json.loads(f.read_text())
    data["images"][2].update(width=0, height=0)  # read from the header, unless not verified
    f.write_text(json.dumps(data))
    settle(f.parent)
    assert read_coco(f).image_hw(2) == (48, 64)
    with pytest.raises(DatasetError, match="no positive width/height"):
        read_coco(f, verify_images=False)
    assert read_coco(f, class_names=["b", "a", "unused"]).class_names == ("b", "a", "unused")
    other = tmp_path / "other"
    for i in range(3):
        write_image(other / f"im{i}.jpg", (80, 60))
    with pytest.raises(DatasetError, match="64x48 but the image is 80x60"):
        read_coco(f, images_root=other)
    assert len(entries(cache_dir)) == 2


def test_a_cache_of_another_library_version_is_not_used(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version (and the cache format) are part of the key; the entry is rewritten."""
    y = yolo_set(tmp_path)
    read_yolo(y, "train")
    (entry,) = entries(cache_dir)
    monkeypatch.setattr(cache_mod, "__version__", "99.0")
    calls: list[object] = []
    real = read_yolo.__globals__["read_image_hw"]
    monkeypatch.setattr(
        "yolo2retina.formats.yolo.read_image_hw", lambda p: calls.append(p) or real(p)
    )
    read_yolo(y, "train")
    assert len(calls) == 4
    assert json.loads(bytes(np.load(entry)["meta"]))["version"] == "99.0"
    monkeypatch.setattr(cache_mod, "CACHE_FORMAT", 99)
    read_yolo(y, "train")
    assert len(calls) == 8


# -- what is never trusted ---------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "not a zip of arrays"])
def test_a_damaged_cache_file_is_ignored_and_rewritten(
    tmp_path: Path, cache_dir: Path, damage: str
) -> None:
    y = yolo_set(tmp_path)
    good = read_yolo(y, "train")
    (entry,) = entries(cache_dir)
    data = entry.read_bytes()
    damaged = {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "garbage": os.urandom(len(data)),
        "not a zip of arrays": b"PK\x03\x04" + b"\0" * 100,
    }[damage]
    entry.write_bytes(damaged)
    assert_same(read_yolo(y, "train"), good)
    assert entry.read_bytes() != damaged  # rewritten
    assert_same(read_yolo(y, "train"), good)


def _rewrite_entry(entry: Path, **arrays: Any) -> None:
    """Replace arrays of a cache entry (keeping its valid meta and key); pickles allowed."""
    with np.load(entry) as z:
        content = {k: z[k] for k in z.files}
    content.update(arrays)
    with open(entry, "wb") as fh:
        np.savez(fh, **content)


class Boom:
    """Unpickling this records it: a cache reader that unpickles is caught."""

    def __reduce__(self) -> tuple[Callable[[], None], tuple[()]]:
        return (_unpickled, ())


UNPICKLED: list[bool] = []


def _unpickled() -> None:
    UNPICKLED.append(True)


def test_no_pickle_is_ever_loaded(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """np.load is always called with allow_pickle=False, and an entry holding an object
    array (even with the right key) is not used and nothing in it is unpickled."""
    y = yolo_set(tmp_path)
    good = read_yolo(y, "train")
    (entry,) = entries(cache_dir)
    real_load = np.load
    seen: list[Any] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("allow_pickle"))
        assert kwargs.get("allow_pickle") is False
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    assert_same(read_yolo(y, "train"), good)
    assert seen == [False]
    paths = np.empty(len(good), dtype=object)
    paths[:] = [Boom() for _ in range(len(good))]
    monkeypatch.setattr(np, "load", real_load)
    _rewrite_entry(entry, paths=paths)
    monkeypatch.setattr(np, "load", spy)
    assert_same(read_yolo(y, "train"), good)
    assert not UNPICKLED
    with real_load(entry, allow_pickle=False) as z:  # rewritten without the object array
        assert [z[k].dtype.kind for k in z.files if k == "paths"] == ["U"]
    assert_same(read_yolo(y, "train"), good)


@pytest.mark.parametrize(
    "bad",
    [
        {"boxes": np.full((5, 4), np.nan, np.float32)},
        {"labels": np.full(5, 7, np.int64)},
        {"boxes": np.zeros((5, 4), np.float64)},
        {"paths": np.zeros(4, np.int64)},
        {"meta": np.zeros(3, np.int64)},
    ],
)
def test_an_entry_with_unexpected_arrays_is_not_trusted(
    tmp_path: Path, cache_dir: Path, bad: dict[str, Any]
) -> None:
    """Wrong dtypes, shapes, labels outside the classes or invalid boxes under a valid key
    are refused: the dataset is read again."""
    y = yolo_set(tmp_path)
    good = read_yolo(y, "train")
    (entry,) = entries(cache_dir)
    _rewrite_entry(entry, **bad)
    assert_same(read_yolo(y, "train"), good)


# -- where it lives and what it never touches ----------------------------------------------------


def snapshot(root: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (str(p.relative_to(root)), p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in [root, *root.rglob("*")]
    )


def test_the_dataset_folder_is_never_written(tmp_path: Path, cache_dir: Path) -> None:
    """Listing, sizes and mtimes of the dataset stay as they were through cached loads."""
    y = yolo_set(tmp_path)
    f = coco_set(tmp_path)
    before = snapshot(tmp_path / "ds"), snapshot(tmp_path / "coco")
    for _ in range(2):
        read_yolo(y, "train")
        read_coco(f)
    read_yolo(y, "train", cache=False)
    assert (snapshot(tmp_path / "ds"), snapshot(tmp_path / "coco")) == before
    assert len(entries(cache_dir)) == 2


def test_relative_paths_and_another_working_directory_hit_one_entry(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ds/data.yaml`` from one folder, ``data.yaml`` and ``.`` from inside the dataset and
    the absolute path use one entry; the report names the path as given."""
    yolo_set(tmp_path)
    monkeypatch.chdir(tmp_path)
    first = read_yolo("ds/data.yaml", "train")
    forbid(monkeypatch, "yolo2retina.formats.yolo.read_image_hw")
    monkeypatch.chdir(tmp_path / "ds")
    for spelled in ("data.yaml", ".", str(tmp_path / "ds" / "data.yaml")):
        ann = read_yolo(spelled, "train")
        assert ann.report.source == f"{spelled} [train]"
        assert np.array_equal(ann.paths, first.paths)
    assert len(entries(cache_dir)) == 1
    coco_set(tmp_path)
    monkeypatch.chdir(tmp_path)
    read_coco("coco/ann.json")
    monkeypatch.chdir(tmp_path / "coco")
    forbid(monkeypatch, "yolo2retina.formats.coco.load_coco")
    assert read_coco("ann.json").report.source == str(tmp_path / "coco" / "ann.json")
    assert len(entries(cache_dir)) == 2


def test_the_cache_folder_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$YOLO2RETINA_CACHE_DIR, else $XDG_CACHE_HOME/yolo2retina, else ~/.cache/yolo2retina."""
    monkeypatch.setenv("YOLO2RETINA_CACHE_DIR", str(tmp_path / "a"))
    assert cache_mod.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("YOLO2RETINA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_mod.cache_dir() == tmp_path / "x" / "yolo2retina"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # ignored, as the XDG spec asks
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_mod.cache_dir() == tmp_path / "home" / ".cache" / "yolo2retina"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("YOLO2RETINA_CACHE_DIR", "rel")
    assert cache_mod.cache_dir() == tmp_path / "rel"


def test_no_home_folder_means_no_cache_never_a_relative_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a home folder, ~ stays '~': nothing is written under the working folder
    (which may be the dataset); the load says it ran without a cache."""
    monkeypatch.delenv("YOLO2RETINA_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(os.path, "expanduser", lambda p: p)
    y = yolo_set(tmp_path)
    monkeypatch.chdir(tmp_path / "ds")
    before = snapshot(tmp_path / "ds")
    ann = read_yolo("data.yaml", "train")
    assert sum(d.startswith("load cache: cannot write") for d in ann.report.details) == 1
    assert snapshot(tmp_path / "ds") == before
    assert ann.report.details[:-1] == read_yolo(y, "train", cache=False).report.details


def test_an_unwritable_cache_folder_loads_without_a_cache_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache folder that cannot be created (a file is in the way) is one note, no error."""
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("YOLO2RETINA_CACHE_DIR", str(tmp_path / "afile" / "cache"))
    y = yolo_set(tmp_path)
    ann = read_yolo(y, "train")
    notes = [d for d in ann.report.details if d.startswith("load cache: cannot write")]
    assert len(notes) == 1 and str(tmp_path / "afile" / "cache") in notes[0]
    plain = read_yolo(y, "train", cache=False)
    assert ann.report.details == [*plain.report.details, notes[0]]
    assert len(read_coco(coco_set(tmp_path)).report.details) == 2  # clipped + the note


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root writes into read-only folders"
)
def test_a_read_only_cache_folder_loads_without_a_cache(tmp_path: Path, cache_dir: Path) -> None:
    cache_dir.mkdir()
    cache_dir.chmod(0o500)
    try:
        ann = read_yolo(yolo_set(tmp_path), "train")
    finally:
        cache_dir.chmod(0o700)
    assert sum(d.startswith("load cache: cannot write") for d in ann.report.details) == 1


def test_cache_false_neither_writes_nor_reads(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    y = yolo_set(tmp_path)
    f = coco_set(tmp_path)
    read_yolo(y, "train", cache=False)
    read_coco(f, cache=False)
    load_annotations(y, split="train", cache=False)
    load_splits(y, cache=False)
    assert not cache_dir.exists()
    read_yolo(y, "train")
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("the cache was read"))
    read_yolo(y, "train", cache=False)


def test_formats_without_a_cache_take_the_keyword(tmp_path: Path, cache_dir: Path) -> None:
    """load_annotations / load_splits pass cache= only to readers that take it (VOC does not)."""
    make_voc(tmp_path / "voc", {"a": [{"name": "x", "box": (1, 1, 9, 9)}]})
    settle(tmp_path / "voc")
    assert len(load_annotations(tmp_path / "voc", cache=False)) == 1
    assert len(load_splits(tmp_path / "voc", cache=True)["train"]) == 1
    assert not cache_dir.exists()


def test_datasets_take_the_cache_option(tmp_path: Path, cache_dir: Path) -> None:
    """DetectionDataset.from_path, YoloDataset and CocoDataset pass cache= to the reader."""
    pytest.importorskip("torch")
    from yolo2retina.dataset import CocoDataset, DetectionDataset, YoloDataset

    y = yolo_set(tmp_path)
    f = coco_set(tmp_path)
    assert len(DetectionDataset.from_path(y, split="train", cache=False)) == 4
    assert len(YoloDataset(y, "train", cache=False)) == 4
    assert len(CocoDataset(f, cache=False)) == 3
    assert not cache_dir.exists()
    assert len(YoloDataset(y, "train")) == 4
    assert len(CocoDataset(f)) == 3
    assert len(entries(cache_dir)) == 2
