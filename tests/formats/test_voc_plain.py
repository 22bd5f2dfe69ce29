"""The plain path of the VOC reader (yolo2retina/formats/voc_plain.py) answers only with
the hardened tree path's record, and common exports take it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.formats.test_voc import _mutate_bytes, _mutate_xml, _voc_documents, _xml_ops
from tests.formats.test_voc_xml import _insert, _inserts, _one_byte_op
from yolo2retina.formats.voc_plain import plain_record
from yolo2retina.formats.voc_xml import parse_xml
from yolo2retina.target import FLAG_TRUNCATED

# -- the plain path (no tree) gives the tree path's record --------------------------------


def _tree_record(path: Path, data: bytes) -> tuple[object, ...] | None:
    """parse_xml's record with the plain path turned off; None when it has problems."""
    from unittest import mock

    path.write_bytes(data)
    problems: list[str] = []
    with mock.patch("yolo2retina.formats.voc_xml.plain_record", return_value=None):
        rec = parse_xml(str(path), problems)
    if rec is None or problems:
        return None
    return (rec.filename, rec.size_wh, rec.names, rec.boxes, rec.flags, rec.numbers)


def _plain(data: bytes) -> tuple[object, ...] | None:
    rec = plain_record("a.xml", data)
    if rec is None:
        return None
    return (rec.filename, rec.size_wh, rec.names, rec.boxes, rec.flags, rec.numbers)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_voc_documents(), xml_ops=_xml_ops, inserts=_inserts, byte_ops=_one_byte_op)
def test_plain_path_answers_only_with_the_tree_paths_record(
    tmp_path_factory: pytest.TempPathFactory,
    doc: bytes,
    xml_ops: list[tuple[str, int, int]],
    inserts: list[tuple[int, str]],
    byte_ops: list[tuple[str, int, bytes]],
) -> None:
    """Whenever the plain path answers, the tree path reads the same record with no
    problem (a plain path that took a bad or ambiguous file would differ here)."""
    data = _mutate_xml(doc, xml_ops)
    for pos, snippet in inserts:
        data = _insert(data, pos, snippet)
    data = _mutate_bytes(data, byte_ops)
    plain = _plain(data)
    if plain is not None:
        assert repr(plain) == repr(_tree_record(tmp_path_factory.mktemp("x") / "a.xml", data))


_LABELIMG = (
    '<?xml version="1.0" encoding="UTF-8"?>\r\n<annotation>\r\n\t<folder>f</folder>\r\n'
    "\t<filename> a.jpg </filename>\r\n\t<path>/x/a.jpg</path>\r\n\t<source>\r\n"
    "\t\t<database>Unknown</database>\r\n\t</source>\r\n\t<size>\r\n\t\t<width>64</width>\r\n"
    "\t\t<height>48</height>\r\n\t\t<depth>3</depth>\r\n\t</size>\r\n\t<segmented>0</segmented>"
    "\r\n\t<object>\r\n\t\t<name> dog </name>\r\n\t\t<pose>Unspecified</pose>\r\n"
    "\t\t<truncated>1</truncated>\r\n\t\t<difficult>0</difficult>\r\n\t\t<bndbox>\r\n"
    "\t\t\t<xmin>2</xmin>\r\n\t\t\t<ymin>3</ymin>\r\n\t\t\t<xmax>20</xmax>\r\n"
    "\t\t\t<ymax>30.5</ymax>\r\n\t\t</bndbox>\r\n\t</object>\r\n</annotation>\r\n"
)
_ROBOFLOW = (
    "<annotation><folder></folder><filename>b.jpg</filename><path>b.jpg</path><source>"
    "<database>roboflow.com</database></source><size><width>640</width><height>480</height>"
    "<depth>3</depth></size><segmented>0</segmented><object><name>cat</name><pose>"
    "Unspecified</pose><truncated>0</truncated><difficult>1</difficult><occluded>0</occluded>"
    "<bndbox><xmin>2.5</xmin><xmax>20.25</xmax><ymin>3</ymin><ymax>30</ymax></bndbox>"
    "</object><object><name>dog</name><bndbox><xmin>1</xmin><xmax>2</xmax><ymin>3</ymin>"
    "<ymax>4</ymax></bndbox></object></annotation>"
)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (_LABELIMG, ("a.jpg", (64, 48), ["dog"], [(2.0, 3.0, 20.0, 30.5)], [FLAG_TRUNCATED])),
        (
            _ROBOFLOW,
            ("b.jpg", (640, 480), ["cat", "dog"], [(2.5, 3.0, 20.25, 30.0), (1.0, 3.0, 2.0, 4.0)]),
        ),
        ("<annotation><filename>c.jpg</filename></annotation>", ("c.jpg", None, [], [])),
    ],
    ids=["labelimg-crlf", "roboflow", "no-objects"],
)
def test_common_exports_take_the_plain_path(
    tmp_path: Path, text: str, want: tuple[object, ...]
) -> None:
    data = text.encode()
    plain = _plain(data)
    assert plain is not None, "a common export must not need the tree"
    assert plain[: len(want)] == want
    assert repr(plain) == repr(_tree_record(tmp_path / "a.xml", data))


@pytest.mark.parametrize(
    "text",
    [
        _ROBOFLOW.replace("<ymax>30</ymax>", "<ymax>30</ymax><ymax>31</ymax>"),  # repeated
        _ROBOFLOW.replace("<difficult>1</difficult>", "<difficult>2</difficult>"),  # bad flag
        _ROBOFLOW.replace("<occluded>0</occluded>", "<part><name>p</name></part>"),  # <part>
        _ROBOFLOW.replace("<name>cat</name>", "<name>c&amp;t</name>"),  # an entity
        _ROBOFLOW.replace("<filename>b.jpg</filename>", "<filename>b</filename><!-- x -->"),
        _ROBOFLOW.replace("<annotation>", '<annotation verified="yes">'),  # an attribute
        _ROBOFLOW.replace("</annotation>", "</annotation><x></x>"),  # a second root
        _ROBOFLOW.replace("</object></annotation>", "</object>"),  # unclosed
        _ROBOFLOW.replace("<xmin>2.5</xmin>", "<xmin>2_5</xmin>"),  # not a plain number
        _ROBOFLOW.replace("<width>640</width>", "<width>64.5</width>"),  # not whole pixels
        '<?xml version="1.0" encoding="latin-1"?>' + _ROBOFLOW,  # another encoding
        "<!DOCTYPE a [<!ENTITY e 'x'>]>" + _ROBOFLOW,
    ],
)
def test_anything_else_takes_the_tree_path(text: str) -> None:
    assert _plain(text.encode()) is None
