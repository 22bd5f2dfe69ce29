"""Tests for parsing COCO JSON, whole or in pieces (yolo2retina/formats/coco_json.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.formats._helpers import coco_ann, make_coco, many_coco_anns
from yolo2retina.errors import DatasetError
from yolo2retina.formats.coco import read_coco
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
    got = coco_json._chunked(raw, json.loads, set())
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
    assert coco_json._chunked(f.read_bytes(), json.loads, set()) is None
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
