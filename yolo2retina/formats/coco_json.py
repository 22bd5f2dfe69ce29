"""Parsing a COCO JSON file, in pieces when it is large.

The JSON is parsed with ``orjson`` when installed, else :mod:`json`. Files over
``2 * CHUNK_BYTES`` (8 MiB) are read ``READ_BYTES`` (1 MiB) at a time, and their
``annotations`` array is parsed in ``PIECE_BYTES`` (256 KiB) pieces cut between top-level
objects. Each piece goes straight into preallocated columns, through ``msgspec`` when it is
installed (:mod:`~yolo2retina.formats.coco_msgspec`), else through
:mod:`~yolo2retina.formats.coco_columns`. Neither the whole file nor its annotation records
are ever held at once: a 1M-box file peaks at about 130 MB, against 820 MB for pycocotools.
Each cut is verified by parsing; anything unusual falls back to one whole-file parse.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from yolo2retina.errors import DatasetError
from yolo2retina.formats.coco_columns import Columns, ann_columns
from yolo2retina.formats.coco_msgspec import columns_decoder


def _load_json(file: Path) -> tuple[Any, set[str]]:
    """The parsed JSON and which of the optional flag keys occur anywhere in the text.

    orjson parses bytes; the stdlib parser gets ``str`` (as ``json.load`` does), so the
    text is never held twice.
    """
    try:
        orjson: Any = importlib.import_module("orjson")
    except ImportError:
        orjson = None
    try:
        if orjson is not None:
            raw = file.read_bytes()
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            extras = {k for k in ("difficult", "truncated") if f'"{k}"'.encode() in raw}
            return orjson.loads(raw), extras
        text = file.read_text(encoding="utf-8-sig")
        extras = {k for k in ("difficult", "truncated") if f'"{k}"' in text}
        return json.loads(text), extras
    except OSError as e:
        raise DatasetError(f"{file}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise DatasetError(f"{file}: not UTF-8 text: {e}") from None
    except RecursionError:  # the stdlib parser recurses once per nesting level
        raise DatasetError(f"{file}: invalid JSON: nested too deeply to parse") from None
    except ValueError as e:  # json.JSONDecodeError and orjson.JSONDecodeError
        line, col = getattr(e, "lineno", 0), getattr(e, "colno", 0)
        msg = getattr(e, "msg", str(e))
        raise DatasetError(f"{file}:{line}:{col}: invalid JSON: {msg}") from None


#: Files larger than ``2 * CHUNK_BYTES`` have their annotations array parsed in pieces.
CHUNK_BYTES = 4 << 20
#: The size of those pieces: small enough for their records to stay in the CPU caches (a
#: 1M-box file: 4.4 s in 4 MiB pieces, 3.8 s in 256 KiB ones; 64 KiB is slower again).
PIECE_BYTES = 256 << 10
#: How much of a large file is read at a time: the whole file is never held at once.
READ_BYTES = 1 << 20
#: How far back a block keeps its end while the annotations array is looked for, so a key
#: split between two blocks is still found.
_OVERLAP = 4096
_ANN_ARRAY = re.compile(rb'"annotations"\s*:\s*\[\s*')
_BETWEEN = re.compile(rb"\}\s*,\s*\{")
_ARRAY_END = re.compile(rb"\}\s*\]")
_FLAG_KEYS = ("difficult", "truncated")


class _GiveUp(Exception):
    """Anything unusual in the piecewise parse: the caller parses the whole file instead."""


class _Window:
    """The unparsed bytes of a binary stream, read ``READ_BYTES`` or more at a time.

    A ``bytearray``: dropping bytes from its front is cheap, so nothing is copied twice.
    """

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.data = bytearray(f.read(3))
        if self.data == b"\xef\xbb\xbf":  # a UTF-8 byte-order mark
            self.data.clear()
        self.eof = False

    def fill(self, n: int) -> None:
        """Read until :attr:`data` holds at least ``n`` bytes or the stream has ended."""
        while len(self.data) < n and not self.eof:
            block = self.f.read(max(READ_BYTES, n - len(self.data)))
            self.eof = not block
            self.data += block

    def more(self) -> bool:
        """Read more: a block, or as much as is held (so a window that has to grow doubles);
        ``False`` at the end of the stream."""
        size = len(self.data)
        self.fill(2 * size + 1)
        return len(self.data) > size

    def take(self, n: int) -> bytes:
        """The first ``n`` bytes, dropped from :attr:`data`."""
        out = bytes(self.data[:n])
        del self.data[:n]
        return out

    def drop(self, n: int) -> None:
        """Drop the first ``n`` bytes."""
        del self.data[:n]


#: The fewest bytes one annotation takes in a file,
#: ``{"id":0,"image_id":0,"category_id":0,"bbox":[0,0,0,0]}`` (a record without any of
#: these keys is refused, so the file size over this bounds the number of annotations).
_MIN_RECORD_BYTES = 54


class _Pieces:
    """Parses pieces of the annotations array into columns.

    The columns are allocated once for the most annotations the file could hold (its size
    over :data:`_MIN_RECORD_BYTES`); the memory pages that are never written are never
    used, so the pieces are copied into place without a final concatenation.
    """

    def __init__(self, loads: Callable[[bytes], Any], file_size: int) -> None:
        self.loads = loads
        self.fast = columns_decoder()
        cap = file_size // _MIN_RECORD_BYTES + 1
        self.columns: list[npt.NDArray[Any]] = [
            np.empty(cap, np.int64),
            np.empty(cap, np.int64),
            np.empty(cap, np.int64),
            np.empty((cap, 4), np.float64),
            np.empty(cap, np.uint8),
        ]
        self.n = 0

    def add(self, data: bytearray, end: int) -> bool:
        """Parse ``data[:end]`` (top-level objects and the commas between them) as one piece;
        ``False`` when it is not valid JSON there (a cut inside a string or a nested list)."""
        with memoryview(data) as view:
            body = b"".join((b"[", view[:end], b"]"))  # one copy
        cols = self.fast(body) if self.fast is not None else None
        if cols is None:
            extras = {k for k in _FLAG_KEYS if f'"{k}"'.encode() in body}
            try:
                records = self.loads(body)
            except (ValueError, RecursionError):
                return False
            try:
                cols = ann_columns(records, lambda i: "", extras)
            except (DatasetError, AttributeError, TypeError):
                raise _GiveUp from None  # the whole-file parse names the record
        m = len(cols[0])
        if self.n + m > len(self.columns[0]):  # more than the size allows: the file grew
            raise _GiveUp
        for kept, col in zip(self.columns, cols, strict=True):
            kept[self.n : self.n + m] = col
        self.n += m
        return True

    def joined(self) -> Columns:
        """The columns of all pieces (views of the first :attr:`n` rows)."""
        ids, img, cat, xywh, flags = (c[: self.n] for c in self.columns)
        return ids, img, cat, xywh, flags


def _find_array(w: _Window) -> bytes:
    """Read up to the first element of the ``annotations`` array; the bytes before it."""
    head: list[bytes] = []
    while True:
        m = _ANN_ARRAY.search(w.data)
        if m is not None and m.end() < len(w.data):
            head.append(w.take(m.end()))
            if w.data[:1] != b"{":
                raise _GiveUp  # an empty array, or not one of objects
            return b"".join(head)
        keep = max(0, len(w.data) - _OVERLAP)
        head.append(w.take(keep))
        if not w.more():
            raise _GiveUp


def _cut(
    w: _Window, pieces: _Pieces, pattern: re.Pattern[bytes], start: int, max_tries: int
) -> bool:
    """Parse ``w.data`` up to the first match of ``pattern`` (from ``start`` on) that makes a
    valid piece, reading more of the file while no match is found; ``False`` after
    ``max_tries`` failed matches or at the end of the file."""
    tries = 0
    while True:
        end = None
        for cut in pattern.finditer(w.data, start):  # (it must end before w.data changes)
            if tries == max_tries:
                return False
            tries += 1
            if pieces.add(w.data, cut.start() + 1):
                end = cut.end() - 1
                break
            start = cut.start() + 1
        if end is not None:
            w.drop(end)
            return True
        if not w.more():
            return False


def _next_piece(w: _Window, pieces: _Pieces) -> bool:
    """Parse the next piece, cut between two objects (``}, {``) after ``PIECE_BYTES``;
    ``False`` when none parses (the array ends before that)."""
    w.fill(PIECE_BYTES + READ_BYTES)
    if len(w.data) <= PIECE_BYTES:
        return False
    return _cut(w, pieces, _BETWEEN, PIECE_BYTES, 16)


def _last_piece(w: _Window, pieces: _Pieces) -> None:
    """Parse the last piece, up to the ``}]`` that closes the array."""
    if not _cut(w, pieces, _ARRAY_END, 0, 64):
        raise _GiveUp


def _chunked(
    f: BinaryIO, loads: Callable[[bytes], Any], file_size: int
) -> tuple[Any, Columns] | None:
    """Parse the annotations array piece by piece, reading the file a block at a time, so
    neither the whole file nor all its annotation records are ever held at once.

    Pieces are cut between two top-level objects (``}, {``) and each is parsed as its own
    JSON array; a cut in the wrong place (inside a string or a nested list) cannot parse,
    and any surprise returns ``None`` so the caller parses the whole file instead.
    """
    w = _Window(f)
    pieces = _Pieces(loads, file_size)
    try:
        head = _find_array(w)
        while _next_piece(w, pieces):
            pass
        _last_piece(w, pieces)
    except _GiveUp:
        return None
    try:  # the rest of the file: the array's "]" and the sections after it
        data = loads(head + w.data + f.read())
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("annotations") != []:
        return None  # the array found was not the top-level one
    return data, pieces.joined()


def load_coco(file: Path) -> tuple[Any, set[str], Columns | None]:
    """Parse a COCO file: large ones in pieces (columns returned), small ones whole.

    Returns the parsed document (with an empty ``annotations`` list when the columns are
    returned), the optional flag keys that occur in the file (for
    :func:`~yolo2retina.formats.coco_columns.ann_columns`; empty with columns) and the
    columns or ``None``.
    """
    try:
        size = file.stat().st_size
    except OSError as e:
        raise DatasetError(f"{file}: cannot read: {e.strerror}") from None
    if size > 2 * CHUNK_BYTES:
        try:
            orjson: Any = importlib.import_module("orjson")
            loads = orjson.loads
        except ImportError:
            loads = json.loads
        try:
            with open(file, "rb") as f:
                got = _chunked(f, loads, size)
        except OSError as e:
            raise DatasetError(f"{file}: cannot read: {e.strerror}") from None
        if got is not None:
            return got[0], set(), got[1]
    data, extras = _load_json(file)
    return data, extras, None
