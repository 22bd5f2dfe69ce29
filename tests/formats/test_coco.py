"""Tests for the COCO reader and writers (yolo2retina/formats/coco.py)."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import write_image
from tests.formats._helpers import coco_ann, coco_dict, make_annotations, make_coco, many_coco_anns
from yolo2retina.annotations import Annotations
from yolo2retina.errors import DatasetError, Yolo2RetinaError
from yolo2retina.formats import load_annotations, write_annotations
from yolo2retina.formats.coco import read_coco
from yolo2retina.target import FLAG_CROWD


def test_non_contiguous_ids_map_to_labels_in_id_order(tmp_path: Path) -> None:
    """Category ids 7, 3, 11 become labels by id order and the ids are kept."""
    f = make_coco(
        tmp_path,
        2,
        [coco_ann(1, 1, 11, [1, 2, 3, 4]), coco_ann(2, 2, 3, [0.5, 0.25, 10.5, 20.25])],
        categories=[(7, "seven"), (3, "three"), (11, "eleven")],
    )
    ann = read_coco(f)
    assert ann.class_names == ("three", "seven", "eleven")
    assert ann.category_ids == (3, 7, 11)
    assert ann.labels.tolist() == [2, 0]
    np.testing.assert_allclose(ann.boxes, [[1, 2, 4, 6], [0.5, 0.25, 11, 20.5]])
    assert ann.image_ids.tolist() == [1, 2]


def test_unused_categories_and_background_images_are_kept(tmp_path: Path) -> None:
    """A declared category no box uses stays a class; an image with no box stays."""
    f = make_coco(
        tmp_path, 3, [coco_ann(1, 2, 1, [1, 1, 5, 5])], categories=[(0, "unused"), (1, "a")]
    )
    ann = read_coco(f)
    assert ann.class_names == ("unused", "a") and ann.num_classes == 2
    assert len(ann) == 3 and ann.boxes_per_image().tolist() == [0, 1, 0]
    assert ann.report.background_images == 2


def test_boxes_of_one_image_keep_file_order(tmp_path: Path) -> None:
    """Annotations listed out of image order are grouped by image, in file order."""
    anns = [
        coco_ann(1, 2, 1, [1, 1, 2, 2]),
        coco_ann(2, 1, 1, [3, 3, 2, 2]),
        coco_ann(3, 2, 2, [5, 5, 2, 2]),
    ]
    ann = read_coco(make_coco(tmp_path, 2, anns))
    assert ann.boxes[:, 0].tolist() == [3, 1, 5]
    assert ann.labels.tolist() == [0, 0, 1]
    assert ann.annotation_ids is not None and ann.annotation_ids.tolist() == [2, 1, 3]


def test_crowd_is_a_flag_left_out_of_training(tmp_path: Path) -> None:
    """iscrowd=1 becomes FLAG_CROWD, an ignore region."""
    anns = [coco_ann(1, 1, 1, [1, 1, 5, 5], iscrowd=1), coco_ann(2, 1, 1, [1, 1, 6, 6], iscrowd=0)]
    ann = read_coco(make_coco(tmp_path, 1, anns))
    assert ann.flags.tolist() == [FLAG_CROWD, 0]
    assert ann.target(0).ignore_mask().tolist() == [True, False]


def test_roboflow_folder_and_split_alias(tmp_path: Path) -> None:
    """A folder of split folders with _annotations.coco.json loads; 'val' finds 'valid'."""
    make_coco(tmp_path / "valid", 2, name="_annotations.coco.json")
    make_coco(tmp_path / "train", 1, name="_annotations.coco.json")
    assert len(load_annotations(tmp_path, split="val")) == 2
    assert len(load_annotations(tmp_path, split="train")) == 1
    with pytest.raises(DatasetError, match="holds splits"):
        load_annotations(tmp_path)


@pytest.mark.parametrize(
    "file_name", ["../outside.jpg", "sub/../../outside.jpg", "/abs/outside.jpg"]
)
def test_paths_outside_the_root_are_refused(tmp_path: Path, file_name: str) -> None:
    """An absolute file_name or a .. that escapes the images root is refused."""
    root = tmp_path / "root"
    root.mkdir()
    f = root / "a.json"
    img = {"id": 1, "file_name": file_name, "width": 64, "height": 48}
    f.write_text(json.dumps(coco_dict([img], [])))
    with pytest.raises(DatasetError, match="allow_outside_root"):
        read_coco(f)


def test_outside_root_allowed_on_request(tmp_path: Path) -> None:
    """allow_outside_root=True accepts a .. path that exists."""
    write_image(tmp_path / "outside.jpg")
    (tmp_path / "root").mkdir()
    f = tmp_path / "root" / "a.json"
    f.write_text(
        json.dumps(
            coco_dict([{"id": 1, "file_name": "../outside.jpg", "width": 64, "height": 48}], [])
        )
    )
    ann = read_coco(f, allow_outside_root=True)
    assert ann.image_path(0) == tmp_path / "outside.jpg"


def test_images_root_option(tmp_path: Path) -> None:
    """file_name is resolved against images_root when given."""
    write_image(tmp_path / "imgs" / "im0.jpg")
    f = tmp_path / "a.json"
    f.write_text(
        json.dumps(coco_dict([{"id": 1, "file_name": "im0.jpg", "width": 64, "height": 48}], []))
    )
    ann = read_coco(f, images_root=tmp_path / "imgs")
    assert ann.image_path(0) == tmp_path / "imgs" / "im0.jpg"


def _bad_json(tmp_path: Path, images: list[dict[str, Any]], anns: list[dict[str, Any]]) -> Path:
    for i in range(2):
        write_image(tmp_path / f"im{i}.jpg")
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(coco_dict(images, anns)))
    return f


IMG = [
    {"id": 1, "file_name": "im0.jpg", "width": 64, "height": 48},
    {"id": 2, "file_name": "im1.jpg", "width": 64, "height": 48},
]


@pytest.mark.parametrize(
    ("images", "anns", "message"),
    [
        ([IMG[0], {**IMG[1], "id": 1}], [], "duplicate image ids: 1"),
        (
            IMG,
            [coco_ann(5, 1, 1, [1, 1, 2, 2]), coco_ann(5, 2, 1, [1, 1, 2, 2])],
            "duplicate annotation ids: 5",
        ),
        (
            IMG,
            [coco_ann(1, 9, 1, [1, 1, 2, 2])],
            r"annotations\[0\] \(id 1\): image_id 9 is not in 'images'",
        ),
        (IMG, [coco_ann(1, 1, 4, [1, 1, 2, 2])], r"category_id 4 is not in 'categories'"),
        (
            [{**IMG[0], "width": 65}, IMG[1]],
            [],
            r"images\[0\] \(id 1, im0\.jpg\): width x height 65x48 but the image is 64x48",
        ),
        (
            IMG,
            [coco_ann(1, 1, 1, [1, 1, 2])],
            r"annotations\[0\] \(id 1\): malformed bbox \[1, 1, 2\]",
        ),
        (
            IMG,
            [coco_ann(1, 1, 1, [1, 1, 2, 2]), coco_ann(2, 1, 1, [1, 1, -2, 2])],
            r"annotations\[1\] \(id 2\): malformed bbox",
        ),
        (IMG, [coco_ann(1, 1, 1, [1, "x", 2, 2])], r"malformed bbox \[1, 'x', 2, 2\]"),
        (
            IMG,
            [coco_ann(1, 1, 1, [1, 1, 80, 2])],
            r"annotations\[0\] \(id 1\): box .* more than 1 px outside",
        ),
        (
            IMG,
            [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}],
            r"annotations\[0\] \(id \?\): missing or non-integer 'id'",
        ),
        (
            IMG,
            [coco_ann(1, 1, 1, [1, 1, 2, 2]), coco_ann(2, 1.5, 1, [1, 1, 2, 2])],
            r"annotations\[1\] \(id 2\): missing or non-integer 'image_id'",
        ),
        ([{**IMG[0], "id": "1"}], [], r"images\[0\]: missing or non-integer 'id'"),
    ],
    ids=[
        "dup-image",
        "dup-ann",
        "unknown-image",
        "unknown-cat",
        "size",
        "bbox-3",
        "bbox-neg",
        "bbox-str",
        "far",
        "no-id",
        "float-image-id",
        "str-id",
    ],
)
def test_errors_name_the_file_and_record(
    tmp_path: Path, images: list[dict[str, Any]], anns: list[dict[str, Any]], message: str
) -> None:
    """Every kind of bad record is an error naming the file and the record."""
    f = _bad_json(tmp_path, images, anns)
    with pytest.raises(DatasetError, match=rf"bad\.json.*{message}"):
        read_coco(f)


def test_small_overhang_is_clipped_zero_size_dropped(tmp_path: Path) -> None:
    """Half a pixel past the edge is clipped; a zero-width box is dropped; both counted."""
    anns = [coco_ann(1, 1, 1, [60, 40, 4.5, 8.5]), coco_ann(2, 1, 1, [5, 5, 0, 3])]
    ann = read_coco(make_coco(tmp_path, 1, anns))
    assert ann.boxes.tolist() == [[60, 40, 64, 48]]
    assert ann.report.clipped == 1 and ann.report.dropped_zero_area == 1
    assert ann.annotation_ids is not None and ann.annotation_ids.tolist() == [1]  # 2 dropped
    with pytest.raises(DatasetError):
        read_coco(tmp_path / "ann.json", strict=True)


def test_verify_images_false_touches_no_image(tmp_path: Path) -> None:
    """verify_images=False trusts width/height and needs no image file."""
    f = tmp_path / "a.json"
    f.write_text(json.dumps(coco_dict([IMG[0]], [coco_ann(1, 1, 1, [1, 1, 2, 2])])))
    with pytest.raises(DatasetError, match="not found"):
        read_coco(f)
    assert read_coco(f, verify_images=False).image_hw(0) == (48, 64)


def test_class_names_reorder_by_name(tmp_path: Path) -> None:
    """class_names picks the label order by category name and keeps the id mapping."""
    ann = read_coco(make_coco(tmp_path), class_names=["b", "a"])
    assert ann.class_names == ("b", "a") and ann.category_ids == (2, 1)
    assert ann.labels.tolist() == [0]
    with pytest.raises(DatasetError, match="each category name once"):
        read_coco(tmp_path / "ann.json", class_names=["a"])


def test_blood_cells_real_data(blood_coco: Path) -> None:
    """The real Roboflow export: 210/20/10 images, 4947/470/221 boxes, 3 classes by id."""
    got = {s: load_annotations(blood_coco, split=s) for s in ("train", "valid", "test")}
    assert [len(a) for a in got.values()] == [210, 20, 10]
    assert [a.num_boxes for a in got.values()] == [4947, 470, 221]
    for a in got.values():
        assert a.class_names == ("RBC-WBC", "rbc", "wbc")
        assert a.category_ids == (0, 1, 2)
        # Roboflow numbers annotations from 0 in each split; the ids are kept per box
        ids = a.annotation_ids
        assert ids is not None and int(ids.min()) == 0
        assert np.unique(ids).size == a.num_boxes


def test_boxes_agree_with_supervision(tmp_path: Path) -> None:
    """supervision reads the same boxes and classes from the same COCO file."""
    sv = pytest.importorskip("supervision")
    anns = [
        coco_ann(1, 1, 1, [1.5, 2.25, 10, 20]),
        coco_ann(2, 1, 3, [30, 4, 12.5, 8]),
        coco_ann(3, 2, 1, [0, 0, 64, 48]),
    ]
    f = make_coco(tmp_path, 3, anns, categories=[(1, "a"), (3, "c")])
    ours = read_coco(f)
    ds = sv.DetectionDataset.from_coco(str(tmp_path), str(f))
    by_name = {Path(p).name: d for p, _, d in ds}
    for i in range(len(ours)):
        d = by_name[ours.image_path(i).name]
        t = ours.target(i)
        np.testing.assert_allclose(
            np.asarray(d.xyxy, np.float32).reshape(-1, 4), t.boxes, atol=1e-4
        )
        assert [ds.classes[c] for c in d.class_id] == [ours.class_names[k] for k in t.labels]


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
        ann.category_ids,
        str(ann.report),
    )


@pytest.mark.parametrize(
    ("where", "split"),
    [("coco", "val"), ("coco/train", None), ("coco/train/_annotations.coco.json", None)],
)
def test_relative_absolute_symlinked_and_dot_paths_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, split: str | None
) -> None:
    """read_coco and load_annotations give one result however the file or folder is named."""
    src = make_annotations(
        tmp_path / "src", [[((1, 1, 9, 9), 0, FLAG_CROWD), ((60, 2, 64.5, 9), 1, 0)], []]
    )
    write_annotations({"train": src, "val": src.subset([1, 0])}, tmp_path / "ds" / "coco", "coco")
    (tmp_path / "link").symlink_to(tmp_path / "ds", target_is_directory=True)
    ds = tmp_path / "ds"
    first = read_coco(ds / where, split)
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in first.paths.tolist())
    want = _summary(first)
    monkeypatch.chdir(tmp_path)
    for name in (f"ds/{where}", str(ds / where), f"link/{where}", str(tmp_path / "link" / where)):
        assert _summary(read_coco(name, split)) == want, name
        assert _summary(load_annotations(name, split=split)) == want, name
    folder = ds / where if (ds / where).is_dir() else (ds / where).parent
    for cwd in (folder, tmp_path / "link" / folder.relative_to(ds)):
        monkeypatch.chdir(cwd)
        dot = "." if (ds / where).is_dir() else Path(where).name
        assert _summary(read_coco(dot, split)) == want, cwd
        assert _summary(load_annotations(dot, split=split)) == want, cwd


# -- every box that passes stays valid ------------------------------------------------------


def test_box_with_no_area_in_float32_is_a_counted_drop(tmp_path: Path) -> None:
    """A width of 1e-9 has area in float64 but none once stored: dropped, named, counted."""
    f = make_coco(
        tmp_path, 1, [coco_ann(1, 1, 1, [1, 1, 5, 5]), coco_ann(7, 1, 1, [1, 1, 1e-9, 5])]
    )
    ann = read_coco(f)
    assert ann.num_boxes == 1 and ann.report.dropped_zero_area == 1
    assert any(r"annotations[1] (id 7): zero-area" in d for d in ann.report.details)
    assert [len(t) for t in ann.targets()] == [1]
    with pytest.raises(DatasetError, match=r"ann\.json: annotations\[1\] \(id 7\): zero-area"):
        read_coco(f, strict=True)


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ({"bbox": "1234"}, r"malformed bbox '1234'"),
        ({"bbox": [True, 0, 5, 5]}, r"malformed bbox \[True, 0, 5, 5\]"),
        ({"bbox": {"x": 1, "y": 1, "w": 2, "h": 2}}, "malformed bbox"),
        ({"iscrowd": 0.5}, "'iscrowd' must be 0 or 1, got 0.5"),
        ({"iscrowd": 1.9}, "'iscrowd' must be 0 or 1, got 1.9"),
        ({"iscrowd": "1"}, "'iscrowd' must be 0 or 1, got '1'"),
        ({"iscrowd": 2}, "'iscrowd' must be 0 or 1, got 2"),
        ({"difficult": 0.5}, "'difficult' must be 0 or 1, got 0.5"),
        ({"truncated": "0"}, "'truncated' must be 0 or 1, got '0'"),
    ],
    ids=lambda v: str(v) if not isinstance(v, dict) else "-".join(map(str, v.values())),
)
@pytest.mark.parametrize("pieces", [False, True], ids=["whole", "in-pieces"])
def test_values_are_never_coerced(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    field: dict[str, Any],
    message: str,
    pieces: bool,
) -> None:
    """A string or boolean bbox and a non-0/1 flag are errors naming file, index and id."""
    import yolo2retina.formats.coco_json as coco_json

    anns = many_coco_anns(2, 20)
    anns[13].update(field)
    f = make_coco(tmp_path, 2, anns)
    if pieces:  # the file is then "large": its annotations are parsed piece by piece
        monkeypatch.setattr(coco_json, "CHUNK_BYTES", 256)
        monkeypatch.setattr(coco_json, "PIECE_BYTES", 256)
        assert f.stat().st_size > 2 * coco_json.CHUNK_BYTES
    with pytest.raises(DatasetError, match=rf"ann\.json: annotations\[13\] \(id 14\): {message}"):
        read_coco(f)


@pytest.mark.parametrize("key", ["id", "image_id", "category_id"])
@pytest.mark.parametrize("pieces", [False, True], ids=["whole", "in-pieces"])
def test_boolean_ids_are_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, pieces: bool
) -> None:
    """``"image_id": true`` names the record; it was read as image 1 (np.array([7, True]) is
    an int64 array)."""
    import yolo2retina.formats.coco_json as coco_json

    anns = many_coco_anns(2, 20)
    anns[13][key] = True
    f = make_coco(tmp_path, 2, anns)
    if pieces:
        monkeypatch.setattr(coco_json, "CHUNK_BYTES", 256)
        monkeypatch.setattr(coco_json, "PIECE_BYTES", 256)
    with pytest.raises(
        DatasetError,
        match=rf"ann\.json: annotations\[13\] \(id \w+\): missing or non-integer '{key}'",
    ):
        read_coco(f)


def test_flags_accept_json_booleans(tmp_path: Path) -> None:
    """iscrowd true/false mean 1/0 (the JSON spelling of a flag), nothing else is converted."""
    anns = [
        coco_ann(1, 1, 1, [1, 1, 5, 5], iscrowd=True),
        coco_ann(2, 1, 1, [1, 1, 6, 6], iscrowd=False),
    ]
    assert read_coco(make_coco(tmp_path, 1, anns)).flags.tolist() == [FLAG_CROWD, 0]


@pytest.mark.parametrize("value", [64.5, "64", True, 1e30])
def test_image_size_must_be_a_whole_number(tmp_path: Path, value: object) -> None:
    """An image width of 64.5, "64", true or 1e30 is an error, not truncated or cast."""
    f = _bad_json(tmp_path, [{**IMG[0], "width": value}], [])
    with pytest.raises(DatasetError, match=r"images\[0\]: 'width' is not a whole number"):
        read_coco(f)
    f.write_text(json.dumps(coco_dict([{**IMG[0], "width": 64.0}], [])))
    assert read_coco(f).image_hw(0) == (48, 64)  # 64.0 is a whole number


# -- files outside the root, and files that are not regular files, are never opened --------


def _never_open(monkeypatch: pytest.MonkeyPatch, paths: list[str]) -> None:
    """Fail the test when one of ``paths`` is opened: by the header reader, by Pillow, or
    by any ``open``/``os.open``."""
    import builtins

    import PIL.Image

    import yolo2retina.image as image

    def guard(real: Any) -> Any:
        def guarded(path: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(path, (str, os.PathLike)):
                assert not {str(path), os.path.realpath(path)} & set(paths), f"opened {path}"
            return real(path, *args, **kwargs)

        return guarded

    monkeypatch.setattr(image, "header_hw", guard(image.header_hw))
    monkeypatch.setattr(PIL.Image, "open", guard(PIL.Image.open))
    monkeypatch.setattr(builtins, "open", guard(builtins.open))
    monkeypatch.setattr(os, "open", guard(os.open))


@pytest.mark.parametrize("file_name", ["../outside.jpg", "/dev/stdin", "sub/../../outside.jpg"])
def test_names_outside_the_root_are_refused_before_any_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_name: str
) -> None:
    """An escaping or absolute file_name is refused without opening it (a /dev/stdin hangs)."""
    write_image(tmp_path / "outside.jpg")
    root = tmp_path / "root"
    write_image(root / "im0.jpg")
    f = root / "a.json"
    imgs = [IMG[0], {"id": 2, "file_name": file_name, "width": 64, "height": 48}]
    f.write_text(json.dumps(coco_dict(imgs, [])))
    _never_open(monkeypatch, [str(tmp_path / "outside.jpg"), "/dev/stdin"])
    with pytest.raises(
        DatasetError, match=r"images\[1\] \(id 2\): file_name .* allow_outside_root"
    ):
        read_coco(f)


@pytest.mark.parametrize("kind", ["fifo", "folder", "device"])
def test_images_that_are_not_regular_files_are_never_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """A FIFO (it would block), a folder or a device as file_name is refused unopened."""
    if kind == "fifo":
        os.mkfifo(tmp_path / "im1.jpg")
        name, bad = "im1.jpg", str(tmp_path / "im1.jpg")
    elif kind == "folder":
        (tmp_path / "im1.jpg").mkdir()
        name, bad = "im1.jpg", str(tmp_path / "im1.jpg")
    else:
        name, bad = "/dev/null", "/dev/null"
    write_image(tmp_path / "im0.jpg")
    f = tmp_path / "a.json"
    f.write_text(json.dumps(coco_dict([IMG[0], {**IMG[1], "file_name": name}], [])))
    _never_open(monkeypatch, [os.path.realpath(bad)])
    with pytest.raises(DatasetError, match=rf"images\[1\] \(id 2\): {bad}: not a regular file"):
        read_coco(f, allow_outside_root=True)


def test_one_file_named_by_two_images_is_an_error(tmp_path: Path) -> None:
    """Two image records with one file_name would double its boxes: both are named."""
    f = _bad_json(tmp_path, [IMG[0], {**IMG[1], "file_name": "im0.jpg"}], [])
    with pytest.raises(
        DatasetError, match=r"images\[1\] \(id 2\): .* same file as images\[0\] \(id 1\)"
    ):
        read_coco(f)


# -- no raw exception from bad input ---------------------------------------------------------


@pytest.mark.parametrize("name", ["im\x000.jpg", "im\ud800.jpg"], ids=["nul", "lone-surrogate"])
def test_file_names_no_system_can_open_name_the_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A NUL byte (ValueError from os.stat) or a lone surrogate is an error naming the image."""
    import sys

    monkeypatch.setitem(sys.modules, "orjson", None)  # orjson refuses lone surrogates itself
    f = _bad_json(tmp_path, [IMG[0], {**IMG[1], "file_name": name}], [])
    with pytest.raises(DatasetError, match=r"bad\.json: images\[1\] \(id 2\): file_name"):
        read_coco(f)
    with pytest.raises(DatasetError, match=r"bad\.json: images\[1\] \(id 2\): file_name"):
        read_coco(f, verify_images=False)


