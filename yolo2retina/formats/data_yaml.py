"""Ultralytics ``data.yaml``: parsing, class names, and where each split's images are.

The yaml is read with :func:`yaml.safe_load` rules, refusing alias bombs
(:data:`MAX_YAML_NODES`) and deep nesting, and never coercing a class name from a list,
mapping or null. ``path`` may be absolute or relative to the yaml; a ``path`` made on
another machine is looked for beside the yaml (recorded in :attr:`DataYaml.notes`).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import attrs
import yaml

from yolo2retina.errors import DatasetError
from yolo2retina.formats._common import split_candidates
from yolo2retina.formats._files import path_kind, quote, read_text_file

__all__ = ["MAX_YAML_NODES", "DataYaml", "load_data_yaml"]

#: A data.yaml whose aliases expand to more YAML nodes than this is refused. Real files
#: have a few dozen (a 1203-class LVIS ``names`` has about 2500); a 266-byte "billion
#: laughs" file of nested aliases expands to tens of millions.
MAX_YAML_NODES = 100_000


def abs_path(path: str | os.PathLike[str]) -> Path:
    """Absolute, lexically normalized path; symlinks are kept as written (never resolved)."""
    return Path(os.path.abspath(path))


def expanduser(text: str) -> Path:
    """``text`` as a path with ``~`` expanded; as written when the user does not exist."""
    try:
        return Path(text).expanduser()
    except RuntimeError:  # "~nosuchuser/..."
        return Path(text)


@attrs.frozen
class DataYaml:
    """A parsed Ultralytics ``data.yaml`` (or Darknet ``obj.data``); frozen.

    Attributes:
        file: the yaml file.
        root: the dataset root that split paths are relative to.
        splits: split name -> list of image folders or ``.txt`` image lists.
        class_names: class names, index = class id.
        notes: how ``root`` was found when ``path`` did not exist as written.
        darknet: parsed from a Darknet ``obj.data`` (list lines starting with ``data/``
            are then also tried without it).
    """

    file: Path
    root: Path
    splits: dict[str, list[Path]]
    class_names: list[str]
    notes: list[str]
    darknet: bool = False

    def resolve_split(self, split: str | None) -> str:
        """The key of ``split`` (``None``: ``train``); ``valid`` finds ``val`` and back.

        A split that is not defined is returned as given (the reader then names it).
        """
        split = "train" if split is None else split
        if split in self.splits:
            return split
        return next((s for s in split_candidates(split) if s in self.splits), split)


def _parse_names(file: Path, raw: dict[str, Any]) -> list[str]:
    names = raw.get("names")
    nc = raw.get("nc")
    if names is None:
        raise DatasetError(f"{file}: no 'names' key (the list of class names)")
    if isinstance(names, dict):
        keyed = {}
        for k, v in names.items():
            kid = as_int(k)
            if kid is None:
                raise DatasetError(
                    f"{file}: 'names' keys must be integer class ids, got {quote(k)}"
                )
            keyed[kid] = _name(file, v)
        if sorted(keyed) != list(range(len(keyed))):
            raise DatasetError(
                f"{file}: 'names' ids must be 0..{len(keyed) - 1}, got {quote(sorted(keyed))}"
            )
        out = [keyed[i] for i in range(len(keyed))]
    elif isinstance(names, list):
        out = [_name(file, n) for n in names]
    else:
        raise DatasetError(f"{file}: 'names' must be a list or an {{id: name}} mapping")
    if nc is not None:
        nc_int = as_int(nc)
        if nc_int is None:
            raise DatasetError(f"{file}: 'nc' must be an integer, got {quote(nc)}")
        if nc_int != len(out):
            raise DatasetError(f"{file}: nc is {nc_int} but 'names' lists {len(out)} classes")
    if len(set(out)) != len(out):
        dup = sorted(n for n, k in Counter(out).items() if k > 1)
        raise DatasetError(f"{file}: 'names' has duplicate class names: {quote(dup)}")
    return out


def as_int(value: object) -> int | None:
    """``value`` as an int when it is one (``3``, ``3.0``, ``"3"``), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


def _name(file: Path, value: object) -> str:
    """A class name from the yaml: a string or a number, never a list, mapping or null."""
    if isinstance(value, (str, int, float)):
        return str(value)
    raise DatasetError(f"{file}: class name {quote(value)} is not a string")


