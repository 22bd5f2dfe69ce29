"""Tests for the hardened VOC XML parser (yolo2retina/formats/voc_xml.py).

The parser of 0.2 (defusedxml driving the pure-Python tree builder, every child found with
``findall``) is kept below as the reference: on any document without a DOCTYPE the fast
parser must give the same record and the same problems.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import defusedxml
import defusedxml.ElementTree as SafeET
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.formats.test_voc import _mutate_bytes, _mutate_xml, _voc_documents, _xml_ops
from yolo2retina.formats._files import quote
from yolo2retina.formats.voc_record import NUMBER as _NUMBER
from yolo2retina.formats.voc_record import FieldError as _Bad
from yolo2retina.formats.voc_record import number as _number
from yolo2retina.formats.voc_xml import parse_xml, prolog_refusal
from yolo2retina.target import FLAG_DIFFICULT, FLAG_TRUNCATED

# -- the parser of 0.2, the reference ------------------------------------------------------


class _OldBad(Exception):
    pass


def _old_text(el: ET.Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    return el.text.strip() or None


def _old_child(parent: ET.Element, tag: str, where: object) -> ET.Element | None:
    found = parent.findall(tag)
    if len(found) > 1:
        raise _OldBad(f"{where}: {len(found)} <{tag}> elements in <{parent.tag}>, expected one")
    return found[0] if found else None


def _old_number(text: str, tag: str, where: object) -> float:
    if not _NUMBER.fullmatch(text):
        raise _OldBad(f"{where}: <{tag}> {quote(text)} is not a number")
    return float(text)


def _old_size(size: ET.Element, tag: str, xml: str) -> int:
    t = _old_text(_old_child(size, tag, xml))
    if t is None:
        return 0
    v = _old_number(t, tag, f"{xml}: <size>")
    if not (math.isfinite(v) and v >= 0 and v.is_integer()):
        raise _OldBad(f"{xml}: <size> <{tag}> {quote(t)} is not a whole number of pixels")
    return int(v)


def _old_object(obj: ET.Element, where: str) -> tuple[object, ...]:
    name = _old_text(_old_child(obj, "name", where))
    if name is None:
        raise _OldBad(f"{where}: no <name>")
    where = f"{where} ({quote(name)})"
    bnd = _old_child(obj, "bndbox", where)
    if bnd is None:
        raise _OldBad(f"{where}: no <bndbox>")
    vals = []
    for tag in ("xmin", "ymin", "xmax", "ymax"):
        t = _old_text(_old_child(bnd, tag, where))
        if t is None:
            raise _OldBad(f"{where}: <bndbox> has no <{tag}>")
        vals.append(_old_number(t, tag, where))
    flags = 0
    for tag, bit in (("difficult", FLAG_DIFFICULT), ("truncated", FLAG_TRUNCATED)):
        t = _old_text(_old_child(obj, tag, where))
        if t is None:
            continue
        if t not in ("0", "1"):
            raise _OldBad(f"{where}: <{tag}> must be 0 or 1, got {quote(t)}")
        if t == "1":
            flags |= bit
    return (name, tuple(vals), flags, where)


def _old_parse(xml: str, problems: list[str]) -> tuple[object, ...] | None:
    """0.2's parse_xml, as ``(filename, size_wh, [(name, box, flags, where), ...])``."""
    try:
        root = SafeET.parse(xml).getroot()
    except defusedxml.DefusedXmlException as e:
        problems.append(f"{xml}: refused: {type(e).__name__}")
        return None
    except ET.ParseError as e:
        line = e.position[0] if e.position else 0
        problems.append(f"{xml}:{line}: malformed XML: {e}")
        return None
    if root.tag != "annotation":
        problems.append(f"{xml}: root element is <{root.tag}>, expected <annotation>")
        return None
    try:
        filename = _old_text(_old_child(root, "filename", xml))
        size_wh = None
        size = _old_child(root, "size", xml)
        if size is not None:
            w, h = _old_size(size, "width", xml), _old_size(size, "height", xml)
            size_wh = (w, h) if w > 0 and h > 0 else None
    except _OldBad as e:
        problems.append(str(e))
        return None
    objects = []
    for k, obj in enumerate(root.findall("object"), 1):
        try:
            objects.append(_old_object(obj, f"{xml}: object {k}"))
        except _OldBad as e:
            problems.append(str(e))
    return (filename, size_wh, objects)


