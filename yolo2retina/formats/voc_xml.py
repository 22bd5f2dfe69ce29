"""Parsing one Pascal VOC annotation XML into a record: file name, size and objects.

XML is parsed with :mod:`defusedxml`: entity declarations (billion-laughs bombs) and
external entities are refused with an error naming the file. Every value is read strictly:
an element given twice (two ``<bndbox>``, two ``<xmin>``) is an error, numbers must be
plain decimals, sizes whole pixels.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import attrs
import defusedxml
import defusedxml.ElementTree as SafeET

from yolo2retina.formats._files import quote
from yolo2retina.target import FLAG_DIFFICULT, FLAG_TRUNCATED

#: The ``<bndbox>`` children, in the order of a box.
COORDS = ("xmin", "ymin", "xmax", "ymax")
_FLAG_TAGS = (("difficult", FLAG_DIFFICULT), ("truncated", FLAG_TRUNCATED))


@attrs.define
class VocObject:
    name: str
    box: tuple[float, float, float, float]
    flags: int
    where: str


@attrs.define
class VocRecord:
    xml: Path
    filename: str | None
    size_wh: tuple[int, int] | None
    objects: list[VocObject]


def _text(el: ET.Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    t = el.text.strip()
    return t or None


#: A plain decimal number (``nan``/``inf`` too, so they are reported as non-finite);
#: ``float()`` alone would also take ``1_000`` and non-ASCII digits.
_NUMBER = re.compile(
    r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)", re.IGNORECASE | re.ASCII
)


class _Bad(Exception):
    """One problem in an XML file, with its location; the object (or file) is skipped."""


def _child(parent: ET.Element, tag: str, where: object) -> ET.Element | None:
    """The one ``<tag>`` child of ``parent``; two are ambiguous, so an error."""
    found = parent.findall(tag)
    if len(found) > 1:
        raise _Bad(f"{where}: {len(found)} <{tag}> elements in <{parent.tag}>, expected one")
    return found[0] if found else None


def _number(text: str, tag: str, where: object) -> float:
    if not _NUMBER.fullmatch(text):
        raise _Bad(f"{where}: <{tag}> {quote(text)} is not a number")
    return float(text)


def _size(size: ET.Element, tag: str, xml: Path) -> int:
    """``<width>`` or ``<height>`` in pixels; 0 when absent (size then unknown)."""
    t = _text(_child(size, tag, xml))
    if t is None:
        return 0
    v = _number(t, tag, f"{xml}: <size>")
    if not (math.isfinite(v) and v >= 0 and v.is_integer()):
        raise _Bad(f"{xml}: <size> <{tag}> {quote(t)} is not a whole number of pixels")
    return int(v)


def parse_xml(xml: Path, problems: list[str]) -> VocRecord | None:
    """The record of one XML file; ``None`` (and a problem) when the file cannot be read.

    A bad ``<object>`` is a problem and is left out; the rest of the file is kept.
    """
    try:
        root = SafeET.parse(str(xml)).getroot()
    except defusedxml.DefusedXmlException as e:
        problems.append(
            f"{xml}: refused: {type(e).__name__} (entity declarations and external "
            "references are not allowed in annotation XML; possible entity-expansion bomb)"
        )
        return None
    except ET.ParseError as e:
        line = e.position[0] if e.position else 0
        problems.append(f"{xml}:{line}: malformed XML: {e}")
        return None
    except OSError as e:
        problems.append(f"{xml}: cannot read: {e.strerror or e}")
        return None
    if root is None or root.tag != "annotation":
        tag = "none" if root is None else f"<{root.tag}>"
        problems.append(f"{xml}: root element is {tag}, expected <annotation>")
        return None
    try:
        filename = _text(_child(root, "filename", xml))
        size_wh: tuple[int, int] | None = None
        size = _child(root, "size", xml)
        if size is not None:
            w, h = _size(size, "width", xml), _size(size, "height", xml)
            size_wh = (w, h) if w > 0 and h > 0 else None
    except _Bad as e:
        problems.append(str(e))
        return None
    objects = []
    for k, obj in enumerate(root.findall("object"), 1):  # <part> children are ignored
        try:
            objects.append(_parse_object(obj, f"{xml}: object {k}"))
        except _Bad as e:
            problems.append(str(e))
    return VocRecord(xml, filename, size_wh, objects)


def _parse_object(obj: ET.Element, where: str) -> VocObject:
    """One ``<object>``: name, ``<bndbox>`` as in the file, difficult/truncated flags."""
    name = _text(_child(obj, "name", where))
    if name is None:
        raise _Bad(f"{where}: no <name>")
    where = f"{where} ({quote(name)})"
    bnd = _child(obj, "bndbox", where)
    if bnd is None:
        raise _Bad(f"{where}: no <bndbox>")
    vals = []
    for tag in COORDS:  # found by tag, so any child order works
        t = _text(_child(bnd, tag, where))
        if t is None:
            raise _Bad(f"{where}: <bndbox> has no <{tag}>")
        vals.append(_number(t, tag, where))
    flags = 0
    for tag, bit in _FLAG_TAGS:
        t = _text(_child(obj, tag, where))
        if t is None:
            continue
        if t not in ("0", "1"):
            raise _Bad(f"{where}: <{tag}> must be 0 or 1, got {quote(t)}")
        if t == "1":
            flags |= bit
    return VocObject(name, (vals[0], vals[1], vals[2], vals[3]), flags, where)
