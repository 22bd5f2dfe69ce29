"""Tests for the YOLO reader (yolo2retina/formats/yolo.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile, ImageOps

from tests.conftest import make_yolo_dataset, write_image, write_labels
from yolo2retina.errors import DatasetError
from yolo2retina.formats.yolo import image_to_label_path, load_data_yaml, read_yolo
from yolo2retina.target import Target

# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("image", "label"),
    [
        ("/d/images/train/a.jpg", "/d/labels/train/a.txt"),
        ("/d/images/train/images_0012.jpg", "/d/labels/train/images_0012.txt"),
        ("/images/x/images/train/a.png", "/images/x/labels/train/a.txt"),
        ("/d/my_images/a.jpeg", "/d/my_images/a.txt"),
        ("rel/images/a.b.JPG", "rel/labels/a.b.txt"),
    ],
)
def test_image_to_label_path(image: str, label: str) -> None:
    """Only the LAST folder named exactly 'images' becomes 'labels'; the extension becomes .txt."""
    assert image_to_label_path(image).as_posix() == label


# --------------------------------------------------------------------------- data.yaml


def _two_split_dataset(root: Path) -> None:
    for split in ("train", "val"):
        write_image(root / "images" / split / f"{split}1.jpg")
        write_labels(root / "labels" / split / f"{split}1.txt", ["0 0.5 0.5 0.2 0.2"])


def test_yaml_path_relative_to_yaml_and_inline_comments(tmp_path: Path) -> None:
    """A relative `path` resolves against the yaml's folder; inline comments are fine."""
    _two_split_dataset(tmp_path / "ds")
    y = tmp_path / "data.yaml"
    y.write_text(
        "path: ds  # root\ntrain: images/train # t\nval: images/val\nnc: 1 # one\nnames: ['mite'] # x\n"
    )
    a = read_yolo(y, "val")
    assert len(a) == 1 and a.class_names == ("mite",)
    assert a.image_path(0).name == "val1.jpg"


def test_yaml_absolute_path(tmp_path: Path) -> None:
    """An absolute `path` is used as is, from any working directory."""
    _two_split_dataset(tmp_path / "ds")
    y = tmp_path / "elsewhere" / "data.yaml"
    y.parent.mkdir()
    y.write_text(f"path: {tmp_path / 'ds'}\ntrain: images/train\nnames: [a]\n")
    assert len(read_yolo(y, "train")) == 1


def test_yaml_missing_path_found_beside_yaml_is_noted(tmp_path: Path) -> None:
    """A `path` from another machine falls back to the same-named folder beside the yaml, with a note."""
    _two_split_dataset(tmp_path / "dataset_1")
    y = tmp_path / "data.yaml"
    y.write_text("path: /home/someone/yolo/dataset_1/\ntrain: images/train\nnames: [a]\n")
    a = read_yolo(y, "train")
    assert len(a) == 1
    assert any("does not exist" in d and "dataset_1" in d for d in a.report.details)


def test_yaml_missing_path_error_says_where_it_looked(tmp_path: Path) -> None:
    """When the dataset cannot be found, the error names `path` and every place tried."""
    y = tmp_path / "data.yaml"
    y.write_text("path: /nowhere/ds\ntrain: images/train\nnames: [a]\n")
    with pytest.raises(DatasetError) as info:
        read_yolo(y, "train")
    msg = str(info.value)
    assert "/nowhere/ds" in msg and "Looked in" in msg and str(tmp_path / "ds") in msg


def test_yaml_split_as_txt_list_and_list_of_entries(tmp_path: Path) -> None:
    """A split may be a .txt list of images, or a list mixing folders and lists."""
    _two_split_dataset(tmp_path)
    write_image(tmp_path / "images" / "extra" / "e1.jpg")
    (tmp_path / "train.txt").write_text("./images/train/train1.jpg\n\nimages/val/val1.jpg\n")
    y = tmp_path / "data.yaml"
    y.write_text("train: train.txt\nval: [images/val, images/extra]\nnames: {0: a}\n")
    assert sorted(Path(p).name for p in read_yolo(y, "train").paths) == ["train1.jpg", "val1.jpg"]
    va = read_yolo(y, "val")
    assert sorted(Path(p).name for p in va.paths) == ["e1.jpg", "val1.jpg"]
    assert va.report.missing_label_files == 1  # e1 has no label file: kept as background


