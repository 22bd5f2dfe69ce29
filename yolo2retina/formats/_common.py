"""Helpers shared by the format adapters: box checks, split names and writing datasets.

Reading helpers (``path_kind``, ``read_text_file``, class-name files) live in
:mod:`yolo2retina.formats._files`. ``atomic_write_bytes`` and ``atomic_write_text`` are
:mod:`yolo2retina.atomic`'s, re-exported here for modules that still import them from here.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from yolo2retina import boxes as box_ops
from yolo2retina.annotations import Annotations, LoadReport
from yolo2retina.atomic import atomic_write_bytes as atomic_write_bytes
from yolo2retina.atomic import atomic_write_text as atomic_write_text
from yolo2retina.errors import DatasetError
from yolo2retina.target import FLAG_CROWD, FLAG_DIFFICULT, FLAG_TRUNCATED

#: The sidecar file beside a YOLO ``data.yaml`` that keeps COCO category ids and image ids,
#: which YOLO label files cannot hold; ``read_yolo`` reads it back, Ultralytics ignores it,
#: and the COCO reader never takes it for a COCO file.
IDS_FILE = "yolo2retina_ids.json"

#: Pixel boxes may lie this many pixels outside the image and are clipped
#: (Roboflow writes ``xmax=641`` on 640-px images); further out is an error.
PIXEL_TOLERANCE = 1.0

#: Split-name aliases: Roboflow writes ``valid`` where Ultralytics writes ``val``.
SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "val": ("val", "valid", "validation"),
    "valid": ("valid", "val", "validation"),
    "validation": ("validation", "val", "valid"),
}


def split_candidates(split: str) -> tuple[str, ...]:
    """``split`` followed by its aliases (``val`` -> ``val, valid, validation``)."""
    return SPLIT_ALIASES.get(split, (split,))


def check_pixel_boxes(
    xyxy: npt.NDArray[np.float64],
    images_wh: npt.ArrayLike,
    where: Callable[[int], str],
    *,
    strict: bool,
    report: LoadReport,
    problems: list[str],
    file_offset: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0),
) -> npt.NDArray[np.bool_]:
    """Validate pixel XYXY boxes in place; returns the mask of boxes to keep.

    Boxes up to :data:`PIXEL_TOLERANCE` pixels outside their image are clipped (counted),
    boxes with no area after clipping are dropped (counted); non-finite, inverted and
    boxes further outside are problems. With ``strict`` every clip and drop is a problem.

    Args:
        xyxy: ``(n, 4) float64`` boxes, clipped in place.
        images_wh: the image ``(width, height)``, or ``(n, 2)`` one per box.
        where: box index -> location text (``file: object 3``) for messages.
        file_offset: added to the coordinates that messages print, so that they read as in
            the file (VOC: ``(1, 1, 0, 0)``, undoing its 1-based shift).
    """
    n = xyxy.shape[0]
    keep = np.ones(n, dtype=bool)
    if n == 0:
        return keep
    wh = np.broadcast_to(np.asarray(images_wh, dtype=np.float64).reshape(-1, 2), (n, 2))
    w, h = wh[:, 0], wh[:, 1]
    tol = PIXEL_TOLERANCE
    with np.errstate(invalid="ignore"):
        finite = np.asarray(np.isfinite(xyxy).all(axis=1), dtype=bool)
        inverted: npt.NDArray[np.bool_] = (xyxy[:, 2] < xyxy[:, 0]) | (xyxy[:, 3] < xyxy[:, 1])
        far = (
            (xyxy[:, 0] < -tol)
            | (xyxy[:, 1] < -tol)
            | (xyxy[:, 2] > w + tol)
            | (xyxy[:, 3] > h + tol)
        )
        out = (xyxy[:, 0] < 0) | (xyxy[:, 1] < 0) | (xyxy[:, 2] > w) | (xyxy[:, 3] > h)
    shift = np.asarray(file_offset, dtype=np.float64)
    for i in np.flatnonzero(~finite | inverted | far | out).tolist():
        b = [round(float(v), 4) for v in xyxy[i] + shift]
        size = f"{int(w[i])}x{int(h[i])}"
        if not finite[i]:
            problem = f"{where(i)}: non-finite box coordinates {b}"
        elif inverted[i]:
            problem = f"{where(i)}: inverted box {b} (needs x1 <= x2 and y1 <= y2)"
        elif far[i]:
            problem = f"{where(i)}: box {b} lies more than {tol:g} px outside the {size} image"
        else:
            msg = f"{where(i)}: box {b} slightly outside the {size} image"
            if not strict:
                report.note("clipped", msg + " (clipped)")
                continue
            problem = msg
        problems.append(problem)
        keep[i] = False
    if out.any():
        xyxy[out] = box_ops.clip_xyxy_each(xyxy[out], wh[out])
    _drop_empty(xyxy, keep, where, shift, strict=strict, report=report, problems=problems)
    return keep


def _drop_empty(
    xyxy: npt.NDArray[np.float64],
    keep: npt.NDArray[np.bool_],
    where: Callable[[int], str],
    shift: npt.NDArray[np.float64],
    *,
    strict: bool,
    report: LoadReport,
    problems: list[str],
) -> None:
    """Unset ``keep`` for kept boxes with no area (in float64, or once stored as float32)."""
    with np.errstate(invalid="ignore"):
        zero = keep & (box_ops.area(xyxy) <= 0)
    for i in np.flatnonzero(zero).tolist():
        msg = f"{where(i)}: zero-area box {[round(float(v), 4) for v in xyxy[i] + shift]}"
        if strict:
            problems.append(msg)
        else:
            report.note("dropped_zero_area", msg + " (dropped)")
        keep[i] = False
    for i, msg in float32_box_problems(xyxy, keep, where):
        if strict or "float32 range" in msg:
            problems.append(msg)
        else:
            report.note("dropped_zero_area", msg + " (dropped)")
        keep[i] = False


def float32_box_problems(
    xyxy: npt.NDArray[np.floating], keep: npt.NDArray[np.bool_], where: Callable[[int], str]
) -> list[tuple[int, str]]:
    """Kept boxes that stop being valid once stored as float32 (what :class:`Annotations` holds).

    A box whose sides differ by less than float32 resolution (``w=1e-9`` normalized, a
    ``ymax`` of ``1e-320``) has area in float64 but none in float32, and a coordinate beyond
    float32's range becomes infinite. Readers call this after their float64 checks so that
    every box they keep builds a valid :class:`~yolo2retina.target.Target`.

    Args:
        xyxy: ``(n, 4)`` float pixel boxes.
        keep: ``(n,) bool``; only these boxes are checked.
        where: box index -> location text for messages.

    Returns:
        ``(index, message)`` per box that fails: a message ending in "float32 range" is
        always an error, the others are zero-area drops.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        b32 = np.asarray(xyxy).astype(np.float32)
    finite = np.asarray(np.isfinite(b32).all(axis=1), dtype=bool)
    ok = finite & (b32[:, 2] > b32[:, 0]) & (b32[:, 3] > b32[:, 1])
    out = []
    for i in np.flatnonzero(np.asarray(keep, dtype=bool) & ~ok).tolist():
        b = "[" + ", ".join(f"{float(v):.9g}" for v in xyxy[i]) + "]"
        if not finite[i]:
            out.append((i, f"{where(i)}: box {b} lies outside the float32 range"))
        else:
            out.append((i, f"{where(i)}: zero-area box {b} once stored as float32"))
    return out


