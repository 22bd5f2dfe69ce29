"""Tests for the column helpers (yolo2retina/formats/coco_columns.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from yolo2retina.formats.coco_columns import dupes, index_of

_int64 = st.integers(-(2**63), 2**63 - 1)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.integers(-3, 30), _int64), max_size=40))
def test_dupes_lists_each_repeated_value_once(values: list[int]) -> None:
    """Sorted or not: the values that occur more than once, sorted."""
    ids = np.array(values, np.int64)
    want = sorted({v for v in values if values.count(v) > 1})
    assert dupes(ids) == want
    assert dupes(np.sort(ids)) == want


@settings(max_examples=300, deadline=None)
@given(
    keys=st.one_of(
        st.integers(-(2**63), 2**63 - 20).map(lambda k0: list(range(k0, k0 + 7))),  # consecutive
        st.sets(st.one_of(st.integers(-5, 20), _int64), max_size=8).map(sorted),
    ),
    values=st.lists(st.one_of(st.integers(-8, 25), _int64), max_size=30),
)
def test_index_of_finds_exactly_the_keys(keys: list[int], values: list[int]) -> None:
    """Consecutive keys (the shortcut) or not, and values anywhere in int64 (no wrap-around
    makes a missing value found): position of each value, and whether it is a key."""
    sorted_keys = np.array(keys, np.int64)
    order = np.arange(len(keys), dtype=np.int64)[::-1].copy()
    values = values + keys[:3]
    pos, found = index_of(sorted_keys, order, np.array(values, np.int64))
    for v, p, f in zip(values, pos.tolist(), found.tolist(), strict=True):
        assert f == (v in keys)
        if f:
            assert p == order[keys.index(v)]
