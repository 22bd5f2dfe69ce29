"""Helpers shared by the format adapters: box checks, atomic writes and image placement."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from yolo2retina import boxes as box_ops
from yolo2retina.annotations import Annotations, LoadReport
from yolo2retina.errors import DatasetError
from yolo2retina.image import IMAGE_EXTENSIONS
from yolo2retina.target import FLAG_CROWD, FLAG_DIFFICULT, FLAG_TRUNCATED

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
) -> npt.NDArray[np.bool_]:
    """Validate pixel XYXY boxes in place; returns the mask of boxes to keep.

    Boxes up to :data:`PIXEL_TOLERANCE` pixels outside their image are clipped (counted),
    boxes with no area after clipping are dropped (counted); non-finite, inverted and
    boxes further outside are problems. With ``strict`` every clip and drop is a problem.

    Args:
        xyxy: ``(n, 4) float64`` boxes, clipped in place.
        images_wh: the image ``(width, height)``, or ``(n, 2)`` one per box.
        where: box index -> location text (``file: object 3``) for messages.
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
    for i in np.flatnonzero(~finite | inverted | far | out).tolist():
        b = [round(float(v), 4) for v in xyxy[i]]
        size = f"{int(w[i])}x{int(h[i])}"
        if not finite[i]:
            problems.append(f"{where(i)}: non-finite box coordinates {b}")
            keep[i] = False
        elif inverted[i]:
            problems.append(f"{where(i)}: inverted box {b} (needs x1 <= x2 and y1 <= y2)")
            keep[i] = False
        elif far[i]:
            problems.append(
                f"{where(i)}: box {b} lies more than {tol:g} px outside the {size} image"
            )
            keep[i] = False
        else:
            msg = f"{where(i)}: box {b} slightly outside the {size} image"
            if strict:
                problems.append(msg)
                keep[i] = False
            else:
                report.note("clipped", msg + " (clipped)")
    if out.any():
        xyxy[out] = box_ops.clip_xyxy_each(xyxy[out], wh[out])
    with np.errstate(invalid="ignore"):
        zero = keep & (box_ops.area(xyxy) <= 0)
    for i in np.flatnonzero(zero).tolist():
        msg = f"{where(i)}: zero-area box {[round(float(v), 4) for v in xyxy[i]]}"
        if strict:
            problems.append(msg)
        else:
            report.note("dropped_zero_area", msg + " (dropped)")
        keep[i] = False
    return keep


# -- writing ---------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


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
        for p in ann.paths:
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


def is_image_file(name: str) -> bool:
    """Whether a file name has an image extension."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


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


def read_classes_txt(file: Path) -> list[str]:
    """Class names of a ``classes.txt`` (one per line, blank lines skipped).

    Raises:
        DatasetError: the file lists a name twice.
    """
    names = [ln.strip() for ln in file.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
    if len(set(names)) != len(names):
        raise DatasetError(f"{file}: duplicate class names: {names}")
    return names