def _new_parse(xml: str, problems: list[str]) -> tuple[object, ...] | None:
    rec = parse_xml(xml, problems)
    if rec is None:
        return None
    objects = [
        (n, b, f, rec.where(i))
        for i, (n, b, f) in enumerate(zip(rec.names, rec.boxes, rec.flags, strict=True))
    ]
    return (rec.filename, rec.size_wh, objects)


def _same_as_old(path: Path, data: bytes) -> None:
    """The fast parser and 0.2's give the same record and problems for ``data``."""
    path.write_bytes(data)
    old_problems: list[str] = []
    new_problems: list[str] = []
    old = _old_parse(str(path), old_problems)
    new = _new_parse(str(path), new_problems)
    if any("refused" in p for p in new_problems):  # a DOCTYPE: see the refusal tests
        assert new is None and len(new_problems) == 1
        return
    assert repr(new) == repr(old)  # repr: NaN equals NaN, -0.0 differs from 0.0
    assert new_problems == old_problems


# -- the same results as the old parser ---------------------------------------------------

#: Things real files hold that the generated documents do not: comments and processing
#: instructions (also inside text), CDATA, character and predefined entity references,
#: CRLF line ends, attributes, namespaces, whitespace of every kind, non-ASCII names.
_SNIPPETS = [
    "<!-- c -->", "<?pi x?>", "<![CDATA[7]]>", "<![CDATA[<x>]]>", "&amp;", "&#49;", "&#x31;",
    "\r\n", "\r", "\t", " ", "\u3000", "\x1c", "é", "<pose>Left</pose>", '<part x="1"/>',
    "<name/>", "<bndbox/>", "<difficult/>", '<a:b xmlns:a="u">1</a:b>', "<c:d>", "_", "1e3",
]  # fmt: skip


def _insert(data: bytes, pos: int, snippet: str) -> bytes:
    k = pos % (len(data) + 1)
    return data[:k] + snippet.encode() + data[k:]


#: Up to three snippets inserted anywhere, and at most one byte-level damage.
_inserts = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(_SNIPPETS)), max_size=3)
_one_byte_op = st.lists(
    st.tuples(
        st.sampled_from(["truncate", "flip", "insert", "bad-utf8", "delete"]),
        st.integers(0, 10_000),
        st.binary(min_size=1, max_size=4),
    ),
    max_size=1,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_voc_documents(), xml_ops=_xml_ops, inserts=_inserts, byte_ops=_one_byte_op)
@example(doc=b"<annotation><object><name>a&amp;b</name></object></annotation>", xml_ops=[],
         inserts=[], byte_ops=[])  # fmt: skip
def test_fast_parser_gives_what_the_old_parser_gave(
    tmp_path_factory: pytest.TempPathFactory,
    doc: bytes,
    xml_ops: list[tuple[str, int, int]],
    inserts: list[tuple[int, str]],
    byte_ops: list[tuple[str, int, bytes]],
) -> None:
    """Generated VOC documents, mutated (elements dropped, repeated, renamed, nested, moved;
    comments, CDATA, entities, CRLF, odd whitespace inserted; bytes damaged): the fast
    parser's record and problems are exactly the old parser's."""
    data = _mutate_xml(doc, xml_ops)
    for pos, snippet in inserts:
        data = _insert(data, pos, snippet)
    data = _mutate_bytes(data, byte_ops)
    _same_as_old(tmp_path_factory.mktemp("x") / "a.xml", data)


