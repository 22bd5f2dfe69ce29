"""Tests for yolo2retina.run_folder: never replace an earlier run, never write into the data."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests._train_helpers import (
    _dead_pid,
    _fake_run,
)
from yolo2retina.errors import ConfigError
from yolo2retina.train import (
    check_out_dir,
    next_run_dir,
    remove_stale_temp_files,
)

torch.set_num_threads(1)


def test_check_out_dir_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths, '.', and symlinks are resolved; a resume from another folder does not
    make an occupied folder writable."""
    monkeypatch.chdir(tmp_path)
    _fake_run(tmp_path / "a")
    (tmp_path / "alias").symlink_to(tmp_path / "a")
    check_out_dir("a", resume="a/last.pt")
    check_out_dir("alias", resume=tmp_path / "a" / "last.pt")
    check_out_dir("a", overwrite=True)
    check_out_dir("fresh")
    with pytest.raises(ConfigError, match="already holds"):
        check_out_dir("alias", resume="b/last.pt")
    monkeypatch.chdir(tmp_path / "a")
    with pytest.raises(ConfigError, match=r"^\.: already holds a training run"):
        check_out_dir(".")
    with pytest.raises(ConfigError, match="inside the dataset folder"):
        check_out_dir("sub", inputs=["data.yaml"])
    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError, match="not a folder"):
        check_out_dir(tmp_path / "f")


def test_next_run_dir_skips_any_run_not_only_finished_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default folder auto-increments past a run that has any run file (a run killed
    before its first last.pt has metrics.jsonl or curves.png only)."""
    monkeypatch.chdir(tmp_path)
    assert next_run_dir("runs/train") == Path("runs/train")
    Path("runs/train").mkdir(parents=True)
    assert next_run_dir("runs/train") == Path("runs/train")  # an empty folder is free
    Path("runs/train/metrics.jsonl").write_text("")
    Path("runs/train2").mkdir()
    Path("runs/train2/curves.png").write_text("")
    assert next_run_dir("runs/train") == Path("runs/train3")


def test_remove_stale_temp_files_only_touches_dead_saves(tmp_path: Path) -> None:
    """Only the library's own temp names are removed, and only when the writing process is
    gone or the file is old; a live save and other files stay."""
    import os

    dead, alive = _dead_pid(), os.getppid()
    names = {
        f".last.pt.{dead}.tmp": True,
        f".metrics.jsonl.{dead}.tmp": True,
        f".best.pt.{alive}.tmp": False,  # a running save
        f".notes.txt.{dead}.tmp": False,  # not a run file
        ".last.pt.abc.tmp": False,
        f"last.pt.{dead}.tmp": False,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x" * 10)
    old = tmp_path / f".curves.png.{alive}.tmp"
    old.write_bytes(b"x")
    os.utime(old, (1_000_000_000, 1_000_000_000))
    removed = remove_stale_temp_files(tmp_path)
    assert sorted(p.name for p, _ in removed) == sorted(
        [old.name, *(n for n, g in names.items() if g)]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        n for n, g in names.items() if not g
    )


def test_remove_stale_temp_files_knows_the_atomic_writers_names(tmp_path: Path) -> None:
    """yolo2retina.atomic's temporary names (``.<file>.<pid>.<random>.tmp``) are candidates:
    a live writer's file stays, a dead writer's goes at once, and a name without a pid goes
    only once it is old."""
    import os
    import subprocess
    import sys

    from yolo2retina.atomic import atomic_path

    with atomic_path(tmp_path / "last.pt") as tmp:
        tmp.write_bytes(b"x" * 10)
        ours = tmp.name
    assert ours.startswith(f".last.pt.{os.getpid()}.") and ours.endswith(".tmp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # renamed, none left
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    live = tmp_path / f".best.pt.{os.getppid()}.k2_9xq0a.tmp"  # a process that runs
    gone = tmp_path / f".best.pt.{dead}.a8fj2k1w.tmp"  # a process that ended
    fresh = tmp_path / ".last.pt.q8w7e6r5.tmp"  # no pid, fresh
    old = tmp_path / ".last.pt.z1x2c3v4.tmp"  # no pid, old
    for path, size in ((live, 3), (gone, 5), (fresh, 6), (old, 7)):
        path.write_bytes(b"x" * size)
    os.utime(old, (1_000_000_000, 1_000_000_000))
    assert remove_stale_temp_files(tmp_path) == sorted([(gone, 5), (old, 7)])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, live.name, "last.pt"])
