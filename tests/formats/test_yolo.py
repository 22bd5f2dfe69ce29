"""Tests for the YOLO reader (yolo2retina/formats/yolo.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile, ImageOps

from tests.conftest import make_yolo_dataset, write_image, write_labels
from yolo2retina.annotations import Annotations
from yolo2retina.errors import DatasetError, Yolo2RetinaError
from yolo2retina.formats.yolo import image_to_label_path, read_yolo
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


_PART = st.sampled_from(["images", "labels", "a", "b-c", "b", "images.x", ".", "x.y", "IMAGES"])


@given(
    st.lists(_PART.filter(lambda p: p != "."), min_size=0, max_size=5),
    st.sampled_from(["a.jpg", "a.b.JPG", ".jpg", "a.", "images.png", "x"]),
)
def test_label_path_of_is_image_to_label_path(folders: list[str], name: str) -> None:
    """The string mapping the reader uses (one per image, no Path) gives the same label path
    as image_to_label_path, for the absolute, normalized paths the reader builds."""
    from yolo2retina.formats.yolo_layout import label_path_of, label_paths

    image = os.path.join(os.sep, *folders, name)
    expected = str(image_to_label_path(image))
    assert label_path_of(image) == expected
    assert label_paths([image, image]) == [expected, expected]
    assert label_path_of("rel/images/a.jpg") == str(image_to_label_path("rel/images/a.jpg"))


@given(st.lists(st.lists(_PART, min_size=1, max_size=3), min_size=1, max_size=8))
def test_path_order_is_the_order_of_paths(parts: list[list[str]]) -> None:
    """Image paths are sorted as strings in the order Path objects sort in (part by part),
    so the image order (and the indices) of 0.1 are kept: ``b/c`` before ``b-c``."""
    from yolo2retina.formats.yolo_layout import path_order

    paths = [os.path.normpath(os.path.join(os.sep, *p, "i.jpg")) for p in parts]
    assert sorted(paths, key=path_order) == [str(p) for p in sorted(map(Path, paths))]


def test_images_in_nested_folders_keep_their_order(tmp_path: Path) -> None:
    """Images under ``b/`` come before ``b-c/`` (Path order), as they did before."""
    for sub in ("b-c", "b", "a"):
        write_image(tmp_path / "images" / "train" / sub / "x.jpg")
        write_labels(tmp_path / "labels" / "train" / sub / "x.txt", ["0 0.5 0.5 0.2 0.2"])
    (tmp_path / "classes.txt").write_text("a\n")
    ann = read_yolo(tmp_path, "train", cache=False)
    assert [Path(p).parent.name for p in ann.paths] == ["a", "b", "b-c"]


# --------------------------------------------------------------------------- data.yaml


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


# --------------------------------------------------------------------------- folder with a yaml


def test_folder_with_a_data_yaml_reads_the_yaml(tmp_path: Path) -> None:
    """read_yolo(folder) uses the folder's data.yaml (split=None means train), like load_annotations."""
    y = make_yolo_dataset(tmp_path, {"a": ["1 0.5 0.5 0.2 0.2"]}, names=("x", "y"))
    for split in ("train", None):
        a = read_yolo(tmp_path, split)
        assert a.class_names == ("x", "y") and a.labels.tolist() == [1]
        np.testing.assert_array_equal(a.boxes, read_yolo(y, "train").boxes)


# --------------------------------------------------------------------------- float32 storage


