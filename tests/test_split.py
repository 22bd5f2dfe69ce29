"""Tests for deterministic, leak-free splits (yolo2retina/split.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import make_yolo_dataset
from yolo2retina.errors import ConfigError
from yolo2retina.formats import load_annotations
from yolo2retina.split import group_key, split_dataset, split_groups


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("a/img-7_png.rf.0dfdf93f7a11301938f374019a4b33b2.jpg", "img-7_png"),
        ("b/img-7_png.rf.83bcf24c878dc9206957fcc926ea79e0.jpg", "img-7_png"),
        ("c/photo.rf.jpg", "photo.rf"),
        ("d/IMG_0001.JPG", "IMG_0001"),
    ],
)
def test_group_key(name: str, key: str) -> None:
    """Roboflow copies of one source share a key; other files are their own stem."""
    assert group_key(name) == key


@settings(max_examples=40, deadline=None)
@given(
    stems=st.lists(st.sampled_from([f"s{i}" for i in range(12)]), min_size=1, max_size=40),
    seed=st.integers(0, 3),
)
def test_copies_never_leak_and_split_is_deterministic(stems: list[str], seed: int) -> None:
    """Every image lands in one split, copies of a source together, same seed same result."""
    paths = [f"/d/{s}_jpg.rf.{i:032x}.jpg" for i, s in enumerate(stems)]
    parts = split_groups(paths, (0.8, 0.1, 0.1), seed)
    assert parts == split_groups(list(reversed(paths)), (0.8, 0.1, 0.1), seed)
    assert sorted(p for part in parts for p in part) == sorted(set(paths))
    owners: dict[str, int] = {}
    for k, part in enumerate(parts):
        for p in part:
            assert owners.setdefault(group_key(p), k) == k


def test_ratios_are_followed_for_single_images() -> None:
    """100 independent images split 80/10/10."""
    parts = split_groups([f"/d/{i}.jpg" for i in range(100)], (0.8, 0.1, 0.1), seed=0)
    assert [len(p) for p in parts] == [80, 10, 10]
    other = split_groups([f"/d/{i}.jpg" for i in range(100)], (0.8, 0.1, 0.1), seed=1)
    assert other != parts


@pytest.mark.parametrize("ratios", [(0.5, 0.6), (1.0,), (0.5, -0.5, 1.0), (0.2, 0.2, 0.2, 0.4)])
def test_bad_ratios(ratios: tuple[float, ...]) -> None:
    """Ratios must be 2 or 3 non-negative numbers summing to 1."""
    with pytest.raises(ConfigError):
        split_groups(["a.jpg"], ratios)


def test_split_dataset_moves_nothing(tmp_path: Path) -> None:
    """The new data.yaml loads the same images; no source file moves."""
    y = make_yolo_dataset(tmp_path / "ds", {f"im{i}": ["0 0.5 0.5 0.2 0.2"] for i in range(6)})
    before = sorted(p for p in (tmp_path / "ds").rglob("*"))
    res = split_dataset(y, tmp_path / "out", ratios=(0.5, 0.5), seed=3)
    assert sorted(p for p in (tmp_path / "ds").rglob("*")) == before
    assert res.data_yaml is not None and res.counts == {"train": 3, "val": 3}
    tr = load_annotations(res.data_yaml, split="train")
    va = load_annotations(res.data_yaml, split="val")
    assert len(tr) + len(va) == 6 and not set(tr.paths) & set(va.paths)
    assert tr.num_boxes == 3 and tr.class_names == ("a", "b")


def test_split_options_are_keyword_only(tmp_path: Path) -> None:
    """split_dataset(path, dst, (0.5, 0.5), 3) used to take ratios and seed by position; they
    are keywords now, and the dataset parameter is `path` (was `src`)."""
    y = make_yolo_dataset(tmp_path / "ds", {f"im{i}": ["0 0.5 0.5 0.2 0.2"] for i in range(4)})
    with pytest.raises(TypeError):
        split_dataset(y, tmp_path / "out", (0.5, 0.5), 3)  # type: ignore[call-arg]
    assert not (tmp_path / "out").exists()
    res = split_dataset(path=y, dst=tmp_path / "out", ratios=(0.5, 0.5), seed=3)
    assert res.counts == {"train": 2, "val": 2}