def test_yaml_roboflow_relative_split_paths(tmp_path: Path) -> None:
    """Roboflow's `train: ../train/images` works with the yaml inside the dataset folder."""
    root = tmp_path / "export"
    write_image(root / "train" / "images" / "a_jpg.rf.1.jpg")
    write_labels(root / "train" / "labels" / "a_jpg.rf.1.txt", ["1 0.5 0.5 0.5 0.5"])
    y = root / "data.yaml"
    y.write_text("train: ../train/images\nval: ../valid/images\nnc: 2\nnames: ['x', 'y']\n")
    a = read_yolo(y, "train")
    assert len(a) == 1 and a.labels.tolist() == [1]


@pytest.mark.parametrize(
    ("names", "expected"),
    [("['a', 'b']", ("a", "b")), ("{0: a, 1: b}", ("a", "b")), ("{1: b, 0: a}", ("a", "b"))],
)
def test_yaml_names_list_or_dict(tmp_path: Path, names: str, expected: tuple[str, ...]) -> None:
    """`names` may be a list or an {id: name} mapping in any key order."""
    y = tmp_path / "data.yaml"
    y.write_text(f"train: images\nnames: {names}\n")
    assert tuple(load_data_yaml(y).class_names) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("train: images\nnc: 3\nnames: [a, b]\n", "nc is 3 but 'names' lists 2"),
        ("train: images\nnames: {0: a, 2: b}\n", "ids must be 0..1"),
        ("train: images\n", "no 'names'"),
        ("train: [unclosed\n", "invalid YAML"),
    ],
)
def test_yaml_errors(tmp_path: Path, text: str, match: str) -> None:
    """A bad data.yaml gives an error that names the file."""
    y = tmp_path / "data.yaml"
    y.write_text(text)
    with pytest.raises(DatasetError, match=match) as info:
        load_data_yaml(y)
    assert str(y) in str(info.value)


def test_unknown_split_lists_available(tmp_path: Path) -> None:
    """Asking for a split the yaml lacks names the splits it has."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.1 0.1"]})
    with pytest.raises(DatasetError, match=r"no split 'test'.*train"):
        read_yolo(y, "test")


# --------------------------------------------------------------------------- layouts


def test_darknet_flat_layout_with_classes_txt(tmp_path: Path) -> None:
    """Images with .txt beside them and a classes.txt load without any yaml."""
    write_image(tmp_path / "img1.png", (100, 50))
    write_labels(tmp_path / "img1.txt", ["1 0.5 0.5 0.2 0.4"])
    write_image(tmp_path / "img2.jpg", (100, 50))
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    a = read_yolo(tmp_path, split=None)
    assert a.class_names == ("cat", "dog") and len(a) == 2
    np.testing.assert_allclose(a.target(0).boxes, [[40, 15, 60, 35]], atol=1e-4)
    assert len(a.target(1)) == 0


def test_folder_without_class_names_asks_for_them(tmp_path: Path) -> None:
    """A folder with neither yaml nor classes.txt raises, and class_names= fixes it."""
    write_image(tmp_path / "a.jpg")
    write_labels(tmp_path / "a.txt", ["0 0.5 0.5 0.2 0.2"])
    with pytest.raises(DatasetError, match="class_names"):
        read_yolo(tmp_path, split=None)
    assert read_yolo(tmp_path, split=None, class_names=["m"]).num_boxes == 1


def test_ultralytics_folder_without_yaml(tmp_path: Path) -> None:
    """A folder with images/<split> and labels/<split> loads the split asked for."""
    make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.2 0.2"]}, split="val")
    (tmp_path / "data.yaml").unlink()
    (tmp_path / "classes.txt").write_text("a\nb\n")
    assert read_yolo(tmp_path, "val").num_boxes == 1


# --------------------------------------------------------------------------- rows


def test_rows_tolerate_blank_lines_crlf_trailing_spaces_no_final_newline(tmp_path: Path) -> None:
    """Whitespace noise that real exports carry is accepted."""
    text = "\r\n0 0.5 0.5 0.2 0.2   \r\n\r\n1 0.25 0.25 0.1 0.1\t"
    y = make_yolo_dataset(tmp_path, {"a": text})
    a = read_yolo(y, "train")
    assert a.labels.tolist() == [0, 1]


def test_polygon_rows_become_enclosing_boxes_mixed_with_boxes(tmp_path: Path) -> None:
    """Segmentation polygons become their enclosing box; a file may mix both row kinds."""
    rows = ["0 0.1 0.2 0.5 0.1 0.3 0.9 0.2 0.5", "1 0.5 0.5 0.25 0.5"]
    y = make_yolo_dataset(tmp_path, {"a": rows}, size_wh=(100, 200))
    t = read_yolo(y, "train").target(0)
    np.testing.assert_allclose(t.boxes, [[10, 20, 50, 180], [37.5, 50, 62.5, 150]], atol=1e-4)
    assert t.labels.tolist() == [0, 1]


def test_cache_files_are_ignored_and_counted(tmp_path: Path) -> None:
    """Ultralytics *.cache files in labels/ are not label files."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.2 0.2"]})
    (tmp_path / "labels" / "train.cache").write_bytes(b"\x00binary")
    (tmp_path / "labels" / "train" / "x.cache").write_bytes(b"\x00binary")
    a = read_yolo(y, "train")
    assert a.num_boxes == 1 and a.report.skipped_files == 1  # labels/train/x.cache is in the split


