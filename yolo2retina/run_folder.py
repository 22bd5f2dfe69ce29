"""The run folder: never replace an earlier run, never write into the data.

:func:`check_out_dir` is the check that :func:`~yolo2retina.train.fit` and
``yolo2retina train`` make before anything is written; :func:`next_run_dir` picks the
default ``runs/train``, ``runs/train2``, ...; :func:`remove_stale_temp_files` clears what
interrupted saves left.

Example:
    >>> import tempfile
    >>> run_files(tempfile.mkdtemp())
    []
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolo2retina.errors import ConfigError

if TYPE_CHECKING:
    from yolo2retina.train_config import TrainConfig

__all__ = [
    "RUN_FILES",
    "STALE_TMP_AGE_S",
    "check_out_dir",
    "next_run_dir",
    "remove_stale_temp_files",
    "run_files",
]

#: The files a run writes into its folder. A folder holding any of them holds a run, which
#: :func:`~yolo2retina.train.fit` does not replace unless ``TrainConfig.overwrite`` (or resumes it).
RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl", "curves.png")


#: A temporary file of an interrupted save older than this is stale even when a process
#: with its pid is running (the pid may have been reused), or when its name has no pid.
STALE_TMP_AGE_S = 3600.0


#: The temporary files of a save beside a run file: ``.last.pt.<pid>.tmp`` (saves before
#: :mod:`yolo2retina.atomic`) and ``.last.pt.<8 random characters>.tmp``
#: (:func:`yolo2retina.atomic.atomic_path`, optionally after a ``<pid>.``).
_TMP_NAME = re.compile(
    r"\A\.(?P<name>.+?)\.(?:(?P<pid>[0-9]{1,7})(?:\.[a-z0-9_]{8})?|[a-z0-9_]{8})\.tmp\Z"
)


def run_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The :data:`RUN_FILES` that ``folder`` holds (an empty list for a new folder)."""
    f = Path(folder)
    return [f / name for name in RUN_FILES if (f / name).exists()]


def next_run_dir(base: str | os.PathLike[str]) -> Path:
    """``base`` if it holds no run (:func:`run_files`), else ``base2``, ``base3``, ...

    A folder with any file of a run counts as taken, also a run that stopped before its
    first ``last.pt``.
    """
    b = Path(base)
    candidate, n = b, 1
    while run_files(candidate) or candidate.is_file():
        n += 1
        candidate = b.with_name(f"{b.name}{n}")
    return candidate


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def check_out_dir(
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    resume: str | os.PathLike[str] | None = None,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Refuse a run folder that would replace an earlier run or write into the data.

    Nothing is written. Symlinks and relative paths are resolved before comparing.

    Args:
        out_dir: the run folder (it need not exist).
        overwrite: allow a folder that holds a run (its files will be replaced).
        resume: the checkpoint being resumed; a run in the checkpoint's own folder is allowed.
        inputs: data files or folders (a ``data.yaml``, a COCO ``.json``, an image folder);
            ``out_dir`` may not be, or lie inside, any of their folders.

    Raises:
        ConfigError: ``out_dir`` is a file, lies inside an input's folder, or holds a run
            (and neither ``overwrite`` nor a ``resume`` from it is given).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; choose another --out")
    real = out.resolve()
    for src in inputs:
        root = Path(src).resolve()
        root = root if root.is_dir() else root.parent
        if _inside(real, root):
            raise ConfigError(
                f"{out}: the run folder would be inside the dataset folder {root}; "
                "choose an --out outside it"
            )
    found = run_files(out)
    if not found or overwrite:
        return
    if resume is not None and Path(resume).resolve().parent == real:
        return
    raise ConfigError(
        f"{out}: already holds a training run ({', '.join(p.name for p in found)}); "
        "choose another --out, pass overwrite=True (CLI: --overwrite) to replace it, "
        f"or resume it (CLI: --resume {out / 'last.pt'})"
    )


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (always ``True`` on Windows)."""
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        return True
    if pid == os.getpid():  # an earlier save in this process was interrupted
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it runs, as another user
        return True
    return True


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> list[tuple[Path, int]]:
    """Delete the temporary files that interrupted saves left in ``folder``.

    Only the library's own names are candidates: ``.<run file>.<pid>.tmp`` and
    :func:`~yolo2retina.atomic.atomic_path`'s ``.<run file>.<random>.tmp`` for the
    :data:`RUN_FILES`. One is stale when no process with that pid runs on this machine,
    when the pid is this process's, or when it is older than :data:`STALE_TMP_AGE_S` (a
    name without a pid: only then).

    Returns:
        ``(path, size in bytes)`` of each file removed.
    """
    f = Path(folder)
    if not f.is_dir():
        return []
    removed: list[tuple[Path, int]] = []
    now = time.time()
    for entry in sorted(f.iterdir()):
        m = _TMP_NAME.match(entry.name)
        if m is None or m.group("name") not in RUN_FILES or not entry.is_file():
            continue
        try:
            st = entry.stat()
            pid = m.group("pid")
            alive = pid is None or _pid_alive(int(pid))
            if alive and now - st.st_mtime < STALE_TMP_AGE_S:
                continue
            entry.unlink()
        except FileNotFoundError:  # its writer renamed it meanwhile
            continue
        removed.append((entry, st.st_size))
    return removed


def input_folders(datasets: Iterable[Any], meta: Mapping[str, Any] | None) -> list[str]:
    """The data source (``meta["data"]``) and one image of each folder holding images."""
    found: dict[str, str] = {}
    if meta and meta.get("data"):
        found[""] = os.fspath(meta["data"])
    for ds in datasets:
        paths = getattr(getattr(ds, "annotations", None), "paths", None)
        for path in paths if paths is not None else ():
            found.setdefault(os.path.dirname(str(path)), str(path))
    return sorted(found.values())


def prepare_out_dir(
    out_dir: Path,
    config: TrainConfig,
    inputs: Sequence[str],
    *,
    is_main: bool,
    say: Callable[[str], None],
) -> None:
    """Check ``out_dir`` (every rank); on rank 0 create it and clear what must go.

    An earlier run's files go with ``config.overwrite`` (not when resuming in that folder),
    and the temporary files of interrupted saves (:func:`remove_stale_temp_files`).
    """
    check_out_dir(out_dir, overwrite=config.overwrite, resume=config.resume, inputs=inputs)
    if not is_main:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    resuming_here = (
        config.resume is not None and Path(config.resume).resolve().parent == out_dir.resolve()
    )
    old = run_files(out_dir)
    if config.overwrite and old and not resuming_here:
        for path in old:
            path.unlink()
        say(f"overwrite: removed the earlier run's {', '.join(p.name for p in old)} from {out_dir}")
    stale = remove_stale_temp_files(out_dir)
    if stale:
        mb = sum(size for _, size in stale) / 1e6
        say(
            f"removed {len(stale)} temporary file(s) of an interrupted save from {out_dir} "
            f"({', '.join(p.name for p, _ in stale)}; {mb:.1f} MB)"
        )