# -- writing ---------------------------------------------------------------------------


def place_image(src: Path, dst: Path, mode: str) -> None:
    """Copy, symlink or hardlink ``src`` to ``dst`` atomically (temp name + rename)."""
    if dst.exists() and src.exists() and os.path.samefile(src, dst):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        if mode == "copy":
            shutil.copy2(src, tmp)
        elif mode == "symlink":
            os.symlink(os.path.abspath(src), tmp)
        elif mode == "hardlink":
            try:
                os.link(src, tmp)
            except OSError as e:
                raise DatasetError(
                    f"{src}: cannot hardlink into {dst.parent} ({e.strerror}); "
                    "use images='copy' or 'symlink'"
                ) from None
        else:
            raise ValueError(f"images must be 'copy', 'symlink' or 'hardlink', got {mode!r}")
        os.replace(tmp, dst)
    except BaseException:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        raise


def refuse_existing(paths: Iterable[Path], overwrite: bool, dst: Path) -> None:
    """Raise before anything is written when an output exists and ``overwrite`` is False."""
    if overwrite:
        return
    existing = [str(p) for p in paths if p.exists() or p.is_symlink()]
    if existing:
        raise DatasetError(
            f"{dst}: {len(existing)} output file(s) already exist; pass overwrite=True "
            "(CLI: --overwrite) to replace them",
            existing,
        )


