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

import os
import pyexpat
import xml.etree.ElementTree as ET

from yolo2retina.formats._files import quote
from yolo2retina.formats.voc_plain import plain_record
from yolo2retina.formats.voc_record import COORDS as COORDS
from yolo2retina.formats.voc_record import (
    FLAG_TAGS,
    FieldError,
    VocObject,
    flag_bits,
    number,
    pixels,
)
from yolo2retina.formats.voc_record import VocRecord as VocRecord

_REFUSED = (
    "(DTDs, entity declarations and external entity references are not allowed in "
    "annotation XML: a possible entity-expansion bomb or external-entity attack)"
)


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
        raise FieldError(f"{where}: {len(found)} <{tag}> elements in <{parent}>, expected one")
    return found[0]


def _size(size: dict[str, list[ET.Element]], tag: str, xml: str) -> int:
    """``<width>`` or ``<height>`` in pixels; 0 when absent (size then unknown)."""
    return pixels(_text(_one(size, tag, "size", xml)), tag, xml)


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
    except FieldError as e:
        problems.append(str(e))
        return None
    rec = VocRecord(xml, filename, size_wh)
    for k, obj in enumerate(top.get("object", ()), 1):  # <part> children are ignored
        try:
            o = _fast_object(obj) or _parse_object(obj, f"{xml}: object {k}")
        except FieldError as e:
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
    flags = flag_bits(
        "" if (el := one.get(tag)) is None or el.text is None else el.text for tag, _ in FLAG_TAGS
    )
    if flags is None:
        return None
    return name, (vals[0], vals[1], vals[2], vals[3]), flags


def _parse_object(obj: ET.Element, where: str) -> VocObject:
    """One ``<object>``: name, ``<bndbox>`` as in the file, difficult/truncated flags;
    :class:`FieldError` with the location and the reason when it cannot be read."""
    children = _by_tag(obj)
    name = _text(_one(children, "name", "object", where))
    if name is None:
        raise FieldError(f"{where}: no <name>")
    where = f"{where} ({quote(name)})"
    bnd = _one(children, "bndbox", "object", where)
    if bnd is None:
        raise FieldError(f"{where}: no <bndbox>")
    coords = _by_tag(bnd)
    vals = []
    for tag in COORDS:  # found by tag, so any child order works
        t = _text(_one(coords, tag, "bndbox", where))
        if t is None:
            raise FieldError(f"{where}: <bndbox> has no <{tag}>")
        vals.append(number(t, tag, where))
    flags = 0
    for tag, bit in FLAG_TAGS:
        t = _text(_one(children, tag, "object", where))
        if t is None:
            continue
        if t not in ("0", "1"):
            raise FieldError(f"{where}: <{tag}> must be 0 or 1, got {quote(t)}")
        if t == "1":
            flags |= bit
    return name, (vals[0], vals[1], vals[2], vals[3]), flags