def _resolve_root(file: Path, raw: dict[str, Any]) -> tuple[Path, list[str]]:
    # The yaml's folder with symlinks resolved, like an explicit `path:` is: the same
    # dataset gives the same image paths through a relative path, a symlink or `.`.
    here = Path(os.path.realpath(file.parent))
    declared = raw.get("path")
    if declared in (None, ""):
        return here, []
    p = expanduser(str(declared))
    root = p if p.is_absolute() else (here / p)
    if path_kind(root) == "dir":
        return root.resolve(), []
    looked = [root]
    candidates = []
    name = Path(str(declared).rstrip("/\\")).name
    if name:
        candidates.append(here / name)
    candidates.append(here)
    for c in candidates:
        looked.append(c)
        if path_kind(c) == "dir" and any(path_kind(c / s) != "missing" for s in _split_values(raw)):
            note = (
                f"{file}: path {quote(str(declared))} does not exist; "
                f"using '{c.resolve()}' found beside the yaml"
            )
            return c.resolve(), [note]
    raise DatasetError(
        f"{file}: dataset path {quote(str(declared))} does not exist. Looked in: "
        + ", ".join(quote(str(x)) for x in looked)
    )


def _split_values(raw: dict[str, Any]) -> list[str]:
    vals: list[str] = []
    for k in ("train", "val", "test"):
        v = raw.get(k)
        if isinstance(v, str):
            vals.append(v)
        elif isinstance(v, list):
            vals.extend(str(x) for x in v)
    return vals


def load_data_yaml(path: str | os.PathLike[str]) -> DataYaml:
    """Parse an Ultralytics ``data.yaml``.

    ``path`` may be absolute or relative to the yaml. When it does not exist (a yaml
    made on another machine), a folder of the same name beside the yaml, then the
    yaml's own folder, are tried; the choice is recorded in ``notes``.

    Raises:
        DatasetError: unreadable yaml, missing keys, ``nc``/``names`` mismatch, or a
            dataset path that cannot be found (the message lists where it looked), a
            file that is not UTF-8, or aliases that expand beyond :data:`MAX_YAML_NODES`.
    """
    f = Path(path)
    raw = _load_yaml(f)
    if not isinstance(raw, dict):
        raise DatasetError(f"{f}: expected a mapping with path/train/val/names")
    class_names = _parse_names(f, raw)
    root, notes = _resolve_root(f, raw)
    splits: dict[str, list[Path]] = {}
    for key in ("train", "val", "test"):
        v = raw.get(key)
        if v in (None, ""):
            continue
        entries = v if isinstance(v, list) else [v]
        resolved = []
        for entry in entries:
            s = str(entry)
            p = expanduser(s)
            q = p if p.is_absolute() else root / p
            if path_kind(q) == "missing" and s.startswith("../"):
                q = root / s[3:]  # Roboflow writes ../train/images next to the yaml
            resolved.append(abs_path(q))
        splits[key] = resolved
    return DataYaml(f, root, splits, class_names, notes)


def _load_yaml(file: Path) -> Any:
    """``yaml.safe_load`` of a data.yaml, refusing alias bombs and deep nesting."""
    text = read_text_file(file, "data.yaml")
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # checks for unprintable characters
        node = loader.get_single_node()
        if node is None:
            return None
        _check_yaml_size(file, node)
        return loader.construct_document(node)
    except DatasetError:
        raise
    except yaml.YAMLError as e:
        raise DatasetError(f"{file}: invalid YAML: {_cut(str(e))}") from None
    except RecursionError:
        raise DatasetError(f"{file}: invalid YAML: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as e:  # e.g. a date 2001-13-45
        raise DatasetError(f"{file}: invalid YAML value: {_cut(str(e))}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _cut(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _check_yaml_size(file: Path, root: yaml.Node) -> None:
    """Refuse a document whose aliases expand to more than :data:`MAX_YAML_NODES` nodes.

    Each node's expanded size is computed once (memoized), so a "billion laughs" file is
    measured in time proportional to its text, never expanded.
    """
    size: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        children = _yaml_children(node)
        if finished:
            open_nodes.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] > MAX_YAML_NODES:
                raise DatasetError(
                    f"{file}: YAML aliases expand to more than {MAX_YAML_NODES} values; "
                    "a data.yaml needs a few dozen (refused as an alias bomb)"
                )
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise DatasetError(f"{file}: YAML alias refers to itself (a recursive structure)")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)


def _yaml_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []
