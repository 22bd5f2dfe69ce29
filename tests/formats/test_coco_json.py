"""Tests for parsing COCO JSON, whole or in pieces (yolo2retina/formats/coco_json.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.formats._helpers import coco_ann, make_coco, many_coco_anns
from yolo2retina.errors import DatasetError
from yolo2retina.formats.coco import read_coco
from yolo2retina.formats.coco_columns import ann_columns
from yolo2retina.target import FLAG_CROWD, FLAG_DIFFICULT


def test_invalid_json_names_line(tmp_path: Path) -> None:
    """A syntax error is reported with file:line:column."""
    f = tmp_path / "a.json"
    f.write_text('{"images": [\n  {"id": 1,,}]}')
    with pytest.raises(DatasetError, match=r"a\.json:2:\d+: invalid JSON"):
        read_coco(f)


def test_stdlib_json_and_orjson_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without orjson the stdlib parser gives the same result and errors."""
    import sys

    anns = [
        coco_ann(1, 1, 2, [1.5, 2, 10, 20], iscrowd=1),
        coco_ann(2, 2, 1, [3, 4, 5, 6], difficult=1),
    ]
    f = make_coco(tmp_path, 2, anns)
    first = read_coco(f)
    monkeypatch.setitem(sys.modules, "orjson", None)
    second = read_coco(f)
    np.testing.assert_array_equal(first.boxes, second.boxes)
    np.testing.assert_array_equal(first.flags, second.flags)
    assert second.flags.tolist() == [FLAG_CROWD, FLAG_DIFFICULT]
    (tmp_path / "bad.json").write_text('{"images": [\n  {"id": 1,,}]}')
    with pytest.raises(DatasetError, match=r"bad\.json:2:\d+: invalid JSON"):
        read_coco(tmp_path / "bad.json")


@pytest.mark.parametrize(
    "extra",
    [{}, {"attributes": [{"a": 1}, {"b": "}, {"}], "caption": "x}]y"}],
    ids=["plain", "nested-lists-and-tricky-strings"],
)
def test_large_files_parsed_in_pieces_match_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any]
) -> None:
    """The piecewise parse of a large file gives exactly the whole-file result."""
    import yolo2retina.formats.coco_json as coco_json

    f = make_coco(tmp_path, 3, many_coco_anns(3, 40, **extra))
    whole = read_coco(f)
    monkeypatch.setattr(coco_json, "CHUNK_BYTES", 256)
    monkeypatch.setattr(coco_json, "PIECE_BYTES", 256)
    raw = f.read_bytes()
    got = coco_json._chunked(io.BytesIO(raw), json.loads, len(raw))
    assert got is not None and len(got[1][0]) == 120  # really parsed in pieces
    pieces = read_coco(f)
    for k in ("boxes", "labels", "flags", "offsets", "image_ids", "annotation_ids"):
        np.testing.assert_array_equal(getattr(pieces, k), getattr(whole, k))


def test_piecewise_parse_falls_back_when_unsure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A nested 'annotations' key before the real one, or a bad record, uses the whole parse."""
    import yolo2retina.formats.coco_json as coco_json

    monkeypatch.setattr(coco_json, "CHUNK_BYTES", 256)
    monkeypatch.setattr(coco_json, "PIECE_BYTES", 256)
    f = make_coco(tmp_path, 3, many_coco_anns(3, 20))
    doc = json.loads(f.read_text())
    doc = {"info": {"annotations": [{"id": 9}]}, **doc}
    f.write_text(json.dumps(doc))
    assert coco_json._chunked(f.open("rb"), json.loads, f.stat().st_size) is None
    assert read_coco(f).num_boxes == 60
    doc["annotations"][30]["image_id"] = 77
    f.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"annotations\[30\] \(id 31\): image_id 77"):
        read_coco(f)


@pytest.mark.parametrize("parser", ["orjson", "json"])
@pytest.mark.parametrize("pieces", [False, True], ids=["whole", "in-pieces"])
def test_deeply_nested_json_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parser: str, pieces: bool
) -> None:
    """100000 nested '[' are an invalid-JSON error naming the file, not a RecursionError."""
    import sys

    import yolo2retina.formats.coco_json as coco_json

    if parser == "json":
        monkeypatch.setitem(sys.modules, "orjson", None)
    else:
        pytest.importorskip("orjson")
    f = tmp_path / "a.json"
    f.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DatasetError, match=r"a\.json.*invalid JSON"):
        read_coco(f)
    # the same nesting inside one annotation of a file that is parsed in pieces
    anns = many_coco_anns(2, 20)
    f = make_coco(tmp_path, 2, anns)
    deep = "[" * 100_000 + "]" * 100_000
    text = f.read_text()
    assert '"bbox"' in text
    f.write_text(text.replace('"bbox"', f'"attributes": {deep}, "bbox"', 3))
    if pieces:
        monkeypatch.setattr(coco_json, "CHUNK_BYTES", 256)
        monkeypatch.setattr(coco_json, "PIECE_BYTES", 256)
    with pytest.raises(DatasetError, match=r"ann\.json.*invalid JSON"):
        read_coco(f)


def test_large_file_with_a_bom_is_parsed_in_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A UTF-8 byte-order mark is skipped, and the pieces are used, not the whole parse."""
    import yolo2retina.formats.coco_json as coco_json

    f = make_coco(tmp_path, 3, many_coco_anns(3, 40))
    whole = read_coco(f, cache=False)
    f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes())
    monkeypatch.setattr(coco_json, "CHUNK_BYTES", 256)
    monkeypatch.setattr(coco_json, "PIECE_BYTES", 256)
    calls: list[int] = []
    real = coco_json._chunked

    def spy(*args: Any, **kwargs: Any) -> Any:
        got = real(*args, **kwargs)
        calls.append(got is not None)
        return got

    monkeypatch.setattr(coco_json, "_chunked", spy)
    pieces = read_coco(f, cache=False)
    assert calls == [True]  # parsed in pieces, not by the whole-file fallback
    for k in ("boxes", "labels", "flags", "offsets", "image_ids", "annotation_ids"):
        np.testing.assert_array_equal(getattr(pieces, k), getattr(whole, k))


