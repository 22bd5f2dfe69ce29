"""Plain VOC annotation files, read by regular expressions and no tree.

Most files that tools write are *plain*: UTF-8 (an XML declaration may say so), no
comment, CDATA, processing instruction, DOCTYPE, entity or character reference, no
attribute or namespace; under ``<annotation>``, elements of text or of elements of text,
then the ``<object>`` s at the end, each as LabelImg, Roboflow, CVAT and yolo2retina write
it. :func:`plain_record` reads such a file with two ``findall`` passes whose matches must
tile the document, so it is well formed by construction, and reads every value by the
rules of :mod:`~yolo2retina.formats.voc_record`. Anything else, including every malformed
or hostile file, is left to the hardened tree parser (:func:`~yolo2retina.formats.voc_xml.parse_xml`).
"""

from __future__ import annotations

import re

from yolo2retina.formats.voc_record import (
    FLAG_TAGS,
    FieldError,
    VocObject,
    VocRecord,
    flag_bits,
    pixels,
)

__all__ = ["plain_record"]

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
    :func:`~yolo2retina.formats.voc_xml.parse_xml` reads the file through the hardened
    parser.

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
    objects = [o for obj in found if (o := _plain_object(obj[1:])) is not None]
    if len(objects) != len(found):
        return None
    head.names = [o[0] for o in objects]
    head.boxes = [o[1] for o in objects]
    head.flags = [o[2] for o in objects]
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
            w = pixels(widths[0].strip() or None if widths else None, "width", xml)
            h = pixels(heights[0].strip() or None if heights else None, "height", xml)
        except FieldError:
            return None  # the tree path reports it
        size_wh = (w, h) if w > 0 and h > 0 else None
    return VocRecord(xml, filename, size_wh)


def _plain_object(found: tuple[str, ...]) -> VocObject | None:
    """The tree path's ``_fast_object`` on the groups of one :data:`_OBJECTS` match."""
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
    t = t1 if t_tag else t2
    if d in _NO_FLAG and t in _NO_FLAG:  # the common case, without building the texts
        return name, box, 0
    flags = flag_bits({"difficult": d, "truncated": t}[tag] for tag, _ in FLAG_TAGS)
    if flags is None:
        return None
    return name, box, flags


#: Flag texts that set no bit as they stand (anything else goes through ``flag_bits``).
_NO_FLAG = frozenset({"", "0"})
