"""The ``images`` table of a COCO file: ids, image paths under the images root, sizes.

A ``file_name`` is relative to the images root; an absolute one or a ``..`` that leaves the
root is refused before it is looked at, unless ``allow_outside_root``. Only regular files
are opened (a FIFO or ``/dev/stdin`` is refused after a ``stat``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter, methodcaller
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from yolo2retina.annotations import Annotations, LoadReport
from yolo2retina.errors import DatasetError, ImageReadError
from yolo2retina.formats._files import quote
from yolo2retina.formats.cache import Check, LoadCache, ReportMark, stat_files
from yolo2retina.formats.coco_columns import column, dupes, pixels_column
from yolo2retina.formats.coco_layout import layout_images_root
from yolo2retina.image import read_image_hw


@attrs.frozen
class ReadOptions:
    """The reader's options, as :func:`read_coco` takes them."""

    class_names: Sequence[str] | None
    strict: bool
    images_root: str | os.PathLike[str] | None
    allow_outside_root: bool
    verify_images: bool
    progress: bool


@attrs.frozen
class ImageTable:
    """The ``images`` table: ids, absolute paths (``""`` for a refused name), ``(N, 2)`` hw,
    the images root and the first file names (what the layout search looked at)."""

    ids: npt.NDArray[np.int64]
    paths: list[str]
    hw: npt.NDArray[np.int64]
    root: str
    probe: list[str]


def image_table(file: Path, images: list[Any], opt: ReadOptions, report: LoadReport) -> ImageTable:
    """Ids, paths and sizes of every image; raises listing every problem found."""
    problems: list[str] = []
    img_ids = column(
        images,
        itemgetter("id"),
        np.int64,
        lambda i: f"{file}: images[{i}]: missing or non-integer 'id'",
        (int,),
    )
    if dup := dupes(img_ids):
        shown = ", ".join(str(d) for d in dup[:10])
        raise DatasetError(
            f"{file}: duplicate image ids: {shown}" + (" ..." if len(dup) > 10 else "")
        )
    widths = pixels_column(
        images, "width", lambda i: f"{file}: images[{i}]: 'width' is not a whole number"
    )
    heights = pixels_column(
        images, "height", lambda i: f"{file}: images[{i}]: 'height' is not a whole number"
    )
    file_names = list(map(methodcaller("get", "file_name"), images))
    root = _images_root(file, file_names, opt.images_root, report)
    paths = _image_paths(file, file_names, img_ids, root, opt.allow_outside_root, problems)
    n = len(images)
    hw = np.stack([heights, widths], axis=1) if n else np.zeros((0, 2), np.int64)
    if opt.verify_images:
        _read_sizes(file, paths, file_names, img_ids, hw, opt.progress, problems)
    else:
        for i in np.flatnonzero((widths <= 0) | (heights <= 0)).tolist():
            problems.append(
                f"{file}: images[{i}] (id {img_ids[i]}): no positive width/height "
                "(verify_images=False cannot read it from the image)"
            )
    if problems:
        raise DatasetError(f"cannot load COCO file {file}", problems)
    return ImageTable(img_ids, paths, hw, root, [fn for fn in file_names[:50] if type(fn) is str])


def _images_root(
    file: Path,
    file_names: list[Any],
    images_root: str | os.PathLike[str] | None,
    report: LoadReport,
) -> str:
    if images_root is not None:
        return os.path.realpath(images_root)
    root = str(layout_images_root(file, file_names))
    if root != str(file.parent):
        report.details.append(
            f"{file}: images are read from {root} (found from the folder layout; "
            "images_root= or --images-root chooses another)"
        )
    return root


def _image_paths(
    file: Path,
    file_names: list[Any],
    img_ids: npt.NDArray[np.int64],
    root: str,
    allow_outside_root: bool,
    problems: list[str],
) -> list[str]:
    """Absolute image paths; ``""`` for a name that is refused (it is never looked at)."""
    root_sep = root.rstrip(os.sep) + os.sep
    # Fast path for plain relative names; only the unusual ones are looked at closely.
    paths = [root_sep + fn if type(fn) is str else "" for fn in file_names]
    unusual = [
        i
        for i, fn in enumerate(file_names)
        if type(fn) is not str
        or not fn
        or not fn.isascii()
        or ".." in fn
        or "./" in fn
        or "//" in fn
        or "\x00" in fn
        or fn[0] in "/\\"
        or fn[1:2] == ":"
    ]
    for i in unusual:
        paths[i] = _unusual_path(
            file_names[i],
            f"{file}: images[{i}] (id {img_ids[i]})",
            root,
            allow_outside_root,
            problems,
        )
    first: dict[str, int] = {}
    for i, path in enumerate(paths):
        if path and (j := first.setdefault(path, i)) != i:
            problems.append(
                f"{file}: images[{i}] (id {img_ids[i]}): file_name {quote(file_names[i])} is "
                f"the same file as images[{j}] (id {img_ids[j]}); one file cannot be two images"
            )
    return paths


