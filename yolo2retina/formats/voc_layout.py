"""Where a Pascal VOC dataset's files are: the split's annotation files, image folders,
``classes.txt``, and images without an annotation (flat layout).

Layouts: **VOC** ``Annotations/*.xml`` + ``JPEGImages/`` + ``ImageSets/Main/{split}.txt``;
**flat** ``.xml`` files beside their images, with optional split sub-folders.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from yolo2retina.errors import DatasetError
from yolo2retina.formats._common import split_candidates
from yolo2retina.formats._files import (
    is_image_file,
    not_regular,
    path_kind,
    quote,
    read_classes_txt,
    read_text_file,
)


def voc_splits(path: Path) -> tuple[str, ...]:
    """``ImageSets/Main/{split}.txt`` names, or sub-folders holding ``.xml`` files."""
    if path_kind(path) != "dir":
        return ()
    if layout(path) == "voc":
        main = path / "ImageSets" / "Main"
        if not main.is_dir():
            return ()
        return tuple(sorted(p.stem for p in main.glob("*.txt") if "_" not in p.stem))
    if any(path.glob("*.xml")):
        return ()
    return tuple(sorted(d.name for d in path.iterdir() if d.is_dir() and xml_files(d)))


def inside(path: str, root: Path) -> bool:
    """Whether the normalized ``path`` lies in ``root`` (by name: links inside are fine)."""
    return path.startswith(str(root).rstrip(os.sep) + os.sep)


def outside(what: str, value: str, root: Path) -> str:
    how = "is absolute" if os.path.isabs(value) else "escapes the dataset root"
    return (
        f"{what} {quote(value)} {how} ({root}); pass allow_outside_root=True to accept "
        "files outside it"
    )


def xml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.xml") if p.is_file())


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
    """The files of one split.

    Attributes:
        xmls: the split's annotation files.
        all_xml: every annotation file of the dataset (for class names found in all splits).
        image_dirs: where images are looked for.
        class_dirs: where ``classes.txt`` is looked for.
        orphans: images without an ``.xml`` (flat layout), kept as background.
    """

    xmls: list[Path]
    all_xml: list[Path]
    image_dirs: list[Path]
    class_dirs: list[Path]
    orphans: list[Path] = attrs.field(factory=list)


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
        xmls = _listed_xmls(lst, ann_dir, root, allow_outside_root, problems)
    return SplitFiles(xmls, all_xml, [root / "JPEGImages", ann_dir], [root])


def _listed_xmls(
    lst: Path, ann_dir: Path, root: Path, allow_outside_root: bool, problems: list[str]
) -> list[Path]:
    """The annotation files an ``ImageSets`` list names, one image id per line."""
    xmls = []
    listed: dict[Path, int] = {}
    for lineno, line in enumerate(read_text_file(lst, "image list").splitlines(), 1):
        toks = line.split()
        if not toks or toks[0].startswith("#"):  # blank or comment
            continue
        loc = f"{lst}:{lineno}"
        x = Path(os.path.normpath(ann_dir / f"{toks[0]}.xml"))
        if not allow_outside_root and not inside(str(x), root):
            problems.append(f"{loc}: " + outside("image id", toks[0], root))
            continue
        if x in listed:
            problems.append(
                f"{loc}: {quote(toks[0])} is listed again (first on line "
                f"{listed[x]}); list each image once"
            )
            continue
        listed[x] = lineno
        why = not_regular(x)
        if why == "not found":
            problems.append(f"{loc}: {quote(toks[0])} has no {x}")
        elif why is not None:
            problems.append(f"{loc}: {x} {why}")
        else:
            xmls.append(x)
    return xmls


def flat_files(root: Path, split: str | None, problems: list[str]) -> SplitFiles:
    """``.xml`` files beside their images; a split is a sub-folder (``val`` finds ``valid``)."""
    folder = root
    if split is not None:
        found = split_dir(root, split)
        if found is None:
            raise DatasetError(
                f"{root}: no split '{split}' sub-folder with .xml files; found "
                f"{list(voc_splits(root)) or 'none'}"
            )
        folder = found
    xmls = xml_files(folder)
    sibling_dirs = [folder] if split is None else [root / s for s in voc_splits(root)]
    all_xml = [x for d in sibling_dirs for x in xml_files(d)]
    by_stem: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        if is_image_file(p.name):
            by_stem.setdefault(p.stem, []).append(p)
    for x in xmls:
        if len(by_stem.get(x.stem, ())) > 1:
            problems.append(
                f"{x}: images "
                + ", ".join(p.name for p in by_stem[x.stem])
                + " share its stem, but each image needs its own .xml; rename all but one"
            )
    stems = {x.stem for x in xmls}
    orphans = sorted(p for stem, ps in by_stem.items() if stem not in stems for p in ps)
    return SplitFiles(xmls, all_xml, [folder], [folder, root], orphans)
