"""Tests for reading dataset files safely (yolo2retina/formats/_files.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from yolo2retina.errors import DatasetError
from yolo2retina.formats._files import path_kind, quote, read_classes_txt, read_text_file


def test_latin1_classes_txt_is_a_dataset_error(tmp_path: Path) -> None:
    """read_classes_txt (shared by YOLO and VOC) names a non-UTF-8 file and the byte offset."""
    f = tmp_path / "classes.txt"
    f.write_bytes("mite\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"not UTF-8 \(byte 0xe9 at offset 8\)") as info:
        read_classes_txt(f)
    assert str(f) in str(info.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_read_text_file_never_opens_a_fifo(tmp_path: Path) -> None:
    """A FIFO named like a text file is refused without opening it (which would block)."""
    fifo = tmp_path / "classes.txt"
    os.mkfifo(fifo)
    with pytest.raises(DatasetError, match="is not a regular file"):
        read_text_file(fifo, "classes.txt")


def test_path_kind_never_raises(tmp_path: Path) -> None:
    """Odd names (too long, NUL, broken link) are classified instead of raising OSError."""
    (tmp_path / "f").write_text("x")
    os.symlink(tmp_path / "nowhere", tmp_path / "broken")
    assert path_kind(tmp_path / "f") == "file" and path_kind(tmp_path) == "dir"
    assert path_kind(tmp_path / "broken") == "other"
    assert path_kind(tmp_path / ("x" * 100_000)) == "missing"
    assert path_kind(str(tmp_path / "a\x00b")) == "missing"


def test_quote_cuts_long_values() -> None:
    """quote() keeps short values whole and cuts long ones, saying how long they were."""
    assert quote("abc") == "'abc'"
    long = quote(["x" * 1000] * 1000)
    assert len(long) < 250 and long.endswith("characters)")


def test_image_suffixes_are_the_image_extensions_common_first_then_upper_case() -> None:
    """One extension list: IMAGE_SUFFIXES is image.IMAGE_EXTENSIONS, .jpg/.jpeg/.png first,
    then the rest sorted, then the same upper case (the order readers try a stem in)."""
    from yolo2retina.formats._files import IMAGE_SUFFIXES, is_image_file
    from yolo2retina.image import IMAGE_EXTENSIONS

    n = len(IMAGE_EXTENSIONS)
    assert len(IMAGE_SUFFIXES) == 2 * n
    assert set(IMAGE_SUFFIXES[:n]) == set(IMAGE_EXTENSIONS)
    assert IMAGE_SUFFIXES[:3] == (".jpg", ".jpeg", ".png")
    assert list(IMAGE_SUFFIXES[3:n]) == sorted(IMAGE_SUFFIXES[3:n])
    assert IMAGE_SUFFIXES[n:] == tuple(e.upper() for e in IMAGE_SUFFIXES[:n])
    assert all(is_image_file("a" + e) for e in IMAGE_SUFFIXES)
