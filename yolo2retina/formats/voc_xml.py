"""Parsing one Pascal VOC annotation XML into a record: file name, size and objects.

Hardened, and fast (C parsers only, no Python call per element):

1. The prolog is read by :mod:`pyexpat` with handlers that refuse a ``<!DOCTYPE>``, an entity
   declaration and an external entity reference, with parameter entities off
   (``XML_PARAM_ENTITY_PARSING_NEVER``); it stops at the root element. Entities can only be
   declared in a DOCTYPE, so a document that reaches its root without one can hold no
   entity but the five predefined ones and character references: no billion-laughs bomb,
   no external entity, no DTD fetched.
2. Only such a document is parsed, by the C :class:`xml.etree.ElementTree.XMLParser`.
3. The fields the reader needs (``<filename>``, ``<size>``, each ``<object>``'s ``<name>``,
   ``<bndbox>``, ``<difficult>``, ``<truncated>``) are read from the tree in one pass per
   element.

Every value is read strictly: an element given twice (two ``<bndbox>``, two ``<xmin>``) is
an error, numbers must be plain decimals, sizes whole pixels. Errors name the file (and the
line, for malformed XML and for a refused DOCTYPE).
"""

from __future__ import annotations

import math
import os
import pyexpat
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable

import attrs

from yolo2retina.formats._files import quote
from yolo2retina.target import FLAG_DIFFICULT, FLAG_TRUNCATED

#: The ``<bndbox>`` children, in the order of a box.
COORDS = ("xmin", "ymin", "xmax", "ymax")
_FLAG_TAGS = (("difficult", FLAG_DIFFICULT), ("truncated", FLAG_TRUNCATED))


#: What one ``<object>`` gives: its name, ``<bndbox>`` as in the file (1-based), flag bits.
VocObject = tuple[str, tuple[float, float, float, float], int]


@attrs.define
class VocRecord:
    """One annotation file: its path, ``<filename>``, ``<size>`` (``None`` when unknown),
    and its readable objects as columns (a bad ``<object>`` is a problem and left out).

    Attributes:
        names: ``<name>`` of each object.
        boxes: ``<bndbox>`` ``(xmin, ymin, xmax, ymax)`` as in the file (1-based).
        flags: ``FLAG_DIFFICULT`` / ``FLAG_TRUNCATED`` bits.
        numbers: each object's 1-based position among the file's ``<object>`` elements.
    """

    xml: str
    filename: str | None
    size_wh: tuple[int, int] | None
    names: list[str] = attrs.field(factory=list)
    boxes: list[tuple[float, float, float, float]] = attrs.field(factory=list)
    flags: list[int] = attrs.field(factory=list)
    numbers: list[int] = attrs.field(factory=list)

    def where(self, i: int) -> str:
        """The location of object ``i`` for messages: ``a.xml: object 3 ('dog')``."""
        return f"{self.xml}: object {self.numbers[i]} ({quote(self.names[i])})"


#: A plain decimal number (``nan``/``inf`` too, so they are reported as non-finite);
#: ``float()`` alone would also take ``1_000`` and non-ASCII digits.
_NUMBER = re.compile(
    r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)", re.IGNORECASE | re.ASCII
)

_REFUSED = (
    "(DTDs, entity declarations and external entity references are not allowed in "
    "annotation XML: a possible entity-expansion bomb or external-entity attack)"
)


class _Bad(Exception):
    """One problem in an XML file, with its location; the object (or file) is skipped."""


class _Refused(Exception):
    """A DOCTYPE, an entity declaration or an external entity: ``(what, line)``."""


class _RootReached(Exception):
    """The prolog is over: the root element starts."""