def _no_msgspec(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the piece parse take the general (json + columns) path."""
    import yolo2retina.formats.coco_json as coco_json

    monkeypatch.setattr(coco_json, "columns_decoder", lambda: None)


def _whole_columns(raw: bytes) -> tuple[dict[str, Any], Any]:
    doc = json.loads(raw.decode("utf-8-sig"))
    anns = doc["annotations"]
    doc["annotations"] = []
    return doc, ann_columns(anns, lambda i: "", {"difficult", "truncated"})


@settings(max_examples=120, deadline=None)
@given(
    read=st.integers(1, 300),
    piece=st.integers(1, 400),
    n=st.integers(1, 30),
    indent=st.sampled_from([None, 0, 2]),
    images_first=st.booleans(),
    bom=st.booleans(),
    fast=st.booleans(),
)
def test_streamed_pieces_equal_the_whole_parse(
    read: int, piece: int, n: int, indent: int | None, images_first: bool, bom: bool, fast: bool
) -> None:
    """Any block and piece size, either section order, indentation, a byte-order mark, with
    or without msgspec: the streamed piecewise parse equals the whole-file parse."""
    import yolo2retina.formats.coco_json as coco_json

    anns = many_coco_anns(3, n, segmentation=[[1, 2, 3, 4]], note="}, {x}]")
    anns[0]["difficult"] = 1
    images = [{"id": i + 1, "file_name": f"im{i}.jpg", "width": 64, "height": 48} for i in range(3)]
    cats = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    doc = (
        {"images": images, "annotations": anns, "categories": cats}
        if images_first
        else {"annotations": anns, "images": images, "categories": cats}
    )
    raw = (b"\xef\xbb\xbf" if bom else b"") + json.dumps(doc, indent=indent).encode()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(coco_json, "READ_BYTES", read)
        mp.setattr(coco_json, "PIECE_BYTES", piece)
        if not fast:
            _no_msgspec(mp)
        got = coco_json._chunked(io.BytesIO(raw), json.loads, len(raw))
    assert got is not None
    data, cols = got
    want_doc, want_cols = _whole_columns(raw)
    assert data == want_doc
    for a, b in zip(cols, want_cols, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_large_file_is_never_held_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is read a block at a time: the unparsed bytes held at once stay near
    ``2 * PIECE_BYTES + READ_BYTES``, not the file's size."""
    import yolo2retina.formats.coco_json as coco_json

    f = make_coco(tmp_path, 3, many_coco_anns(3, 400))
    size = f.stat().st_size
    monkeypatch.setattr(coco_json, "CHUNK_BYTES", 256)
    monkeypatch.setattr(coco_json, "PIECE_BYTES", 1024)
    monkeypatch.setattr(coco_json, "READ_BYTES", 1024)
    held: list[int] = []
    real_fill = coco_json._Window.fill

    def fill(self: Any, n: int) -> None:
        real_fill(self, n)
        held.append(len(self.data))

    monkeypatch.setattr(coco_json._Window, "fill", fill)
    ann = read_coco(f, cache=False)
    assert ann.num_boxes == 1200 and size > 50_000
    assert max(held) <= 2 * 1024 + 1024 + 1024  # plus at most one annotation


def test_more_annotations_than_the_size_bound_give_up(tmp_path: Path) -> None:
    """The columns are sized from the file size; a stream longer than that (a file growing
    while it is read) is not trusted: the caller parses the whole file."""
    import yolo2retina.formats.coco_json as coco_json

    f = make_coco(tmp_path, 3, many_coco_anns(3, 40))
    raw = f.read_bytes()
    assert coco_json._chunked(io.BytesIO(raw), json.loads, len(raw)) is not None
    assert coco_json._chunked(io.BytesIO(raw), json.loads, 54 * 50) is None


def test_pieces_without_msgspec_match(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without msgspec (the general path per piece) the large-file result is the same."""
    import yolo2retina.formats.coco_json as coco_json

    f = make_coco(tmp_path, 3, many_coco_anns(3, 40, iscrowd=False))
    whole = read_coco(f, cache=False)
    monkeypatch.setattr(coco_json, "CHUNK_BYTES", 256)
    monkeypatch.setattr(coco_json, "PIECE_BYTES", 256)
    fast = read_coco(f, cache=False)
    _no_msgspec(monkeypatch)
    general = read_coco(f, cache=False)
    for k in ("boxes", "labels", "flags", "offsets", "image_ids", "annotation_ids"):
        np.testing.assert_array_equal(getattr(fast, k), getattr(whole, k))
        np.testing.assert_array_equal(getattr(general, k), getattr(whole, k))


@pytest.mark.parametrize("fast", [True, False], ids=["msgspec", "general"])
def test_real_roboflow_export_streamed_in_pieces_equals_whole(
    blood_coco: Path, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    """The real export (indented, ids from 0, integer and fractional bboxes), read as a
    large file in small blocks and pieces, gives exactly the whole-file result."""
    import yolo2retina.formats.coco_json as coco_json

    f = blood_coco / "train" / "_annotations.coco.json"
    whole = read_coco(f, cache=False)
    monkeypatch.setattr(coco_json, "CHUNK_BYTES", 1024)
    monkeypatch.setattr(coco_json, "PIECE_BYTES", 2048)
    monkeypatch.setattr(coco_json, "READ_BYTES", 4096)
    if not fast:
        _no_msgspec(monkeypatch)
    with open(f, "rb") as fh:
        assert coco_json._chunked(fh, json.loads, f.stat().st_size) is not None
    pieces = read_coco(f, cache=False)
    assert pieces.num_boxes == whole.num_boxes > 4000
    for k in ("boxes", "labels", "flags", "offsets", "image_ids", "annotation_ids", "paths"):
        np.testing.assert_array_equal(getattr(pieces, k), getattr(whole, k))
