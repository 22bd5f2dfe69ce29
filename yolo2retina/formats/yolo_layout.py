"""Where a YOLO dataset's files are: index files, image folders and lists, label paths.

Labels sit under the ``labels`` folder that mirrors ``images`` (Ultralytics) or beside
the images (Darknet, flat folders); image lists (``train.txt``) name one image per line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from itertools import pairwise, repeat
from pathlib import Path

from yolo2retina.annotations import LoadReport
from yolo2retina.errors import DatasetError
from yolo2retina.formats._common import split_candidates
from yolo2retina.formats._files import IMAGE_SUFFIXES, path_kind, quote, read_text_file
from yolo2retina.formats.darknet import find_obj_data
from yolo2retina.formats.data_yaml import abs_path
from yolo2retina.formats.yolo_labels import parse_float
from yolo2retina.image import IMAGE_EXTENSIONS

__all__ = ["image_to_label_path"]

#: Why a name with an image extension is never opened.
NOT_REGULAR = "not a regular file (a FIFO, device, socket, folder or broken link); not opened"


def image_to_label_path(image_path: str | os.PathLike[str]) -> Path:
    """Label file of an image: the LAST ``images`` folder becomes ``labels``, extension ``.txt``.

    >>> image_to_label_path("/d/images/train/images_0012.jpg").as_posix()
    '/d/labels/train/images_0012.txt'
    >>> image_to_label_path("/d/flat/a.png").as_posix()
    '/d/flat/a.txt'
    """
    p = Path(image_path)
    parts = list(p.parent.parts)
    for k in range(len(parts) - 1, -1, -1):
        if parts[k] == "images":
            parts[k] = "labels"
            break
    return Path(*parts, p.stem + ".txt") if parts else Path(p.stem + ".txt")


#: A folder's files: ``(prefix, names)``, where ``prefix`` is the folder's path ending with
#: the separator and ``prefix + name`` is a file's path. The reader keeps its file lists as
#: runs, so a folder is mapped (and opened for ``stat``) once, not once per file.
Run = tuple[str, list[str]]


def label_path_of(image: str) -> str:
    """:func:`image_to_label_path` as a string, built without :class:`~pathlib.Path` for an
    absolute, normalized path.

    >>> label_path_of("/d/images/train/images_0012.jpg")
    '/d/labels/train/images_0012.txt'
    """
    if not os.path.isabs(image):
        return str(image_to_label_path(image))
    return label_paths([image])[0]


def label_paths(images: list[str]) -> list[str]:
    """:func:`label_path_of` of many absolute, normalized image paths."""
    return [p + n for p, names in label_runs(runs_of(images)) for n in names]


def label_runs(runs: list[Run]) -> list[Run]:
    """The label file (:func:`label_path_of`) of every image of ``runs`` (absolute,
    normalized), run by run: a folder is mapped once, each name keeps its
    :attr:`~pathlib.PurePath.stem` and gets ``.txt``."""
    # the stem is the part before the last dot when that dot is neither first nor last
    return [
        (
            _label_prefix(prefix),
            [(h if h and t else n) + ".txt" for n in names for h, _, t in (n.rpartition("."),)],
        )
        for prefix, names in runs
    ]


def _label_prefix(prefix: str) -> str:
    """The label folder of an image folder (both ending with the separator): the last
    ``images`` part becomes ``labels``."""
    k = prefix.rfind(_IMAGES)
    return prefix if k < 0 else prefix[:k] + _LABELS + prefix[k + len(_IMAGES) :]


_IMAGES = os.sep + "images" + os.sep
_LABELS = os.sep + "labels" + os.sep


def runs_of(paths: Iterable[str]) -> list[Run]:
    """``paths`` as runs: consecutive paths in one folder share a run."""
    runs: list[Run] = []
    last = None
    names: list[str] = []
    for path in paths:
        head, sep, name = path.rpartition(os.sep)
        if head + sep != last:
            last = head + sep
            names = []
            runs.append((last, names))
        names.append(name)
    return runs


def path_order(path: str) -> str:
    """Sort key that orders path strings as :class:`~pathlib.Path` objects are ordered (part
    by part): the separator becomes the lowest character."""
    return path.replace(os.sep, "\0")


def ordered_runs(runs: list[Run]) -> list[Run]:
    """The files of ``runs`` once each, in the order of their paths (:func:`path_order`).

    When no folder holds another one's files (one folder, or sibling folders), that order
    is the folders' order with each folder's names sorted as plain strings (a name holds no
    separator): only the names are sorted, not the paths.
    """
    runs = sorted((r for r in runs if r[1]), key=lambda r: path_order(r[0]))
    if not any(b[0].startswith(a[0]) for a, b in pairwise(runs)):
        return [(prefix, sorted(set(names))) for prefix, names in runs]
    paths = {prefix + n for prefix, names in runs for n in names}
    return runs_of(sorted(paths, key=path_order))


def image_runs(folder: str | os.PathLike[str], problems: list[str]) -> list[Run]:
    """Image files under ``folder`` (recursively, not into linked folders), absolute and
    normalized, one run per folder that holds any, in listing order (order them with
    :func:`ordered_runs`).

    A name with an image extension that is not a regular file (a FIFO, device, socket,
    folder or broken link) is a problem and is never opened.
    """
    runs: list[Run] = []
    stack = [os.path.abspath(folder)]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError as e:
            problems.append(f"{d}: cannot list folder ({e.strerror or e})")
            continue
        names = _all_image_files(entries)
        if names is not None:
            if names:
                runs.append((os.path.join(d, ""), names))
            continue
        names = []
        for entry in entries:
            name = entry.name
            i = name.rfind(".")
            # the suffix as os.path.splitext sees it: leading dots are not one
            if (
                i > 0
                and name[i:].lower() in IMAGE_EXTENSIONS
                and (name[0] != "." or name[:i].strip("."))
            ):
                if entry.is_file():  # a regular file, after links (the file type is free)
                    names.append(name)
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    problems.append(f"{entry.path}: {NOT_REGULAR}")
            elif entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
        if names:
            runs.append((os.path.join(d, ""), names))
    return runs


#: The image extensions in both cases, the common ones first, for ``str.endswith``: a name
#: that ends with one (and does not start with a dot) has it as its suffix.
_SUFFIXES = tuple(e for e in IMAGE_SUFFIXES if e.count(".") == 1 and e.startswith("."))


def _all_image_files(entries: list[os.DirEntry[str]]) -> list[str] | None:
    """The names of ``entries`` when every one is an image file (a regular file after
    links, with an image extension in lower or upper case, not hidden): a folder of images
    is then taken in three passes in C; ``None`` otherwise (look at each entry)."""
    names = [e.name for e in entries]
    try:
        if not all(map(os.DirEntry.is_file, entries)):
            return None
    except OSError:
        return None
    if not all(map(str.endswith, names, repeat(_SUFFIXES))) or "\0." in "\0" + "\0".join(names):
        return None
    return names


def label_files(images: list[Run], labels: list[Run], problems: list[str]) -> set[str]:
    """The images that share a label file, of image runs and their :func:`label_runs`:
    ``a.jpg`` and ``a.png`` in one folder would share ``a.txt``, which is a problem."""
    if len({prefix for prefix, _ in labels}) == len(labels) and all(
        len(set(names)) == len(names) for _, names in labels
    ):
        return set()  # no label folder twice, no name twice in one: no label file shared
    label_of: dict[str, str] = {}
    shared: set[str] = set()
    for img, lab in zip(flat_paths(images), flat_paths(labels), strict=True):
        if lab in label_of:
            problems.append(
                f"{img}: same name as {label_of[lab]} apart from the extension; both would "
                f"use the label file {lab} (rename one)"
            )
            shared |= {img, label_of[lab]}
        else:
            label_of[lab] = img
    return shared


def flat_paths(runs: list[Run]) -> list[str]:
    """The paths of ``runs``, in order."""
    return [prefix + n for prefix, names in runs for n in names]


def unmatched_label_files(
    image_dirs: list[Path], labels: list[Run], report: LoadReport, problems: list[str]
) -> None:
    """A label file without an image (one not in the runs ``labels``) is a problem; caches
    and image lists are skipped."""
    known: dict[str, set[str]] = {}
    for prefix, names in labels:
        known.setdefault(prefix, set()).update(names)
    folders = (os.path.dirname(label_path_of(os.path.join(d, "x.jpg"))) for d in image_dirs)
    for d in dict.fromkeys(folders):
        if path_kind(d) != "dir":
            continue
        for dirpath, _, files in os.walk(d):
            here = os.path.join(dirpath, "")
            mine = known.get(here)
            for fn in files if mine is None else [f for f in files if f not in mine]:
                if fn.endswith(".cache"):
                    lp = here + fn
                    report.note("skipped_files", f"{lp}: Ultralytics cache file (ignored)")
                elif fn.endswith(".txt") and fn != "classes.txt":
                    lp = here + fn
                    if is_image_list(Path(lp)):
                        report.note(
                            "skipped_files", f"{lp}: a list of image paths, not labels (ignored)"
                        )
                    else:
                        problems.append(f"{lp}: label file has no image")


def images_from_list(
    list_file: Path, root: Path, problems: list[str], *, darknet: bool = False
) -> list[Path]:
    """Images named in a split list file, one path per line.

    Relative lines are tried against the list's folder, then the dataset root (and, for a
    Darknet ``obj.data``, without a leading ``data/``). Lines may point outside the
    dataset (Ultralytics and Darknet lists often hold absolute paths), but only to
    regular files: anything else is a problem naming the line.
    """
    try:
        text = read_text_file(list_file, "image list")
    except DatasetError as e:
        problems.append(str(e))
        return []
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        p = Path(s)
        if not p.is_absolute():
            # Ultralytics: "./x.jpg" is relative to the list's folder; otherwise try root too.
            cand = [list_file.parent / p, root / p]
            if darknet and len(p.parts) > 1 and p.parts[0] == "data":
                cand.append(root.joinpath(*p.parts[1:]))
            p = next((c for c in cand if path_kind(c) != "missing"), cand[0])
        p = abs_path(p)
        kind = path_kind(p)
        if kind != "file":
            what = "does not exist" if kind == "missing" else "is " + NOT_REGULAR
            problems.append(f"{list_file}:{lineno}: image {quote(s)} {what}")
            continue
        out.append(p)
    return out


def is_image_list(file: Path) -> bool:
    """Whether a ``.txt`` is a Darknet / CVAT image list (``train.txt``): its first line
    names an image file rather than starting with a class id. Only a regular file is
    opened (a FIFO named ``x.txt`` would block the reader)."""
    if path_kind(file) != "file":
        return False
    try:
        with open(file, "rb") as fh:
            head = fh.read(4096).decode("utf-8-sig", errors="replace")
    except OSError:
        return False
    first = next((ln.strip() for ln in head.splitlines() if ln.strip()), "")
    return (
        bool(first)
        and parse_float(first.split()[0]) is None
        and os.path.splitext(first)[1].lower() in IMAGE_EXTENSIONS
    )


def folder_sources(folder: Path, split: str | None, shown: Path) -> list[Path]:
    """The image folders of ``split`` in a dataset folder without an index file.

    ``images/{split}``, ``{split}/images`` or ``{split}`` (``val`` also finds ``valid``);
    with no split, ``images/`` or the folder itself.
    """
    if split:
        for s in split_candidates(split):  # "val" also finds "valid" and "validation"
            for c in (folder / "images" / s, folder / s / "images", folder / s):
                if path_kind(c) == "dir":
                    return [abs_path(c)]
        if any(
            path_kind(folder / s) == "dir" or path_kind(folder / "images" / s) == "dir"
            for s in ("train", "val", "valid", "test")
        ):
            raise DatasetError(
                f"{shown}: no '{split}' split. Looked for images/{split}, {split}/images and {split}"
            )
    if path_kind(folder / "images") == "dir":
        return [folder / "images"]
    return [folder]


def folder_splits(path: Path) -> tuple[str, ...]:
    """``images/{split}`` and ``{split}/images`` folders of a dataset folder."""
    if not path.is_dir():
        return ()
    found = set()
    if (path / "images").is_dir():
        found |= {d.name for d in (path / "images").iterdir() if d.is_dir()}
    found |= {d.name for d in path.iterdir() if d.is_dir() and (d / "images").is_dir()}
    return tuple(sorted(found))


def find_yaml(folder: Path) -> Path | None:
    """``data.yaml`` (or ``.yml``, ``dataset.yaml``), or the one yaml file in ``folder``."""
    for name in ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml"):
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    return found[0] if len(found) == 1 else None


def has_label_txt(folder: Path) -> bool:
    """Whether ``folder`` holds a ``.txt`` file (not ``classes.txt``) beside an image of the
    same stem (any :data:`~yolo2retina.image.IMAGE_EXTENSIONS` suffix, in any case)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    images: dict[str, list[str]] = {}
    for n in names:
        stem, ext = os.path.splitext(n)
        if ext.lower() in IMAGE_EXTENSIONS:
            images.setdefault(stem, []).append(n)
    return any(
        n.endswith(".txt")
        and n != "classes.txt"
        and any((folder / m).is_file() for m in images.get(n[:-4], ()))
        for n in names
    )


def index_file(path: Path) -> Path | None:
    """The data.yaml or obj.data that describes ``path`` (the file itself, or in the folder)."""
    if path.is_file():
        return path
    if not path.is_dir():
        return None
    return find_yaml(path) or find_obj_data(path)