def unique_names(splits: Mapping[str, Annotations], *, across_splits: bool) -> dict[str, list[str]]:
    """Output file names of the images of each split; raises if two images would collide.

    With ``across_splits`` (one shared image folder, e.g. VOC) names must be unique by
    stem over all splits; the same image listed in two splits is written once.
    """
    out: dict[str, list[str]] = {}
    problems: list[str] = []
    seen_global: dict[str, str] = {}
    for split, ann in splits.items():
        seen: dict[str, str] = seen_global if across_splits else {}
        names = []
        in_split: set[str] = set()
        for p in ann.paths:
            if str(p) in in_split:  # would be two records / two list lines for one file
                problems.append(f"{p}: listed twice in split '{split}'")
            in_split.add(str(p))
            name = os.path.basename(str(p))
            key = os.path.splitext(name)[0] if across_splits else name
            if key in seen and seen[key] != str(p):  # one image in two splits is fine
                problems.append(f"{p}: same output name as {seen[key]}")
            seen[key] = str(p)
            names.append(name)
        out[split] = names
    if problems:
        raise DatasetError("two images would be written to the same file", problems)
    return out


def flag_losses(splits: Mapping[str, Annotations], kept: int, fmt: str, how: str) -> list[str]:
    """Lines describing the flag bits that a format cannot hold (those not in ``kept``)."""
    names = {FLAG_CROWD: "crowd", FLAG_DIFFICULT: "difficult", FLAG_TRUNCATED: "truncated"}
    lost = []
    for bit, name in names.items():
        if bit & kept:
            continue
        n = sum(int(((a.flags & bit) != 0).sum()) for a in splits.values())
        if n:
            lost.append(f"{n} {name} flag(s): {fmt} has no {name} marker; {how}")
    return lost


def id_losses(splits: Mapping[str, Annotations], fmt: str) -> list[str]:
    """Lines naming the COCO category ids and image ids that a format without ids loses.

    Category ids are lost when known (read back, the classes get ``1..K`` in a COCO file);
    image ids when a split's ids are not ``0..N-1`` (read back, images are numbered so).
    """
    lost = []
    cats = sorted({a.category_ids for a in splits.values() if a.category_ids is not None})
    for c in cats:
        if list(c) != list(range(1, len(c) + 1)):
            lost.append(
                f"COCO category ids {list(c)}: {fmt} names classes, so they read back as "
                f"1..{len(c)} in COCO"
            )
    for s, ann in splits.items():
        ids = ann.image_ids.tolist()
        if ids != list(range(len(ids))):
            shown = ", ".join(map(str, ids[:8])) + (", ..." if len(ids) > 8 else "")
            lost.append(
                f"{s}: {len(ids)} image ids ({shown}): {fmt} names images by file, so they "
                f"read back as 0..{len(ids) - 1}"
            )
    return lost


def fmt_number(v: float) -> str:
    """Shortest text that reads back as exactly ``v`` (``12`` rather than ``12.0``)."""
    f = float(v)
    return str(int(f)) if f.is_integer() and abs(f) < 1e15 else repr(f)


def as_splits(annotations: Annotations | Mapping[str, Annotations]) -> dict[str, Annotations]:
    """A single split becomes ``{"train": ...}``; a mapping is copied."""
    if isinstance(annotations, Annotations):
        return {"train": annotations}
    return dict(annotations)


def common_names(splits: Mapping[str, Annotations]) -> tuple[str, ...]:
    """The class names shared by all splits (an error if they differ)."""
    names = {a.class_names for a in splits.values()}
    if len(names) > 1:
        raise DatasetError(f"splits have different class names: {sorted(names)}")
    return next(iter(names)) if names else ()