@pytest.mark.parametrize(
    "anns",
    [
        [{"id": 1, "image_id": 1, "caption": "a dog on a sofa"}],
        [
            {
                "image_id": 1,
                "file_name": "im0.png",
                "segments_info": [{"id": 3, "bbox": [1, 1, 2, 2]}],
            }
        ],
    ],
    ids=["captions", "panoptic"],
)
def test_files_without_boxes_are_refused_as_such(
    tmp_path: Path, anns: list[dict[str, Any]]
) -> None:
    """Captions and panoptic JSON say 'no bbox in this file', not 'malformed bbox None'."""
    f = tmp_path / "a.json"
    doc = coco_dict([IMG[0]], anns)
    if "caption" in anns[0]:
        del doc["categories"]  # captions files have none
    f.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"a\.json: no bbox in this file"):
        read_coco(f)


def test_one_annotation_without_bbox_is_named(tmp_path: Path) -> None:
    """In a detection file, the one annotation without a bbox is named."""
    f = _bad_json(
        tmp_path, IMG, [coco_ann(1, 1, 1, [1, 1, 2, 2]), {"id": 2, "image_id": 1, "category_id": 1}]
    )
    with pytest.raises(DatasetError, match=r"annotations\[1\] \(id 2\): no 'bbox'"):
        read_coco(f)


