"""Tests for the Pascal VOC reader and writer (yolo2retina/formats/voc.py)."""

from __future__ import annotations

import copy
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import write_image
from tests.formats._helpers import make_annotations, make_voc, voc_xml
from yolo2retina.annotations import Annotations
from yolo2retina.errors import DatasetError, Yolo2RetinaError
from yolo2retina.formats import load_annotations, write_annotations
from yolo2retina.formats.voc import read_voc
from yolo2retina.target import FLAG_DIFFICULT, FLAG_TRUNCATED


def test_standard_layout_with_split_lists(tmp_path: Path) -> None:
    """ImageSets/Main/{split}.txt picks the files of a split, in list order."""
    make_voc(
        tmp_path,
        {
            "b": [{"name": "dog", "box": (1, 1, 10, 10)}],
            "a": [{"name": "cat", "box": (5, 5, 20, 30)}],
        },
        splits={"train": ["b"], "val": ["a"]},
    )
    tr = read_voc(tmp_path, "train")
    va = read_voc(tmp_path, "val")
    assert [Path(p).name for p in tr.paths] == ["b.jpg"]
    assert [Path(p).name for p in va.paths] == ["a.jpg"]
    # class order comes from the whole dataset, so both splits agree
    assert tr.class_names == va.class_names == ("cat", "dog")
    assert tr.labels.tolist() == [1] and va.labels.tolist() == [0]


def test_pixel_rule_is_one_based_inclusive(tmp_path: Path) -> None:
    """A box over the whole W x H image (1, 1, W, H) becomes (0, 0, W, H)."""
    make_voc(tmp_path, {"a": [{"name": "x", "box": (1, 1, 64, 48)}]})
    ann = read_voc(tmp_path)
    assert ann.boxes.tolist() == [[0.0, 0.0, 64.0, 48.0]]


def test_float_coordinates_any_child_order_and_part_ignored(tmp_path: Path) -> None:
    """xmin, xmax, ymin, ymax order, fractional values and <part> boxes all read right."""
    write_image(tmp_path / "a.jpg", (64, 48))
    objs = [{"name": "x", "box": (2.5, 3.25, 10.75, 20.5), "part": True}]
    (tmp_path / "a.xml").write_text(
        voc_xml("a.jpg", (64, 48), objs, order=("xmin", "xmax", "ymin", "ymax"))
    )
    ann = read_voc(tmp_path)
    np.testing.assert_allclose(ann.boxes, [[1.5, 2.25, 10.75, 20.5]])
    assert ann.num_boxes == 1


def test_difficult_and_truncated_become_flags(tmp_path: Path) -> None:
    """difficult/truncated tags set per-box flag bits; difficult boxes are ignore regions."""
    make_voc(
        tmp_path,
        {
            "a": [
                {"name": "x", "box": (1, 1, 5, 5), "difficult": 1},
                {"name": "x", "box": (1, 1, 6, 6), "truncated": 1},
                {"name": "x", "box": (1, 1, 7, 7), "difficult": 0},
            ]
        },
    )
    ann = read_voc(tmp_path)
    assert ann.flags.tolist() == [FLAG_DIFFICULT, FLAG_TRUNCATED, 0]
    assert ann.target(0).ignore_mask().tolist() == [True, False, False]


def test_flat_folder_with_split_subfolders_and_background(tmp_path: Path) -> None:
    """Roboflow-style train/ valid/ folders of .xml beside images; 'val' finds 'valid'."""
    for split in ("train", "valid"):
        write_image(tmp_path / split / "a.jpg", (64, 48))
        (tmp_path / split / "a.xml").write_text(
            voc_xml("a.jpg", (64, 48), [{"name": split, "box": (1, 1, 9, 9)}])
        )
    write_image(tmp_path / "valid" / "empty.jpg", (64, 48))  # no xml: background
    ann = load_annotations(tmp_path, split="val")
    assert len(ann) == 2 and ann.num_boxes == 1
    assert ann.class_names == ("train", "valid")
    assert ann.report.missing_label_files == 1


def test_size_mismatch_names_the_file(tmp_path: Path) -> None:
    """A <size> that differs from the real image is an error naming the xml file."""
    write_image(tmp_path / "a.jpg", (64, 48))
    (tmp_path / "a.xml").write_text(voc_xml("a.jpg", (48, 64), []))
    with pytest.raises(DatasetError, match=r"a\.xml.*48x64.*64x48"):
        read_voc(tmp_path)


def test_size_is_compared_after_exif(tmp_path: Path) -> None:
    """An EXIF-rotated image's upright size is the one <size> must give."""
    write_image(tmp_path / "a.jpg", (64, 48), orientation=6)
    (tmp_path / "a.xml").write_text(
        voc_xml("a.jpg", (48, 64), [{"name": "x", "box": (1, 1, 40, 60)}])
    )
    assert read_voc(tmp_path).image_hw(0) == (64, 48)


