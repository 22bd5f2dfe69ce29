"""Property tests: conversions between YOLO, VOC and COCO are lossless (within 1e-4 px)."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.formats._helpers import make_annotations
from yolo2retina.annotations import Annotations
from yolo2retina.formats import load_annotations, write_annotations
from yolo2retina.target import FLAG_CROWD, FLAG_DIFFICULT, FLAG_TRUNCATED

SIZES = [(64, 48), (37, 53)]
NAMES = ["zeta", "alpha", "mid dle"]
#: flag bits each format can hold
HOLDS = {"yolo": 0, "voc": FLAG_DIFFICULT | FLAG_TRUNCATED, "coco": 7}

_counter = itertools.count()


@st.composite
def datasets(
    draw: st.DrawFn,
) -> tuple[list[list[tuple[tuple[float, ...], int, int]]], tuple[int, int], list[str]]:
    """1-3 images of one size, 0-4 boxes each (some touching the far edges), any class order."""
    w, h = draw(st.sampled_from(SIZES))
    names = draw(st.permutations(NAMES))
    f32 = {"width": 32, "allow_nan": False, "allow_infinity": False}
    images = []
    for _ in range(draw(st.integers(1, 3))):
        rows = []
        for _ in range(draw(st.integers(0, 4))):
            x1 = draw(st.floats(0, w - 2, **f32))
            y1 = draw(st.floats(0, h - 2, **f32))
            tx, ty = draw(st.floats(0, 1, **f32)), draw(st.floats(0, 1, **f32))
            x2 = float(w) if draw(st.booleans()) else min(x1 + 0.5 + tx * (w - x1 - 0.5), w)
            y2 = min(y1 + 0.5 + ty * (h - y1 - 0.5), h)
            flags = draw(st.sampled_from([0, 0, FLAG_CROWD, FLAG_DIFFICULT, FLAG_TRUNCATED]))
            rows.append(((x1, y1, x2, y2), draw(st.integers(0, 2)), flags))
        images.append(rows)
    return images, (w, h), list(names)


def _source(tmp: Path, data: tuple, fmt: str) -> Annotations:  # type: ignore[type-arg]
    """Write generated annotations in ``fmt`` and read them back: the starting point."""
    images, size, names = data
    raw = make_annotations(tmp / "raw", images, names=names, size_wh=size)
    return _through(raw, tmp / f"src_{fmt}", fmt)


def _through(a: Annotations, out: Path, fmt: str) -> Annotations:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # lost flags are checked below
        write_annotations(a, out, fmt, images="symlink")
    return load_annotations(out, format=fmt, split="train", strict=True)


def _assert_same(a: Annotations, b: Annotations, flag_bits: int) -> None:
    assert b.class_names == a.class_names
    assert [Path(p).name for p in b.paths] == [Path(p).name for p in a.paths]
    np.testing.assert_array_equal(b.offsets, a.offsets)  # background images survive
    np.testing.assert_allclose(b.boxes, a.boxes, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(b.labels, a.labels)
    np.testing.assert_array_equal(b.flags, a.flags & flag_bits)


ROUND_TRIPS = [
    ("yolo", "coco"),
    ("voc", "coco"),
    ("coco", "yolo"),
    ("yolo", "voc"),
    ("coco", "voc"),
]


@pytest.mark.parametrize(
    ("start", "via"), ROUND_TRIPS, ids=[f"{a}-{b}-{a}" for a, b in ROUND_TRIPS]
)
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=datasets())
def test_round_trip(
    tmp_path_factory: pytest.TempPathFactory, start: str, via: str, data: tuple
) -> None:  # type: ignore[type-arg]
    """start -> via -> start keeps boxes, labels, class names, background images and flags."""
    tmp = tmp_path_factory.mktemp(f"rt{next(_counter)}")
    a = _source(tmp, data, start)
    b = _through(a, tmp / "via", via)
    c = _through(b, tmp / "back", start)
    kept = HOLDS[start] & HOLDS[via]
    _assert_same(a, b, HOLDS[via])
    _assert_same(a, c, kept)
