"""Output rules shared by every command that writes (see ``docs/outputs.md``).

A command refuses, before it writes anything:

* an output folder that already holds files, unless ``exist_ok`` (CLI ``--exist-ok``:
  reuse the folder, writing only files that do not exist yet) or ``overwrite`` (CLI
  ``--overwrite``: also replace the files of the same name; other files are kept);
* an output file that already exists, unless ``overwrite``;
* an output that overlaps one of its inputs (the same folder, a folder inside an input
  folder, or a folder that holds an input); no flag allows this, so a command can never
  write over, or into, what it reads.

The guards here are small and independent, so any command (``train`` included) can use
them: :func:`check_output_dir`, :func:`check_output_files`, :func:`check_output_file`,
:func:`staged_dir` (write a whole folder under a temporary name, then rename it into
place) and :func:`remove_stale_temps`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from yolo2retina.annotations import Annotations
from yolo2retina.errors import DatasetError
from yolo2retina.image import IMAGE_EXTENSIONS

__all__ = [
    "check_output_dir",
    "check_output_file",
    "check_output_files",
    "dataset_folders",
    "image_folders",
    "remove_stale_temps",
    "staged_dir",
]

#: How many existing files an error message names before "... and N more".
MAX_NAMED = 3

_EXIST_OK = "pass exist_ok=True (CLI: --exist-ok) to add new files to it"
_OVERWRITE = "overwrite=True (CLI: --overwrite)"
_PathLike = str | os.PathLike[str]


def _real(path: _PathLike) -> Path:
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def _named(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:MAX_NAMED])
    more = len(paths) - MAX_NAMED
    return shown + (f" and {more} more" if more > 0 else "")


def image_folders(annotations: Annotations | Iterable[Annotations]) -> list[Path]:
    """Every folder that holds an image of ``annotations``: real paths, no duplicates."""
    anns = [annotations] if isinstance(annotations, Annotations) else list(annotations)
    out: dict[str, Path] = {}
    for a in anns:
        for d in {os.path.dirname(os.fspath(p)) or "." for p in a.paths}:
            p = _real(d)
            out.setdefault(str(p), p)
    return list(out.values())


def dataset_folders(
    annotations: Annotations | Iterable[Annotations], path: _PathLike | None = None
) -> list[Path]:
    """The folders a dataset was read from: ``path``'s folder and every image folder.

    Args:
        annotations: one or more loaded splits.
        path: what was loaded (a data.yaml, a folder or a COCO ``.json``); a file
            counts by its folder. Default: each split's ``report.source`` when it
            names an existing file or folder.

    Returns:
        Real (symlink-free, absolute) paths, without duplicates.
    """
    anns = [annotations] if isinstance(annotations, Annotations) else list(annotations)
    sources = [path] if path is not None else [a.report.source for a in anns]
    out: dict[str, Path] = {}
    for s in sources:
        if os.fspath(s) and os.path.exists(s):
            p = _real(s)
            p = p if p.is_dir() else p.parent
            out.setdefault(str(p), p)
    for p in image_folders(anns):
        out.setdefault(str(p), p)
    return list(out.values())


def _overlap(out: Path, inputs: Iterable[_PathLike], inside_ok: bool) -> str | None:
    real = _real(out)
    for given in inputs:
        inp = _real(given)
        if real == inp:
            return f"{out}: the output is the input {given}"
        if inp.is_relative_to(real):
            return f"{out}: the output folder holds the input {given}"
        if not inside_ok and real.is_relative_to(inp) and not os.path.isfile(inp):
            return f"{out}: the output lies inside the input folder {given}"
    return None


def check_output_dir(
    out: _PathLike,
    *,
    inputs: Iterable[_PathLike] = (),
    exist_ok: bool = False,
    overwrite: bool = False,
    inside_inputs_ok: bool = False,
) -> Path:
    """Refuse an output folder before anything is written into it.

    Args:
        out: the output folder (created later by the caller).
        inputs: input files and folders. ``out`` may not be one of them or hold one;
            nor lie inside an input folder unless ``inside_inputs_ok``.
        exist_ok: an existing folder that holds files may be reused.
        overwrite: implies ``exist_ok`` (files are checked by :func:`check_output_files`).
        inside_inputs_ok: for outputs that cannot be mistaken for input data (``split``'s
            image lists, a writer's dataset below its images): only an output that is an
            input, or holds one, is refused.

    Returns:
        ``Path(out)``.

    Raises:
        DatasetError: ``out`` is a file, overlaps an input, or holds files and neither
            ``exist_ok`` nor ``overwrite`` is set. The message names the path and the
            flag that allows it (none allows an overlap).
    """
    p = Path(out)
    if (p.exists() or p.is_symlink()) and not p.is_dir():
        raise DatasetError(f"{p}: exists and is not a folder; choose a folder for the output")
    clash = _overlap(p, inputs, inside_inputs_ok)
    if clash is not None:
        raise DatasetError(
            f"{clash}; choose an output folder outside the inputs (no flag allows this: "
            "the inputs are never written to)"
        )
    if p.is_dir() and not (exist_ok or overwrite):
        with os.scandir(p) as it:
            if next(it, None) is not None:
                raise DatasetError(
                    f"{p}: output folder already exists and is not empty; {_EXIST_OK}, "
                    f"or {_OVERWRITE} to also replace files of the same name"
                )
    return p


def check_output_files(files: Iterable[_PathLike], *, overwrite: bool = False) -> None:
    """Refuse when any of ``files`` exists (a broken symlink counts) and not ``overwrite``.

    Raises:
        DatasetError: names the first few existing files and ``--overwrite``; a planned
            file that is a folder is refused even with ``overwrite``.
    """
    existing: list[str] = []
    for f in files:
        p = Path(f)
        if p.is_dir():
            raise DatasetError(f"{p}: is a folder where an output file would go")
        if p.exists() or p.is_symlink():
            existing.append(str(p))
    if existing and not overwrite:
        raise DatasetError(
            f"{len(existing)} output file(s) already exist: {_named(existing)}; pass "
            f"{_OVERWRITE} to replace them"
        )


def check_output_file(
    path: _PathLike, *, inputs: Iterable[_PathLike] = (), overwrite: bool = False
) -> Path:
    """Refuse a single output file: a folder, an existing file, or a path inside an input.

    Raises:
        DatasetError: ``path`` is a folder, lies inside (or is) an input, or exists and
            ``overwrite`` is False.
    """
    p = Path(path)
    if p.is_dir():
        raise DatasetError(f"{p}: is a folder; give a file name for the output")
    real = _real(p)
    for given in inputs:
        inp = _real(given)
        if real == inp or real.is_relative_to(inp):
            raise DatasetError(
                f"{p}: the output would be written inside the input {given}; choose a "
                "path outside it (no flag allows this: the inputs are never written to)"
            )
    check_output_files([p], overwrite=overwrite)
    return p


# -- staging a whole folder ------------------------------------------------------------------

_TEMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return True
    return True


def remove_stale_temps(folder: _PathLike, name: str | None = None) -> list[Path]:
    """Delete ``.<name>.tmp-<pid>`` entries in ``folder`` whose process no longer runs.

    Such entries are what :func:`staged_dir` (or any writer using the same naming) leaves
    behind when it is killed. Entries of running processes are kept.

    Args:
        folder: where to look.
        name: only temporaries of this output name (default: all).

    Returns:
        What was removed.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TEMP.match(e.name)
        if m is None or (name is not None and m.group("name") != name):
            continue
        if _alive(int(m.group("pid"))):
            continue
        p = Path(e.path)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _move_order(rel: str) -> tuple[int, int, str]:
    # Images first, then annotation files deepest first, root files (data.yaml,
    # classes.txt) last: a reader does not see a dataset until its index files land.
    is_image = os.path.splitext(rel)[1].lower() in IMAGE_EXTENSIONS
    return (0 if is_image else 1, -rel.count(os.sep), rel)


def _merge(tmp: Path, dst: Path, overwrite: bool) -> None:
    files = []
    for root, dirs, names in os.walk(tmp):
        for n in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            files.append(os.path.relpath(os.path.join(root, n), tmp))
    check_output_files([dst / r for r in files], overwrite=overwrite)
    for rel in sorted(files, key=_move_order):
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp / rel, target)