def test_one_pixel_outside_is_clipped_and_counted(tmp_path: Path) -> None:
    """Roboflow's xmax=W+1 is clipped, a box with no area left is dropped; both counted."""
    make_voc(
        tmp_path,
        {"a": [{"name": "x", "box": (0, 1, 65, 10)}, {"name": "x", "box": (65, 1, 65, 10)}]},
    )
    ann = read_voc(tmp_path)
    assert ann.boxes.tolist() == [[0.0, 0.0, 64.0, 10.0]]
    assert ann.report.clipped == 2 and ann.report.dropped_zero_area == 1
    with pytest.raises(DatasetError, match="slightly outside"):
        read_voc(tmp_path, strict=True)


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ((1, 1, 70, 10), "more than 1 px outside"),
        ((10, 1, 5, 10), "inverted box"),
        (("a", 1, 5, 10), "<xmin> 'a' is not a number"),
        (("nan", 1, 5, 10), "non-finite"),
    ],
)
def test_bad_boxes_name_file_and_object(
    tmp_path: Path, box: tuple[object, ...], message: str
) -> None:
    """Boxes far outside, inverted or not numeric are errors naming file and object index."""
    make_voc(tmp_path, {"a": [{"name": "x", "box": (1, 1, 5, 5)}, {"name": "x", "box": box}]})
    with pytest.raises(DatasetError, match=rf"a\.xml: object 2 \('x'\): .*{message}"):
        read_voc(tmp_path)


def test_class_names_fix_order_and_reject_unknown(tmp_path: Path) -> None:
    """class_names sets label order; an object outside it is an error."""
    make_voc(
        tmp_path,
        {"a": [{"name": "cat", "box": (1, 1, 5, 5)}, {"name": "dog", "box": (1, 1, 5, 5)}]},
    )
    ann = read_voc(tmp_path, class_names=["dog", "cat"])
    assert ann.labels.tolist() == [1, 0]
    with pytest.raises(DatasetError, match="'dog' is not in class_names"):
        read_voc(tmp_path, class_names=["cat"])


def test_classes_txt_fixes_the_order(tmp_path: Path) -> None:
    """classes.txt at the root gives the class order instead of sorting."""
    make_voc(tmp_path, {"a": [{"name": "cat", "box": (1, 1, 5, 5)}]})
    (tmp_path / "classes.txt").write_text("zebra\ncat\n")
    assert read_voc(tmp_path).class_names == ("zebra", "cat")


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
]>
<annotation><filename>&lol2;</filename></annotation>
"""

EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE annotation [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotation><filename>&xxe;</filename></annotation>
"""


@pytest.mark.parametrize("text", [BOMB, EXTERNAL], ids=["billion-laughs", "external-entity"])
def test_entity_tricks_are_refused(tmp_path: Path, text: str) -> None:
    """Entity-expansion bombs and external entities are refused with a clear error."""
    write_image(tmp_path / "a.jpg")
    (tmp_path / "a.xml").write_text(text)
    with pytest.raises(DatasetError, match=r"a\.xml: refused: .*entity"):
        read_voc(tmp_path)


def test_malformed_xml_names_the_line(tmp_path: Path) -> None:
    """Broken XML is reported with its file and line."""
    write_image(tmp_path / "a.jpg")
    (tmp_path / "a.xml").write_text("<annotation>\n<object>\n</annotation>")
    with pytest.raises(DatasetError, match=r"a\.xml:3: malformed XML"):
        read_voc(tmp_path)


def test_missing_image_is_an_error(tmp_path: Path) -> None:
    """An xml whose image cannot be found is an error naming the xml."""
    (tmp_path / "a.xml").write_text(voc_xml("a.jpg", (64, 48), []))
    with pytest.raises(DatasetError, match=r"a\.xml: image 'a\.jpg' not found"):
        read_voc(tmp_path)


# -- the same result for every way of naming the dataset ----------------------------------


def _summary(ann: Annotations) -> tuple[object, ...]:
    return (
        ann.paths.tolist(),
        ann.image_hw_array.tolist(),
        ann.boxes.tolist(),
        ann.labels.tolist(),
        ann.flags.tolist(),
        ann.class_names,
        ann.image_ids.tolist(),
        str(ann.report),
    )