def _unusual_path(
    fn: Any, where: str, root: str, allow_outside_root: bool, problems: list[str]
) -> str:
    """The path of a ``file_name`` that is not plain relative ASCII, or ``""`` (a problem)."""
    if not isinstance(fn, str) or not fn:
        problems.append(f"{where}: missing 'file_name'")
        return ""
    if "\x00" in fn:
        problems.append(f"{where}: file_name {quote(fn)} contains a NUL byte")
        return ""
    try:
        os.fsencode(fn)
    except UnicodeError:
        problems.append(f"{where}: file_name {quote(fn)} is not a valid file name here")
        return ""
    full = os.path.normpath(os.path.join(root, fn))
    if not allow_outside_root and not full.startswith(root.rstrip(os.sep) + os.sep):
        how = "is absolute" if os.path.isabs(fn) else "escapes the images root"
        problems.append(
            f"{where}: file_name {quote(fn)} {how} ({root}); pass allow_outside_root=True "
            "to accept files outside it"
        )
        return ""
    return full


def _read_sizes(
    file: Path,
    paths: list[str],
    file_names: list[Any],
    img_ids: npt.NDArray[np.int64],
    hw: npt.NDArray[np.int64],
    progress: bool,
    problems: list[str],
) -> None:
    """Fill ``hw`` from the image headers; a JSON size that disagrees is a problem.

    :func:`~yolo2retina.image.read_image_hw` refuses a FIFO, device or folder (which would
    block or fail a read) before opening it, and names the path.
    """
    sizes: list[list[int]] = hw.tolist()
    ids: list[int] = img_ids.tolist()
    for i, path in enumerate(tqdm(paths, desc="image headers", disable=not progress)):
        if not path:
            continue
        try:
            h, w = read_image_hw(path)
        except ImageReadError as e:
            problems.append(f"{file}: images[{i}] (id {ids[i]}): {e}")
            continue
        json_h, json_w = sizes[i]
        if (json_w, json_h) not in ((0, 0), (w, h)):
            problems.append(
                f"{file}: images[{i}] (id {ids[i]}, {file_names[i]}): width x height "
                f"{json_w}x{json_h} but the image is {w}x{h} (after EXIF orientation)"
            )
        sizes[i] = [h, w]
    if sizes:
        hw[:] = sizes


# -- the load cache (yolo2retina.formats.cache) of a COCO file ----------------------------


def coco_cache(file: Path, opt: ReadOptions) -> LoadCache:
    """The cache entry of ``file``, keyed by its ``stat`` and the options (the images, when
    their headers are read, are checked by :func:`cache_check`)."""
    options = {
        "file": str(file),
        "class_names": None if opt.class_names is None else list(opt.class_names),
        "strict": opt.strict,
        "images_root": None if opt.images_root is None else os.path.realpath(opt.images_root),
        "allow_outside_root": opt.allow_outside_root,
        "verify_images": opt.verify_images,
    }
    return LoadCache("coco", str(file), None, options, stat_files([str(file)]))


def cache_check(file: Path, opt: ReadOptions) -> Check:
    """Whether a cached entry still holds: the layout finds the same images root, and the
    images (when their headers are read) did not change."""

    def check(extra: Mapping[str, Any], paths: npt.NDArray[np.str_]) -> bool:
        if (
            opt.images_root is None
            and str(layout_images_root(file, extra["probe"])) != extra["root"]
        ):
            return False
        return not opt.verify_images or stat_files(paths.tolist()).digest == extra["images"]

    return check


def cached_read(
    file: Path, opt: ReadOptions, read: Callable[[], tuple[Annotations, ImageTable]]
) -> Annotations:
    """The cached load of ``file`` when it still holds, else ``read()``'s, which is stored."""
    lc = coco_cache(file, opt)
    ann = lc.load(LoadReport(source=str(file)), cache_check(file, opt))
    if ann is None:
        ann, table = read()
        cache_store(lc, ann, table, opt)
    return ann


def cache_store(lc: LoadCache, ann: Annotations, table: ImageTable, opt: ReadOptions) -> None:
    """Store a COCO load (nothing when an image changed too recently)."""
    extra: dict[str, Any] = {"root": table.root, "probe": table.probe}
    if opt.verify_images:
        stats = stat_files(ann.paths.tolist())  # taken after the header reads: see too_recent
        if lc.too_recent(stats.newest_ns):
            return
        extra["images"] = stats.digest
    lc.store(ann, ReportMark.of(LoadReport()), extra)