@contextlib.contextmanager
def staged_dir(dst: _PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Write a folder under a temporary sibling name and move it into place at the end.

    Yields an empty folder ``.<name>.tmp-<pid>`` beside ``dst`` (beside its real path
    when ``dst`` is a symlink). When the block ends normally:

    * ``dst`` missing or empty: the folder is renamed to ``dst`` in one step, so a
      partial output never exists under the final name;
    * ``dst`` holds files: the new files are moved in one by one (each move is an atomic
      rename; images first, the index files such as ``data.yaml`` last). A file that is
      already there is an error unless ``overwrite``, checked before anything moves;
      files of ``dst`` that the block did not write are kept.

    When the block raises (``KeyboardInterrupt`` included), the temporary folder is
    deleted and ``dst`` is left as it was. Temporaries of killed processes are removed
    by :func:`remove_stale_temps` on the next call for the same ``dst``.

    Raises:
        DatasetError: a file the block wrote already exists in ``dst`` and not
            ``overwrite``.
    """
    real = _real(dst)
    real.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(real.parent, real.name)
    tmp = real.parent / f".{real.name}.tmp-{os.getpid()}"
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp)
    elif tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    tmp.mkdir()
    try:
        yield tmp
        try:
            os.rename(tmp, real)  # atomic; POSIX also replaces an empty folder
        except OSError:
            if not real.is_dir():
                raise
            _merge(tmp, real, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