def _voc_trees(tmp_path: Path) -> Path:
    """``ds/voc`` written by write_voc (two splits) and ``ds/flat`` (Roboflow-style folders)."""
    src = make_annotations(
        tmp_path / "src",
        [[((1, 1, 9, 9), 0, FLAG_DIFFICULT)], [], [((2, 3, 40, 30), 1, 0)]],
    )
    write_annotations(
        {"train": src.subset([0, 1]), "val": src.subset([2])}, tmp_path / "ds" / "voc", "voc"
    )
    for split in ("train", "valid"):
        write_image(tmp_path / "ds" / "flat" / split / "a.jpg", (64, 48))
        (tmp_path / "ds" / "flat" / split / "a.xml").write_text(
            voc_xml("a.jpg", (64, 48), [{"name": split, "box": (0, 1, 65, 9)}])
        )
    write_image(tmp_path / "ds" / "flat" / "valid" / "empty.jpg", (64, 48))
    (tmp_path / "link").symlink_to(tmp_path / "ds", target_is_directory=True)
    return tmp_path / "ds"


@pytest.mark.parametrize(("layout", "split"), [("voc", "train"), ("voc", None), ("flat", "val")])
def test_relative_absolute_symlinked_and_dot_paths_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, split: str | None
) -> None:
    """read_voc and load_annotations give one result however the folder is named."""
    ds = _voc_trees(tmp_path)
    first = read_voc(ds / layout, split)
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in first.paths.tolist())
    want = _summary(first)
    monkeypatch.chdir(tmp_path)
    for name in (
        f"ds/{layout}",
        str(ds / layout),
        f"link/{layout}",
        str(tmp_path / "link" / layout),
    ):
        assert _summary(read_voc(name, split)) == want, name
        assert _summary(load_annotations(name, split=split)) == want, name
    monkeypatch.chdir(ds / layout)
    assert _summary(read_voc(".", split)) == want
    assert _summary(load_annotations(".", split=split)) == want
    monkeypatch.chdir(tmp_path / "link" / layout)  # a working directory reached through a link
    assert _summary(read_voc(".", split)) == want


# -- every box that passes stays valid ------------------------------------------------------


def test_box_with_no_area_in_float32_is_a_counted_drop(tmp_path: Path) -> None:
    """A ymax of 1e-320 has area in float64 but none once stored: dropped, named, counted."""
    make_voc(
        tmp_path,
        {"a": [{"name": "x", "box": (1, 1, 5, 5)}, {"name": "x", "box": (1, 1, 5, "1e-320")}]},
    )
    ann = read_voc(tmp_path)
    assert ann.num_boxes == 1 and ann.report.dropped_zero_area == 1
    assert any("a.xml: object 2 ('x'): zero-area" in d for d in ann.report.details)
    assert [len(t) for t in ann.targets()] == [1]
    with pytest.raises(DatasetError, match=r"a\.xml: object 2 \('x'\): zero-area"):
        read_voc(tmp_path, strict=True)


_TWO_BNDBOX = (
    "<annotation><filename>a.jpg</filename><object><name>x</name>"
    "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox>"
    "<bndbox><xmin>2</xmin><ymin>2</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>"
)
_TWO_XMIN = (
    "<annotation><filename>a.jpg</filename><object><name>x</name><bndbox>"
    "<xmin>1</xmin><xmin>3</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>"
    "</annotation>"
)
_TWO_NAMES = (
    "<annotation><filename>a.jpg</filename><object><name>x</name><name>y</name><bndbox>"
    "<xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>"
)
_TWO_WIDTHS = (
    "<annotation><filename>a.jpg</filename><size><width>64</width><width>32</width>"
    "<height>48</height></size></annotation>"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_TWO_BNDBOX, r"object 1 \('x'\): 2 <bndbox> elements"),
        (_TWO_XMIN, r"object 1 \('x'\): 2 <xmin> elements"),
        (_TWO_NAMES, r"object 1: 2 <name> elements"),
        (_TWO_WIDTHS, r"2 <width> elements"),
    ],
    ids=["bndbox", "xmin", "name", "width"],
)
def test_repeated_elements_are_errors(tmp_path: Path, text: str, message: str) -> None:
    """An object with two <bndbox>, a box with two <xmin> (and the like) is ambiguous."""
    write_image(tmp_path / "a.jpg", (64, 48))
    (tmp_path / "a.xml").write_text(text)
    with pytest.raises(DatasetError, match=rf"a\.xml: {message}"):
        read_voc(tmp_path)


def test_same_stem_images_beside_one_xml_are_refused(tmp_path: Path) -> None:
    """A flat folder's a.jpg and a.png cannot both go with a.xml: an error names both."""
    write_image(tmp_path / "a.jpg", (64, 48))
    write_image(tmp_path / "a.png", (64, 48))
    (tmp_path / "a.xml").write_text(
        voc_xml("a.jpg", (64, 48), [{"name": "x", "box": (1, 1, 5, 5)}])
    )
    with pytest.raises(DatasetError, match=r"a\.xml: images a\.jpg, a\.png share its stem"):
        read_voc(tmp_path)