@pytest.mark.parametrize(
    "text",
    [
        # LabelImg (attributes on the root, <segmented>, <pose>), CRLF line ends
        '<annotation verified="yes">\r\n<folder>f</folder><filename>a.jpg</filename>\r\n'
        "<size><width>64</width><height>48</height><depth>3</depth></size>"
        "<object><name>dog</name><pose>Unspecified</pose><truncated>1</truncated>"
        "<difficult>0</difficult><bndbox><xmin>2</xmin><ymin>3</ymin><xmax>20</xmax>"
        "<ymax>30</ymax></bndbox></object></annotation>",
        # Roboflow: xmin, xmax, ymin, ymax order, <occluded>, fractional values
        "<annotation><filename>a.jpg</filename><object><name>cat</name><occluded>0</occluded>"
        "<bndbox><xmin>2.5</xmin><xmax>20.25</xmax><ymin>3</ymin><ymax>30</ymax></bndbox>"
        "</object></annotation>",
        # text split by a comment, CDATA, entity references, a name with spaces inside
        "<annotation><filename>a<!-- x -->.jpg</filename><object><name> big &amp; small "
        "</name><bndbox><xmin><![CDATA[1]]></xmin><ymin>&#49;</ymin><xmax>5</xmax>"
        "<ymax>6</ymax></bndbox><difficult> 1 </difficult></object></annotation>",
        # a UTF-16 file with a BOM, and a Latin-1 one that says so
        "\ufeff<annotation><filename>é.jpg</filename></annotation>",
        '<?xml version="1.0" encoding="ISO-8859-1"?><annotation><filename>é.jpg</filename>'
        "</annotation>",
        # numbers the fast path leaves to the careful one: whitespace, \x1c, _, non-ASCII
        "<annotation><object><name>x</name><bndbox><xmin>\x1c1\x1c</xmin><ymin> 2 </ymin>"
        "<xmax>1_0</xmax><ymax>\u0665</ymax></bndbox></object></annotation>",
        # elements in the wrong place, repeated, empty; <part> boxes ignored
        "<annotation><object><name>x</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax>"
        "<ymax>5</ymax></bndbox><part><name>p</name><bndbox/></part></object><object><name/>"
        "</object><object><name>y</name><bndbox><xmin>1</xmin><xmin>2</xmin></bndbox></object>"
        "<object><name>z</name><difficult>2</difficult><bndbox/></object></annotation>",
    ],
    ids=["labelimg", "roboflow", "comment-cdata-entities", "utf16", "latin1", "numbers", "odd"],
)
def test_real_world_shapes_read_as_before(tmp_path: Path, text: str) -> None:
    """LabelImg, Roboflow, comments, CDATA, entities, other encodings: as the old parser."""
    encoding = "utf-16" if text.startswith("\ufeff") else "latin-1" if "8859" in text else "utf-8"
    _same_as_old(tmp_path / "a.xml", text.lstrip("\ufeff").encode(encoding))


_BOX = "<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>5</xmax><ymax>6</ymax></bndbox>"


@pytest.mark.parametrize(
    "obj",
    [
        f"<name>x</name><difficult>2</difficult>{_BOX}",
        f"<name>x</name><truncated>yes</truncated>{_BOX}",
        f"<name>x</name><difficult>1</difficult><difficult>1</difficult>{_BOX}",
        f"<name>x</name><truncated/><truncated>0</truncated>{_BOX}",
        f"<name>x</name><name>x</name>{_BOX}",
        f"<name> </name>{_BOX}",
        f"<name>x</name>{_BOX}{_BOX}",
        f"<name>x</name>{_BOX.replace('<xmax>5</xmax>', '<xmax>5</xmax><xmax>5</xmax>')}",
        f"<name>x</name>{_BOX.replace('<xmax>5</xmax>', '')}",
        f"<name>x</name>{_BOX.replace('<xmax>5</xmax>', '<xmax> </xmax>')}",
        f"<name>x</name>{_BOX.replace('>5<', '>٥<')}",
        f"<name>x</name>{_BOX.replace('>5<', '>5_0<')}",
        f"<name>x</name>{_BOX.replace('>5<', '>0x5<')}",
        f"<name>x</name>{_BOX.replace('>5<', '> 5e0 <')}",
        f"<name>x</name>{_BOX.replace('>5<', '>nan<')}",
        f"<name>x</name><difficult> 1 </difficult><truncated>\t0</truncated>{_BOX}",
        f"<name>x<b/>y</name>{_BOX}",
        f"<bndbox><xmin>1</xmin></bndbox><name>x</name><part>{_BOX}</part>",
    ],
)
def test_each_fast_path_decision_matches_the_old_parser(tmp_path: Path, obj: str) -> None:
    """An object that is valid but for one thing (a flag of 2, two <difficult>, a blank
    name, a repeated or missing coordinate, an odd number) reads as in 0.2, beside a
    plain object."""
    _same_as_old(
        tmp_path / "a.xml",
        f"<annotation><object><name>y</name>{_BOX}</object><object>{obj}</object>"
        "</annotation>".encode(),
    )


def test_fast_path_reads_a_box_exactly(tmp_path: Path) -> None:
    """Fixed expected values: the file's numbers, no half-pixel shift, flags as bits."""
    (tmp_path / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>640</width><height>480</height>"
        "</size><object><name>dog</name><difficult>1</difficult><truncated>1</truncated>"
        "<bndbox><xmin>0.5</xmin><ymin>1</ymin><xmax>640</xmax><ymax>479.75</ymax></bndbox>"
        "</object></annotation>"
    )
    problems: list[str] = []
    rec = parse_xml(tmp_path / "a.xml", problems)
    assert problems == [] and rec is not None
    assert (rec.filename, rec.size_wh) == ("a.jpg", (640, 480))
    assert rec.names == ["dog"] and rec.boxes == [(0.5, 1.0, 640.0, 479.75)]
    assert rec.flags == [FLAG_DIFFICULT | FLAG_TRUNCATED]
    assert rec.where(0) == f"{tmp_path / 'a.xml'}: object 1 ('dog')"


