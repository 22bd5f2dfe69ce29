"""Parsing a COCO JSON file, in pieces when it is large.

The JSON is parsed with ``orjson`` when installed, else :mod:`json`. Files over
``2 * CHUNK_BYTES`` (8 MiB) have their ``annotations`` array parsed in ``PIECE_BYTES``
(256 KiB) pieces cut between top-level objects, each turned into columns at once
(:mod:`~yolo2retina.formats.coco_columns`), so a million annotation dicts never exist at
once. Each cut is verified by parsing; anything unusual falls back to one whole-file parse.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from yolo2retina.errors import DatasetError
from yolo2retina.formats.coco_columns import Columns, ann_columns


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
#: The size of those pieces: small enough for their dicts to stay in the CPU caches (a
#: 1M-box file: 4.4 s in 4 MiB pieces, 3.8 s in 256 KiB ones; 64 KiB is slower again).
PIECE_BYTES = 256 << 10
_ANN_ARRAY = re.compile(rb'"annotations"\s*:\s*\[\s*')
_BETWEEN = re.compile(rb"\}\s*,\s*\{")
_ARRAY_END = re.compile(rb"\}\s*\]")


def _chunked(
    raw: bytes, loads: Callable[[bytes], Any], extras: set[str]
) -> tuple[Any, Columns] | None:
    """Parse the annotations array piece by piece, so its dicts never all live at once.

    Pieces are cut between two top-level objects (``}, {``) and each is parsed as its own
    JSON array; a cut in the wrong place (inside a string or a nested list) cannot parse,
    and any surprise returns ``None`` so the caller parses the whole file instead.
    """
    m = _ANN_ARRAY.search(raw)
    if m is None or raw[m.end() : m.end() + 1] != b"{":
        return None
    pos, n = m.end(), len(raw)
    parts: list[Columns] = []
    end: int | None = None
    while end is None:
        piece: Any = None
        cuts = _BETWEEN.finditer(raw, pos + PIECE_BYTES) if pos + PIECE_BYTES < n else iter(())
        for tries, cut in enumerate(cuts):  # a cut inside a string or nested list fails
            if tries == 16:
                break
            try:
                piece = loads(b"[" + raw[pos : cut.start() + 1] + b"]")
            except (ValueError, RecursionError):
                continue
            nxt = cut.end() - 1
            break
        if piece is None:  # the last piece: find the "}]" that closes the array
            for tries, close in enumerate(_ARRAY_END.finditer(raw, pos)):
                if tries == 64:
                    return None
                try:
                    piece = loads(b"[" + raw[pos : close.start() + 1] + b"]")
                except (ValueError, RecursionError):
                    continue
                end = close.end() - 1
                break
            else:
                return None
        try:
            parts.append(ann_columns(piece, lambda i: "", extras))
        except (DatasetError, AttributeError, TypeError):
            return None
        del piece
        if end is None:
            pos = nxt
    try:
        data = loads(raw[: m.end()] + raw[end:])
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("annotations") != []:
        return None  # the array found was not the top-level one
    cols = tuple(np.concatenate([p[k] for p in parts]) for k in range(6))
    return data, cols  # type: ignore[return-value]


def load_coco(file: Path) -> tuple[Any, set[str], Columns | None]:
    """Parse a COCO file: large ones in pieces (columns returned), small ones whole."""
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
        raw = file.read_bytes()
        if raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        extras = {k for k in ("difficult", "truncated") if f'"{k}"'.encode() in raw}
        got = _chunked(raw, loads, extras)
        del raw
        if got is not None:
            return got[0], extras, got[1]
    data, extras = _load_json(file)
    return data, extras, None
