"""Tiling geometry and the merge of overlapping tiles' detections (yolo2retina.tiling)."""

from __future__ import annotations

import numpy as np
import pytest

from yolo2retina.errors import ConfigError
from yolo2retina.tiling import merge_tile_detections, resolve_tile, tile_windows

WINDOWS = np.array([[0, 0, 100, 100], [80, 0, 180, 100]])


def test_plain_nms_would_keep_clipped_partial_boxes() -> None:
    """The edge rule matters: a partial box at a tile edge beside the full one is dropped."""
    full = [90.0, 10.0, 110.0, 30.0]  # whole in tile 1
    part = [90.0, 10.0, 100.0, 30.0]  # clipped by tile 0's right edge (IoU 0.5 with full)
    out = merge_tile_detections([part, full], [0, 0], [0.95, 0.9], [0, 1], WINDOWS, (100, 180))
    assert out.boxes.tolist() == [full]


def test_merge_keeps_distinct_objects_and_other_classes() -> None:
    """Boxes of another class or far apart are never merged."""
    b = [[90, 10, 100, 30], [90, 10, 110, 30], [10, 10, 30, 30], [150, 50, 170, 70]]
    out = merge_tile_detections(
        b, [1, 0, 0, 0], [0.9, 0.8, 0.7, 0.6], [0, 1, 0, 1], WINDOWS, (100, 180)
    )
    assert out.boxes.tolist() == b and out.labels.tolist() == [1, 0, 0, 0]


def test_merge_removes_duplicates_seen_whole_by_two_tiles() -> None:
    """An object inside the overlap is seen whole twice and kept once (the higher score)."""
    b = [[85, 40, 95, 50], [85.5, 40, 95, 50.5]]
    out = merge_tile_detections(b, [0, 0], [0.7, 0.8], [0, 1], WINDOWS, (100, 180))
    assert out.boxes.tolist() == [b[1]] and out.scores is not None
    assert out.scores.tolist() == pytest.approx([0.8])


def test_object_larger_than_overlap_is_stitched_from_its_two_pieces() -> None:
    """Both tiles see a part of a too-large object: the pieces become one box, the union."""
    b = [[60, 10, 100, 30], [80, 11, 130, 30]]  # both clipped, at facing interior edges
    out = merge_tile_detections(b, [0, 0], [0.9, 0.7], [0, 1], WINDOWS, (100, 180))
    assert out.boxes.tolist() == [[60, 10, 130, 30]]
    assert out.scores is not None and out.scores.tolist() == pytest.approx([0.9])
    # pieces that do not line up (another object, another row) are not stitched
    b2 = [[60, 10, 100, 30], [80, 40, 130, 60]]
    assert len(merge_tile_detections(b2, [0, 0], [0.9, 0.7], [0, 1], WINDOWS, (100, 180))) == 2


def test_one_object_boxed_differently_by_two_tiles_is_kept_once() -> None:
    """IoU under the NMS threshold but one box nearly inside the other: same object, kept once."""
    inner, outer = [86.0, 40.0, 96.0, 50.0], [85.0, 37.0, 97.0, 58.0]  # IoU 0.4, 100% inside
    out = merge_tile_detections([inner, outer], [0, 0], [0.8, 0.3], [0, 1], WINDOWS, (100, 180))
    assert out.boxes.tolist() == [inner]
    # the same two boxes from one tile are the model's own decision: both stay
    same = merge_tile_detections([inner, outer], [0, 0], [0.8, 0.3], [0, 0], WINDOWS, (100, 180))
    assert len(same) == 2
    # and boxes of different classes are never merged
    other = merge_tile_detections([inner, outer], [0, 1], [0.8, 0.3], [0, 1], WINDOWS, (100, 180))
    assert len(other) == 2


@pytest.mark.parametrize("length", [1, 100, 640, 641, 1000, 3000, 4080])
def test_tile_windows_cover_with_at_least_the_asked_overlap(length: int) -> None:
    """Windows cover every pixel, stay inside, are whole tiles, and overlap >= asked."""
    win = tile_windows((length // 2 + 1, length), 640, 0.2)
    w, h = length, length // 2 + 1
    assert (win[:, 0] >= 0).all() and (win[:, 2] <= w).all() and (win[:, 3] <= h).all()
    assert ((win[:, 2] - win[:, 0]) == min(640, w)).all()
    covered = np.zeros(w, bool)
    for x0, _, x1, _ in win:
        covered[x0:x1] = True
    assert covered.all()
    xs = np.unique(win[:, 0])
    if len(xs) > 1:
        assert (640 - np.diff(xs)).min() >= 0.2 * 640


@pytest.mark.parametrize(
    ("tile", "overlap", "message"),
    [(0, 0.2, "tile"), (640, 1.0, "overlap"), (640, -0.1, "overlap")],
)
def test_tile_windows_rejects_bad_settings(tile: int, overlap: float, message: str) -> None:
    """Bad tile settings raise ConfigError naming the setting."""
    with pytest.raises(ConfigError, match=message):
        tile_windows((100, 100), tile, overlap)


def test_resolve_tile_auto_uses_checkpoint_meta() -> None:
    """tile='auto' takes the training image size and widens the overlap for large boxes."""
    meta = {"train_image_size": 1024, "box_size_px": {"median": 18.0, "p10": 12.0, "p90": 30.0}}
    assert resolve_tile("auto", meta, 0.0) == (1024, 45.0)
    assert resolve_tile(512, None, 0.25) == (512, 128.0)
    assert resolve_tile(None, None) == (None, 0.0)
    with pytest.raises(ConfigError, match="train_image_size"):
        resolve_tile("auto", {}, 0.2)
    with pytest.raises(ConfigError, match="tile"):
        resolve_tile("big", None)  # type: ignore[arg-type]
