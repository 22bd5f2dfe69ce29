"""The output rules (yolo2retina/outputs.py) and atomic dataset writing (write_annotations)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.formats._helpers import make_annotations
from yolo2retina.annotations import Annotations
from yolo2retina.check import check_dataset
from yolo2retina.errors import DatasetError
from yolo2retina.formats import load_annotations, write_annotations
from yolo2retina.outputs import (
    check_output_dir,
    check_output_file,
    check_output_files,
    dataset_folders,
    remove_stale_temps,
    staged_dir,
)

FORMATS = ["yolo", "voc", "coco"]


@pytest.fixture
def ann(tmp_path: Path) -> Annotations:
    """Three images in tmp_path/src, two boxes, one background image."""
    return make_annotations(
        tmp_path / "src", [[((1, 1, 9, 9), 0, 0)], [((2.5, 3, 30, 40), 1, 0)], []]
    )


def snapshot(folder: Path) -> dict[str, tuple[bool, bytes]]:
    """Every entry under ``folder``: (is a symlink, content or link target)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(folder))] = (True, os.readlink(p).encode())
        elif p.is_file():
            out[str(p.relative_to(folder))] = (False, p.read_bytes())
    return out


def temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name]


# -- check_output_dir / check_output_files / check_output_file ------------------------------