def test_background_images_are_kept(tmp_path: Path) -> None:
    """An empty or missing label file gives an empty Target; the image stays and is counted."""
    y = make_yolo_dataset(tmp_path, {"a": "", "b": None, "c": ["0 0.5 0.5 0.2 0.2"]})
    a = read_yolo(y, "train")
    assert len(a) == 3 and [len(a.target(i)) for i in range(3)] == [0, 0, 1]
    assert a.report.background_images == 2 and a.report.missing_label_files == 1


def test_sizes_come_from_headers_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading annotations never decodes pixels."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.2 0.2"], "b": ""}, size_wh=(90, 30))

    def boom(self: object) -> None:
        raise AssertionError("image decoded while reading annotations")

    monkeypatch.setattr(ImageFile.ImageFile, "load", boom)
    monkeypatch.setattr(Image.Image, "load", boom)
    a = read_yolo(y, "train")
    assert a.image_hw(0) == (30, 90)


# Inverse of each EXIF orientation: applied to the upright picture, it gives the stored pixels.
_STORE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_box_lands_on_object(tmp_path: Path, orientation: int) -> None:
    """For all 8 EXIF orientations, labels are denormalized in the upright frame and hit the object."""
    from yolo2retina.dataset import YoloDataset

    upright = Image.new("RGB", (120, 80), (255, 255, 255))
    upright.paste((255, 0, 0), (10, 20, 40, 30))  # red object: x 10..40, y 20..30 (upright)
    stored = upright if _STORE[orientation] is None else upright.transpose(_STORE[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    img_path = tmp_path / "images" / "train" / "a.png"
    img_path.parent.mkdir(parents=True)
    stored.save(img_path, exif=exif.tobytes())
    # sanity: PIL's own exif_transpose agrees with our stored picture
    assert np.array_equal(
        np.asarray(ImageOps.exif_transpose(Image.open(img_path))), np.asarray(upright)
    )
    write_labels(
        tmp_path / "labels" / "train" / "a.txt", [f"0 {25 / 120} {25 / 80} {30 / 120} {10 / 80}"]
    )
    (tmp_path / "data.yaml").write_text("train: images/train\nnames: [obj]\n")
    ds = YoloDataset(tmp_path / "data.yaml", "train")
    assert ds.image_hw(0) == (80, 120)
    image, target = ds[0]
    np.testing.assert_allclose(target["boxes"].numpy(), [[10, 20, 40, 30]], atol=1e-4)
    x1, y1, x2, y2 = (int(v) for v in target["boxes"][0])
    patch = image[:, y1:y2, x1:x2]
    assert image.shape == (3, 80, 120)
    assert bool((patch[0] > 0.99).all() and (patch[1] < 0.01).all())  # all red inside the box
    assert float(image[1].mean()) > 0.9  # and white outside


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("0 0.5 0.5 0.2", "expected 5 values (class cx cy w h) or a polygon"),
        ("0 0.5 0.5 0.2 0.2 0.3", "got 6"),
        ("0 0.5 abc 0.2 0.2", "'abc' is not a number"),
        ("0 0.5 nan 0.2 0.2", "NaN or infinite"),
        ("0 0.5 0.5 inf 0.2", "NaN or infinite"),
        ("2 0.5 0.5 0.2 0.2", "class id 2 >= number of classes 2"),
        ("-1 0.5 0.5 0.2 0.2", "not a non-negative integer"),
        ("0.5 0.5 0.5 0.2 0.2", "not a non-negative integer"),
        ("0 1.2 0.5 0.2 0.2", "outside [0, 1] by more than 0.01"),
        ("0 0.5 0.5 0 0.2", "zero-area box"),
        ("0 0.5 0.5 -0.1 0.2", "zero-area box"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    """Each bad row is reported as file:line: message."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.1 0.1", row]})
    with pytest.raises(DatasetError) as info:
        read_yolo(y, "train")
    label = tmp_path / "labels" / "train" / "a.txt"
    assert f"{label}:2: " in str(info.value)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_label_file_without_image_is_an_error(tmp_path: Path) -> None:
    """An orphan label file is reported by name."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.1 0.1"]})
    orphan = write_labels(tmp_path / "labels" / "train" / "ghost.txt", ["0 0.5 0.5 0.1 0.1"])
    with pytest.raises(DatasetError, match="label file has no image") as info:
        read_yolo(y, "train")
    assert str(orphan) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\xff\xd8\xff\xe0garbage"])