# -- property: any mutation of valid JSON gives a library error or valid targets ------------

#: JSON values that parse but sit on an edge: no area once stored as float32, on or past
#: the 16 px border, subnormal, huge, beyond int64, NaN and infinities (stdlib json reads
#: them; orjson refuses them).
_EDGY = [1e-320, -1e-320, 1e-9, 16.0000001, 15.99999999, 16, 17, 0, -0.0, -1, 1e-45, 3.4e38,
         1e308, 5e-324, 2**63, -(2**63), 2**64, 10**30, float("nan"), float("inf"), 0.5, 1.0]  # fmt: skip
#: Values of the wrong kind: strings, booleans, null, containers, paths that leave the
#: folder or name no regular file, a NUL byte, a lone surrogate.
_BAD: list[Any] = ["1234", "x", "", True, False, None, [], {}, [1, 2], [[1, 2, 3, 4]],
                   [1, 2, 3, 4, 5], "im0.jpg", "im1.jpg", "../im0.jpg", "/dev/null",
                   "/dev/stdin", "im0.jpg\x00", "\ud800", "im0.jpg/", "./im0.jpg"]  # fmt: skip


_pixel = st.floats(-1, 17, allow_nan=False)


@st.composite
def _coco_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid file: two 16x16 images, two categories, 0-4 annotations near the image."""
    images = [{"id": i + 1, "file_name": f"im{i}.jpg", "width": 16, "height": 16} for i in range(2)]
    anns = []
    for k in range(draw(st.integers(0, 4))):
        x, y = draw(_pixel), draw(_pixel)
        rec = {
            "id": k + 1,
            "image_id": draw(st.integers(1, 2)),
            "category_id": draw(st.integers(1, 2)),
            "bbox": [x, y, draw(st.floats(0, 18 - x)), draw(st.floats(0, 18 - y))],
        }
        for key in ("iscrowd", "difficult"):
            if draw(st.booleans()):
                rec[key] = draw(st.integers(0, 1))
        anns.append(rec)
    return {
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) below ``node``."""
    out: list[tuple[Any, Any]] = []
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for k, v in items:
        out.append((node, k))
        out += _slots(v)
    return out


