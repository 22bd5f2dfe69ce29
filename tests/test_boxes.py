"""Tests for yolo2retina.boxes: pure box conversions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from yolo2retina import boxes as B

finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=64)


def test_xywh_to_xyxy_known_values() -> None:
    """A COCO box x, y, w, h gives corners x, y, x + w, y + h."""
    np.testing.assert_array_equal(B.xywh_to_xyxy([[10, 20, 5, 8]]), [[10, 20, 15, 28]])


def test_cxcywh_norm_to_xyxy_known_values() -> None:
    """A YOLO row is scaled by width and height, then centred."""
    out = B.cxcywh_norm_to_xyxy([[0.5, 0.25, 0.2, 0.1]], image_wh=(200, 100))
    np.testing.assert_allclose(out, [[80, 20, 120, 30]])


def test_polygon_norm_to_xyxy_encloses_polygon() -> None:
    """A normalized polygon becomes its enclosing pixel box."""
    out = B.polygon_norm_to_xyxy([[0.1, 0.2, 0.5, 0.1, 0.3, 0.9]], (100, 10))
    np.testing.assert_allclose(out, [[10, 1, 50, 9]])


def test_clip_and_area() -> None:
    """Clipping keeps boxes inside the image; area of an inverted box is 0."""
    c = B.clip_xyxy([[-5, -1, 70, 20]], (64, 48))
    np.testing.assert_array_equal(c, [[0, 0, 64, 20]])
    np.testing.assert_array_equal(B.area([[0, 0, 2, 3], [5, 5, 4, 4]]), [6, 0])


def test_convert_requires_image_size_for_normalized() -> None:
    """Normalized conversions without image_wh raise a clear ValueError."""
    with pytest.raises(ValueError, match="image_wh"):
        B.convert([[0, 0, 1, 1]], "xyxy", "cxcywh_norm")


def test_inputs_are_not_modified() -> None:
    """Conversions return new arrays and leave their input alone."""
    a = np.array([[1.0, 2.0, 3.0, 4.0]])
    before = a.copy()
    for f in (B.xywh_to_xyxy, B.xyxy_to_xywh, B.cxcywh_to_xyxy, B.xyxy_to_cxcywh):
        f(a)
    np.testing.assert_array_equal(a, before)


@given(arrays(np.float64, (5, 4), elements=finite), st.sampled_from(list(B.BoxFormat)))
def test_round_trip_through_every_format(raw: np.ndarray, fmt: B.BoxFormat) -> None:
    """xyxy -> any format -> xyxy is the identity (up to float rounding)."""
    xyxy = np.concatenate(
        [np.minimum(raw[:, :2], raw[:, 2:]), np.maximum(raw[:, :2], raw[:, 2:])], 1
    )
    wh = (640.0, 480.0)
    back = B.convert(B.convert(xyxy, "xyxy", fmt, wh), fmt, "xyxy", wh)
    np.testing.assert_allclose(back, xyxy, atol=1e-6, rtol=1e-9)