def test_corrupt_image_is_an_error(tmp_path: Path, content: bytes) -> None:
    """An unreadable image is reported with its path."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.1 0.1"]})
    bad = tmp_path / "images" / "train" / "broken.jpg"
    bad.write_bytes(content)
    with pytest.raises(DatasetError) as info:
        read_yolo(y, "train")
    assert str(bad) in str(info.value)


def test_all_problems_in_one_error_capped(tmp_path: Path) -> None:
    """One exception lists every problem (capped with '... and N more'); .problems has them all."""
    rows = [f"0 0.5 0.5 0.1 x{i}" for i in range(30)]
    y = make_yolo_dataset(tmp_path, {"a": rows, "b": ["5 0.5 0.5 0.1 0.1"]})
    with pytest.raises(DatasetError) as info:
        read_yolo(y, "train")
    assert len(info.value.problems) == 31
    assert "... and 11 more" in str(info.value)
    assert "b.txt:1: class id 5" in "\n".join(info.value.problems)


# --------------------------------------------------------------------------- policy


def test_clip_within_tolerance_is_counted(tmp_path: Path) -> None:
    """A box up to 1% outside is clipped into the image and counted with its file:line."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.05 0.5 0.11 0.2"]}, size_wh=(100, 100))
    a = read_yolo(y, "train")
    np.testing.assert_allclose(a.boxes, [[0, 40, 10.5, 60]], atol=1e-4)
    assert a.report.clipped == 1 and "a.txt:1" in a.report.details[0]
    assert "clipped:             1" in str(a.report)


def test_zero_area_after_clipping_is_dropped_and_counted(tmp_path: Path) -> None:
    """A sliver entirely outside (within tolerance) has no area after clipping: dropped and counted."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 1.005 0.5 0.005 0.2", "0 0.5 0.5 0.1 0.1"]})
    a = read_yolo(y, "train")
    assert a.num_boxes == 1 and a.report.dropped_zero_area == 1


def test_exact_duplicates_are_dropped_and_counted(tmp_path: Path) -> None:
    """An exact duplicate row is dropped once, and the report says which line it repeated."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.1 0.1", "0 0.5 0.5 0.1 0.1"]})
    a = read_yolo(y, "train")
    assert a.num_boxes == 1 and a.report.dropped_duplicates == 1
    assert "a.txt:2: exact duplicate of line 1" in a.report.details[0]


