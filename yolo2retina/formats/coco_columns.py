"""COCO records -> NumPy columns: every annotation field the reader needs, pulled in bulk.

Each column is built in one pass over the records; only when that fails (a missing key, a
wrong-typed value) are the records walked one by one to name the first bad one. Values are
never coerced: ids must be integers, flags ``0``/``1``/``false``/``true``, a ``bbox`` a list
of four JSON numbers and image sizes whole numbers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from operator import itemgetter, methodcaller
from typing import Any

import numpy as np
import numpy.typing as npt

from yolo2retina.errors import DatasetError
from yolo2retina.formats._files import quote
from yolo2retina.target import FLAG_CROWD, FLAG_DIFFICULT, FLAG_TRUNCATED


def column(
    records: list[Any],
    getter: Callable[[Any], Any],
    dtype: type[np.generic],
    bad: Callable[[int], str],
    types: tuple[type, ...] | None = (int, float, bool),
) -> npt.NDArray[Any]:
    """Pull one field of every record into an array; on failure name the first bad record.

    ``types`` are the Python types accepted (ids: ``int`` only, so ``2.5`` or ``"2"`` is an
    error rather than a silent conversion); ``None`` skips that extra pass (flags, whose
    values are range-checked afterwards).
    """
    try:
        out = np.fromiter(map(getter, records), dtype=dtype, count=len(records))
        if types is None or set(map(type, map(getter, records))) <= set(types):
            return out
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
        pass
    for i, r in enumerate(records):
        try:
            v = getter(r)
            if types is not None and type(v) not in types:
                raise TypeError
            np.asarray(v, dtype=dtype).item()
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
            raise DatasetError(bad(i)) from None
    raise DatasetError(bad(0))  # pragma: no cover - fromiter failed but no record did


def dupes(ids: npt.NDArray[np.int64]) -> list[int]:
    """The values that occur more than once, sorted."""
    if len(ids) < 2 or bool((ids[1:] > ids[:-1]).all()):
        return []  # strictly increasing, as most files number them: no sort needed
    s = np.sort(ids)
    repeated = s[1:][s[1:] == s[:-1]]
    # (np.unique only when there are some: its first call imports numpy.ma, 50-190 ms)
    return [int(v) for v in np.unique(repeated)] if len(repeated) else []


def index_of(
    sorted_keys: npt.NDArray[np.int64], order: npt.NDArray[np.int64], values: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """``order[k]`` for the position ``k`` of each value in ``sorted_keys``, and whether it
    was found there (``sorted_keys`` is ascending, with no repeats)."""
    n = len(sorted_keys)
    if n and int(sorted_keys[-1]) - int(sorted_keys[0]) == n - 1:
        # consecutive keys (ids 1..N, as most files number them): no search needed
        pos = values - sorted_keys[0]
        found = (pos >= 0) & (pos < n)
        return order[np.where(found, pos, 0)], found
    pos = np.searchsorted(sorted_keys, values)
    pos_c = np.minimum(pos, max(len(sorted_keys) - 1, 0))
    found = (
        (pos < len(sorted_keys)) & (sorted_keys[pos_c] == values)
        if len(sorted_keys)
        else (np.zeros(len(values), bool))
    )
    return (order[pos_c] if len(order) else pos_c), found


def _id_columns(
    anns: list[Any], at: Callable[[int], str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``id``, ``image_id`` and ``category_id`` columns.

    ``np.array`` of the values converts them and spots any float, string or missing value
    (a non-integer dtype or an exception); a pass over their types spots booleans, which
    ``np.array`` would turn into ``0``/``1``. Only then are the records walked one by one
    to name the bad one.
    """
    m = len(anns)
    out = []
    for key in ("id", "image_id", "category_id"):
        try:
            values = list(map(itemgetter(key), anns))
            col: npt.NDArray[Any] | None = np.array(values)
        except (KeyError, TypeError, ValueError, OverflowError):
            col = None
        # "u" (a value >= 2**63) would wrap around in int64, and np.array turns [7, true]
        # into int64 [7, 1]: walk those records too
        if (
            col is None
            or col.dtype.kind != "i"
            or col.shape != (m,)
            or not set(map(type, values)) <= {int}
        ):
            col = column(
                anns,
                itemgetter(key),
                np.int64,
                _message(at, f"missing or non-integer '{key}'"),
                (int,),
            )
        out.append(col.astype(np.int64, copy=False))
    return out[0], out[1], out[2]


def _message(at: Callable[[int], str], text: str) -> Callable[[int], str]:
    return lambda i: f"{at(i)}: {text}"