def prolog_refusal(data: bytes) -> tuple[str, int] | None:
    """``(what, line)`` when ``data`` holds a DOCTYPE or an entity; ``None`` when its root
    element is reached without one (or the XML breaks first: the full parse reports that).

    Uses expat with the same encoding detection and namespace handling as
    :class:`xml.etree.ElementTree.XMLParser`, so both see the same prolog.
    """
    parser = pyexpat.ParserCreate(None, "}")
    parser.SetParamEntityParsing(pyexpat.XML_PARAM_ENTITY_PARSING_NEVER)

    def doctype(name: str, *_: object) -> None:
        raise _Refused(f"<!DOCTYPE {name}>", parser.CurrentLineNumber)

    def entity(name: str, *_: object) -> None:
        raise _Refused(f"entity declaration {quote(name)}", parser.CurrentLineNumber)

    def external(*_: object) -> int:
        raise _Refused("external entity reference", parser.CurrentLineNumber)

    def root(*_: object) -> None:
        raise _RootReached

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.UnparsedEntityDeclHandler = entity
    parser.ExternalEntityRefHandler = external
    parser.StartElementHandler = root
    try:
        parser.Parse(data, True)
    except _Refused as e:
        return str(e.args[0]), int(e.args[1])
    except (_RootReached, pyexpat.ExpatError):
        pass
    return None


