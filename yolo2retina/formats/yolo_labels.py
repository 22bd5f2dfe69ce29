"""Parsing one YOLO label file: ``class cx cy w h`` rows or polygons -> pixel XYXY boxes.

Rows are normalized to the (EXIF-corrected) image size; a polygon ``class x1 y1 ... xn yn``
becomes its enclosing box. Clean files (only valid, unique five-value rows of plain
numbers) are parsed together in one NumPy pass (:func:`parse_clean_texts`); any other file
is parsed row by row (:func:`parse_label_text`) for exact messages and counts.
"""

from __future__ import annotations

import os
import re
from itertools import chain

import numpy as np
import numpy.typing as npt

from yolo2retina import boxes as box_ops
from yolo2retina.annotations import LoadReport
from yolo2retina.formats._common import float32_box_problems
from yolo2retina.formats._files import quote

#: Normalized coordinates may lie this far outside [0, 1] (1% of the image) and are clipped.
CLIP_TOLERANCE = 0.01

_Boxes = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]


def _no_boxes() -> _Boxes:
    return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)


def parse_float(tok: str) -> float | None:
    """``float(tok)``, or ``None`` when it is not a number."""
    try:
        return float(tok)
    except ValueError:
        return None


#: A label file of only ``class cx cy w h`` rows of plain ASCII numbers and blank lines:
#: the files :func:`parse_clean_texts` reads in bulk. Anything else (polygons, other
#: whitespace or line breaks, ``nan``) is read row by row, for exact messages.
_ROW = r"[ \t]*(?:[-+.0-9eE]+[ \t]+){4}[-+.0-9eE]+[ \t]*"
_CLEAN_TEXT = re.compile(rf"(?:(?:{_ROW}|[ \t]*)(?:\r\n|\n|\r))*(?:{_ROW}|[ \t]*)")