_json_ops = st.lists(
    st.tuples(
        st.sampled_from(["replace", "replace", "drop", "duplicate", "nest-list", "nest-dict"]),
        st.integers(0, 10_000),
        st.one_of(st.sampled_from(_EDGY), st.sampled_from(_BAD)),
    ),
    max_size=3,
)


def _mutate_json(doc: dict[str, Any], ops: list[tuple[str, int, Any]]) -> dict[str, Any]:
    """Drop, duplicate, replace (swap the type) or nest one value per op."""
    for op, i, value in ops:
        slots = _slots(doc)
        if not slots:
            break
        parent, key = slots[i % len(slots)]
        if op == "drop":
            del parent[key]
        elif op == "duplicate":
            if isinstance(parent, list):
                parent.append(copy.deepcopy(parent[key]))
            else:
                parent[f"{key}_copy"] = copy.deepcopy(parent[key])
        elif op == "replace":
            parent[key] = copy.deepcopy(value)
        elif op == "nest-list":
            parent[key] = [parent[key]]
        else:
            parent[key] = {"value": parent[key]}
    return doc


def _damage(data: bytes, ops: list[tuple[str, int, bytes]]) -> bytes:
    """Truncate, flip, insert or delete bytes, insert invalid UTF-8, or repeat a key."""
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
        else:  # a key given twice: the parsers keep the last one
            data = data.replace(b'"bbox": ', b'"bbox": [0, 0, 1, 1], "bbox": ', 1)
    return data


