"""The bulk parser of clean label files agrees with the row-by-row parser."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from yolo2retina.annotations import LoadReport
from yolo2retina.formats.yolo_labels import parse_clean_texts, parse_label_text

_NUMBER = st.one_of(
    st.floats(-0.1, 1.1, allow_nan=False).map(lambda v: f"{v:.6f}"),
    st.sampled_from(["0", "1", "0.5", "0.50", "-0", "1e-9", "5e-1", ".5", "2", "nan", "1e", "-"]),
)
_ROW = st.tuples(st.sampled_from(["0", "1", "2", "3", "1.0", "-1", "0.5"]), *[_NUMBER] * 4).map(
    " ".join
)
_LINE = st.one_of(
    _ROW,
    _ROW,
    _ROW,
    st.just(""),
    st.just("  "),
    _ROW.map(lambda r: "  " + r + "\t"),
    _ROW.map(lambda r: r + " 0.3 0.4"),  # a polygon
    st.sampled_from(["0 0.5 0.5 0.1", "x", "0\u00a00.5 0.5 0.1 0.1"]),
)
_FILE = st.tuples(
    st.lists(_LINE, max_size=6), st.sampled_from(["\n", "\r\n", "\r"]), st.booleans()
).map(lambda t: t[1].join(t[0]) + (t[1] if t[2] else ""))


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(_FILE, min_size=1, max_size=6),
    sizes=st.lists(st.sampled_from([(1, 1), (640, 480), (7, 3000), (100000, 1)]), min_size=6),
)
def test_bulk_parse_equals_row_by_row(texts: list[str], sizes: list[tuple[int, int]]) -> None:
    wh = np.array(sizes[: len(texts)], np.int64)
    boxes, labels, counts, clean = parse_clean_texts(texts, wh, 3)
    assert counts.sum() == len(boxes) == len(labels)
    ends = np.cumsum(counts)
    for i, text in enumerate(texts):
        report, problems = LoadReport(), []
        want_boxes, want_labels = parse_label_text(
            f"f{i}.txt", text, (int(wh[i, 0]), int(wh[i, 1])), 3, False, report, problems
        )
        if not clean[i]:
            assert counts[i] == 0
            continue
        # a clean file: nothing to report, and exactly the row-by-row boxes
        assert problems == [] and report.details == []
        got = slice(ends[i] - counts[i], ends[i])
        assert boxes[got].dtype == np.float32 and labels[got].dtype == np.int64
        np.testing.assert_array_equal(boxes[got], want_boxes)
        np.testing.assert_array_equal(labels[got], want_labels)


def test_plain_files_take_the_bulk_path() -> None:
    texts = ["0 0.5 0.5 0.2 0.2\n1 0.1 0.1 0.1 0.1\n", "", "\n\n2 .5 .5 .5 .5", "0 0.5 0.5 0.2 0.2"]
    boxes, labels, counts, clean = parse_clean_texts(texts, np.array([[100, 50]] * 4), 3)
    assert clean.tolist() == [True, True, True, True]
    assert counts.tolist() == [2, 0, 1, 1]
    assert labels.tolist() == [0, 1, 2, 0]
    np.testing.assert_allclose(boxes[0], [40, 20, 60, 30])


def test_files_to_report_leave_the_bulk_path() -> None:
    texts = [
        "0 0.5 0.5 0.2 0.2\n0 0.5 0.5 0.2 0.2\n",  # a repeated row: dropped and counted
        "0 0.999 0.5 0.01 0.2\n",  # slightly outside: clipped and counted
        "7 0.5 0.5 0.2 0.2\n",  # class out of range: a problem
        "0 0.5 0.5 0.2\n",  # four values: a problem
        "0 0.5 0.5 0.2 0.2 0.3 0.3\n",  # a polygon
        "0 nan 0.5 0.2 0.2\n",
        "0 1e 0.5 0.2 0.2\n",  # not a number
        "0 0.5 0.5 0.2 0.2\n",  # the only clean one
    ]
    _, _, counts, clean = parse_clean_texts(texts, np.array([[100, 50]] * len(texts)), 3)
    assert clean.tolist() == [False] * 7 + [True]
    assert counts.tolist() == [0] * 7 + [1]