def test_same_stem_images_without_filename_are_refused(tmp_path: Path) -> None:
    """With no <filename>, JPEGImages/a.jpg and a.png leave the xml's image undecided."""
    make_voc(tmp_path, {"a": []})
    write_image(tmp_path / "JPEGImages" / "a.png", (64, 48))
    text = (tmp_path / "Annotations" / "a.xml").read_text()
    (tmp_path / "Annotations" / "a.xml").write_text(text.replace("<filename>a.jpg</filename>", ""))
    with pytest.raises(DatasetError, match=r"a\.xml: no <filename>, .*a\.jpg, .*a\.png"):
        read_voc(tmp_path)


# -- files outside the dataset, and files that are not regular files -----------------------


@pytest.mark.parametrize("where", ["absolute", "dotdot"])
def test_filename_outside_the_root_is_refused_unless_allowed(tmp_path: Path, where: str) -> None:
    """An absolute <filename> or one whose .. leaves the root is refused (as COCO does)."""
    outside = write_image(tmp_path / "outside.jpg", (64, 48))
    root = tmp_path / "ds"
    make_voc(root, {"a": [{"name": "x", "box": (1, 1, 5, 5)}]})
    name = str(outside) if where == "absolute" else "../../outside.jpg"
    xml = root / "Annotations" / "a.xml"
    xml.write_text(xml.read_text().replace("<filename>a.jpg<", f"<filename>{name}<"))
    (root / "JPEGImages" / "a.jpg").unlink()
    how = "is absolute" if where == "absolute" else "escapes the dataset root"
    with pytest.raises(
        DatasetError, match=rf"a\.xml: <filename> '.*outside\.jpg' {how}.*allow_outside_root=True"
    ):
        read_voc(root)
    assert read_voc(root, allow_outside_root=True).image_path(0) == outside


def test_imagesets_id_outside_the_root_is_refused_unless_allowed(tmp_path: Path) -> None:
    """An ImageSets line '../../x' would read tmp/x.xml; it is refused unless allowed."""
    write_image(tmp_path / "x.jpg", (64, 48))
    (tmp_path / "x.xml").write_text(voc_xml("x.jpg", (64, 48), []))
    root = make_voc(tmp_path / "ds", {"a": []}, splits={"train": ["a", "../../x"]})
    with pytest.raises(
        DatasetError, match=r"train\.txt:2: image id '\.\./\.\./x' escapes the dataset root"
    ):
        read_voc(root, "train")
    # allowed: the xml outside is read; its image is still looked for in the dataset folders
    write_image(root / "JPEGImages" / "x.jpg", (64, 48))
    assert len(read_voc(root, "train", allow_outside_root=True)) == 2


def _never_open(monkeypatch: pytest.MonkeyPatch, module: object, paths: list[str]) -> None:
    """Make read_image_hw in ``module`` fail the test when asked for one of ``paths``."""
    real = module.read_image_hw  # type: ignore[attr-defined]

    def guarded(path: str | Path) -> tuple[int, int]:
        assert not {str(path), os.path.realpath(path)} & set(paths), f"opened {path}"
        return real(path)  # type: ignore[no-any-return]

    monkeypatch.setattr(module, "read_image_hw", guarded)


@pytest.mark.parametrize("kind", ["fifo", "folder", "device"])
def test_images_that_are_not_regular_files_are_never_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """A FIFO (which would block), a folder or a device named as the image is refused unopened."""
    import yolo2retina.formats.voc as voc

    write_image(tmp_path / "b.jpg", (64, 48))
    (tmp_path / "b.xml").write_text(voc_xml("b.jpg", (64, 48), []))
    if kind == "fifo":
        os.mkfifo(tmp_path / "a.jpg")
        name, bad = "a.jpg", str(tmp_path / "a.jpg")
    elif kind == "folder":
        (tmp_path / "a.jpg").mkdir()
        name, bad = "a.jpg", str(tmp_path / "a.jpg")
    else:
        name, bad = "/dev/null", "/dev/null"
    (tmp_path / "a.xml").write_text(voc_xml(name, (64, 48), []))
    _never_open(monkeypatch, voc, [os.path.realpath(bad)])
    with pytest.raises(DatasetError, match=rf"a\.xml: image {bad} is not a regular file"):
        read_voc(tmp_path, allow_outside_root=True)


