"""Tests for data.yaml parsing (yolo2retina/formats/data_yaml.py)."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from tests.conftest import make_yolo_dataset, write_image, write_labels
from yolo2retina.errors import DatasetError
from yolo2retina.formats.yolo import load_data_yaml, read_yolo


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


def test_latin1_data_yaml_is_an_error_naming_it(tmp_path: Path) -> None:
    """A data.yaml that is not UTF-8 gives a DatasetError naming the file, not UnicodeDecodeError."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.1 0.1"]})
    y.write_bytes("train: images/train\nnames: [caf\xe9]\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not UTF-8") as info:
        read_yolo(y, "train")
    assert str(y) in str(info.value)


def _alias_bomb(levels: int = 8) -> str:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    prev = "a"
    for k in range(levels - 1):
        name = f"l{k}"
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
        prev = name
    return "\n".join(lines) + f"\ntrain: images/train\nnames: [*{prev}]\n"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (_alias_bomb(), "alias bomb"),
        ("train: images/train\nnames: &n [a, *n]\n", "refers to itself"),
        ("train: images/train\nnames: " + "[" * 1000 + "]" * 1000 + "\n", "nested too deeply"),
        ("train: images/train\nnc: .inf\nnames: [a]\n", "'nc' must be an integer"),
        ("train: images/train\nnc: 1.5\nnames: [a]\n", "'nc' must be an integer"),
        ("train: images/train\nnames: [2001-13-45]\n", "invalid YAML value"),
        ("train: images/train\nnames: [[a, b]]\n", "is not a string"),
        ("train: images/train\nnames: {.inf: a}\n", "keys must be integer"),
        ("path: ~nosuchuser_y2r/ds\ntrain: images/train\nnames: [a]\n", "does not exist"),
    ],
)
def test_hostile_yaml_is_a_dataset_error(tmp_path: Path, text: str, match: str) -> None:
    """Alias bombs, self-reference, deep nesting and odd values give a DatasetError naming the yaml."""
    y = tmp_path / "data.yaml"
    y.write_text(text)
    with pytest.raises(DatasetError, match=match) as info:
        load_data_yaml(y)
    assert str(y) in str(info.value) and len(str(info.value)) < 2000


def test_data_yaml_is_frozen(tmp_path: Path) -> None:
    """DataYaml is a frozen attrs class: a parsed yaml cannot be changed by accident."""
    y = make_yolo_dataset(tmp_path, {"a": ["0 0.5 0.5 0.1 0.1"]})
    dy = load_data_yaml(y)
    assert attrs.has(type(dy))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        dy.root = tmp_path  # type: ignore[misc]
    assert attrs.evolve(dy, notes=["x"]).notes == ["x"] and dy.notes == []


@pytest.mark.parametrize(
    ("asked", "found"),
    [
        (None, "train"),
        ("train", "train"),
        ("valid", "val"),
        ("validation", "val"),
        ("test", "test"),
    ],
)
def test_resolve_split_finds_aliases(tmp_path: Path, asked: str | None, found: str) -> None:
    """None means train, valid/validation find val; an unknown split comes back as asked."""
    y = tmp_path / "data.yaml"
    y.write_text("train: images/train\nval: images/val\nnames: [a]\n")
    assert load_data_yaml(path=y).resolve_split(asked) == found