def test_missing_or_empty_folder_is_fine_a_full_one_needs_a_flag(tmp_path: Path) -> None:
    """No flag: the folder must be new or empty; --exist-ok / --overwrite allow files in it."""
    out = tmp_path / "out"
    assert check_output_dir(out) == out
    out.mkdir()
    check_output_dir(out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(
        DatasetError, match=r"out: output folder already exists.*--exist-ok.*--overwrite"
    ):
        check_output_dir(out)
    check_output_dir(out, exist_ok=True)
    check_output_dir(out, overwrite=True)


def test_a_file_is_not_an_output_folder(tmp_path: Path) -> None:
    """An existing file (or a link to one) given as the output folder is refused."""
    f = tmp_path / "f.txt"
    f.write_text("x")
    for p in (f, tmp_path / "link"):
        if p.name == "link":
            p.symlink_to(f)
        with pytest.raises(DatasetError, match="exists and is not a folder"):
            check_output_dir(p, exist_ok=True, overwrite=True)


@pytest.mark.parametrize("where", ["same", "inside", "holds"])
def test_overlap_with_an_input_is_refused_whatever_the_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Output = input, inside it, or holding it: refused, also given as '.', relative or a link."""
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    out = {"same": data, "inside": data / "pred", "holds": tmp_path}[where]
    out.mkdir(exist_ok=True)
    (tmp_path / "alias").symlink_to(out)
    monkeypatch.chdir(data)
    spellings = [out, tmp_path / "alias", Path(os.path.relpath(out, data))]
    for given in spellings:
        for flags in ({}, {"exist_ok": True}, {"overwrite": True}):
            with pytest.raises(DatasetError, match=r"no flag allows this"):
                check_output_dir(given, inputs=["."], **flags)


def test_inside_inputs_ok_still_refuses_the_input_itself(tmp_path: Path) -> None:
    """inside_inputs_ok (split, writers) allows a folder below an input, never the input."""
    data = tmp_path / "data"
    data.mkdir()
    check_output_dir(data / "lists", inputs=[data], inside_inputs_ok=True)
    with pytest.raises(DatasetError, match="the output is the input"):
        check_output_dir(data, inputs=[data], inside_inputs_ok=True, exist_ok=True)
    with pytest.raises(DatasetError, match="holds the input"):
        check_output_dir(tmp_path, inputs=[data], inside_inputs_ok=True, exist_ok=True)


def test_input_files_count_by_themselves(tmp_path: Path) -> None:
    """An input file may sit beside the output folder, not inside it."""
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"x")
    check_output_dir(tmp_path / "out", inputs=[photo])
    with pytest.raises(DatasetError, match="holds the input"):
        check_output_dir(tmp_path, inputs=[photo], overwrite=True)


def test_existing_output_files_need_overwrite(tmp_path: Path) -> None:
    """Existing files (and dangling links) are listed with --overwrite; a folder is never a file."""
    a, b, c = tmp_path / "a.json", tmp_path / "b.png", tmp_path / "c.csv"
    a.write_text("{}")
    b.symlink_to(tmp_path / "gone.png")
    check_output_files([c])
    with pytest.raises(
        DatasetError, match=r"2 output file\(s\) already exist: .*a\.json.*b\.png.*--overwrite"
    ):
        check_output_files([a, b, c])
    check_output_files([a, b, c], overwrite=True)
    with pytest.raises(DatasetError, match="is a folder"):
        check_output_files([tmp_path], overwrite=True)


def test_single_output_file(tmp_path: Path) -> None:
    """A histogram-like output: not a folder, not inside an input, not existing unless allowed."""
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(DatasetError, match="is a folder"):
        check_output_file(data)
    with pytest.raises(DatasetError, match="inside the input"):
        check_output_file(data / "h.png", inputs=[data], overwrite=True)
    h = tmp_path / "h.png"
    check_output_file(h, inputs=[data])
    h.write_bytes(b"png")
    with pytest.raises(DatasetError, match="--overwrite"):
        check_output_file(h)
    check_output_file(h, overwrite=True)


def test_dataset_folders_are_the_source_and_image_folders(tmp_path: Path, ann: Annotations) -> None:
    """The folders of a loaded dataset: the source's folder and every image folder (real paths)."""
    (tmp_path / "ds").mkdir()
    src = tmp_path / "ds" / "data.yaml"
    src.write_text("")
    assert dataset_folders(ann, src) == [tmp_path / "ds", tmp_path / "src"]
    assert dataset_folders(ann) == [tmp_path / "src"]  # no report.source on disk


# -- staged, atomic dataset writing ------------------------------------------------------------


def interrupt_after(monkeypatch: pytest.MonkeyPatch, fmt: str, calls: int) -> None:
    """Make the ``fmt`` writer raise KeyboardInterrupt while placing image number ``calls``."""
    module = importlib.import_module(f"yolo2retina.formats.{fmt}_writer")
    real = module.place_image
    seen = {"n": 0}

    def place(*args: object, **kwargs: object) -> None:
        seen["n"] += 1
        if seen["n"] == calls:
            raise KeyboardInterrupt
        real(*args, **kwargs)

    monkeypatch.setattr(module, "place_image", place)


@pytest.mark.parametrize("fmt", FORMATS)
def test_interrupted_write_leaves_nothing_under_the_final_name(
    tmp_path: Path, ann: Annotations, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """Ctrl-C in the middle of a write: no output folder, no temporary, nothing for check."""
    interrupt_after(monkeypatch, fmt, 2)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        write_annotations(ann, out, fmt)
    assert not out.exists() and temporaries(tmp_path) == []
    with pytest.raises(DatasetError, match="no such file"):
        check_dataset(out)


@pytest.mark.parametrize("fmt", FORMATS)
def test_interrupted_write_into_an_existing_folder_changes_nothing(
    tmp_path: Path, ann: Annotations, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """With --overwrite into an earlier output, an interrupted write leaves the earlier one whole."""
    out = tmp_path / "out"
    write_annotations(ann, out, fmt)
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    interrupt_after(monkeypatch, fmt, 3)
    with pytest.raises(KeyboardInterrupt):
        write_annotations(ann, out, fmt, overwrite=True)
    assert snapshot(out) == before and temporaries(tmp_path) == []


@pytest.mark.parametrize("mode", ["copy", "symlink"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_written_files_do_not_name_the_temporary_folder(
    tmp_path: Path, ann: Annotations, fmt: str, mode: str
) -> None:
    """No file, link or report path mentions the temporary name; the output loads back."""
    out = tmp_path / "out"
    report = write_annotations(ann, out, fmt, images=mode)  # type: ignore[arg-type]
    assert temporaries(tmp_path) == []
    for rel, (is_link, data) in snapshot(out).items():
        assert b".tmp-" not in data, rel
        if is_link:
            assert Path(os.readlink(out / rel)).resolve().is_file()
    assert report.destination == str(out)
    assert report.files and all(
        Path(f).is_file() and Path(f).is_relative_to(out) for f in report.files
    )
    back = load_annotations(out, format=fmt, split="train")
    assert len(back) == 3 and back.num_boxes == 2


def test_exist_ok_adds_files_and_keeps_the_others(tmp_path: Path, ann: Annotations) -> None:
    """--exist-ok writes beside the user's files; a second write then needs --overwrite."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.txt").write_text("mine")
    with pytest.raises(DatasetError, match="--exist-ok"):
        write_annotations(ann, out, "coco")
    write_annotations(ann, out, "coco", exist_ok=True)
    assert (out / "README.txt").read_text() == "mine"
    before = snapshot(out)
    with pytest.raises(
        DatasetError, match=r"already exist: .*_annotations\.coco\.json.*--overwrite"
    ):
        write_annotations(ann, out, "coco", exist_ok=True)
    assert snapshot(out) == before and temporaries(tmp_path) == []
    write_annotations(ann, out, "coco", overwrite=True)
    assert (out / "README.txt").read_text() == "mine"
    assert load_annotations(out, format="coco", split="train").num_boxes == 2


def test_output_through_a_symlink_stays_a_symlink(tmp_path: Path, ann: Annotations) -> None:
    """A dst that links to an empty folder is filled; the link itself is kept."""
    real = tmp_path / "disk" / "out"
    real.mkdir(parents=True)
    link = tmp_path / "out"
    link.symlink_to(real)
    report = write_annotations(ann, link, "voc")
    assert link.is_symlink() and (real / "classes.txt").is_file()
    assert report.destination == str(link)
    assert temporaries(tmp_path / "disk") == []


def test_a_writer_never_writes_into_the_image_folder(tmp_path: Path, ann: Annotations) -> None:
    """Writing a dataset into the folder of its own images is refused, whatever the flags."""
    before = snapshot(tmp_path / "src")
    for dst in (tmp_path / "src", tmp_path):
        with pytest.raises(DatasetError, match="no flag allows this"):
            write_annotations(ann, dst, "yolo", overwrite=True)
    assert snapshot(tmp_path / "src") == before


def dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(proc.stdout)


def test_temporaries_of_killed_writers_are_removed(tmp_path: Path, ann: Annotations) -> None:
    """A killed writer's `.out.tmp-<pid>` goes at the next write to `out`; a live one stays."""
    stale = tmp_path / f".out.tmp-{dead_pid()}"
    (stale / "images").mkdir(parents=True)
    live = tmp_path / f".out.tmp-{os.getppid()}"
    live.mkdir()
    other = tmp_path / f".other.tmp-{dead_pid()}"
    other.mkdir()
    write_annotations(ann, tmp_path / "out", "yolo")
    assert not stale.exists() and live.is_dir() and other.is_dir()
    assert remove_stale_temps(tmp_path) == [other]


def test_staged_dir_renames_once_or_merges(tmp_path: Path) -> None:
    """staged_dir: rename into a missing folder; merge (refusing existing files) otherwise."""
    out = tmp_path / "out"
    with staged_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "1"
    with pytest.raises(DatasetError, match=r"a\.txt.*--overwrite"), staged_dir(out) as tmp:
        (tmp / "a.txt").write_text("2")
    assert (out / "a.txt").read_text() == "1" and temporaries(tmp_path) == []
    with staged_dir(out, overwrite=True) as tmp:
        (tmp / "a.txt").write_text("2")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("3")
    assert (out / "a.txt").read_text() == "2" and (out / "sub" / "b.txt").read_text() == "3"