def test_orphan_fifo_in_a_flat_folder_is_never_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FIFO named like an image beside the xml files is refused, not read as background."""
    import yolo2retina.formats.voc as voc

    write_image(tmp_path / "b.jpg", (64, 48))
    (tmp_path / "b.xml").write_text(voc_xml("b.jpg", (64, 48), []))
    os.mkfifo(tmp_path / "c.png")
    _never_open(monkeypatch, voc, [str(tmp_path / "c.png")])
    with pytest.raises(DatasetError, match=r"c\.png: is not a regular file"):
        read_voc(tmp_path)


# -- bad bytes and numbers are errors naming the file --------------------------------------


def test_imagesets_list_that_is_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    """A Latin-1 ImageSets list is an error naming it, not a UnicodeDecodeError."""
    root = make_voc(tmp_path, {"a": []}, splits={"train": ["a"]})
    (root / "ImageSets" / "Main" / "train.txt").write_bytes("a\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(
        DatasetError, match=r"train\.txt:2: image list is not UTF-8 \(byte 0xe9 at offset 5\)"
    ):
        read_voc(root, "train")


def test_imagesets_comment_lines_are_skipped(tmp_path: Path) -> None:
    """'# ...' lines in an ImageSets list are comments, not image ids."""
    root = make_voc(tmp_path, {"a": [], "b": []}, splits={"train": ["a", "b"]})
    (root / "ImageSets" / "Main" / "train.txt").write_text("# made by hand\na\n  # b\nb\n")
    assert [Path(p).name for p in read_voc(root, "train").paths] == ["a.jpg", "b.jpg"]


@pytest.mark.parametrize(
    ("size", "box", "message"),
    [
        (("1e400", 48), (1, 1, 5, 5), r"<size> <width> '1e400' is not a whole number"),
        ((64, "-1e400"), (1, 1, 5, 5), r"<size> <height> '-1e400' is not a whole number"),
        ((64, "nan"), (1, 1, 5, 5), r"<size> <height> 'nan' is not a whole number"),
        ((64.5, 48), (1, 1, 5, 5), r"<size> <width> '64.5' is not a whole number"),
        (("6_4", 48), (1, 1, 5, 5), r"<size>: <width> '6_4' is not a number"),
        ((64, 48), (1, 1, "1e400", 5), r"object 1 \('x'\): non-finite box"),
        ((64, 48), (1, 1, "٥", 5), r"object 1 \('x'\): <xmax> '٥' is not a number"),
    ],
)
def test_huge_and_odd_numbers_name_the_file(
    tmp_path: Path, size: tuple[object, object], box: tuple[object, ...], message: str
) -> None:
    """1e400, nan, 64.5, '6_4' or non-ASCII digits are errors naming the file, never raw."""
    write_image(tmp_path / "a.jpg", (64, 48))
    (tmp_path / "a.xml").write_text(voc_xml("a.jpg", size, [{"name": "x", "box": box}]))  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match=rf"a\.xml: {message}"):
        read_voc(tmp_path)


# -- property: any mutation of valid XML gives a library error or valid targets -------------

#: Numbers that parse but sit on an edge: no area once stored as float32 (1e-320, 1e-9),
#: on or just past the 16 px image border, subnormal, huge but finite.
_EDGY_NUMBERS = ["1e-320", "-1e-320", "1e-9", "16.0000001", "15.99999999", "16", "17", "0",
                 "-0", "-1", "1e-45", "3.4e38", "1e308", "4.9e-324", "1.00000001", "+3", ".5",
                 "5."]  # fmt: skip
#: Text that is not a usable number or value: other types, NaN, overflow, odd digits,
#: paths that leave the folder and files that are not regular.
_BAD_TEXTS = ["", "abc", "true", "None", "[]", "1e400", "-1e400", "nan", "inf", "-inf",
              "99999999999999999999", "1_0", "\u0665", "0x10", "1e", "2", "a.jpg", "b.png",
              "../a.jpg", "/dev/null", "/dev/stdin", "a.jpg/", "x" * 300]  # fmt: skip


def _value(normal: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Mostly ``normal``; sometimes an edgy number or a bad text."""
    return st.one_of(
        normal, normal, normal, st.sampled_from(_EDGY_NUMBERS), st.sampled_from(_BAD_TEXTS)
    )


_coord = _value(st.one_of(st.integers(0, 17).map(str), st.floats(-1, 17).map(repr)))
_flag = _value(st.sampled_from(["0", "1"]))


