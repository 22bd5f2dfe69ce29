"""Where a Pascal VOC dataset's files are: the split's annotation files, image folders,
``classes.txt``, images without an annotation (flat layout), and the image of each record.

Layouts: **VOC** ``Annotations/*.xml`` + ``JPEGImages/`` + ``ImageSets/Main/{split}.txt``;
**flat** ``.xml`` files beside their images, with optional split sub-folders. Paths are
plain strings (absolute, normalized): each folder is listed once with :func:`os.scandir`
rather than one ``stat`` per file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import attrs

from yolo2retina.errors import DatasetError
from yolo2retina.formats._common import split_candidates
from yolo2retina.formats._files import (
    IMAGE_SUFFIXES,
    is_image_file,
    not_regular,
    path_kind,
    quote,
    read_classes_txt,
    read_text_file,
)
from yolo2retina.formats.voc_xml import VocRecord


def voc_splits(path: Path) -> tuple[str, ...]:
    """``ImageSets/Main/{split}.txt`` names, or sub-folders holding ``.xml`` files."""
    if path_kind(path) != "dir":
        return ()
    if layout(path) == "voc":
        main = path / "ImageSets" / "Main"
        if not main.is_dir():
            return ()
        return tuple(sorted(p.stem for p in main.glob("*.txt") if "_" not in p.stem))
    if xml_files(path):
        return ()
    return tuple(sorted(d.name for d in path.iterdir() if d.is_dir() and xml_files(d)))


def inside(path: str, root: str | Path) -> bool:
    """Whether the normalized ``path`` lies in ``root`` (by name: links inside are fine)."""
    return path.startswith(str(root).rstrip(os.sep) + os.sep)


def outside(what: str, value: str, root: str | Path, root_name: str = "dataset root") -> str:
    how = "is absolute" if os.path.isabs(value) else f"escapes the {root_name}"
    return (
        f"{what} {quote(value)} {how} ({root}); pass allow_outside_root=True to accept "
        "files outside it"
    )


def _is_file(entry: os.DirEntry[str]) -> bool:
    """A regular file, links followed (``Path.is_file``), without raising."""
    try:
        return entry.is_file()
    except OSError:
        return False


def listing(folder: str | os.PathLike[str]) -> list[tuple[str, bool]]:
    """``(name, is a regular file)`` for each entry of ``folder`` (links followed), sorted by
    name; empty when it cannot be listed."""
    try:
        with os.scandir(folder) as it:
            return sorted((e.name, _is_file(e)) for e in it)
    except OSError:
        return []


def regular_files(folder: str | os.PathLike[str]) -> list[str]:
    """Names of the regular files (links followed) in ``folder``, sorted."""
    return [n for n, regular in listing(folder) if regular]


def xml_files(folder: str | os.PathLike[str]) -> list[str]:
    """The ``*.xml`` regular files of ``folder`` (hidden ones too, as ``Path.glob``), sorted."""
    folder = os.fspath(folder)
    return [os.path.join(folder, n) for n in regular_files(folder) if n.endswith(".xml")]


def layout(path: Path) -> str:
    return "voc" if (path / "Annotations").is_dir() else "flat"


def split_dir(path: Path, split: str) -> Path | None:
    for s in split_candidates(split):
        if (path / s).is_dir() and xml_files(path / s):
            return path / s
    return None


def read_class_file(*folders: Path) -> list[str] | None:
    for d in folders:
        f = d / "classes.txt"
        if f.is_file():
            return read_classes_txt(f)
    return None


@attrs.frozen
class SplitFiles:
    """The files of one split (absolute, normalized paths).

    Attributes:
        xmls: the split's annotation files.
        all_xml: every annotation file of the dataset (for class names found in all splits).
        image_dirs: where images are looked for.
        class_dirs: where ``classes.txt`` is looked for.
        orphans: images without an ``.xml`` (flat layout), kept as background.
        skipped: images beside the ``.xml`` files that are not read because ``images_root``
            names another folder (flat layout).
    """

    xmls: list[str]
    all_xml: list[str]
    image_dirs: list[str]
    class_dirs: list[Path]
    orphans: list[str] = attrs.field(factory=list)
    skipped: list[str] = attrs.field(factory=list)


def voc_files(
    root: Path, split: str | None, allow_outside_root: bool, problems: list[str]
) -> SplitFiles:
    """``Annotations/`` + ``JPEGImages/``; a split is an ``ImageSets/Main/{split}.txt`` list."""
    ann_dir = root / "Annotations"
    all_xml = xml_files(ann_dir)
    xmls = all_xml
    if split is not None:
        main = root / "ImageSets" / "Main"
        lst = next(
            (main / f"{s}.txt" for s in split_candidates(split) if (main / f"{s}.txt").is_file()),
            None,
        )
        if lst is None:
            raise DatasetError(
                f"{root}: no split '{split}' (ImageSets/Main/{split}.txt); found "
                f"{list(voc_splits(root)) or 'none'}"
            )
        xmls = _listed_xmls(
            lst, str(ann_dir), str(root), allow_outside_root, set(all_xml), problems
        )
    return SplitFiles(xmls, all_xml, [str(root / "JPEGImages"), str(ann_dir)], [root])


def _listed_xmls(
    lst: Path,
    ann_dir: str,
    root: str,
    allow_outside_root: bool,
    known: set[str],
    problems: list[str],
) -> list[str]:
    """The annotation files an ``ImageSets`` list names, one image id per line (``known``:
    the regular ``.xml`` files of ``Annotations/``, which need no ``stat``)."""
    xmls = []
    listed: dict[str, int] = {}
    for lineno, line in enumerate(read_text_file(lst, "image list").splitlines(), 1):
        toks = line.split()
        if not toks or toks[0].startswith("#"):  # blank or comment
            continue
        loc = f"{lst}:{lineno}"
        x = os.path.normpath(os.path.join(ann_dir, f"{toks[0]}.xml"))
        if not allow_outside_root and not inside(x, root):
            problems.append(f"{loc}: " + outside("image id", toks[0], root))
            continue
        if x in listed:
            problems.append(
                f"{loc}: {quote(toks[0])} is listed again (first on line "
                f"{listed[x]}); list each image once"
            )
            continue
        listed[x] = lineno
        why = None if x in known else not_regular(x)
        if why == "not found":
            problems.append(f"{loc}: {quote(toks[0])} has no {x}")
        elif why is not None:
            problems.append(f"{loc}: {x} {why}")
        else:
            xmls.append(x)
    return xmls


def flat_files(
    root: Path, split: str | None, images_root: str | None, problems: list[str]
) -> SplitFiles:
    """``.xml`` files beside their images; a split is a sub-folder (``val`` finds ``valid``).

    With ``images_root`` (another folder than the ``.xml`` files'), images are looked for
    there only: images beside the ``.xml`` files are listed as ``skipped``, not as background.
    """
    folder = root
    if split is not None:
        found = split_dir(root, split)
        if found is None:
            raise DatasetError(
                f"{root}: no split '{split}' sub-folder with .xml files; found "
                f"{list(voc_splits(root)) or 'none'}"
            )
        folder = found
    entries = listing(folder)
    xmls = [os.path.join(folder, n) for n, regular in entries if regular and n.endswith(".xml")]
    sibling_dirs = [folder] if split is None else [root / s for s in voc_splits(root)]
    all_xml = [x for d in sibling_dirs for x in (xmls if d == folder else xml_files(d))]
    images: dict[str, list[str]] = {}  # every entry with an image suffix; a FIFO is refused later
    for n, _ in entries:
        if is_image_file(n):
            images.setdefault(os.path.splitext(n)[0], []).append(os.path.join(folder, n))
    if images_root is not None and images_root != str(folder):
        skipped = [p for ps in images.values() for p in ps]
        return SplitFiles(xmls, all_xml, [images_root], [folder, root], skipped=sorted(skipped))
    for x in xmls:
        stem = os.path.splitext(os.path.basename(x))[0]
        if len(images.get(stem, ())) > 1:
            problems.append(
                f"{x}: images "
                + ", ".join(os.path.basename(p) for p in images[stem])
                + " share its stem, but each image needs its own .xml; rename all but one"
            )
    stems = {os.path.splitext(os.path.basename(x))[0] for x in xmls}
    orphans = sorted(p for stem, ps in images.items() if stem not in stems for p in ps)
    return SplitFiles(xmls, all_xml, [str(folder)], [folder, root], orphans)


@attrs.define
class ImageFinder:
    """Finds the image of each record: ``<filename>`` in the image folders, else
    ``{xml stem}{suffix}``. Only regular files are taken; a ``<filename>`` that leaves
    ``root`` is refused before anything is looked at, unless ``allow_outside_root``.

    The first image folder is listed once; a plain ``<filename>`` found there needs no
    ``stat``. Anything else takes the careful path, one ``stat`` per candidate.
    """

    dirs: list[str]
    root: str
    allow_outside_root: bool
    root_name: str = "dataset root"
    listed: frozenset[str] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.listed = frozenset(regular_files(self.dirs[0])) if self.dirs else frozenset()

    def find(self, rec: VocRecord, problems: list[str]) -> str | None:
        """The image of ``rec``; ``None`` after a problem (or when none is found)."""
        fn = rec.filename
        if fn is not None and fn in self.listed:  # a plain name: inside every image folder
            return os.path.join(self.dirs[0], fn)
        if fn:
            named = [os.path.normpath(os.path.join(d, fn)) for d in self.dirs]
            if not self.allow_outside_root and not all(inside(c, self.root) for c in named):
                problems.append(
                    f"{rec.xml}: " + outside("<filename>", fn, self.root, self.root_name)
                )
                return None
            for c in named:
                why = not_regular(c)
                if why is None:
                    return c
                if why != "not found":
                    problems.append(f"{rec.xml}: image {c} {why}")
                    return None
        return self._by_stem(rec, problems)

    def _by_stem(self, rec: VocRecord, problems: list[str]) -> str | None:
        """The one image named ``{xml stem}{suffix}``; several are a problem."""
        stem = os.path.splitext(os.path.basename(rec.xml))[0]
        found: dict[tuple[int, int] | str, str] = {}
        for c in _candidates(self.dirs, stem):  # a.jpg, a.JPG on macOS: one file counts once
            kind = path_kind(c)
            if kind == "file":
                st = os.stat(c)
                found.setdefault((st.st_dev, st.st_ino), c)
            elif kind != "missing":  # a folder, FIFO or broken link: reported below
                found[c] = c
        if len(found) > 1:
            problems.append(
                f"{rec.xml}: "
                + (
                    "no <filename>"
                    if rec.filename is None
                    else f"image {quote(rec.filename)} not found"
                )
                + ", and several images have its stem: "
                + ", ".join(found.values())
                + "; name one in <filename> or rename the others"
            )
            return None
        for c in found.values():
            why = not_regular(c)
            if why is not None:
                problems.append(f"{rec.xml}: image {c} {why}")
                return None
            return c
        return None


def _candidates(dirs: Iterable[str], stem: str) -> list[str]:
    return [os.path.join(d, stem + ext) for d in dirs for ext in IMAGE_SUFFIXES]
