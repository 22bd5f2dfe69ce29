"""Darknet / CVAT YOLO 1.1: the ``obj.data`` index file.

``obj.data`` holds ``key = value`` lines: ``train``, ``valid`` and ``test`` name image
lists (``train.txt``) or folders, ``names`` a class-names file (``obj.names``). Darknet
runs from its own folder, so paths often start with ``data/``; a missing ``data/...`` is
tried without it.
"""

from __future__ import annotations

import os
from pathlib import Path

from yolo2retina.errors import DatasetError
from yolo2retina.formats._files import (
    CLASS_NAME_FILES,
    find_class_names,
    path_kind,
    quote,
    read_classes_txt,
    read_text_file,
)
from yolo2retina.formats.data_yaml import DataYaml, abs_path, as_int, expanduser

__all__ = ["find_obj_data", "load_obj_data"]

#: Keys of a Darknet ``obj.data`` that name split lists, and the split each one is.
_DARKNET_SPLITS = {"train": "train", "valid": "val", "test": "test"}


def _darknet_path(folder: Path, text: str) -> tuple[Path, bool]:
    """``text`` relative to ``folder``; a missing ``data/...`` is tried without ``data/``.

    Darknet runs from its own folder, so CVAT and Darknet write ``data/train.txt`` and
    ``data/obj_train_data/a.jpg`` for files that sit beside ``obj.data``. Returns the path
    and whether the ``data/`` prefix was dropped.
    """
    p = expanduser(text)
    if p.is_absolute():
        return abs_path(p), False
    q = folder / p
    parts = Path(text).parts
    if path_kind(q) == "missing" and len(parts) > 1 and parts[0] == "data":
        alt = folder.joinpath(*parts[1:])
        if path_kind(alt) != "missing":
            return abs_path(alt), True
    return abs_path(q), False


def load_obj_data(path: str | os.PathLike[str]) -> DataYaml:
    """Parse a Darknet / CVAT ``obj.data`` (``key = value`` lines, ``#`` comments).

    ``train``, ``valid`` (split ``val``) and ``test`` name image lists or folders and
    ``names`` a class-names file; each is relative to the file's folder, and a path that
    starts with ``data/`` (Darknet's working folder) and does not exist is tried without
    it. Without ``names``, a class-names file beside it (:data:`CLASS_NAME_FILES`) is used.
    ``classes``, when given, must equal the number of names. Other keys (``backup``,
    ``eval``) are ignored.

    Raises:
        DatasetError: naming ``file:line`` for a line that is not ``key = value``, a key
            given twice, a ``classes`` that is not a whole number or disagrees with the names;
            naming the file when it has no ``train`` or no names can be found.
    """
    f = Path(path)
    values = _read_keys(f)
    here = Path(os.path.realpath(f.parent))
    notes: list[str] = []
    dropped: list[str] = []

    def resolve(key: str) -> Path:
        path, was_dropped = _darknet_path(here, values[key][1])
        if was_dropped:
            dropped.append(f"{key} = {values[key][1]}")
        return path

    names = read_classes_txt(resolve("names")) if "names" in values else None
    if names is None and (names := find_class_names(here, here)) is None:
        raise DatasetError(
            f"{f}: no 'names' key and no class-names file ({', '.join(CLASS_NAME_FILES)}) beside it"
        )
    if "classes" in values:
        lineno, raw = values["classes"]
        nc = as_int(raw)
        if nc is None:
            raise DatasetError(f"{f}:{lineno}: classes {quote(raw)} is not a whole number")
        if nc != len(names):
            raise DatasetError(
                f"{f}:{lineno}: classes = {nc} but the names file lists {len(names)} names"
            )
    splits = {
        split: [resolve(key)]
        for key, split in _DARKNET_SPLITS.items()
        if values.get(key, (0, ""))[1]
    }
    if "train" not in splits:
        raise DatasetError(f"{f}: no 'train' key (the list of training images)")
    if dropped:
        notes.append(
            f"{f}: {', '.join(dropped)}: read beside obj.data without the leading 'data/' "
            "(Darknet's working folder)"
        )
    return DataYaml(f, here, splits, names, notes, darknet=True)


def _read_keys(file: Path) -> dict[str, tuple[int, str]]:
    """``{key: (line number, value)}`` of an obj.data; keys lower case, ``#`` comments cut."""
    text = read_text_file(file, "obj.data")
    values: dict[str, tuple[int, str]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.split("#", 1)[0].strip()
        if not s:
            continue
        key, eq, value = s.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not eq or not key:
            raise DatasetError(
                f"{file}:{lineno}: expected 'key = value', got {quote(line.strip())}"
            )
        if key in values:
            raise DatasetError(
                f"{file}:{lineno}: '{key}' is given again (first on line {values[key][0]})"
            )
        values[key] = (lineno, value)
    return values


def find_obj_data(folder: Path) -> Path | None:
    """``obj.data``, or the one ``*.data`` file, directly in ``folder``."""
    if path_kind(folder / "obj.data") == "file":
        return folder / "obj.data"
    found = [p for p in sorted(folder.glob("*.data")) if path_kind(p) == "file"]
    return found[0] if len(found) == 1 else None
