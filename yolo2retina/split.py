"""Deterministic train/val/test splits written as Ultralytics image lists.

The user's files are never moved: the split is a set of ``.txt`` image lists plus a new
``data.yaml`` that points at them. Roboflow's augmented copies of one source image
(``<stem>_jpg.rf.<hash>.jpg``) always land in the same split, so they cannot leak between
train and val.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import yaml

from yolo2retina.atomic import atomic_write_text
from yolo2retina.errors import ConfigError, DatasetError
from yolo2retina.formats import detect_format, load_splits
from yolo2retina.outputs import check_output_dir, check_output_files, dataset_folders

__all__ = ["SplitResult", "group_key", "split_dataset", "split_groups"]

_ROBOFLOW = re.compile(r"^(?P<source>.+)\.rf\.[0-9A-Za-z]+$")
_NAMES = {2: ("train", "val"), 3: ("train", "val", "test")}


def group_key(path: str | os.PathLike[str]) -> str:
    """The source image a file comes from: Roboflow's ``a_jpg.rf.<hash>.jpg`` -> ``a_jpg``.

    >>> group_key("train/img-7_png.rf.0dfdf93f7a11301938f374019a4b33b2.jpg")
    'img-7_png'
    >>> group_key("images/IMG_0001.JPG")
    'IMG_0001'
    """
    stem = Path(path).stem
    m = _ROBOFLOW.match(stem)
    return m.group("source") if m else stem


def _check_ratios(ratios: Sequence[float]) -> tuple[float, ...]:
    r = tuple(float(x) for x in ratios)
    if len(r) not in _NAMES:
        raise ConfigError(f"ratios: give 2 (train val) or 3 (train val test) values, got {len(r)}")
    if any(not np.isfinite(x) or x < 0 for x in r) or abs(sum(r) - 1.0) > 1e-6:
        raise ConfigError(f"ratios must be >= 0 and sum to 1, got {list(r)} (sum {sum(r):g})")
    return r


def split_groups(paths: Sequence[str], ratios: Sequence[float], seed: int = 0) -> list[list[str]]:
    """Assign paths to splits by ratio, keeping each :func:`group_key` group together.

    Groups are sorted, shuffled with ``numpy.random.default_rng(seed)`` and each is given
    to the split furthest below its share of images, so the result depends only on the
    set of paths, the ratios and the seed.
    """
    r = _check_ratios(ratios)
    groups: dict[str, list[str]] = {}
    for p in sorted(set(paths)):
        groups.setdefault(group_key(p), []).append(p)
    keys = sorted(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    total = len(set(paths))
    counts = np.zeros(len(r))
    out: list[list[str]] = [[] for _ in r]
    for gi in order.tolist():
        members = groups[keys[gi]]
        deficit = np.array(r) * total - counts
        k = int(np.argmax(deficit))
        out[k] += members
        counts[k] += len(members)
    return [sorted(x) for x in out]


@attrs.define
class SplitResult:
    """What :func:`split_dataset` wrote.

    Attributes:
        lists: split name -> the ``.txt`` image list written.
        counts: split name -> number of images.
        groups: number of source-image groups that were kept together.
        data_yaml: the new data.yaml, or ``None`` when the source is not YOLO (the lists
            are still written).
    """

    lists: dict[str, Path]
    counts: dict[str, int]
    groups: int
    data_yaml: Path | None

    def __str__(self) -> str:
        lines = [f"{s}: {self.counts[s]} images -> {p}" for s, p in self.lists.items()]
        lines.append(f"{self.groups} source-image groups kept whole")
        if self.data_yaml is not None:
            lines.append(f"data.yaml: {self.data_yaml}")
        return "\n".join(lines)


def split_dataset(
    path: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    format: str = "auto",
    exist_ok: bool = False,
    overwrite: bool = False,
    **options: Any,
) -> SplitResult:
    """Split every image of ``path`` (all its splits together) into new train/val(/test) lists.

    Writes ``dst/train.txt``, ``dst/val.txt`` (and ``dst/test.txt``) with absolute image
    paths, and for a YOLO source a ``dst/data.yaml`` that Ultralytics and
    :func:`~yolo2retina.formats.yolo.read_yolo` read (labels stay beside the images).

    Args:
        path: dataset to split (any format; a data.yaml for the new yaml).
        dst: output folder: missing or empty, unless ``exist_ok`` / ``overwrite``. It may
            lie inside the dataset (the default of the CLI) but may not be the dataset's
            folder, an image folder, or hold one (see ``docs/outputs.md``).
        ratios: 2 or 3 fractions summing to 1 (train, val[, test]).
        seed: shuffling seed; the same seed gives the same split.
        format: source format, ``"auto"`` to detect it.
        exist_ok: write into an existing folder that holds other files.
        overwrite: like ``exist_ok``, and replace existing lists / yaml.
        **options: reader options, e.g. COCO ``images_root=``.

    Raises:
        ConfigError: bad ratios.
        DatasetError: the source does not load, ``dst`` is refused, or outputs exist.
    """
    r = _check_ratios(ratios)
    check_output_dir(dst, exist_ok=exist_ok, overwrite=overwrite)
    name = detect_format(path) if format == "auto" else format
    data = load_splits(path, name, **options)
    paths = [str(p) for a in data.values() for p in a.paths]
    names = {a.class_names for a in data.values()}
    if len(names) != 1:
        raise DatasetError(f"{path}: splits disagree on class names: {sorted(names)}")
    out = Path(dst)
    split_names = _NAMES[len(r)]
    lists = {s: out / f"{s}.txt" for s in split_names}
    yaml_path = out / "data.yaml" if name == "yolo" else None
    check_output_dir(
        out,
        inputs=dataset_folders(data.values(), path),
        exist_ok=exist_ok,
        overwrite=overwrite,
        inside_inputs_ok=True,
    )
    check_output_files([*lists.values(), *([yaml_path] if yaml_path else [])], overwrite=overwrite)
    parts = split_groups(paths, r, seed)
    for s, members in zip(split_names, parts, strict=True):
        atomic_write_text(lists[s], "".join(f"{os.path.abspath(p)}\n" for p in members))
    if yaml_path is not None:
        doc = {s: f"{s}.txt" for s in split_names}
        class_names = next(iter(names))
        doc_all: dict[str, object] = {**doc, "nc": len(class_names), "names": list(class_names)}
        atomic_write_text(yaml_path, yaml.safe_dump(doc_all, sort_keys=False, allow_unicode=True))
    return SplitResult(
        lists=lists,
        counts={s: len(m) for s, m in zip(split_names, parts, strict=True)},
        groups=len({group_key(p) for p in paths}),
        data_yaml=yaml_path,
    )
