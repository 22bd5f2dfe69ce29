"""A safe load cache: a dataset that did not change loads again in milliseconds.

**Where.** One ``.npz`` file per (dataset source, split) in the user's cache folder
(:func:`cache_dir`): ``$YOLO2RETINA_CACHE_DIR``, else ``$XDG_CACHE_HOME/yolo2retina``, else
``~/.cache/yolo2retina``. Nothing is ever written inside or beside a dataset (the user's
folders are never written). When the folder cannot be written, the load goes on without a
cache and says so in one line of ``report.details``.

**What.** The flat arrays of :class:`~yolo2retina.annotations.Annotations` and what the
reader added to the :class:`~yolo2retina.annotations.LoadReport` (counts and detail lines), so
a cached load returns, and prints, the same as the first one.

**When.** Only when the stored key matches the key of this load: every source file's path,
size, mtime, ctime and type (label files, images whose headers were read, the data.yaml, the
COCO JSON, the ids sidecar), the reader's options, the library version and
:data:`CACHE_FORMAT`. The key is computed from ``stat`` calls only, never by parsing (folder by
folder, :func:`stat_runs`). A reader still lists its folders on every load, so an added file
is seen: a listing is never taken from the cache on the word of a folder's mtime, which
object-store mounts (gcsfuse, goofys) do not change when a file is added. A load whose newest
source file changed less than :data:`RACY_SECONDS` ago writes no cache: a second change
within the file system's timestamp step could keep the same mtime (git's "racy clean" case).

**Safety.** Read with ``np.load(allow_pickle=False)`` only, never pickle; every array's dtype
and shape are checked. A stale, truncated or corrupt file, or one with unexpected arrays, is
ignored and rewritten, never trusted and never an error. Written atomically
(:func:`yolo2retina.atomic.atomic_path`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from yolo2retina._version import __version__
from yolo2retina.annotations import Annotations, LoadReport
from yolo2retina.atomic import atomic_path

__all__ = [
    "CACHE_ENV",
    "CACHE_FORMAT",
    "RACY_SECONDS",
    "LoadCache",
    "ReportMark",
    "SourceStats",
    "accepts_cache",
    "cache_dir",
    "stat_files",
    "stat_runs",
]

#: The environment variable that chooses the cache folder.
CACHE_ENV = "YOLO2RETINA_CACHE_DIR"

#: Version of the file layout; a file of another version is ignored and rewritten.
CACHE_FORMAT = 1

#: A load whose newest source file is younger than this writes no cache.
RACY_SECONDS = 2.0

#: The report counters a reader adds to (stored as the difference the reader made).
_COUNTERS = (
    "clipped",
    "dropped_zero_area",
    "dropped_duplicates",
    "missing_label_files",
    "skipped_files",
)

#: dtype and number of dimensions of each stored array (``paths`` is any unicode width).
_ARRAYS: dict[str, tuple[str, int]] = {
    "paths": ("U", 1),
    "image_hw": ("int64", 2),
    "offsets": ("int64", 1),
    "boxes": ("float32", 2),
    "labels": ("int64", 1),
    "flags": ("uint8", 1),
    "image_ids": ("int64", 1),
}


def cache_dir() -> Path | None:
    """The cache folder: ``$YOLO2RETINA_CACHE_DIR`` (made absolute),
    ``$XDG_CACHE_HOME/yolo2retina`` (when absolute, as the XDG spec asks) or
    ``~/.cache/yolo2retina``; ``None`` when none of them names a folder (no home folder)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.path.abspath(os.path.expanduser(os.environ[CACHE_ENV])))
    xdg = os.path.expanduser(os.environ.get("XDG_CACHE_HOME", ""))
    if os.path.isabs(xdg):
        return Path(xdg) / "yolo2retina"
    home = os.path.expanduser("~")  # "~" itself when there is no home folder
    return Path(home) / ".cache" / "yolo2retina" if os.path.isabs(home) else None


def accepts_cache(adapter: Any) -> bool:
    """Whether a format adapter's ``read`` takes ``cache=`` (the built-in YOLO and COCO ones
    do; a plug-in may)."""
    try:
        return "cache" in inspect.signature(adapter.read).parameters
    except (TypeError, ValueError):
        return False


@attrs.frozen
class SourceStats:
    """What ``stat`` says about a load's source files.

    Attributes:
        digest: hex SHA-256 of every path with its size, mtime, ctime and type (or missing).
        newest_ns: the newest mtime in ns (0 when no file exists).
    """

    digest: str
    newest_ns: int


def stat_files(paths: Iterable[str]) -> SourceStats:
    """:class:`SourceStats` of ``paths`` (absolute paths; a missing one is recorded so)."""
    paths = list(paths)
    values: list[int] = []
    _stat_into(values, paths, None)
    return _source_stats("\0".join(paths), values)


