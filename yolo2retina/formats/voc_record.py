"""What the VOC reader takes from one annotation file, and the rules it reads it by.

:class:`VocRecord` is one file's record; :func:`number`, :func:`pixels` and
:func:`flag_bits` are the value rules shared by the two ways a file is read
(:mod:`~yolo2retina.formats.voc_xml`'s hardened tree parser and
:mod:`~yolo2retina.formats.voc_plain`'s regular expressions), so both read every value
alike. A value that breaks a rule raises :class:`FieldError` with its location.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import attrs

from yolo2retina.formats._files import quote
from yolo2retina.target import FLAG_DIFFICULT, FLAG_TRUNCATED

__all__ = [
    "COORDS",
    "FLAG_TAGS",
    "NUMBER",
    "FieldError",
    "VocObject",
    "VocRecord",
    "flag_bits",
    "number",
    "pixels",
]

#: The ``<bndbox>`` children, in the order of a box.
COORDS = ("xmin", "ymin", "xmax", "ymax")
#: The flag elements of an ``<object>`` and their bits.
FLAG_TAGS = (("difficult", FLAG_DIFFICULT), ("truncated", FLAG_TRUNCATED))


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
NUMBER = re.compile(
    r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)", re.IGNORECASE | re.ASCII
)


class FieldError(Exception):
    """One problem in an XML file, with its location; the object (or file) is skipped."""


def number(text: str, tag: str, where: object) -> float:
    """A plain decimal number (see :data:`NUMBER`).

    For stripped ASCII text without ``_``, ``float()`` takes exactly what :data:`NUMBER`
    matches (a test checks this), and :data:`NUMBER` matches no other text.
    """
    if text.isascii() and "_" not in text:  # what NUMBER cannot match anyway
        try:
            return float(text)
        except ValueError:
            pass
    raise FieldError(f"{where}: <{tag}> {quote(text)} is not a number")


def pixels(t: str | None, tag: str, xml: str) -> int:
    """The stripped text ``t`` of ``<width>`` or ``<height>`` as whole pixels; 0 for none."""
    if t is None:
        return 0
    v = number(t, tag, f"{xml}: <size>")
    if not (math.isfinite(v) and v >= 0 and v.is_integer()):
        raise FieldError(f"{xml}: <size> <{tag}> {quote(t)} is not a whole number of pixels")
    return int(v)


def flag_bits(texts: Iterable[str]) -> int | None:
    """The flag bits of the texts of ``<difficult>`` and ``<truncated>`` (in
    :data:`FLAG_TAGS` order; ``""`` when absent), or ``None`` unless each is empty, 0 or 1."""
    flags = 0
    for text, (_, bit) in zip(texts, FLAG_TAGS, strict=True):
        t = text.strip()
        if t == "1":
            flags |= bit
        elif t not in ("", "0"):
            return None
    return flags