@pytest.mark.parametrize(
    "rows",
    [
        ["0 0.5 0.5 1e-9 0.1"],  # alone: the vectorised path must hand it over
        ["0 0.5 0.5 0.1 0.1", "0 0.5 0.5 1e-9 0.1"],
        ["0 0.5 0.5 0.1 0.1", "1 0.25 0.5 0.2500000001 0.5 0.25 0.6"],  # a 1e-10-wide polygon
        ["0 0.005 0.5 0.011 0.2", "0 0.5 0.5 0.1 1e-9"],  # beside a clip: row-by-row path
    ],
)
def test_box_without_area_in_float32_is_dropped_and_named(tmp_path: Path, rows: list[str]) -> None:
    """A box with area in float64 but none in float32 (the stored dtype) is a counted drop naming file:line."""
    y = make_yolo_dataset(tmp_path, {"a": rows})
    a = read_yolo(y, "train")
    assert a.num_boxes == len(rows) - 1 and a.report.dropped_zero_area == 1
    detail = next(d for d in a.report.details if "float32" in d)
    assert f"a.txt:{len(rows)}: zero-area box" in detail
    for i in range(len(a)):
        a.target(i)  # every kept box builds a Target


def test_strict_box_without_area_in_float32_is_an_error(tmp_path: Path) -> None:
    """With strict=True the float32-degenerate row is an error naming file:line."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.1 0.1", "0 0.5 0.5 1e-9 0.1"]})
    with pytest.raises(DatasetError, match=r"a\.txt:2: zero-area box .* float32"):
        read_yolo(y, "train", strict=True)


# --------------------------------------------------------------------------- same-stem images


def test_images_sharing_a_label_file_are_an_error_naming_both(tmp_path: Path) -> None:
    """a.jpg and a.png in one folder would both read a.txt: an error names both images."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.1 0.1"], "b": ["0 0.5 0.5 0.1 0.1"]})
    png = write_image(tmp_path / "images" / "train" / "a.png")
    with pytest.raises(DatasetError) as info:
        read_yolo(y, "train")
    (problem,) = info.value.problems
    assert str(png) in problem and str(tmp_path / "images" / "train" / "a.jpg") in problem
    assert str(tmp_path / "labels" / "train" / "a.txt") in problem


# --------------------------------------------------------------------------- duplicates by value


@pytest.mark.parametrize(
    "rows",
    [
        ["0 0.50 0.5 0.1 0.1", "0 0.5 0.5 0.1 0.1"],
        ["0 0.5 0.5 0.1 0.1", "0.0 5e-1 0.5 1e-1 0.10"],
        ["-0 0.5 0.5 0.1 0.1", "0 0.5 0.5 0.1 0.1"],
        ["0 0.005 0.5 0.011 0.2", "0 0.5 0.5 0.1 0.1", "0 0.500 0.5 0.1 0.1"],  # row-by-row path
    ],
)
def test_duplicates_written_differently_are_duplicates(tmp_path: Path, rows: list[str]) -> None:
    """Rows with the same values but different text count as duplicates, like exact repeats."""
    y = make_yolo_dataset(tmp_path, {"a": rows})
    a = read_yolo(y, "train")
    assert a.num_boxes == len(rows) - 1 and a.report.dropped_duplicates == 1
    n = len(rows)
    assert any(f"a.txt:{n}: exact duplicate of line {n - 1}" in d for d in a.report.details)


# --------------------------------------------------------------------------- bad bytes


def test_latin1_classes_txt_is_an_error_naming_it(tmp_path: Path) -> None:
    """A classes.txt that is not UTF-8 gives a DatasetError naming the file."""
    write_image(tmp_path / "a.jpg")
    write_labels(tmp_path / "a.txt", ["0 0.5 0.5 0.2 0.2"])
    (tmp_path / "classes.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8") as info:
        read_yolo(tmp_path, split=None)
    assert str(tmp_path / "classes.txt") in str(info.value)