def stat_runs(runs: Iterable[tuple[str, Sequence[str]]]) -> SourceStats:
    """:func:`stat_files` of the paths ``prefix + name`` of every ``(prefix, names)`` run,
    in order (the same digest): ``prefix`` is a folder's path ending with the separator,
    each name a file name in it.

    Where ``os.stat`` takes ``dir_fd`` (not on Windows), a run's folder is opened once and
    its files are ``stat``-ed by name from it (links followed, as by path); a folder that
    cannot be opened so has its files ``stat``-ed path by path.
    """
    values: list[int] = []
    texts: list[str] = []
    for prefix, names in runs:
        if not names:
            continue
        texts.append(prefix + ("\0" + prefix).join(names))  # the paths, as stat_files joins them
        fd = _open_folder(prefix)
        if fd is None:
            _stat_into(values, [prefix + n for n in names], None)
            continue
        try:
            _stat_into(values, names, fd)
        finally:
            os.close(fd)
    return _source_stats("\0".join(texts), values)


#: ``os.open`` flags of a folder whose files are ``stat``-ed by name (``O_PATH``: searching
#: it is enough, as for a ``stat`` by path).
_FOLDER_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_DIRECTORY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_PATH", 0)
)


def _open_folder(prefix: str) -> int | None:
    """A descriptor of the folder ``prefix`` for ``stat(name, dir_fd=...)``; ``None`` where
    there is no ``dir_fd`` or the folder cannot be opened."""
    if not prefix or os.stat not in os.supports_dir_fd:
        return None
    try:
        return os.open(prefix, _FOLDER_FLAGS)
    except (OSError, ValueError):
        return None


def _stat_into(values: list[int], paths: Sequence[str], dir_fd: int | None) -> None:
    """Append size, mtime, ctime and mode of each path (relative to ``dir_fd`` when given)
    to ``values``; :data:`_MISSING` for one that cannot be ``stat``-ed."""
    stat = os.stat
    extend = values.extend
    for p in paths:
        try:
            st = stat(p, dir_fd=dir_fd)
        except (OSError, ValueError):
            extend(_MISSING)
            continue
        extend((st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode))


def _source_stats(joined_paths: str, values: list[int]) -> SourceStats:
    """:class:`SourceStats` of the ``"\\0"``-joined paths and their four values each."""
    table = np.array(values, np.int64).reshape(-1, 4)
    digest = hashlib.sha256(joined_paths.encode("utf-8", "surrogateescape"))
    digest.update(table.tobytes())
    newest = int(table[:, 1].max()) if len(table) else 0
    return SourceStats(digest.hexdigest(), max(newest, 0))


#: The stat record of a missing file (no real file has a negative size).
_MISSING = (-1, -1, -1, -1)


@attrs.frozen
class ReportMark:
    """A :class:`~yolo2retina.annotations.LoadReport`'s counters and detail count at the
    moment the reader starts the part of the work that the cache replaces."""

    counts: tuple[int, ...]
    details: int

    @classmethod
    def of(cls, report: LoadReport) -> ReportMark:
        """The mark of ``report`` now."""
        return cls(tuple(getattr(report, k) for k in _COUNTERS), len(report.details))