@settings(max_examples=500, deadline=None)
@given(
    text=st.one_of(
        st.text(alphabet="0123456789+-.eE_ naifty\u0665\x1c", max_size=12),
        st.from_regex(_NUMBER, fullmatch=True),
        st.text(max_size=8),
    )
)
def test_number_takes_exactly_the_plain_decimals(text: str) -> None:
    """_number's float() fast path accepts exactly what the _NUMBER pattern accepts, with
    the same value (on stripped text, as the parser gives it)."""
    t = text.strip()
    if not t:
        return
    if _NUMBER.fullmatch(t):
        want = float(t)
        got = _number(t, "xmin", "a.xml")
        assert got == want or (math.isnan(got) and math.isnan(want))
    else:
        with pytest.raises(_Bad, match=r"a\.xml: <xmin> .* is not a number"):
            _number(t, "xmin", "a.xml")


# -- refusals: DTDs, entities, external references ----------------------------------------

_BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
]>
<annotation><filename>&lol2;</filename></annotation>
"""


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (_BOMB, 2),
        ('<?xml version="1.0"?>\n\n<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
         "<annotation><filename>&x;</filename></annotation>", 3),
        ('<!DOCTYPE a [<!ENTITY % p SYSTEM "http://example.com/x.dtd"> %p;]><annotation/>', 1),
        ('\n<!DOCTYPE annotation SYSTEM "http://example.com/voc.dtd">\n<annotation/>', 2),
        ('<!DOCTYPE a [<!ENTITY u SYSTEM "x" NDATA gif>]><annotation/>', 1),
        ("<!DOCTYPE annotation>\n<annotation/>", 1),
    ],
    ids=["billion-laughs", "external-entity", "parameter-entity", "external-dtd", "unparsed",
         "bare-doctype"],
)  # fmt: skip
def test_doctype_and_entities_are_refused_with_file_and_line(
    tmp_path: Path, text: str, line: int
) -> None:
    """Any DOCTYPE is refused before anything is expanded or fetched, naming the file and
    the line; a bare DOCTYPE too (0.2 accepted one without entities)."""
    (tmp_path / "a.xml").write_text(text)
    problems: list[str] = []
    assert parse_xml(tmp_path / "a.xml", problems) is None
    assert len(problems) == 1
    assert re.fullmatch(
        rf"{re.escape(str(tmp_path / 'a.xml'))}: refused: <!DOCTYPE \w+> on line {line} "
        r"\(DTDs, entity declarations and external entity references are not allowed .*",
        problems[0],
    ), problems[0]


def test_a_bomb_in_utf16_is_refused_too(tmp_path: Path) -> None:
    """The prolog check reads the encoding as the parser does: UTF-16 hides nothing."""
    (tmp_path / "a.xml").write_bytes(
        _BOMB.replace('"1.0"?', '"1.0" encoding="utf-16"?').encode("utf-16")
    )
    problems: list[str] = []
    assert parse_xml(tmp_path / "a.xml", problems) is None
    assert "refused: <!DOCTYPE lolz> on line 2" in problems[0]


def test_undeclared_entity_is_malformed_xml_with_its_line(tmp_path: Path) -> None:
    """Without a DOCTYPE no entity can be declared: a reference is malformed XML, file:line."""
    (tmp_path / "a.xml").write_text("<annotation>\n<filename>&xxe;</filename></annotation>")
    problems: list[str] = []
    assert parse_xml(tmp_path / "a.xml", problems) is None
    assert problems == [
        f"{tmp_path / 'a.xml'}:2: malformed XML: undefined entity: line 2, column 10"
    ]


@pytest.mark.parametrize(
    ("data", "want"),
    [
        (b"<annotation/>", None),
        (b"<!-- c --><?pi?><annotation><x/></annotation>", None),
        (b"<annotation>", None),  # broken after the root: the full parse reports it
        (b"<!DOCTYPE a><annotation/>", ("<!DOCTYPE a>", 1)),
        (b"\n\n<!DOCTYPE a [<!ENTITY x 'y'>]><a/>", ("<!DOCTYPE a>", 3)),
    ],
)
def test_prolog_refusal(data: bytes, want: tuple[str, int] | None) -> None:
    """prolog_refusal stops at the root element; it refuses any DOCTYPE with its line."""
    assert prolog_refusal(data) == want