def parse_clean_texts(
    texts: list[str], image_wh: npt.NDArray[np.int64], num_classes: int
) -> tuple[
    npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]
]:
    """Many label files at once, for the common case: every row valid, inside the image
    and unique.

    Args:
        texts: the text of each file.
        image_wh: ``(N, 2) int64`` the width and height of each file's image.
        num_classes: class ids must lie in ``0..num_classes-1``.

    Returns:
        ``(boxes, labels, counts, clean)``: ``(M, 4) float32`` pixel XYXY boxes and
        ``(M,) int64`` labels of the clean files, file after file; ``(N,) int64`` boxes
        per file; ``(N,) bool`` which files are clean. A file that is not (anything
        :func:`parse_label_text` would clip, drop or report) has no boxes here and must be
        parsed by :func:`parse_label_text`. The result for a clean file is exactly
        :func:`parse_label_text`'s.
    """
    n = len(texts)
    clean = np.fromiter((_CLEAN_TEXT.fullmatch(t) is not None for t in texts), bool, n)
    tokens = [t.split() if ok else [] for t, ok in zip(texts, clean.tolist(), strict=True)]
    counts = np.fromiter(map(len, tokens), np.int64, n) // 5
    try:
        values = np.array(list(chain.from_iterable(tokens)), dtype=np.float64).reshape(-1, 5)
    except (ValueError, OverflowError):  # a token such as "1e" or "-": find its files
        for i in np.flatnonzero(clean):
            try:
                np.array(tokens[i], dtype=np.float64)
            except (ValueError, OverflowError):
                clean[i] = False
                counts[i] = 0
                tokens[i] = []
        values = np.array(list(chain.from_iterable(tokens)), dtype=np.float64).reshape(-1, 5)
    file_of = np.repeat(np.arange(n), counts)
    row_ok = _clean_rows(values, file_of, num_classes)
    cls = values[:, 0]
    with np.errstate(over="ignore", invalid="ignore"):
        norm = box_ops.cxcywh_to_xyxy(values[:, 1:])
        wh = image_wh[file_of].astype(np.float64)
        # as box_ops.xyxy_norm_to_xyxy, row by row; checked in float32, the stored dtype
        xyxy = (norm * np.concatenate([wh, wh], axis=1)).astype(np.float32)
    row_ok &= (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    bad_files = np.unique(file_of[~row_ok])
    if len(bad_files):
        clean[bad_files] = False
        keep = clean[file_of]
        xyxy, cls, counts = xyxy[keep], cls[keep], np.where(clean, counts, 0)
    return xyxy, cls.astype(np.int64), counts, clean


def _clean_rows(
    values: npt.NDArray[np.float64], file_of: npt.NDArray[np.int64], num_classes: int
) -> npt.NDArray[np.bool_]:
    """``(M,) bool``: the rows that need no clip, drop or message (finite, a whole class id
    in range, a positive size, inside ``[0, 1]``, not a repeat in its file)."""
    with np.errstate(over="ignore", invalid="ignore"):
        cls = values[:, 0]
        norm = box_ops.cxcywh_to_xyxy(values[:, 1:])
        ok = np.isfinite(values).all(axis=1)
        ok &= (cls == np.floor(cls)) & (cls >= 0) & (cls < num_classes)
        ok &= (values[:, 3:] > 0).all(axis=1)
        ok &= ((norm >= 0) & (norm <= 1)).all(axis=1)
    if len(values) > 1:  # repeats by value within a file ("0.50" is "0.5"; -0.0 is 0.0)
        v = values + 0.0
        order = np.lexsort((*v.T[::-1], file_of))
        sv, sf = v[order], file_of[order]
        same = (sf[1:] == sf[:-1]) & (sv[1:] == sv[:-1]).all(axis=1)
        dup = np.zeros(len(values), bool)
        dup[order[1:][same]] = True
        dup[order[:-1][same]] = True
        ok &= ~dup
    result: npt.NDArray[np.bool_] = ok
    return result


def read_label_text(label: str | os.PathLike[str], problems: list[str]) -> str | None:
    """The text of a label file (UTF-8, a BOM dropped), or ``None`` after recording why not."""
    try:
        with open(label, "rb") as f:
            data = f.read()
        # as decode("utf-8-sig"), without that codec's Python-level wrapper
        return (data[3:] if data.startswith(b"\xef\xbb\xbf") else data).decode("utf-8")
    except UnicodeDecodeError:
        problems.append(f"{label}: not a UTF-8 text file")
    except OSError as e:
        problems.append(f"{label}: cannot read label file ({e.strerror or e})")
    return None


def parse_label_text(
    label: str | os.PathLike[str],
    text: str,
    image_wh: tuple[int, int],
    num_classes: int,
    strict: bool,
    report: LoadReport,
    problems: list[str],
) -> _Boxes:
    """The boxes of one label file's text: ``(n, 4) float32`` pixel XYXY and ``(n,) int64``
    labels.

    Bad rows are problems naming ``file:line``; clips and drops are counted in ``report``.
    """
    lines = [
        (n, toks) for n, toks in enumerate((ln.split() for ln in text.splitlines()), 1) if toks
    ]
    rows: list[npt.NDArray[np.float64]] = []
    cls_ids: list[int] = []
    linenos: list[int] = []
    seen: dict[tuple[float, ...], int] = {}
    for lineno, toks in lines:
        fv = _parse_row(f"{label}:{lineno}", toks, num_classes, problems)
        if fv is None:
            continue
        key = tuple((fv + 0.0).tolist())  # parsed values: "0.50" repeats "0.5"; -0 is 0
        if key in seen:
            msg = f"{label}:{lineno}: exact duplicate of line {seen[key]}"
            if strict:
                problems.append(msg)
            else:
                report.note("dropped_duplicates", msg + " (dropped)")
            continue
        seen[key] = lineno
        norm = _row_box(f"{label}:{lineno}", toks, fv, problems)
        if norm is not None and _clip_row(f"{label}:{lineno}", norm, strict, report, problems):
            rows.append(norm)
            cls_ids.append(int(fv[0]))
            linenos.append(lineno)
    if not rows:
        return _no_boxes()
    return _to_pixels(label, rows, cls_ids, linenos, image_wh, strict, report, problems)


def _parse_row(
    where: str, toks: list[str], num_classes: int, problems: list[str]
) -> npt.NDArray[np.float64] | None:
    """The values of one row with a valid class id, or ``None`` after recording its problem."""
    n = len(toks)
    if n != 5 and (n < 7 or n % 2 == 0):
        problems.append(
            f"{where}: expected 5 values (class cx cy w h) or a polygon "
            f"(class x1 y1 x2 y2 x3 y3 ...), got {n}"
        )
        return None
    vals = [parse_float(t) for t in toks]
    bad = [t for t, v in zip(toks, vals, strict=True) if v is None]
    if bad:
        problems.append(f"{where}: {quote(bad[0])} is not a number")
        return None
    fv = np.array(vals, dtype=np.float64)
    if not np.isfinite(fv).all():
        problems.append(f"{where}: NaN or infinite value")
        return None
    c = fv[0]
    if c != int(c) or c < 0:
        problems.append(f"{where}: class id {quote(toks[0])} is not a non-negative integer")
        return None
    if int(c) >= num_classes:
        problems.append(f"{where}: class id {int(c)} >= number of classes {num_classes}")
        return None
    return fv


def _row_box(
    where: str, toks: list[str], fv: npt.NDArray[np.float64], problems: list[str]
) -> npt.NDArray[np.float64] | None:
    """Normalized XYXY of a box row or a polygon's enclosing box; ``None`` for no area."""
    coords = fv[1:]
    if len(toks) == 5:
        if coords[2] <= 0 or coords[3] <= 0:
            problems.append(f"{where}: zero-area box (w={quote(toks[3])}, h={quote(toks[4])})")
            return None
        with np.errstate(over="ignore", invalid="ignore"):  # huge values: refused later
            norm: npt.NDArray[np.float64] = box_ops.cxcywh_to_xyxy(coords)[0]
    else:
        norm = box_ops.polygon_norm_to_xyxy(coords, (1.0, 1.0))[0]
        if norm[2] <= norm[0] or norm[3] <= norm[1]:
            problems.append(f"{where}: zero-area polygon")
            return None
    return norm


def _clip_row(
    where: str,
    norm: npt.NDArray[np.float64],
    strict: bool,
    report: LoadReport,
    problems: list[str],
) -> bool:
    """Whether to keep a row: edges within :data:`CLIP_TOLERANCE` of ``[0, 1]`` are clipped
    later (counted), further out is a problem."""
    if (norm < -CLIP_TOLERANCE).any() or (norm > 1 + CLIP_TOLERANCE).any():
        problems.append(
            f"{where}: box edges [{', '.join(f'{v:.4g}' for v in norm)}] lie outside [0, 1] "
            f"by more than {CLIP_TOLERANCE:g}"
        )
        return False
    if (norm < 0).any() or (norm > 1).any():
        msg = f"{where}: box slightly outside the image"
        if strict:
            problems.append(msg)
            return False
        clipped = np.clip(norm, 0.0, 1.0)
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            report.note("dropped_zero_area", msg + ", zero area after clipping (dropped)")
            return False
        report.note("clipped", msg + " (clipped)")
    return True


def _to_pixels(
    label: str | os.PathLike[str],
    rows: list[npt.NDArray[np.float64]],
    cls_ids: list[int],
    linenos: list[int],
    image_wh: tuple[int, int],
    strict: bool,
    report: LoadReport,
    problems: list[str],
) -> _Boxes:
    """Normalized rows -> clipped pixel boxes, validated in float32 (the stored dtype)."""
    norm_xyxy = np.clip(np.stack(rows), 0.0, 1.0)
    xyxy = box_ops.clip_xyxy(box_ops.xyxy_norm_to_xyxy(norm_xyxy, image_wh), image_wh)
    # validated in float32, the dtype Annotations stores (w=1e-9 has area only in float64)
    keep = np.ones(len(rows), dtype=bool)
    for i, msg in float32_box_problems(xyxy, keep, lambda i: f"{label}:{linenos[i]}"):
        keep[i] = False
        if strict or "float32 range" in msg:
            problems.append(msg)
        else:
            report.note("dropped_zero_area", msg + " (dropped)")
    return xyxy[keep].astype(np.float32), np.asarray(cls_ids, dtype=np.int64)[keep]