def test_strict_turns_clips_and_drops_into_errors(tmp_path: Path) -> None:
    """With strict=True a clip or a drop is an error naming the line."""
    rows = ["0 0.05 0.5 0.11 0.2", "0 0.5 0.5 0.1 0.1", "0 0.5 0.5 0.1 0.1"]
    y = make_yolo_dataset(tmp_path, {"a": rows})
    with pytest.raises(DatasetError) as info:
        read_yolo(y, "train", strict=True)
    text = "\n".join(info.value.problems)
    assert "a.txt:1: box slightly outside" in text and "a.txt:3: exact duplicate" in text


def test_users_files_are_never_modified(tmp_path: Path) -> None:
    """Reading (with clips and drops) leaves every file byte-identical."""
    rows = ["0 0.05 0.5 0.11 0.2", "0 0.5 0.5 0.1 0.1", "0 0.5 0.5 0.1 0.1"]
    y = make_yolo_dataset(tmp_path, {"a": rows})
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    read_yolo(y, "train")
    assert before == {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- round trip

coord = st.floats(0.05, 0.95, allow_nan=False)
size = st.floats(0.01, 0.1, allow_nan=False)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 2), coord, coord, size, size), min_size=0, max_size=8, unique=True
    ),
    wh=st.tuples(st.integers(16, 4000), st.integers(16, 4000)),
)
def test_round_trip_yolo_target_yolo(
    rows: list[tuple[int, float, float, float, float]], wh: tuple[int, int]
) -> None:
    """YOLO normalized -> Target -> YOLO normalized reproduces the rows."""
    arr = np.array([r[1:] for r in rows], dtype=np.float64).reshape(-1, 4)
    labels = [r[0] for r in rows]
    t = Target.from_yolo(arr, labels, image_wh=wh)
    back = t.to_yolo(wh)
    # float32 pixel storage: error is bounded by float32 eps relative to the image size
    np.testing.assert_allclose(back, arr, atol=1e-6 * 4, rtol=0)
    assert t.labels.tolist() == labels


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 1), coord, coord, size, size), min_size=1, max_size=5, unique=True
    )
)
def test_round_trip_through_reader(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[int, float, float, float, float]]
) -> None:
    """Rows written to a label file come back from read_yolo as the same normalized boxes."""
    root = tmp_path_factory.mktemp("rt")
    text = [f"{c} {cx!r} {cy!r} {w!r} {h!r}" for c, cx, cy, w, h in rows]
    y = make_yolo_dataset(root, {"a": text}, size_wh=(640, 480))
    a = read_yolo(y, "train")
    np.testing.assert_allclose(
        a.target(0).to_yolo((640, 480)), np.array([r[1:] for r in rows]), atol=1e-6
    )


# --------------------------------------------------------------------------- real data


def _independent_boxes(label_file: Path, image_file: Path) -> np.ndarray:
    w, h = Image.open(image_file).size
    out = []
    for line in label_file.read_text().splitlines():
        if line.strip():
            _, cx, cy, bw, bh = (float(v) for v in line.split())
            out.append([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
    return np.array(out).reshape(-1, 4)


def test_real_varroa_export(varroa_yaml: Path) -> None:
    """The real varroa export: 34 + 6 images, 759 + 269 boxes, every box equal to a hand computation."""
    counts = {}
    for split in ("train", "val"):
        a = read_yolo(varroa_yaml, split)
        counts[split] = (len(a), a.num_boxes)
        assert a.class_names == ("varroa",)
        for i in range(len(a)):
            img = a.image_path(i)
            expected = _independent_boxes(image_to_label_path(img), img)
            np.testing.assert_allclose(a.target(i).boxes, expected, atol=1e-3)
    assert counts == {"train": (34, 759), "val": (6, 269)}


def test_classes_txt_with_duplicate_names_is_an_error(tmp_path: Path) -> None:
    """A classes.txt that lists a name twice is refused, naming the file."""
    write_image(tmp_path / "a.jpg")
    write_labels(tmp_path / "a.txt", ["0 0.5 0.5 0.2 0.2"])
    (tmp_path / "classes.txt").write_text("mite\nmite\n")
    with pytest.raises(DatasetError, match="duplicate class names") as info:
        read_yolo(tmp_path, split=None)
    assert str(tmp_path / "classes.txt") in str(info.value)