_byte_ops = st.sampled_from([False, False, False, True]).flatmap(
    lambda damage: (
        st.lists(
            st.tuples(
                st.sampled_from(["truncate", "flip", "insert", "bad-utf8", "delete", "repeat-key"]),
                st.integers(0, 10_000),
                st.binary(min_size=1, max_size=4),
            ),
            min_size=1,
            max_size=2,
        )
        if damage
        else st.just([])
    )
)


@pytest.fixture(scope="module")
def tiny_coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 16x16 images; each example writes its own a.json beside them."""
    root = tmp_path_factory.mktemp("tiny_coco")
    write_image(root / "im0.jpg", (16, 16))
    write_image(root / "im1.jpg", (16, 16))
    return root


@settings(max_examples=150, deadline=None)
@given(
    doc=_coco_documents(),
    json_ops=_json_ops,
    byte_ops=_byte_ops,
    parser=st.sampled_from(["orjson", "json"]),
    pieces=st.booleans(),
    strict=st.booleans(),
    verify=st.sampled_from([True, True, False]),
    allow_outside=st.booleans(),
)
def test_mutated_json_gives_a_library_error_or_valid_targets(
    tiny_coco: Path,
    doc: dict[str, Any],
    json_ops: list[tuple[str, int, Any]],
    byte_ops: list[tuple[str, int, bytes]],
    parser: str,
    pieces: bool,
    strict: bool,
    verify: bool,
    allow_outside: bool,
) -> None:
    """Any mutation of COCO JSON (edgy or wrong-typed values, dropped, repeated or nested
    values, damaged bytes), with either parser, whole or in pieces, gives Yolo2RetinaError
    or Annotations whose every Target builds and lies inside its image."""
    import sys

    import yolo2retina.formats.coco_json as coco_json

    text = json.dumps(_mutate_json(doc, json_ops)).encode()
    f = tiny_coco / "a.json"
    f.write_bytes(_damage(text, byte_ops))
    modules = {"orjson": None} if parser == "json" else {}
    with (
        mock.patch.dict(sys.modules, modules),
        mock.patch.object(coco_json, "CHUNK_BYTES", 64 if pieces else coco_json.CHUNK_BYTES),
        mock.patch.object(coco_json, "PIECE_BYTES", 64 if pieces else coco_json.PIECE_BYTES),
        mock.patch.object(coco_json, "READ_BYTES", 32 if pieces else coco_json.READ_BYTES),
    ):
        _library_error_or_valid(
            lambda: read_coco(
                f, strict=strict, verify_images=verify, allow_outside_root=allow_outside
            )
        )


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


def test_read_coco_takes_the_path_keyword(tmp_path: Path) -> None:
    """The one filesystem path is called ``path`` in every reader (was ``source``)."""
    f = make_coco(tmp_path, 2, [coco_ann(1, 1, 1, [1, 1, 5, 5])])
    assert read_coco(path=f).num_boxes == 1
    with pytest.raises(TypeError):
        read_coco(source=f)  # type: ignore[call-arg]
