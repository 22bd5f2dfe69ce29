"""Reading the files of a dataset safely: what a path is, UTF-8 text, class-name files.

Nothing here opens a path before a ``stat`` says it is a regular file, so a FIFO, a device
(``/dev/stdin``) or a folder named where a file is expected never hangs a reader.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter
from pathlib import Path
from typing import Literal

from yolo2retina.errors import DatasetError
from yolo2retina.image import IMAGE_EXTENSIONS

_COMMON_FIRST = (".jpg", ".jpeg", ".png")
_LOWER = _COMMON_FIRST + tuple(sorted(IMAGE_EXTENSIONS - set(_COMMON_FIRST)))
#: Image file suffixes in the order a reader tries them beside a label file: the common
#: ``.jpg``, ``.jpeg``, ``.png`` first, then the other :data:`~yolo2retina.image.IMAGE_EXTENSIONS`
#: sorted; then the same in upper case (``a.JPG`` from a camera).
IMAGE_SUFFIXES: tuple[str, ...] = _LOWER + tuple(e.upper() for e in _LOWER)


def is_image_file(name: str) -> bool:
    """Whether a file name has an image extension."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def path_kind(path: str | os.PathLike[str]) -> Literal["file", "dir", "other", "missing"]:
    """What is at ``path``, without opening it and without raising on odd paths.

    ``"file"`` is a regular file and ``"dir"`` a folder (symlinks followed); ``"other"``
    exists but is neither (a FIFO, device, socket, broken or looping link, or a path that
    cannot be examined); ``"missing"`` also covers names that cannot exist (too long,
    containing NUL). ``Path.is_file()`` raises on a too-long name; this does not.
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        try:
            os.lstat(path)
        except (OSError, ValueError):
            return "missing"
        return "other"  # a broken link
    except ValueError:
        return "missing"
    except OSError as e:
        return "missing" if e.errno == errno.ENAMETOOLONG else "other"
    if stat.S_ISREG(mode):
        return "file"
    return "dir" if stat.S_ISDIR(mode) else "other"


def not_regular(path: str | os.PathLike[str]) -> str | None:
    """``None`` for a regular file (after links); else why not. Never opens ``path``.

    A FIFO, a device (``/dev/stdin``) or a folder would hang or fail a reader that opened it.
    """
    kind = path_kind(path)
    if kind == "file":
        return None
    if kind == "missing":
        return "not found"
    return "is not a regular file; only regular files are read"


def read_text_file(file: Path, what: str = "text file") -> str:
    """The UTF-8 text of a regular file (a byte-order mark is dropped).

    Raises:
        DatasetError: naming ``file``: not a regular file (a folder, FIFO or device is
            never opened), unreadable, or not UTF-8 (``file:line`` and the offending byte).
    """
    kind = path_kind(file)
    if kind != "file":
        state = "does not exist" if kind == "missing" else "is not a regular file"
        raise DatasetError(f"{file}: {what} {state}")
    try:
        data = file.read_bytes()
    except OSError as e:
        raise DatasetError(f"{file}: cannot read {what} ({e.strerror or e})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DatasetError(
            f"{file}:{line}: {what} is not UTF-8 (byte 0x{data[e.start]:02x} at offset "
            f"{e.start}); save it as UTF-8"
        ) from None


def quote(value: object, limit: int = 200) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages that quote user input.

    >>> quote("x" * 300, 10)
    "'xxxxxxxx... (302 characters)"
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}... ({len(text)} characters)"


#: Class-name files, one name per line, read by the same rules (in this order of preference):
#: LabelImg / Roboflow ``classes.txt``, Darknet / CVAT ``obj.names``, ``classes.names``.
CLASS_NAME_FILES = ("classes.txt", "obj.names", "classes.names")


def read_classes_txt(file: Path) -> list[str]:
    """Class names of a ``classes.txt``, ``obj.names`` or ``classes.names`` (one per line,
    surrounding spaces and blank lines skipped).

    Raises:
        DatasetError: the file is not UTF-8 text, or it lists a name twice.
    """
    text = read_text_file(file, "class names file")
    names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(set(names)) != len(names):
        dup = sorted(n for n, k in Counter(names).items() if k > 1)
        raise DatasetError(f"{file}: duplicate class names: {quote(dup)}")
    return names


def find_class_names(folder: Path, stop: Path) -> list[str] | None:
    """Names from the nearest class-name file (:data:`CLASS_NAME_FILES`) in ``folder`` or a
    parent up to ``stop``; two such files in one folder must agree."""
    d = folder
    while True:
        found = [d / n for n in CLASS_NAME_FILES if path_kind(d / n) == "file"]
        if found:
            names = read_classes_txt(found[0])
            for other in found[1:]:
                if read_classes_txt(other) != names:
                    raise DatasetError(
                        f"{found[0]} and {other} list different class names; keep one"
                    )
            return names
        if d == stop or d.parent == d:
            return None
        d = d.parent