def _text(el: ET.Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    t = el.text.strip()
    return t or None


def _by_tag(parent: ET.Element) -> dict[str, list[ET.Element]]:
    """The children of ``parent`` grouped by tag, in document order."""
    found: dict[str, list[ET.Element]] = {}
    for c in parent:
        tag = c.tag
        if tag in found:
            found[tag].append(c)
        else:
            found[tag] = [c]
    return found


def _one(
    children: dict[str, list[ET.Element]], tag: str, parent: str, where: object
) -> ET.Element | None:
    """The one ``<tag>`` child; two are ambiguous, so an error."""
    found = children.get(tag)
    if found is None:
        return None
    if len(found) > 1:
        raise _Bad(f"{where}: {len(found)} <{tag}> elements in <{parent}>, expected one")
    return found[0]


def _number(text: str, tag: str, where: object) -> float:
    """A plain decimal number (see :data:`_NUMBER`).

    For stripped ASCII text without ``_``, ``float()`` takes exactly what :data:`_NUMBER`
    matches (a test checks this), and :data:`_NUMBER` matches no other text.
    """
    if text.isascii() and "_" not in text:  # what _NUMBER cannot match anyway
        try:
            return float(text)
        except ValueError:
            pass
    raise _Bad(f"{where}: <{tag}> {quote(text)} is not a number")


def _size(size: dict[str, list[ET.Element]], tag: str, xml: str) -> int:
    """``<width>`` or ``<height>`` in pixels; 0 when absent (size then unknown)."""
    return _pixels(_text(_one(size, tag, "size", xml)), tag, xml)


def _pixels(t: str | None, tag: str, xml: str) -> int:
    """The stripped text ``t`` of ``<width>`` or ``<height>`` as whole pixels; 0 for none."""
    if t is None:
        return 0
    v = _number(t, tag, f"{xml}: <size>")
    if not (math.isfinite(v) and v >= 0 and v.is_integer()):
        raise _Bad(f"{xml}: <size> <{tag}> {quote(t)} is not a whole number of pixels")
    return int(v)


def _tree(xml: str, data: bytes, problems: list[str]) -> ET.Element | None:
    """The root element of ``data``, or ``None`` after a problem (refused, malformed)."""
    refused = prolog_refusal(data)
    if refused is not None:
        problems.append(f"{xml}: refused: {refused[0]} on line {refused[1]} {_REFUSED}")
        return None
    parser = ET.XMLParser()  # safe now: no DOCTYPE, so no entity can be declared
    try:
        parser.feed(data)
        root: ET.Element = parser.close()
    except ET.ParseError as e:
        line = e.position[0] if e.position else 0
        problems.append(f"{xml}:{line}: malformed XML: {e}")
        return None
    return root


def parse_xml(xml: str | os.PathLike[str], problems: list[str]) -> VocRecord | None:
    """The record of one XML file; ``None`` (and a problem) when the file cannot be read.

    A bad ``<object>`` is a problem and is left out; the rest of the file is kept.
    """
    xml = os.fspath(xml)
    try:
        with open(xml, "rb") as f:
            data = f.read()
    except OSError as e:
        problems.append(f"{xml}: cannot read: {e.strerror or e}")
        return None
    plain = plain_record(xml, data)
    if plain is not None:
        return plain
    root = _tree(xml, data, problems)
    if root is None:
        return None
    if root.tag != "annotation":
        problems.append(f"{xml}: root element is <{root.tag}>, expected <annotation>")
        return None
    top = _by_tag(root)
    try:
        filename = _text(_one(top, "filename", "annotation", xml))
        size_wh: tuple[int, int] | None = None
        size = _one(top, "size", "annotation", xml)
        if size is not None:
            children = _by_tag(size)
            w, h = _size(children, "width", xml), _size(children, "height", xml)
            size_wh = (w, h) if w > 0 and h > 0 else None
    except _Bad as e:
        problems.append(str(e))
        return None
    rec = VocRecord(xml, filename, size_wh)
    for k, obj in enumerate(top.get("object", ()), 1):  # <part> children are ignored
        try:
            o = _fast_object(obj) or _parse_object(obj, f"{xml}: object {k}")
        except _Bad as e:
            problems.append(str(e))
            continue
        rec.names.append(o[0])
        rec.boxes.append(o[1])
        rec.flags.append(o[2])
        rec.numbers.append(k)
    return rec


_ONE_PER_OBJECT = frozenset({"name", "bndbox", "difficult", "truncated"})
_COORD_SET = frozenset(COORDS)


def _fast_object(obj: ET.Element) -> VocObject | None:
    """The common case, read with no check that can fail: ``None`` for anything unusual,
    which :func:`_parse_object` then reads again with every check and its message.

    Equal to :func:`_parse_object` wherever it returns (a test checks it on generated and
    mutated XML): ``float()`` strips the same whitespace as ``str.strip`` on ASCII text or
    fails, and a failure goes to the careful path.
    """
    one: dict[str, ET.Element] = {}
    for c in obj:
        tag = c.tag
        if tag in _ONE_PER_OBJECT:
            if tag in one:
                return None
            one[tag] = c
    bnd = one.get("bndbox")
    name = one["name"].text if "name" in one else None
    if bnd is None or name is None or not (name := name.strip()):
        return None
    texts: dict[str, str | None] = {}
    for c in bnd:
        tag = c.tag
        if tag in _COORD_SET:
            if tag in texts:
                return None
            texts[tag] = c.text
    vals = []
    for tag in COORDS:
        t = texts.get(tag)
        if t is None or not t.isascii() or "_" in t:
            return None
        try:
            vals.append(float(t))
        except ValueError:
            return None
    flags = _flag_bits(
        "" if (el := one.get(tag)) is None or el.text is None else el.text for tag, _ in _FLAG_TAGS
    )
    if flags is None:
        return None
    return name, (vals[0], vals[1], vals[2], vals[3]), flags


def _flag_bits(texts: Iterable[str]) -> int | None:
    """The flag bits of the texts of ``<difficult>`` and ``<truncated>`` (in
    :data:`_FLAG_TAGS` order; ``""`` when absent), or ``None`` unless each is empty, 0 or 1."""
    flags = 0
    for text, (_, bit) in zip(texts, _FLAG_TAGS, strict=True):
        t = text.strip()
        if t == "1":
            flags |= bit
        elif t not in ("", "0"):
            return None
    return flags


def _parse_object(obj: ET.Element, where: str) -> VocObject:
    """One ``<object>``: name, ``<bndbox>`` as in the file, difficult/truncated flags;
    :class:`_Bad` with the location and the reason when it cannot be read."""
    children = _by_tag(obj)
    name = _text(_one(children, "name", "object", where))
    if name is None:
        raise _Bad(f"{where}: no <name>")
    where = f"{where} ({quote(name)})"
    bnd = _one(children, "bndbox", "object", where)
    if bnd is None:
        raise _Bad(f"{where}: no <bndbox>")
    coords = _by_tag(bnd)
    vals = []
    for tag in COORDS:  # found by tag, so any child order works
        t = _text(_one(coords, tag, "bndbox", where))
        if t is None:
            raise _Bad(f"{where}: <bndbox> has no <{tag}>")
        vals.append(_number(t, tag, where))
    flags = 0
    for tag, bit in _FLAG_TAGS:
        t = _text(_one(children, tag, "object", where))
        if t is None:
            continue
        if t not in ("0", "1"):
            raise _Bad(f"{where}: <{tag}> must be 0 or 1, got {quote(t)}")
        if t == "1":
            flags |= bit
    return name, (vals[0], vals[1], vals[2], vals[3]), flags


# -- plain files, read by three regular expressions and no tree -----------------------------

_W = r"[ \t\n]*"
_N = r"[A-Za-z_][A-Za-z0-9_.\-]*"
#: An XML declaration that leaves the document in UTF-8.
_DECLARATION = re.compile(
    r"""<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(["'])1\.0\1"""
    r"""(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(["'])[Uu][Tt][Ff]-8\2)?"""
    r"""(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*(["'])(?:yes|no)\3)?[ \t\r\n]*\?>"""
)
#: One child of ``<annotation>`` before the first ``<object>``, whole, then ``(tag, text)``
#: of an element of text or ``(tag, inner)`` of an element of elements of text
#: (``<size>``, ``<source>``, ``<owner>``).
_HEAD_ITEM = re.compile(
    rf"({_W}(?:<(?P<a>{_N})>([^<]*)</(?P=a)>"
    rf"|<(?P<b>{_N})>((?:{_W}<(?P<c>{_N})>[^<]*</(?P=c)>)*){_W}</(?P=b)>))"
)
_TEXT_ELEMENT = re.compile(rf"<({_N})>([^<]*)</\1>")
#: One ``<object>`` as LabelImg, Roboflow, CVAT and yolo2retina write it: ``<name>``, then
#: ``<pose>``, ``<truncated>``, ``<occluded>``, ``<difficult>`` (each optional, in this order;
#: ``<truncated>`` may also come after ``<difficult>``), then ``<bndbox>`` with xmin, ymin,
#: xmax, ymax (or xmin, xmax, ymin, ymax). The flags' groups capture their start tag too,
#: so an empty element is told from an absent one (only a repeat needs telling).
_OBJECT = (
    rf"{_W}<object>{_W}<name>([^<]*)</name>(?:{_W}<pose>[^<]*</pose>)?"
    rf"(?:{_W}(<truncated>)([^<]*)</truncated>)?(?:{_W}<occluded>[^<]*</occluded>)?"
    rf"(?:{_W}<difficult>([^<]*)</difficult>)?(?:{_W}(<truncated>)([^<]*)</truncated>)?"
    rf"(?:{_W}<occluded>[^<]*</occluded>)?{_W}<bndbox>{_W}"
    rf"(?:<xmin>([^<]*)</xmin>{_W}(<ymin>)([^<]*)</ymin>{_W}<xmax>([^<]*)</xmax>"
    rf"|<xmin>([^<]*)</xmin>{_W}<xmax>([^<]*)</xmax>{_W}<ymin>([^<]*)</ymin>)"
    rf"{_W}<ymax>([^<]*)</ymax>{_W}</bndbox>{_W}</object>"
)
#: One object, whole, then the groups of :data:`_OBJECT`.
_OBJECTS = re.compile(f"({_OBJECT})")
#: Bytes XML 1.0 forbids (C0 controls but tab, LF, CR).
_FORBIDDEN = bytes(b for b in range(32) if b not in (9, 10, 13))


def plain_record(xml: str, data: bytes) -> VocRecord | None:
    """The record of a *plain* annotation file, read with no tree; or ``None``, and
    :func:`parse_xml` reads the file through the hardened parser.

    Plain: UTF-8 (an XML declaration may say so), no comment, CDATA, processing
    instruction, DOCTYPE, entity or character reference, no attribute or namespace; under
    ``<annotation>``, elements of text or of elements of text, then the ``<object>`` s at
    the end, each as the common tools write it (``<name>``, ``<pose>``, ``<truncated>``,
    ``<difficult>``, ``<occluded>``, ``<bndbox>``); and every field the reader takes
    readable, once. Such a document is well formed by construction, and its record is
    exactly the tree path's (tests check this on generated and mutated documents);
    anything else, including every malformed or hostile file, takes the tree path.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    has_decl = data.startswith(b"<?xml")
    if (
        b"&" in data
        or b"<!" in data
        or b"]]>" in data
        or data.count(b"<?") != has_decl
        or len(data.translate(None, _FORBIDDEN)) != len(data)
        or b"\xef\xbf\xbe" in data  # U+FFFE, U+FFFF
        or b"\xef\xbf\xbf" in data
    ):
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\r" in text:  # XML's end-of-line handling, as the parser does it
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    start = 0
    if has_decl:
        decl = _DECLARATION.match(text)
        if decl is None:
            return None
        start = decl.end()
    root = text.find("<annotation>", start)
    if root < 0 or text[start:root].strip(" \t\n"):
        return None
    objects_at = text.find("<object>", root)
    if objects_at < 0:
        objects_at = text.rfind("</annotation>")
    items = _HEAD_ITEM.findall(text, root + len("<annotation>"), objects_at)
    found = _OBJECTS.findall(text, objects_at)
    # the matches must tile the document: nothing but whitespace between or after them
    head_text = "".join(item[0] for item in items)
    objects_text = "".join(obj[0] for obj in found)
    rest = text[objects_at + len(objects_text) :]
    if (
        not text.startswith(head_text, root + len("<annotation>"))
        or text[root + len("<annotation>") + len(head_text) : objects_at].strip(" \t\n")
        or not text.startswith(objects_text, objects_at)
        or rest.strip(" \t\n") != "</annotation>"
    ):
        return None
    head = _plain_head(xml, items)
    if head is None:
        return None
    objects = [_plain_object(obj[1:]) for obj in found]
    if None in objects:
        return None
    head.names = [o[0] for o in objects]  # type: ignore[index]
    head.boxes = [o[1] for o in objects]  # type: ignore[index]
    head.flags = [o[2] for o in objects]  # type: ignore[index]
    head.numbers = list(range(1, len(objects) + 1))
    return head


def _plain_head(xml: str, items: list[tuple[str, ...]]) -> VocRecord | None:
    """The record's ``<filename>`` and ``<size>`` from :data:`_HEAD_ITEM` matches."""
    filenames = [text for _, tag, text, _, _, _ in items if tag == "filename"]
    sizes = [inner for _, tag, _, group, inner, _ in items if "size" in (tag, group)]
    objects = [1 for _, tag, _, group, _, _ in items if "object" in (tag, group)]
    if len(filenames) > 1 or len(sizes) > 1 or objects:
        return None
    filename = (filenames[0].strip() or None) if filenames else None
    size_wh: tuple[int, int] | None = None
    if sizes:
        children = _TEXT_ELEMENT.findall(sizes[0])
        widths = [t for tag, t in children if tag == "width"]
        heights = [t for tag, t in children if tag == "height"]
        if len(widths) > 1 or len(heights) > 1:
            return None
        try:
            w = _pixels(widths[0].strip() or None if widths else None, "width", xml)
            h = _pixels(heights[0].strip() or None if heights else None, "height", xml)
        except _Bad:
            return None  # the tree path reports it
        size_wh = (w, h) if w > 0 and h > 0 else None
    return VocRecord(xml, filename, size_wh)


def _plain_object(found: tuple[str, ...]) -> VocObject | None:
    """:func:`_fast_object` on the groups of one :data:`_OBJECTS` match."""
    name, t_tag, t1, d, t_tag2, t2, x1, y_first, y1, x2, x1b, x2b, y1b, y2 = found
    name = name.strip()
    if not name or (t_tag and t_tag2):
        return None  # no name, or two <truncated>
    if not y_first:  # xmin, xmax, ymin, ymax
        x1, x2, y1 = x1b, x2b, y1b
    texts = x1 + y1 + x2 + y2
    if not texts.isascii() or "_" in texts:
        return None
    try:
        box = (float(x1), float(y1), float(x2), float(y2))
    except ValueError:
        return None
    flags = _flag_bits(
        {"difficult": d, "truncated": t1 if t_tag else t2}[tag] for tag, _ in _FLAG_TAGS
    )
    if flags is None:
        return None
    return name, box, flags