_NUMBER_TYPES = frozenset({int, float})


def _bboxes(anns: list[Any], at: Callable[[int], str]) -> npt.NDArray[np.float64]:
    """``(M, 4) float64`` bbox column; a bbox that is not a list of 4 JSON numbers is an
    error naming it (a string ``"1234"`` or ``[true, 0, 5, 5]`` is not converted)."""
    m = len(anns)
    bboxes = list(map(methodcaller("get", "bbox"), anns))
    try:
        if set(map(type, bboxes)) <= {list}:
            lens = np.fromiter(map(len, bboxes), np.int64, count=m)
            if bool((lens == 4).all()) and (
                set(map(type, itertools.chain.from_iterable(bboxes))) <= _NUMBER_TYPES
            ):
                flat = np.fromiter(itertools.chain.from_iterable(bboxes), np.float64, count=4 * m)
                return flat.reshape(m, 4)
    except (TypeError, ValueError, OverflowError):
        pass
    for i, b in enumerate(bboxes):
        if b is None:
            raise DatasetError(f"{at(i)}: no 'bbox'")
        try:
            if type(b) is not list or len(b) != 4 or not set(map(type, b)) <= _NUMBER_TYPES:
                raise ValueError
            np.asarray(b, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise DatasetError(
                f"{at(i)}: malformed bbox {quote(b)}: expected [x, y, width, height] numbers"
            ) from None
    raise DatasetError(f"{at(0)}: malformed bbox")  # pragma: no cover


def _flag_column(anns: list[Any], key: str, at: Callable[[int], str]) -> npt.NDArray[np.int64]:
    """``(M,) int64`` 0/1 column of an optional flag key (absent = 0).

    Only ``0``, ``1``, ``false`` and ``true`` are flags; ``0.5``, ``1.9`` or ``"1"`` are
    errors naming the record rather than values rounded or cast into a flag.
    """
    values = list(map(methodcaller("get", key, 0), anns))
    if set(map(type, values)) <= {int, bool}:
        try:
            col = np.fromiter(values, np.int64, count=len(values))
        except OverflowError:  # beyond int64: certainly not a flag
            pass
        else:
            if bool(((col == 0) | (col == 1)).all()):
                return col
    for i, v in enumerate(values):
        if type(v) not in (int, bool) or v not in (0, 1):
            raise DatasetError(f"{at(i)}: '{key}' must be 0 or 1, got {quote(v)}")
    raise DatasetError(f"{at(0)}: bad '{key}'")  # pragma: no cover


def pixels_column(records: list[Any], key: str, bad: Callable[[int], str]) -> npt.NDArray[np.int64]:
    """``(N,) int64`` image width or height (absent = 0): whole numbers only, so ``640.5``,
    ``"640"`` or ``true`` are errors rather than truncated or cast."""
    values = list(map(methodcaller("get", key, 0), records))
    try:
        if set(map(type, values)) <= {int}:
            return np.fromiter(values, np.int64, count=len(values))
    except OverflowError:
        pass
    out = np.zeros(len(values), np.int64)
    for i, v in enumerate(values):
        ok = type(v) is int or (type(v) is float and math.isfinite(v) and v.is_integer())
        if not ok or not -(2**62) < v < 2**62:
            raise DatasetError(f"{bad(i)}, got {quote(v)}")
        out[i] = int(v)
    return out


Columns = tuple[
    npt.NDArray[np.int64],  # annotation ids
    npt.NDArray[np.int64],  # image ids
    npt.NDArray[np.int64],  # category ids
    npt.NDArray[np.float64],  # (M, 4) xywh
    npt.NDArray[np.uint8],  # flags
]


def ann_columns(anns: list[Any], at: Callable[[int], str], extras: set[str]) -> Columns:
    """Every annotation field the reader needs, as arrays (errors name the record)."""
    ann_ids, ann_img, ann_cat = _id_columns(anns, at)
    crowd = _flag_column(anns, "iscrowd", at)
    xywh = _bboxes(anns, at)
    flags = np.where(crowd != 0, FLAG_CROWD, 0).astype(np.uint8)
    for key, bit in (("difficult", FLAG_DIFFICULT), ("truncated", FLAG_TRUNCATED)):
        if key not in extras:  # the key appears nowhere in the file: skip a pass
            continue
        v = _flag_column(anns, key, at)
        flags |= np.where(v != 0, bit, 0).astype(np.uint8)
    return ann_ids, ann_img, ann_cat, xywh, flags
