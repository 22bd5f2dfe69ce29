"""Tests for the msgspec piece decoder (yolo2retina/formats/coco_msgspec.py).

It may only ever answer with what the general path (``json`` + ``ann_columns``) gives, or
not at all; every test compares the two.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yolo2retina.errors import DatasetError
from yolo2retina.formats.coco_columns import Columns, ann_columns
from yolo2retina.formats.coco_msgspec import columns_decoder

pytest.importorskip("msgspec", reason="msgspec (the `fast` extra) is not installed")

_FLAG_KEYS = ("difficult", "truncated")


def _general(body: bytes) -> Columns | None:
    """The general path's columns, or ``None`` where it refuses the piece."""
    try:
        records = json.loads(body.decode("utf-8"))
        extras = {k for k in _FLAG_KEYS if f'"{k}"'.encode() in body}
        return ann_columns(records, lambda i: "", extras)
    except (ValueError, RecursionError, DatasetError, AttributeError, TypeError):
        return None


def _fast(body: bytes) -> Columns | None:
    decode = columns_decoder()
    assert decode is not None
    return decode(body)


def _assert_same(fast: Columns, general: Columns) -> None:
    assert len(fast) == len(general) == 5
    for a, b in zip(fast, general, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def _agrees(body: bytes) -> bool:
    """The fast decoder answered (and agrees with the general path), or declined."""
    fast = _fast(body)
    if fast is None:
        return False
    general = _general(body)
    assert general is not None, body  # the fast path accepted what the general one refuses
    _assert_same(fast, general)
    return True


def test_typical_export_is_decoded_and_matches() -> None:
    """A Roboflow-style piece (ints and fractions, empty segmentation) takes the fast path."""
    anns = [
        {
            "id": i,
            "image_id": i // 3,
            "category_id": 1 + i % 2,
            "bbox": [130, 142.5, 159.5, 1e-3 * i],
            "area": 27075.125,
            "segmentation": [],
            "iscrowd": i % 2,
        }
        for i in range(50)
    ]
    assert _agrees(json.dumps(anns, indent=4).encode())


@pytest.mark.parametrize(
    "record",
    [
        {"id": 1.0},  # an id must be an integer
        {"id": True},
        {"id": "1"},
        {"id": 2**70},  # beyond int64
        {"image_id": None},
        {"category_id": [1]},
        {"bbox": [True, 0, 5, 5]},
        {"bbox": ["1", 0, 5, 5]},
        {"bbox": [1, 2, 3]},
        {"bbox": [1, 2, 3, 4, 5]},
        {"bbox": "1 2 3 4"},
        {"iscrowd": 2},
        {"iscrowd": 0.5},
        {"iscrowd": "1"},
        {"difficult": 3},
        {"truncated": 1.0},
    ],
)
def test_values_the_general_path_refuses_are_declined(record: dict[str, Any]) -> None:
    """Each wrong-typed or out-of-range value: the fast path declines (the general path then
    names the record), it never converts."""
    good = {"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}
    body = json.dumps([good, {**good, "id": 8, **record}]).encode()
    assert _general(body) is None
    assert _fast(body) is None


def test_missing_key_and_non_object_are_declined() -> None:
    good = {"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}
    for bad in ({k: v for k, v in good.items() if k != "bbox"}, 5, None, [1]):
        body = json.dumps([good, bad]).encode()
        assert _fast(body) is None and _general(body) is None


def test_flags_accept_booleans_like_the_general_path() -> None:
    good = {"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}
    body = json.dumps(
        [{**good, "iscrowd": True, "difficult": False}, {**good, "id": 9, "truncated": 1}]
    ).encode()
    assert _agrees(body)


def test_invalid_utf8_in_a_skipped_string_is_declined() -> None:
    """msgspec skips unknown keys without checking their strings; the decoder checks."""
    body = b'[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "x": "\xff"}]'
    assert _fast(body) is None
    ok = '[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "x": "é"}]'
    assert _agrees(ok.encode())


_numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-1e4, 1e4).map(lambda v: round(v, 3)),
)
_values = st.one_of(
    _numbers,
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.lists(st.integers(0, 9), max_size=3),
)
_record = st.fixed_dictionaries(
    {
        "id": st.one_of(st.integers(-(2**64), 2**64), _values),
        "image_id": st.integers(-5, 5),
        "category_id": st.one_of(st.integers(0, 3), _values),
        "bbox": st.one_of(
            st.lists(_numbers, min_size=4, max_size=4),
            st.lists(_values, min_size=3, max_size=5),
        ),
    },
    optional={
        "iscrowd": st.one_of(st.integers(-1, 2), st.booleans(), _values),
        "difficult": st.one_of(st.integers(0, 1), _values),
        "area": _values,
        "segmentation": st.lists(st.lists(_numbers, max_size=4), max_size=2),
        "attributes": st.dictionaries(st.text(max_size=3), _values, max_size=2),
    },
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_record, min_size=1, max_size=6), st.sampled_from([None, 1, 4]))
def test_fast_path_equals_the_general_path(
    records: list[dict[str, Any]], indent: int | None
) -> None:
    """Any records, well- or ill-typed: the fast path equals the general one or declines;
    where every value is well-typed it does answer."""
    body = json.dumps(records, indent=indent).encode()
    answered = _agrees(body)
    if _general(body) is not None:
        # every general-path answer that msgspec can represent is decoded on the fast path
        assert answered or any(
            abs(v) >= 2**63 for r in records for v in (r["id"], r["image_id"], r["category_id"])
        )


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 10**6), st.sampled_from(list(b' ,:[]{}"0159.-+eEtfnu\\\xc3\xff'))),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_damaged_bytes_are_declined_or_agree(edits: list[tuple[int, int]], insert: bool) -> None:
    """Bytes inserted or overwritten anywhere: the fast path declines, or answers exactly as
    the general path (which must then accept the damaged text too)."""
    anns = [
        {"id": 1, "image_id": 2, "category_id": 3, "bbox": [1.5, 2, 30, 40.25], "iscrowd": 0},
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1e2, 5], "area": 12.5},
    ]
    body = bytearray(json.dumps(anns).encode())
    for pos, byte in edits:
        pos %= len(body) + 1
        if insert or pos == len(body):
            body.insert(pos, byte)
        else:
            body[pos] = byte
    _agrees(bytes(body))


@pytest.mark.parametrize(
    "number",
    [
        "1.00000000000000011102230246251565404236316680908203125",  # a halfway case
        "1.0000000000000001110223024625156540423631668090820312500001",
        "2.2250738585072011e-308",
        "4.9406564584124654e-324",
        "9007199254740993",  # an integer beyond 2**53
        "18446744073709551617",  # beyond 2**64
        "123456789012345678901234567890",
        "100000000000000000000000e-23",
        "1E+2",
        "-0.0",
    ],
)
def test_hard_numbers_round_as_the_general_path(number: str) -> None:
    """Long, halfway, subnormal and huge numbers give the general path's float64 exactly."""
    body = f'[{{"id": 1, "image_id": 1, "category_id": 1, "bbox": [{number}, 0, 1, 1]}}]'
    assert _agrees(body.encode())