def test_latin1_image_list_is_an_error_naming_it(tmp_path: Path) -> None:
    """A split's .txt image list that is not UTF-8 is a problem naming the list."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.1 0.1"]})
    lst = tmp_path / "train.txt"
    lst.write_bytes("images/train/caf\xe9.jpg\n".encode("latin-1"))
    y.write_text("train: train.txt\nnames: [a]\n")
    with pytest.raises(DatasetError, match="not UTF-8") as info:
        read_yolo(y, "train")
    assert str(lst) in str(info.value)


def test_error_messages_quote_at_most_a_few_hundred_characters(tmp_path: Path) -> None:
    """A 100k-character name, path or token is cut in the message, never quoted whole."""
    long = "x" * 100_000
    y = make_yolo_dataset(tmp_path, {"a": [f"0 0.5 0.5 0.1 {long}"]})
    with pytest.raises(DatasetError) as info:
        read_yolo(y, "train")
    assert "a.txt:1: 'xxx" in str(info.value) and len(str(info.value)) < 1000
    for text in (
        f"train: t\nnames: [{long}, {long}]\n",
        f"path: /nowhere/{long}\ntrain: t\nnames: [a]\n",
    ):
        y.write_text(text)
        with pytest.raises(DatasetError) as info:
            read_yolo(y, "train")
        assert len(str(info.value)) < 2000


# --------------------------------------------------------------------------- non-regular files


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_fifo_named_like_an_image_is_never_opened(tmp_path: Path, no_hang: None) -> None:
    """A FIFO called p.jpg in an image folder is a problem naming it; it is not opened."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.1 0.1"]})
    fifo = tmp_path / "images" / "train" / "p.jpg"
    os.mkfifo(fifo)
    with pytest.raises(DatasetError, match="not a regular file") as info:
        read_yolo(y, "train")
    assert str(fifo) in str(info.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_list_lines_naming_a_fifo_or_device_are_never_opened(tmp_path: Path, no_hang: None) -> None:
    """Image-list lines naming a FIFO or /dev/null are problems naming list:line."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.1 0.1"]})
    os.mkfifo(tmp_path / "pipe.jpg")
    lst = tmp_path / "train.txt"
    lst.write_text("images/train/a.jpg\npipe.jpg\n/dev/null\n")
    y.write_text("train: train.txt\nnames: [a]\n")
    with pytest.raises(DatasetError) as info:
        read_yolo(y, "train")
    assert [p.split(": ")[0] for p in info.value.problems] == [f"{lst}:2", f"{lst}:3"]
    assert all("not a regular file" in p for p in info.value.problems)


def test_list_lines_may_name_images_outside_the_dataset(tmp_path: Path) -> None:
    """Ultralytics and Darknet lists often hold paths elsewhere: regular image files are read."""
    y = make_yolo_dataset(tmp_path / "ds", {"a": ["0 0.5 0.5 0.1 0.1"]})
    outside = write_image(tmp_path / "pool" / "images" / "b.jpg")
    write_labels(tmp_path / "pool" / "labels" / "b.txt", ["1 0.5 0.5 0.2 0.2"])
    (tmp_path / "ds" / "train.txt").write_text(
        f"images/train/a.jpg\n../pool/images/b.jpg\n{outside}\n"
    )
    y.write_text("train: train.txt\nnames: [a, b]\n")
    a = read_yolo(y, "train")
    assert [Path(p).name for p in a.paths.tolist()] == ["a.jpg", "b.jpg"]
    assert a.labels.tolist() == [0, 1]


# --------------------------------------------------------------------------- property tests

#: Values that pass float64 checks but not float32 storage, non-finite, signed zero,
#: huge, and text that float() reads differently from a person (weighted towards numbers).
_SPECIAL_NUMBERS = [
    "nan", "inf", "-inf", "1e-9", "1e-9", "1e-7", "-0", "0", "1", "2", "-1", "1e308",
    "-1e308", "1e-320", "1e400", "0.50", "5e-1", "+.5", "1_0",
]  # fmt: skip
_SPECIAL_TOKENS = [*_SPECIAL_NUMBERS, "0x1", "0.5.5", "\u0661", "\x00", "é", ""]

_unit = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def _row(draw: st.DrawFn) -> list[str]:
    """A valid ``class cx cy w h`` row inside the image, as tokens."""
    w, h = draw(st.floats(1e-3, 1.0)), draw(st.floats(1e-3, 1.0))
    cx, cy = draw(st.floats(w / 2, 1 - w / 2)), draw(st.floats(h / 2, 1 - h / 2))
    return [str(draw(st.integers(0, 1))), repr(cx), repr(cy), repr(w), repr(h)]


def _mutate_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "insert", "delete"]))
        pos = draw(st.integers(0, len(out)))
        if op == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=3))
        elif out and op == "flip":
            out[min(pos, len(out) - 1)] ^= draw(st.integers(1, 255))
        elif out:
            del out[min(pos, len(out) - 1)]
    return bytes(out)


@st.composite
def label_file_text(draw: st.DrawFn) -> str:
    """A valid YOLO label file, then value, token and row mutations, odd separators, a BOM."""
    rows: list[list[str]] = draw(st.lists(_row(), max_size=4))
    for _ in range(draw(st.integers(0, 3))):
        if not rows:
            break
        i = draw(st.integers(0, len(rows) - 1))
        j = draw(st.integers(0, len(rows[i]) - 1)) if rows[i] else 0
        op = draw(
            st.sampled_from(["value", "value", "token", "drop", "dup_token", "dup_row", "polygon"])
        )
        if op == "value" and len(rows[i]) == 5:  # a coordinate: keeps the row's shape
            rows[i][draw(st.integers(1, 4))] = draw(st.sampled_from(_SPECIAL_NUMBERS))
        elif op == "token" and rows[i]:
            rows[i][j] = draw(st.sampled_from(_SPECIAL_TOKENS))
        elif op == "drop" and rows[i]:
            del rows[i][j]
        elif op == "dup_token" and rows[i]:
            rows[i].insert(j, rows[i][j])
        elif op == "dup_row":
            rows.insert(i, list(rows[i]))
        elif op == "polygon":
            rows[i] = rows[i][:1] + [repr(draw(_unit)) for _ in range(2 * draw(st.integers(3, 5)))]
    sep = draw(st.sampled_from(["\n", "\r\n", "\r", " \t\n", "\n\n"]))
    text = sep.join(draw(st.sampled_from([" ", "\t", "  "])).join(r) for r in rows)
    return ("\ufeff" if draw(st.booleans()) else "") + text


@st.composite
def label_file_bytes(draw: st.DrawFn) -> bytes:
    """:func:`label_file_text`, then byte flips, insertions (invalid UTF-8) and deletions."""
    return _mutate_bytes(draw, draw(label_file_text()).encode())


_VALID_YAML = "train: images/train\nval: images/train\nnc: 2\nnames: [a, b]\n"
_SPECIAL_YAML = [
    "&x [a, b]", "*x", "[[a]]", "{0: a, 1: a}", "{1: b, 0: a}", ".inf", "2.5", "2001-13-45",
    "!!binary x", "~", "''", "'\\0'", "~nosuchuser_y2r/x", "[a, b, c]", "{.nan: a}",
    "!!python/object:os.system x", "images/train/a.jpg", "/dev/null", "[images/train, x.txt]",
    "{a: 1}", "yes", "-1", "0x10", "'a\\x85b'", "[a, *y]", "&y [b]",
]  # fmt: skip


@st.composite
def data_yaml_bytes(draw: st.DrawFn) -> bytes:
    """A valid data.yaml, then value, line and byte mutations (Latin-1 sometimes)."""
    lines = _VALID_YAML.splitlines()
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["value", "drop", "dup", "path"]))
        if op == "value":
            key = lines[i].split(":")[0]
            lines[i] = f"{key}: {draw(st.sampled_from(_SPECIAL_YAML))}"
        elif op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        else:
            lines.insert(0, f"path: {draw(st.sampled_from(['.', 'nowhere', '~', '/nowhere/ds']))}")
    text = "\n".join(lines) + "\n"
    data = text.encode("latin-1", "replace") if draw(st.booleans()) else text.encode()
    return _mutate_bytes(draw, data)


@pytest.fixture(scope="module")
def tiny_yolo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 16x16 images in images/train; each example writes its own label files and yaml."""
    root = tmp_path_factory.mktemp("tiny_yolo")
    write_image(root / "images" / "train" / "a.jpg", (16, 16))
    write_image(root / "images" / "train" / "b.png", (16, 12))
    (root / "labels" / "train").mkdir(parents=True)
    return root


def _library_error_or_valid(load: Callable[[], Annotations]) -> None:
    try:
        ann = load()
    except Yolo2RetinaError:
        return
    for i in range(len(ann)):
        ann.target(i)


def _read_tiny(root: Path, a: bytes, b: bytes, strict: bool) -> None:
    (root / "labels" / "train" / "a.txt").write_bytes(a)
    (root / "labels" / "train" / "b.txt").write_bytes(b)
    (root / "data.yaml").write_text(_VALID_YAML)
    _library_error_or_valid(lambda: read_yolo(root / "data.yaml", "train", strict=strict))


@settings(max_examples=120, deadline=None)
@given(a=label_file_text(), b=label_file_text(), strict=st.booleans())
@example(a="0 0.5 0.5 1e-9 0.1", b="", strict=False)  # zero-area only in float32
@example(a="1 0.5 0.5 0.1 1e-9\n0 0.5 0.5 0.2 0.2", b="0 0.5 0.5 0.2 0.2", strict=True)
def test_mutated_label_rows_give_a_library_error_or_valid_targets(
    tiny_yolo: Path, a: str, b: str, strict: bool
) -> None:
    """Any value, token or row mutation gives Yolo2RetinaError or Annotations whose every Target builds."""
    _read_tiny(tiny_yolo, a.encode(), b.encode(), strict)


@settings(max_examples=80, deadline=None)
@given(a=label_file_bytes(), b=label_file_bytes(), strict=st.booleans())
def test_mutated_label_bytes_give_a_library_error_or_valid_targets(
    tiny_yolo: Path, a: bytes, b: bytes, strict: bool
) -> None:
    """Byte-level damage (invalid UTF-8, NUL, flipped bits) gives a library error or valid Targets."""
    _read_tiny(tiny_yolo, a, b, strict)


@settings(max_examples=120, deadline=None)
@given(text=data_yaml_bytes())
def test_mutated_data_yaml_gives_a_library_error_or_valid_targets(
    tiny_yolo: Path, text: bytes
) -> None:
    """Any mutation of data.yaml gives Yolo2RetinaError or Annotations whose every Target builds."""
    (tiny_yolo / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (tiny_yolo / "labels" / "train" / "b.txt").write_text("1 0.25 0.25 0.2 0.2\n")
    (tiny_yolo / "data.yaml").write_bytes(text)
    _library_error_or_valid(lambda: read_yolo(tiny_yolo / "data.yaml", "train"))


# --------------------------------------------------------------------------- one extension list


@pytest.mark.parametrize("name", ["a.bmp", "a.JPEG", "a.Webp", "a.tiff"])
def test_flat_folder_with_any_image_suffix_is_detected_as_yolo(tmp_path: Path, name: str) -> None:
    """A .txt label beside an image of any image.IMAGE_EXTENSIONS suffix (any case) makes a
    flat folder YOLO, as the reader then lists that image."""
    from yolo2retina.formats import detect_format

    write_image(tmp_path / name)
    write_labels(tmp_path / "a.txt", ["0 0.5 0.5 0.2 0.2"])
    (tmp_path / "classes.txt").write_text("mite\n")
    assert detect_format(tmp_path) == "yolo"
    ann = read_yolo(path=tmp_path)
    assert len(ann) == 1 and ann.image_path(0).name == name and ann.num_boxes == 1