#: A reader's own test of a cache entry: ``check(extra, paths) -> usable``.
Check = Callable[[Mapping[str, Any], "npt.NDArray[np.str_]"], bool]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class LoadCache:
    """The cache entry of one (reader, source, split) and the key of this load.

    Args:
        reader: the reader's name (``"yolo"``, ``"coco"``).
        source: the resolved dataset source (an absolute, link-free path).
        split: the split read (``None`` for a whole folder or a single file).
        options: every reader option and discovered value that changes the result.
        stats: :func:`stat_files` of every source file.
    """

    def __init__(
        self,
        reader: str,
        source: str,
        split: str | None,
        options: Mapping[str, Any],
        stats: SourceStats,
    ) -> None:
        name = hashlib.sha256(_canonical([reader, source, split]).encode()).hexdigest()[:24]
        folder = cache_dir()
        self.file = None if folder is None else folder / f"{reader}-{name}.npz"
        header = _canonical(
            {"format": CACHE_FORMAT, "version": __version__, "reader": reader, "options": options}
        )
        self.key = hashlib.sha256(f"{header}\n{stats.digest}".encode()).hexdigest()
        self.started_ns = time.time_ns()
        self.racy = self.too_recent(stats.newest_ns)

    def too_recent(self, mtime_ns: int) -> bool:
        """Whether a file of this mtime changed too close to (or after) the start of this
        load (:data:`RACY_SECONDS`) for its stat to tell a later change apart."""
        return mtime_ns > self.started_ns - int(RACY_SECONDS * 1e9)

    def load(self, report: LoadReport, check: Check | None = None) -> Annotations | None:
        """The cached annotations, with their report built on ``report`` (what the reader
        found before the cached part); ``None`` when there is no entry, it does not match
        (or ``check(extra, paths)`` says no) or it cannot be read. ``report`` is changed
        only when the cached annotations are returned."""
        if self.file is None:
            return None
        try:
            with np.load(self.file, allow_pickle=False) as z:
                meta = _meta(z["meta"])
                if (
                    meta.get("format") != CACHE_FORMAT
                    or meta.get("version") != __version__
                    or meta.get("key") != self.key
                ):
                    return None
                arrays = {"paths": _array(z, "paths", *_ARRAYS["paths"])}
                if check is not None and not check(meta["extra"], arrays["paths"]):
                    return None
                arrays |= {k: _array(z, k, *spec) for k, spec in _ARRAYS.items() if k != "paths"}
                ann_ids = _array(z, "annotation_ids", "int64", 1) if meta["ann_ids"] else None
            return _annotations(arrays, ann_ids, meta, report)
        except Exception:  # a stale, truncated or corrupt file is ignored, never an error
            return None

    def store(
        self, ann: Annotations, mark: ReportMark, extra: Mapping[str, Any] | None = None
    ) -> None:
        """Write ``ann`` (and what its report gained since ``mark``) unless a source file is
        too recent; when the cache folder cannot be written, add one note to the report."""
        if self.racy:
            return
        r = ann.report
        meta = {
            "format": CACHE_FORMAT,
            "version": __version__,
            "key": self.key,
            "class_names": list(ann.class_names),
            "category_ids": None if ann.category_ids is None else list(ann.category_ids),
            "ann_ids": ann.annotation_ids is not None,
            "added": [getattr(r, k) - c for k, c in zip(_COUNTERS, mark.counts, strict=True)],
            "details": r.details[mark.details :],
            "extra": dict(extra or {}),
        }
        arrays: dict[str, npt.NDArray[Any]] = {
            "meta": np.frombuffer(json.dumps(meta).encode("ascii"), dtype=np.uint8),
            "paths": ann.paths,
            "image_hw": ann.image_hw_array,
            "offsets": ann.offsets,
            "boxes": ann.boxes,
            "labels": ann.labels,
            "flags": ann.flags,
            "image_ids": ann.image_ids,
        }
        if ann.annotation_ids is not None:
            arrays["annotation_ids"] = ann.annotation_ids
        try:
            if self.file is None:
                raise OSError("no home folder to hold ~/.cache")
            with atomic_path(self.file) as tmp:
                _write_npz(tmp, arrays)
        except Exception as e:  # the cache must never stop a load
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            r.details.append(
                f"load cache: cannot write {self.file or 'a cache file'} ({why}); loaded "
                f"without a cache (set {CACHE_ENV} to a writable folder, or pass cache=False "
                "/ --no-cache)"
            )


def _write_npz(file: Path, arrays: Mapping[str, npt.NDArray[Any]]) -> None:
    """An uncompressed ``.npz`` (what :func:`numpy.savez` writes), refusing object arrays."""
    with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, a in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(a), allow_pickle=False)


def _meta(raw: npt.NDArray[Any]) -> dict[str, Any]:
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError("meta is not a byte string")
    meta = json.loads(raw.tobytes().decode("ascii"))
    if not isinstance(meta, dict):
        raise ValueError("meta is not an object")
    return meta


def _array(z: Any, name: str, dtype: str, ndim: int) -> npt.NDArray[Any]:
    """A stored array, refused unless its dtype and number of dimensions are the expected."""
    a: npt.NDArray[Any] = z[name]
    ok = a.dtype.kind == "U" if dtype == "U" else a.dtype == np.dtype(dtype)
    if not ok or a.ndim != ndim:
        raise ValueError(f"{name}: unexpected {a.dtype} array of {a.ndim} dimensions")
    return a


def _annotations(
    arrays: dict[str, npt.NDArray[Any]],
    ann_ids: npt.NDArray[np.int64] | None,
    meta: Mapping[str, Any],
    report: LoadReport,
) -> Annotations:
    """Annotations from stored arrays; ``report`` gains the stored counts and detail lines
    once everything has been checked."""
    added, details, names, cats = (
        meta["added"],
        meta["details"],
        meta["class_names"],
        meta["category_ids"],
    )
    if len(added) != len(_COUNTERS) or not all(type(n) is int for n in added):
        raise ValueError("bad report counts")
    if not all(isinstance(x, str) for x in [*details, *names]):
        raise ValueError("bad report details or class names")
    if cats is not None and not all(type(c) is int for c in cats):
        raise ValueError("bad category ids")
    b, hw = arrays["boxes"], arrays["image_hw"]
    if b.ndim != 2 or b.shape[1:] != (4,) or not np.isfinite(b).all():
        raise ValueError("bad boxes")
    if not ((b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all() and (hw > 0).all()):
        raise ValueError("bad boxes or image sizes")
    ann = Annotations(
        paths=arrays["paths"],
        image_hw_array=arrays["image_hw"],
        offsets=arrays["offsets"],
        boxes=arrays["boxes"],
        labels=arrays["labels"],
        flags=arrays["flags"],
        class_names=tuple(names),
        image_ids=arrays["image_ids"],
        category_ids=None if cats is None else tuple(cats),
        annotation_ids=ann_ids,
        report=report,
    )  # checks the shapes and the label range
    for k, n in zip(_COUNTERS, added, strict=True):
        setattr(report, k, getattr(report, k) + n)
    report.details.extend(details)
    report.images = len(ann)
    report.boxes = ann.num_boxes
    report.background_images = int((ann.boxes_per_image() == 0).sum())
    return ann