@st.composite
def _voc_documents(draw: st.DrawFn) -> bytes:
    """A VOC annotation of 0-3 objects whose every text may be edgy or bad."""
    parts = [f"<annotation><filename>{draw(_value(st.just('a.jpg')))}</filename>"]
    w, h = draw(_value(st.just("16"))), draw(_value(st.just("16")))
    parts.append(f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size>")
    for _ in range(draw(st.integers(0, 3))):
        name = draw(_value(st.sampled_from(["cat", "dog"])))
        box = "".join(f"<{t}>{draw(_coord)}</{t}>" for t in ("xmin", "ymin", "xmax", "ymax"))
        flags = "".join(
            f"<{t}>{draw(_flag)}</{t}>" for t in ("difficult", "truncated") if draw(st.booleans())
        )
        parts.append(f"<object><name>{name}</name>{flags}<bndbox>{box}</bndbox></object>")
    parts.append("</annotation>")
    return "".join(parts).encode()


_TAGS = ["annotation", "filename", "size", "width", "height", "object", "name", "bndbox",
         "xmin", "ymin", "xmax", "ymax", "difficult", "truncated", "part"]  # fmt: skip

_xml_ops = st.lists(
    st.tuples(
        st.sampled_from(["drop", "duplicate", "rename", "nest", "move"]),
        st.integers(0, 10_000),
        st.integers(0, 10_000),
    ),
    max_size=2,
)
_byte_ops = st.lists(
    st.tuples(
        st.sampled_from(["truncate", "flip", "insert", "bad-utf8", "delete"]),
        st.integers(0, 10_000),
        st.binary(min_size=1, max_size=4),
    ),
    min_size=1,
    max_size=2,
)
#: Byte damage in one example of four, so most keep well-formed XML and reach the checks
#: that come after parsing.
_maybe_byte_ops = st.sampled_from([False, False, False, True]).flatmap(
    lambda damage: _byte_ops if damage else st.just([])
)


def _mutate_xml(doc: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    """Drop, duplicate, rename, nest or move elements of ``doc``."""
    root = ET.fromstring(doc)
    for op, i, j in ops:
        nodes = list(root.iter())
        node, other = nodes[i % len(nodes)], nodes[j % len(nodes)]
        parent = {c: p for p in root.iter() for c in p}.get(node)
        if op == "drop" and parent is not None:
            parent.remove(node)
        elif op == "duplicate" and parent is not None:
            parent.append(copy.deepcopy(node))
        elif op == "rename":
            node.tag = _TAGS[j % len(_TAGS)]
        elif op == "nest":
            node.append(copy.deepcopy(other))
        elif op == "move" and parent is not None and node not in list(other.iter()):
            parent.remove(node)
            other.append(node)
    return ET.tostring(root, encoding="utf-8")


def _mutate_bytes(data: bytes, ops: list[tuple[str, int, bytes]]) -> bytes:
    """Truncate, flip, insert or delete bytes, or insert invalid UTF-8."""
    for op, i, b in ops:
        k = i % (len(data) + 1)
        if op == "truncate":
            data = data[:k]
        elif op == "flip" and data:
            k %= len(data)
            data = data[:k] + bytes([data[k] ^ b[0]]) + data[k + 1 :]
        elif op == "insert":
            data = data[:k] + b + data[k:]
        elif op == "bad-utf8":
            data = data[:k] + b"\xff\xc3(" + data[k:]
        elif op == "delete":
            data = data[:k] + data[k + len(b) :]
    return data


@pytest.fixture(scope="module")
def tiny_voc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flat VOC folder with two 16x16 images; each example writes its own a.xml."""
    root = tmp_path_factory.mktemp("tiny_voc")
    write_image(root / "a.jpg", (16, 16))
    write_image(root / "b.png", (16, 16))
    (root / "b.xml").write_text(voc_xml("b.png", (16, 16), [{"name": "dog", "box": (1, 1, 5, 5)}]))
    return root


def _library_error_or_valid(load: Callable[[], Annotations]) -> None:
    """``load()`` raises a library error, or every Target builds and lies in its image."""
    try:
        ann = load()
    except Yolo2RetinaError:
        return
    for i in range(len(ann)):
        t = ann.target(i)
        h, w = ann.image_hw(i)
        assert ((t.boxes >= 0) & (t.boxes <= np.array([w, h, w, h], np.float32))).all()


@settings(max_examples=150, deadline=None)
@given(doc=_voc_documents(), xml_ops=_xml_ops, byte_ops=_maybe_byte_ops, strict=st.booleans())
def test_mutated_xml_gives_a_library_error_or_valid_targets(
    tiny_voc: Path,
    doc: bytes,
    xml_ops: list[tuple[str, int, int]],
    byte_ops: list[tuple[str, int, bytes]],
    strict: bool,
) -> None:
    """Any mutation of VOC XML (edgy or bad values, dropped, repeated, renamed, nested or
    moved elements, damaged bytes) gives Yolo2RetinaError or valid in-image Targets."""
    (tiny_voc / "a.xml").write_bytes(_mutate_bytes(_mutate_xml(doc, xml_ops), byte_ops))
    _library_error_or_valid(lambda: read_voc(tiny_voc, strict=strict))


def test_one_image_is_described_once(tmp_path: Path) -> None:
    """Two xml files naming one image, or one id listed twice, would double its boxes."""
    root = make_voc(tmp_path, {"a": [], "b": []}, splits={"train": ["a", "b", "a"]})
    with pytest.raises(
        DatasetError, match=r"train\.txt:3: 'a' is listed again \(first on line 1\)"
    ):
        read_voc(root, "train")
    xml = root / "Annotations" / "b.xml"
    xml.write_text(xml.read_text().replace("<filename>b.jpg<", "<filename>a.jpg<"))
    with pytest.raises(DatasetError, match=r"b\.xml: describes image .*a\.jpg, as .*a\.xml does"):
        read_voc(root)


def test_clip_and_drop_messages_quote_the_files_own_values(tmp_path: Path) -> None:
    """Roboflow's xmax=641 on a 640-px image is reported as 641 (and xmin=0 as 0), the values
    in the file, not the shifted 0-based ones (issue 13 item 7)."""
    write_image(tmp_path / "a.jpg", (640, 48))
    (tmp_path / "a.xml").write_text(
        voc_xml(
            "a.jpg",
            (640, 48),
            [{"name": "x", "box": (5, 2, 641, 10)}, {"name": "x", "box": (0, 3, 9, 12)}],
        )
    )
    ann = read_voc(tmp_path)
    assert ann.report.clipped == 2
    assert "box [5.0, 2.0, 641.0, 10.0] slightly outside the 640x48 image" in ann.report.details[0]
    assert "box [0.0, 3.0, 9.0, 12.0] slightly outside" in ann.report.details[1]
    (tmp_path / "a.xml").write_text(
        voc_xml("a.jpg", (640, 48), [{"name": "x", "box": (5, 2, 700, 10)}])
    )
    with pytest.raises(DatasetError, match=r"box \[5\.0, 2\.0, 700\.0, 10\.0\] lies more"):
        read_voc(tmp_path)


# -- one extension list: a stem is tried with every image suffix ----------------------------


@pytest.mark.parametrize("filename", ["<filename>gone.jpg</filename>", ""])
@pytest.mark.parametrize("name", ["a.bmp", "a.JPEG", "a.tif"])
def test_image_found_by_stem_with_any_image_suffix(
    tmp_path: Path, filename: str, name: str
) -> None:
    """When <filename> is absent or names no file, the xml's stem is tried with every
    image.IMAGE_EXTENSIONS suffix, lower and upper case."""
    write_image(tmp_path / name, (64, 48))
    (tmp_path / "a.xml").write_text(
        f"<annotation>{filename}<size><width>64</width><height>48</height></size>"
        "<object><name>x</name><bndbox><xmin>2</xmin><ymin>3</ymin><xmax>20</xmax>"
        "<ymax>30</ymax></bndbox></object></annotation>"
    )
    ann = read_voc(path=tmp_path)
    assert len(ann) == 1 and ann.image_path(0).name == name and ann.num_boxes == 1


# -- images_root: annotations kept apart from their images (issue 15) ----------------------


def _apart(tmp_path: Path) -> tuple[Path, Path, Annotations]:
    """``ds/`` (Annotations + ImageSets only) and ``pics/`` (its images); and the same
    dataset read with its images in place, for comparison."""
    whole = make_voc(
        tmp_path / "whole",
        {
            "a": [{"name": "cat", "box": (1, 1, 10, 12)}],
            "b": [{"name": "dog", "box": (2, 3, 40, 30)}],
        },
        splits={"train": ["a", "b"]},
    )
    want = read_voc(whole, "train")
    ds = tmp_path / "ds"
    make_voc(ds, {"a": [{"name": "cat", "box": (1, 1, 10, 12)}], "b": [{"name": "dog", "box": (2, 3, 40, 30)}]},
             splits={"train": ["a", "b"]})  # fmt: skip
    (ds / "JPEGImages").rename(tmp_path / "pics")
    return ds, tmp_path / "pics", want


def _same_but_paths(ann: Annotations, want: Annotations, images: Path) -> None:
    assert [Path(p).parent for p in ann.paths.tolist()] == [images.resolve()] * len(want)
    assert [Path(p).name for p in ann.paths.tolist()] == [Path(p).name for p in want.paths.tolist()]
    assert ann.boxes.tolist() == want.boxes.tolist()
    assert (ann.labels.tolist(), ann.flags.tolist()) == (want.labels.tolist(), want.flags.tolist())
    assert ann.image_hw_array.tolist() == want.image_hw_array.tolist()
    assert ann.class_names == want.class_names


def test_images_root_reads_images_kept_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """<filename> is relative to images_root, however it is named: relative, absolute,
    '.', from another working directory, or through a symlinked folder."""
    ds, pics, want = _apart(tmp_path)
    with pytest.raises(DatasetError, match=r"a\.xml: image 'a\.jpg' not found in .*JPEGImages"):
        read_voc(ds, "train")  # without images_root: looked for in JPEGImages/
    _same_but_paths(read_voc(ds, "train", images_root=pics), want, pics)
    (tmp_path / "link").symlink_to(pics, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    for root in ("pics", "./pics/", "link", str(tmp_path / "link")):
        _same_but_paths(read_voc("ds", "train", images_root=root), want, pics)
    monkeypatch.chdir(pics)
    _same_but_paths(read_voc(ds, "train", images_root="."), want, pics)
    monkeypatch.chdir(ds)
    _same_but_paths(read_voc(".", "train", images_root="../pics"), want, pics)
    ann = load_annotations(".", format="voc", split="train", images_root="../pics")
    _same_but_paths(ann, want, pics)


def test_images_root_with_no_filename_finds_the_stem(tmp_path: Path) -> None:
    """Without <filename>, the xml's stem is looked for in images_root."""
    ds, pics, want = _apart(tmp_path)
    for x in (ds / "Annotations").glob("*.xml"):
        x.write_text(re.sub(r"<filename>.*?</filename>", "", x.read_text()))
    _same_but_paths(read_voc(ds, "train", images_root=pics), want, pics)


@pytest.mark.parametrize("where", ["absolute", "dotdot"])
def test_filename_outside_images_root_is_refused_unless_allowed(tmp_path: Path, where: str) -> None:
    """The same rule as COCO's: an absolute <filename>, or one whose .. leaves images_root
    (even into the dataset folder), is refused unless allow_outside_root=True."""
    ds, pics, _ = _apart(tmp_path)
    other = write_image(tmp_path / "other.jpg", (64, 48))
    name = str(other) if where == "absolute" else "../other.jpg"
    xml = ds / "Annotations" / "a.xml"
    xml.write_text(xml.read_text().replace("<filename>a.jpg<", f"<filename>{name}<"))
    how = "is absolute" if where == "absolute" else "escapes the images root"
    with pytest.raises(
        DatasetError,
        match=rf"a\.xml: <filename> '.*other\.jpg' {how} \({re.escape(str(pics))}\); "
        "pass allow_outside_root=True",
    ):
        read_voc(ds, "train", images_root=pics)
    ann = read_voc(ds, "train", images_root=pics, allow_outside_root=True)
    assert ann.image_path(0) == other


def test_images_root_that_is_not_a_folder_is_an_error(tmp_path: Path) -> None:
    """A missing images_root, or a file, is named at once."""
    ds, pics, _ = _apart(tmp_path)
    for bad in (tmp_path / "nope", pics / "a.jpg"):
        with pytest.raises(
            DatasetError, match=rf"{re.escape(str(bad))}: images_root is not a folder"
        ):
            read_voc(ds, "train", images_root=bad)


def test_flat_folder_with_images_root_skips_the_images_beside(tmp_path: Path) -> None:
    """Images beside the .xml files are not read when images_root names another folder;
    each is counted as skipped (not silently dropped, not kept as background)."""
    flat = tmp_path / "flat"
    write_image(flat / "a.jpg", (64, 48))
    write_image(flat / "stray.png", (64, 48))
    (flat / "a.xml").write_text(voc_xml("a.jpg", (64, 48), [{"name": "x", "box": (1, 1, 5, 5)}]))
    write_image(tmp_path / "pics" / "a.jpg", (64, 48))
    ann = read_voc(flat, images_root=tmp_path / "pics")
    assert ann.paths.tolist() == [str((tmp_path / "pics" / "a.jpg").resolve())]
    assert ann.report.skipped_files == 2 and ann.report.missing_label_files == 0
    assert any("stray.png: not read (images are read from" in d for d in ann.report.details)
    same = read_voc(flat, images_root=flat)  # the folder itself: as without images_root
    assert _summary(same) == _summary(read_voc(flat))


def test_reading_leaves_the_dataset_folder_unchanged(tmp_path: Path) -> None:
    """Nothing is written, renamed or touched in the dataset or images folder."""
    ds, pics, _ = _apart(tmp_path)

    def snapshot() -> list[tuple[str, int, int]]:
        return sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))

    before = snapshot()
    read_voc(ds, "train", images_root=pics)
    read_voc(ds, images_root=pics)
    assert snapshot() == before


def test_doctype_is_refused_with_file_and_line_by_the_reader(tmp_path: Path) -> None:
    """A DOCTYPE (even one declaring nothing) is refused, naming the file and its line."""
    write_image(tmp_path / "a.jpg")
    (tmp_path / "a.xml").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE annotation>\n<annotation><filename>a.jpg</filename>'
        "</annotation>"
    )
    with pytest.raises(DatasetError, match=r"a\.xml: refused: <!DOCTYPE annotation> on line 2"):
        read_voc(tmp_path)
