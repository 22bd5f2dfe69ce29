"""Reader for Ultralytics / Darknet YOLO label files.

Layouts:

* **Ultralytics**: a ``data.yaml`` with ``path``, ``train``/``val``/``test`` and
  ``names``; images under ``.../images/...`` and labels under the matching
  ``.../labels/...`` folder.
* **Darknet / CVAT YOLO 1.1**: an ``obj.data`` (``train``/``valid``/``names`` keys) with
  ``obj.names``, image lists (``train.txt``) and ``obj_train_data/`` images with their
  ``.txt`` labels beside them (:func:`load_obj_data`).
* **Folders without an index file**: ``images/`` + ``labels/``, or a flat folder of
  images with a ``.txt`` label file beside each; class names from ``classes.txt``,
  ``obj.names`` or ``classes.names`` (read by the same rules).

Rows are ``class cx cy w h`` (normalized to the EXIF-corrected image size) or
segmentation polygons ``class x1 y1 ... xn yn`` (converted to their enclosing box).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm.auto import tqdm

from yolo2retina import boxes as box_ops
from yolo2retina.annotations import Annotations, AnnotationsBuilder, LoadReport
from yolo2retina.errors import DatasetError, ImageReadError
from yolo2retina.formats._common import (
    CLASS_NAME_FILES,
    IDS_FILE,
    as_splits,
    atomic_write_text,
    common_names,
    flag_losses,
    float32_box_problems,
    fmt_number,
    path_kind,
    place_image,
    quote,
    read_classes_txt,
    read_text_file,
    refuse_existing,
    split_candidates,
    unique_names,
)
from yolo2retina.formats.registry import ImageMode, WriteReport
from yolo2retina.image import IMAGE_EXTENSIONS, read_image_hw

__all__ = [
    "ADAPTER",
    "IDS_FILE",
    "DataYaml",
    "YoloFormat",
    "image_to_label_path",
    "load_data_yaml",
    "load_obj_data",
    "read_yolo",
    "write_yolo",
]

#: Normalized coordinates may lie this far outside [0, 1] (1% of the image) and are clipped.
CLIP_TOLERANCE = 0.01

#: A data.yaml whose aliases expand to more YAML nodes than this is refused. Real files
#: have a few dozen (a 1203-class LVIS ``names`` has about 2500); a 266-byte "billion
#: laughs" file of nested aliases expands to tens of millions.
MAX_YAML_NODES = 100_000


def _abs(path: str | os.PathLike[str]) -> Path:
    """Absolute, lexically normalized path; symlinks are kept as written (never resolved)."""
    return Path(os.path.abspath(path))


def _expanduser(text: str) -> Path:
    try:
        return Path(text).expanduser()
    except RuntimeError:  # "~nosuchuser/..."
        return Path(text)


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


class DataYaml:
    """A parsed Ultralytics ``data.yaml``.

    Attributes:
        file: the yaml file.
        root: the dataset root that split paths are relative to.
        splits: split name -> list of image folders or ``.txt`` image lists.
        class_names: class names, index = class id.
        notes: how ``root`` was found when ``path`` did not exist as written.
        darknet: parsed from a Darknet ``obj.data`` (list lines starting with ``data/``
            are then also tried without it).
    """

    def __init__(
        self,
        file: Path,
        root: Path,
        splits: dict[str, list[Path]],
        class_names: list[str],
        notes: list[str],
        darknet: bool = False,
    ) -> None:
        self.file = file
        self.root = root
        self.splits = splits
        self.class_names = class_names
        self.notes = notes
        self.darknet = darknet


#: Keys of a Darknet ``obj.data`` that name split lists, and the split each one is.
_DARKNET_SPLITS = {"train": "train", "valid": "val", "test": "test"}


def _darknet_path(folder: Path, text: str) -> tuple[Path, bool]:
    """``text`` relative to ``folder``; a missing ``data/...`` is tried without ``data/``.

    Darknet runs from its own folder, so CVAT and Darknet write ``data/train.txt`` and
    ``data/obj_train_data/a.jpg`` for files that sit beside ``obj.data``. Returns the path
    and whether the ``data/`` prefix was dropped.
    """
    p = _expanduser(text)
    if p.is_absolute():
        return _abs(p), False
    q = folder / p
    parts = Path(text).parts
    if path_kind(q) == "missing" and len(parts) > 1 and parts[0] == "data":
        alt = folder.joinpath(*parts[1:])
        if path_kind(alt) != "missing":
            return _abs(alt), True
    return _abs(q), False


def load_obj_data(file: str | os.PathLike[str]) -> DataYaml:
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
    f = Path(file)
    text = read_text_file(f, "obj.data")
    here = Path(os.path.realpath(f.parent))
    values: dict[str, tuple[int, str]] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.split("#", 1)[0].strip()
        if not s:
            continue
        key, eq, value = s.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not eq or not key:
            raise DatasetError(f"{f}:{lineno}: expected 'key = value', got {quote(line.strip())}")
        if key in values:
            raise DatasetError(
                f"{f}:{lineno}: '{key}' is given again (first on line {values[key][0]})"
            )
        values[key] = (lineno, value)
    notes: list[str] = []
    dropped: list[str] = []

    def resolve(key: str) -> Path:
        path, was_dropped = _darknet_path(here, values[key][1])
        if was_dropped:
            dropped.append(f"{key} = {values[key][1]}")
        return path

    if "names" in values:
        names_file = resolve("names")
        names = read_classes_txt(names_file)
    else:
        found = _read_classes_txt(here, here)
        if found is None:
            raise DatasetError(
                f"{f}: no 'names' key and no class-names file ({', '.join(CLASS_NAME_FILES)}) "
                "beside it"
            )
        names = found
    if "classes" in values:
        lineno, raw = values["classes"]
        nc = _as_int(raw)
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


def _find_obj_data(folder: Path) -> Path | None:
    """``obj.data``, or the one ``*.data`` file, directly in ``folder``."""
    if path_kind(folder / "obj.data") == "file":
        return folder / "obj.data"
    found = [p for p in sorted(folder.glob("*.data")) if path_kind(p) == "file"]
    return found[0] if len(found) == 1 else None


def _parse_names(file: Path, raw: dict[str, Any]) -> list[str]:
    names = raw.get("names")
    nc = raw.get("nc")
    if names is None:
        raise DatasetError(f"{file}: no 'names' key (the list of class names)")
    if isinstance(names, dict):
        keyed = {}
        for k, v in names.items():
            kid = _as_int(k)
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
        nc_int = _as_int(nc)
        if nc_int is None:
            raise DatasetError(f"{file}: 'nc' must be an integer, got {quote(nc)}")
        if nc_int != len(out):
            raise DatasetError(f"{file}: nc is {nc_int} but 'names' lists {len(out)} classes")
    if len(set(out)) != len(out):
        dup = sorted(n for n, k in Counter(out).items() if k > 1)
        raise DatasetError(f"{file}: 'names' has duplicate class names: {quote(dup)}")
    return out


def _as_int(value: object) -> int | None:
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
    p = _expanduser(str(declared))
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


def load_data_yaml(file: str | os.PathLike[str]) -> DataYaml:
    """Parse an Ultralytics ``data.yaml``.

    ``path`` may be absolute or relative to the yaml. When it does not exist (a yaml
    made on another machine), a folder of the same name beside the yaml, then the
    yaml's own folder, are tried; the choice is recorded in ``notes``.

    Raises:
        DatasetError: unreadable yaml, missing keys, ``nc``/``names`` mismatch, or a
            dataset path that cannot be found (the message lists where it looked), a
            file that is not UTF-8, or aliases that expand beyond :data:`MAX_YAML_NODES`.
    """
    f = Path(file)
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
            p = _expanduser(s)
            q = p if p.is_absolute() else root / p
            if path_kind(q) == "missing" and s.startswith("../"):
                q = root / s[3:]  # Roboflow writes ../train/images next to the yaml
            resolved.append(_abs(q))
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


def _list_images(folder: Path, problems: list[str]) -> list[Path]:
    """Image files under ``folder`` (recursively, not into linked folders), sorted.

    A name with an image extension that is not a regular file (a FIFO, device, socket,
    folder or broken link) is a problem and is never opened.
    """
    out = []
    stack = [os.fspath(folder)]
    while stack:
        d = stack.pop()
        try:
            with os.scandir(d) as it:
                entries = list(it)
        except OSError as e:
            problems.append(f"{d}: cannot list folder ({e.strerror or e})")
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
            elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                if path_kind(entry.path) == "file":
                    out.append(Path(entry.path))
                else:
                    problems.append(f"{entry.path}: {_NOT_REGULAR}")
    return sorted(out)


_NOT_REGULAR = "not a regular file (a FIFO, device, socket, folder or broken link); not opened"


def _images_from_list(
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
        p = _abs(p)
        kind = path_kind(p)
        if kind != "file":
            what = "does not exist" if kind == "missing" else "is " + _NOT_REGULAR
            problems.append(f"{list_file}:{lineno}: image {quote(s)} {what}")
            continue
        out.append(p)
    return out


def _is_image_list(file: Path) -> bool:
    """Whether a ``.txt`` is a Darknet / CVAT image list (``train.txt``): its first line
    names an image file rather than starting with a class id."""
    try:
        with open(file, "rb") as fh:
            head = fh.read(4096).decode("utf-8-sig", errors="replace")
    except OSError:
        return False
    first = next((ln.strip() for ln in head.splitlines() if ln.strip()), "")
    return (
        bool(first)
        and _parse_float(first.split()[0]) is None
        and os.path.splitext(first)[1].lower() in IMAGE_EXTENSIONS
    )


def _parse_float(tok: str) -> float | None:
    try:
        return float(tok)
    except ValueError:
        return None


def _parse_clean_boxes(
    lines: list[tuple[int, list[str]]], image_wh: tuple[int, int], num_classes: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Vectorised path for the common file: only valid, unique ``class cx cy w h`` rows.

    Returns ``None`` whenever anything needs a closer look (polygons, bad values, clips,
    duplicates); the row-by-row path then produces the exact messages and counts.
    """
    if not lines:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    if any(len(t) != 5 for _, t in lines):
        return None
    try:
        arr = np.array([t for _, t in lines], dtype=np.float64)
    except (ValueError, OverflowError):
        return None
    if not np.isfinite(arr).all():
        return None
    cls = arr[:, 0]
    with np.errstate(over="ignore", invalid="ignore"):  # 1e308 + 1e308 / 2 -> inf: refused below
        norm = box_ops.cxcywh_to_xyxy(arr[:, 1:])
    ok = (
        bool((cls == np.floor(cls)).all())
        and bool(((cls >= 0) & (cls < num_classes)).all())
        and bool((arr[:, 3:] > 0).all())
        and bool(((norm >= 0) & (norm <= 1)).all())
        # duplicates by value: "0.50" and "0.5" are the same row (-0.0 equals 0.0 here)
        and len(set(map(tuple, arr.tolist()))) == len(lines)
    )
    if not ok:
        return None
    # checked in float32, the dtype Annotations stores: w=1e-9 has no area there
    xyxy = box_ops.xyxy_norm_to_xyxy(norm, image_wh).astype(np.float32)
    if not ((xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])).all():
        return None
    return xyxy, cls.astype(np.int64)


def _parse_label_file(
    label: Path,
    image_wh: tuple[int, int],
    num_classes: int,
    strict: bool,
    report: LoadReport,
    problems: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    try:
        text = label.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        problems.append(f"{label}: not a UTF-8 text file")
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    except OSError as e:
        problems.append(f"{label}: cannot read label file ({e.strerror or e})")
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    lines = [
        (n, toks) for n, toks in enumerate((ln.split() for ln in text.splitlines()), 1) if toks
    ]
    fast = _parse_clean_boxes(lines, image_wh, num_classes)
    if fast is not None:
        return fast
    rows: list[np.ndarray] = []
    cls_ids: list[int] = []
    linenos: list[int] = []
    seen: dict[tuple[float, ...], int] = {}
    for lineno, toks in lines:
        where = f"{label}:{lineno}"
        n = len(toks)
        if n != 5 and (n < 7 or n % 2 == 0):
            problems.append(
                f"{where}: expected 5 values (class cx cy w h) or a polygon "
                f"(class x1 y1 x2 y2 x3 y3 ...), got {n}"
            )
            continue
        vals = [_parse_float(t) for t in toks]
        bad = [t for t, v in zip(toks, vals, strict=True) if v is None]
        if bad:
            problems.append(f"{where}: {quote(bad[0])} is not a number")
            continue
        fv = np.array(vals, dtype=np.float64)
        if not np.isfinite(fv).all():
            problems.append(f"{where}: NaN or infinite value")
            continue
        c = fv[0]
        if c != int(c) or c < 0:
            problems.append(f"{where}: class id {quote(toks[0])} is not a non-negative integer")
            continue
        if int(c) >= num_classes:
            problems.append(f"{where}: class id {int(c)} >= number of classes {num_classes}")
            continue
        key = tuple((fv + 0.0).tolist())  # parsed values: "0.50" repeats "0.5"; -0 is 0
        if key in seen:
            msg = f"{where}: exact duplicate of line {seen[key]}"
            if strict:
                problems.append(msg)
            else:
                report.note("dropped_duplicates", msg + " (dropped)")
            continue
        seen[key] = lineno
        coords = fv[1:]
        if n == 5:
            if coords[2] <= 0 or coords[3] <= 0:
                problems.append(f"{where}: zero-area box (w={quote(toks[3])}, h={quote(toks[4])})")
                continue
            with np.errstate(over="ignore", invalid="ignore"):  # huge values: refused below
                norm = box_ops.cxcywh_to_xyxy(coords)[0]
        else:
            norm = box_ops.polygon_norm_to_xyxy(coords, (1.0, 1.0))[0]
            if norm[2] <= norm[0] or norm[3] <= norm[1]:
                problems.append(f"{where}: zero-area polygon")
                continue
        if (norm < -CLIP_TOLERANCE).any() or (norm > 1 + CLIP_TOLERANCE).any():
            problems.append(
                f"{where}: box edges [{', '.join(f'{v:.4g}' for v in norm)}] lie outside [0, 1] "
                f"by more than {CLIP_TOLERANCE:g}"
            )
            continue
        if (norm < 0).any() or (norm > 1).any():
            msg = f"{where}: box slightly outside the image"
            if strict:
                problems.append(msg)
                continue
            clipped = np.clip(norm, 0.0, 1.0)
            if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
                report.note("dropped_zero_area", msg + ", zero area after clipping (dropped)")
                continue
            report.note("clipped", msg + " (clipped)")
        rows.append(norm)
        cls_ids.append(int(c))
        linenos.append(lineno)
    if not rows:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    norm_xyxy = np.clip(np.stack(rows), 0.0, 1.0)
    xyxy = box_ops.clip_xyxy(box_ops.xyxy_norm_to_xyxy(norm_xyxy, image_wh), image_wh)
    # validated in float32, the dtype Annotations stores (w=1e-9 has area only in float64)
    keep = np.ones(len(rows), dtype=bool)
    for i, msg in float32_box_problems(xyxy, keep, lambda i: f"{label}:{linenos[i]}"):
        keep[i] = False
        if strict or "float32 range" in msg:
            problems.append(msg)
        else:
            report.note("dropped_zero_area", msg + " (dropped)")
    return xyxy[keep].astype(np.float32), np.asarray(cls_ids, dtype=np.int64)[keep]


def _read_classes_txt(folder: Path, stop: Path) -> list[str] | None:
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


def _folder_sources(folder: Path, split: str | None, shown: Path) -> tuple[list[Path], list[str]]:
    if split:
        for s in split_candidates(split):  # "val" also finds "valid" and "validation"
            for c in (folder / "images" / s, folder / s / "images", folder / s):
                if path_kind(c) == "dir":
                    return [_abs(c)], []
        if any(
            path_kind(folder / s) == "dir" or path_kind(folder / "images" / s) == "dir"
            for s in ("train", "val", "valid", "test")
        ):
            raise DatasetError(
                f"{shown}: no '{split}' split. Looked for images/{split}, {split}/images and {split}"
            )
    if path_kind(folder / "images") == "dir":
        return [folder / "images"], []
    return [folder], []


def read_yolo(
    source: str | os.PathLike[str],
    split: str | None = None,
    *,
    class_names: Sequence[str] | None = None,
    strict: bool = False,
) -> Annotations:
    """Load a YOLO split into flat :class:`Annotations`.

    Args:
        source: an Ultralytics ``data.yaml`` or a Darknet / CVAT ``obj.data``; a folder
            that holds one (it is used, and ``split=None`` then means ``train``); or a
            folder without one (``images/`` + ``labels/``, or a flat folder with labels
            beside the images, and ``classes.txt``, ``obj.names`` or ``classes.names``).
        split: ``"train"``, ``"val"``, ``"test"`` (a key of the yaml or a split folder;
            ``valid`` and ``validation`` find ``val`` and the other way round). ``None``
            (the default, as for every reader): ``train`` when the source names splits
            (a data.yaml, ``images/{split}/`` or ``{split}/images/`` folders), else the
            whole folder.
        class_names: override the class names (required when no yaml or classes.txt exists).
        strict: turn clips and drops into errors.

    Boxes slightly outside the image (up to 1%) are clipped, boxes with no area after
    clipping or once stored as float32, and rows that repeat an earlier row's values are
    dropped; all are counted in ``report``. Images with an empty or missing label file
    are kept as background. Two images that share a label file (``a.jpg`` and ``a.png``
    in one folder) are an error.

    ``source`` may be relative, absolute, ``.`` or reached through a symlink: the result
    is the same. Image paths are absolute, with the dataset root's symlinks resolved.

    Raises:
        DatasetError: listing every problem as ``file:line: message``.
    """
    src = Path(source)
    problems: list[str] = []
    src_kind = path_kind(src)
    yml = _find_yaml(src) if src_kind == "dir" else src if src_kind == "file" else None
    is_yaml = yml is not None and yml.suffix.lower() in (".yaml", ".yml")
    if src_kind == "dir" and yml is None:
        yml = _find_obj_data(src)
    names: list[str] | None = list(class_names) if class_names is not None else None
    image_files: list[Path] = []
    dy: DataYaml | None = None
    if yml is not None and is_yaml:
        dy = load_data_yaml(yml)
    elif yml is not None and yml.suffix.lower() == ".data":
        dy = load_obj_data(yml)
    if dy is not None:
        split = "train" if split is None else split
        if split not in dy.splits:  # "valid" finds the "val" key
            split = next((s for s in split_candidates(split) if s in dy.splits), split)
    report = LoadReport(source=str(src) + (f" [{split}]" if split else ""))
    if dy is not None:
        report.details.extend(dy.notes)
        names = names or dy.class_names
        if split is None or split not in dy.splits:
            raise DatasetError(
                f"{src}: no split '{split}'; {dy.file.name} defines {sorted(dy.splits) or 'none'}"
            )
        kinds = {entry: path_kind(entry) for entry in dy.splits[split]}
        for entry, kind in kinds.items():
            if kind == "dir":
                image_files += _list_images(entry, problems)
            elif kind == "file" and entry.suffix == ".txt":
                image_files += _images_from_list(entry, dy.root, problems, darknet=dy.darknet)
            elif kind == "file" and entry.suffix.lower() in IMAGE_EXTENSIONS:
                image_files.append(entry)
            elif kind != "missing":
                problems.append(
                    f"{src}: split '{split}' entry {quote(str(entry))} is not a folder, "
                    "a .txt image list or an image file"
                )
            else:
                problems.append(f"{src}: split '{split}' entry {quote(str(entry))} does not exist")
        image_dirs = [e for e, kind in kinds.items() if kind == "dir"]
    elif src_kind == "dir":
        root = Path(os.path.realpath(src))
        if split is None and (named := YoloFormat().splits(root)):
            split = "train"  # like a data.yaml: a folder with named splits means train
            report.source = f"{src} [{split}]"
            if not any(s in named for s in split_candidates(split)):
                raise DatasetError(f"{src}: holds splits {list(named)}; pass split= (CLI: --split)")
        image_dirs, _ = _folder_sources(root, split, src)
        for d in image_dirs:
            image_files += _list_images(d, problems)
        if names is None:
            names = _read_classes_txt(image_dirs[0], root)
            if names is None:
                raise DatasetError(
                    f"{src}: no data.yaml, obj.data or class-names file "
                    f"({', '.join(CLASS_NAME_FILES)}) found; pass class_names=[...]"
                )
    else:
        raise DatasetError(f"{src}: not a data.yaml, an obj.data or a folder")
    if names is None:
        raise DatasetError(f"{src}: no class names found; pass class_names=[...]")
    # Image paths and the label folders walked below are both absolute and normalized the
    # same way (symlinks kept), so a label file is matched to its image however `source`
    # was spelled.
    image_files = sorted(dict.fromkeys(_abs(p) for p in image_files))

    # one label file per image: a.jpg and a.png in one folder would share a.txt
    label_of: dict[Path, Path] = {}
    shared: set[Path] = set()
    for img in image_files:
        lab = image_to_label_path(img)
        if lab in label_of:
            problems.append(
                f"{img}: same name as {label_of[lab]} apart from the extension; both would "
                f"use the label file {lab} (rename one)"
            )
            shared |= {img, label_of[lab]}
        else:
            label_of[lab] = img

    # label files without an image
    label_stems = set(label_of)
    for d in dict.fromkeys(image_to_label_path(d / "x.jpg").parent for d in image_dirs):
        if path_kind(d) != "dir":
            continue
        for dirpath, _, files in os.walk(d):
            for fn in files:
                lp = Path(dirpath) / fn
                if fn.endswith(".cache"):
                    report.note("skipped_files", f"{lp}: Ultralytics cache file (ignored)")
                elif fn.endswith(".txt") and fn != "classes.txt" and lp not in label_stems:
                    if _is_image_list(lp):
                        report.note(
                            "skipped_files", f"{lp}: a list of image paths, not labels (ignored)"
                        )
                    else:
                        problems.append(f"{lp}: label file has no image")

    category_ids: list[int] | None = None
    id_of: dict[str, int] | None = None
    ids_base = Path(os.path.realpath(dy.file.parent)) if dy is not None else None
    if dy is not None and not dy.darknet and ids_base is not None:
        sidecar = ids_base / IDS_FILE
        if path_kind(sidecar) != "missing":
            category_ids, id_of = _read_ids_sidecar(sidecar, len(dy.class_names))
            if class_names is not None and list(class_names) != dy.class_names:
                category_ids = None  # the classes were reordered: the ids no longer match
    image_ids: dict[Path, int] = {}
    if id_of is not None and ids_base is not None:
        rel = {img: Path(os.path.relpath(img, ids_base)).as_posix() for img in image_files}
        found = {img: id_of[r] for img, r in rel.items() if r in id_of}
        if len(found) == len(rel) and len(set(found.values())) == len(found):
            image_ids = found
        else:
            report.details.append(
                f"{ids_base / IDS_FILE}: image ids not used for this split: "
                f"{len(rel) - len(found)} of its {len(rel)} images are not listed, or ids repeat"
            )
    builder = AnnotationsBuilder()
    for img in image_files:
        if img in shared:
            continue
        try:
            h, w = read_image_hw(img)
        except ImageReadError as e:
            problems.append(str(e))
            continue
        label = image_to_label_path(img)
        label_kind = path_kind(label)
        if label_kind == "file":
            xyxy, labels = _parse_label_file(label, (w, h), len(names), strict, report, problems)
        elif label_kind != "missing":
            problems.append(f"{label}: {_NOT_REGULAR}")
            continue
        else:
            report.note("missing_label_files", f"{label}: missing (image kept as background)")
            xyxy, labels = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        builder.add(img, (h, w), xyxy, labels, image_id=image_ids.get(img))
    if problems:
        raise DatasetError(f"cannot load YOLO dataset {src}", problems)
    return builder.build(names, report, category_ids=category_ids)


# -- writer and registry adapter ---------------------------------------------------------


#: Keys of an Ultralytics data.yaml for the split names a writer is given.
_YAML_KEYS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _find_yaml(folder: Path) -> Path | None:
    for name in ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml"):
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    return found[0] if len(found) == 1 else None


def _has_label_txt(folder: Path) -> bool:
    for p in folder.glob("*.txt"):
        if p.name != "classes.txt" and any(
            (folder / (p.stem + ext)).is_file() for ext in (".jpg", ".jpeg", ".png", ".JPG", ".PNG")
        ):
            return True
    return False


def _index_file(path: Path) -> Path | None:
    """The data.yaml or obj.data that describes ``path`` (the file itself, or in the folder)."""
    if path.is_file():
        return path
    if not path.is_dir():
        return None
    return _find_yaml(path) or _find_obj_data(path)


class YoloFormat:
    """Ultralytics / Darknet YOLO adapter (reader: :func:`read_yolo`, writer: :func:`write_yolo`)."""

    name = "yolo"
    description = "Ultralytics / Darknet YOLO (data.yaml + images/ + labels/, or flat .txt folders)"

    def detect(self, path: Path) -> bool:
        """A yaml or Darknet ``.data`` file, or a folder with one of those, ``labels/``, or
        ``.txt`` labels beside images."""
        if path.is_file():
            return path.suffix.lower() in (".yaml", ".yml", ".data")
        if not path.is_dir():
            return False
        if _find_yaml(path) is not None or (path / "labels").is_dir():
            return True
        if _find_obj_data(path) is not None:
            return True
        if _has_label_txt(path):
            return True
        return any(
            (d / "images").is_dir() and (d / "labels").is_dir()
            for d in path.iterdir()
            if d.is_dir()
        )

    def splits(self, path: Path) -> tuple[str, ...]:
        """Split keys of the data.yaml or obj.data, or ``images/{split}`` / ``{split}/images``
        folders."""
        yml = _index_file(path)
        if yml is not None:
            dy = load_obj_data(yml) if yml.suffix.lower() == ".data" else load_data_yaml(yml)
            return tuple(k for k in ("train", "val", "test") if k in dy.splits)
        if not path.is_dir():
            return ()
        found = set()
        if (path / "images").is_dir():
            found |= {d.name for d in (path / "images").iterdir() if d.is_dir()}
        found |= {d.name for d in path.iterdir() if d.is_dir() and (d / "images").is_dir()}
        return tuple(sorted(found))

    def read(
        self,
        path: Path,
        split: str | None = None,
        *,
        class_names: Sequence[str] | None = None,
        strict: bool = False,
        **kwargs: Any,
    ) -> Annotations:
        """Load one split with :func:`read_yolo` (a folder's data.yaml is used when present)."""
        if kwargs:
            raise TypeError(f"read_yolo() got unexpected options {sorted(kwargs)}")
        src = path
        if path.is_dir() and (yml := _index_file(path)) is not None:
            src = yml
        if src.is_file() and split is None:
            split = "train"
        if split is not None and split not in self.splits(path):
            split = next((s for s in split_candidates(split) if s in self.splits(path)), split)
        return read_yolo(src, split, class_names=class_names, strict=strict)

    def write(
        self,
        splits: Mapping[str, Annotations],
        dst: Path,
        *,
        images: ImageMode = "copy",
        overwrite: bool = False,
        progress: bool = False,
    ) -> WriteReport:
        """Write splits as an Ultralytics dataset; see :func:`write_yolo`."""
        return write_yolo(splits, dst, images=images, overwrite=overwrite, progress=progress)


def _yolo_lines(target_cxcywh: np.ndarray, labels: np.ndarray) -> str:
    """Label rows with the shortest text that reads back as the same float64 values.

    Widths are nudged down by an ulp where rounding would put an edge past 0 or 1, so
    the reader never sees (and clips) a box that was inside the image.
    """
    v = np.array(target_cxcywh, dtype=np.float64)
    for _ in range(8):
        edges = box_ops.cxcywh_to_xyxy(v)
        bad_w = (edges[:, 0] < 0) | (edges[:, 2] > 1)
        bad_h = (edges[:, 1] < 0) | (edges[:, 3] > 1)
        if not (bad_w.any() or bad_h.any()):
            break
        v[bad_w, 2] = np.nextafter(v[bad_w, 2], 0)
        v[bad_h, 3] = np.nextafter(v[bad_h, 3], 0)
    return "".join(
        f"{int(c)} {' '.join(fmt_number(x) for x in row)}\n"
        for c, row in zip(labels.tolist(), v.tolist(), strict=True)
    )


def _refuse_shared_labels(
    splits: Mapping[str, Annotations], file_names: Mapping[str, list[str]]
) -> None:
    """Raise when two images of a split would write the same ``labels/{split}/{stem}.txt``."""
    problems = []
    for s, ann in splits.items():
        seen: dict[str, str] = {}
        for path, fn in zip(ann.paths.tolist(), file_names[s], strict=True):
            stem = Path(fn).stem
            if stem in seen and seen[stem] != path:  # one image listed twice is fine
                problems.append(
                    f"{path} and {seen[stem]}: both would be written to labels/{s}/{stem}.txt"
                )
            seen.setdefault(stem, path)
    if problems:
        raise DatasetError(
            "two images would share one YOLO label file (same name apart from the "
            "extension); rename one",
            problems,
        )


def _ids_sidecar(
    splits: Mapping[str, Annotations], file_names: Mapping[str, list[str]]
) -> dict[str, Any] | None:
    """The ids document for :data:`IDS_FILE`, or ``None`` when there is nothing to keep
    (no category ids, and image ids ``0..N-1`` in every split)."""
    cats = {a.category_ids for a in splits.values()}
    category_ids = next(iter(cats)) if len(cats) == 1 else None
    images: dict[str, int] = {}
    keep_images = False
    for s, ann in splits.items():
        ids = ann.image_ids.tolist()
        keep_images |= ids != list(range(len(ann)))
        for fn, i in zip(file_names[s], ids, strict=True):
            images[f"images/{s}/{fn}"] = int(i)
    if category_ids is None and not keep_images:
        return None
    return {
        "about": "COCO ids that YOLO labels cannot hold, kept by yolo2retina (read_yolo "
        "reads them back); Ultralytics ignores this file",
        "category_ids": None if category_ids is None else list(category_ids),
        "image_ids": images if keep_images else None,
    }


def _read_ids_sidecar(
    file: Path, num_classes: int
) -> tuple[list[int] | None, dict[str, int] | None]:
    """``(category_ids, {relative image path: id})`` of an :data:`IDS_FILE`.

    Raises:
        DatasetError: naming the file: not JSON, or ids that are not integers, not unique,
            or a category id count that differs from the class names.
    """
    try:
        doc = json.loads(read_text_file(file, IDS_FILE))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{file}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    if not isinstance(doc, dict):
        raise DatasetError(f"{file}: expected a JSON object with category_ids and image_ids")
    cats, imgs = doc.get("category_ids"), doc.get("image_ids")

    def ints(values: list[Any]) -> bool:
        return all(type(v) is int for v in values) and len(set(values)) == len(values)

    if cats is not None and not (
        isinstance(cats, list) and ints(cats) and len(cats) == num_classes
    ):
        raise DatasetError(
            f"{file}: category_ids must be {num_classes} unique integers (one per class name)"
        )
    if imgs is not None and not (
        isinstance(imgs, dict) and all(type(v) is int for v in imgs.values())
    ):
        raise DatasetError(f"{file}: image_ids must map image paths to integers")
    return cats, imgs


def write_yolo(
    annotations: Annotations | Mapping[str, Annotations],
    dst: str | os.PathLike[str],
    *,
    images: ImageMode = "copy",
    overwrite: bool = False,
    progress: bool = False,
) -> WriteReport:
    """Write an Ultralytics dataset: ``data.yaml``, ``images/{split}/``, ``labels/{split}/``.

    Background images get an empty label file. The yaml has no ``path`` key and only
    paths relative to itself, so Ultralytics and :func:`read_yolo` resolve splits beside
    it and a moved or renamed output folder still loads; a ``valid`` split is listed
    under the ``val`` key. Two images of one split whose names differ only in the
    extension (``a.jpg``, ``a.png``) would share a label file: that is an error, raised
    before anything is written. YOLO cannot hold crowd/difficult/truncated flags
    (those boxes are written as ordinary boxes): the returned report's ``lost`` says which
    were dropped. COCO category ids and image ids are kept in :data:`IDS_FILE` beside the
    yaml (written only when there are ids to keep), which :func:`read_yolo` reads back, so
    COCO -> YOLO -> COCO keeps them.

    Args:
        annotations: one split (written as ``train``) or a mapping split name -> split.
        dst: output folder.
        images: ``"copy"``, ``"symlink"`` or ``"hardlink"``.
        overwrite: replace existing files (otherwise nothing is written).
        progress: show a progress bar.
    """
    splits = as_splits(annotations)
    out = Path(dst)
    names = common_names(splits)
    file_names = unique_names(splits, across_splits=False)
    _refuse_shared_labels(splits, file_names)
    keys = {s: _YAML_KEYS.get(s, s) for s in splits}
    if len(set(keys.values())) != len(keys):
        raise DatasetError(f"splits {sorted(splits)} map to the same data.yaml key")
    plan = [out / "data.yaml"]
    for s in splits:
        for fn in file_names[s]:
            plan += [out / "images" / s / fn, out / "labels" / s / (Path(fn).stem + ".txt")]
    refuse_existing(plan, overwrite, out)
    report = WriteReport(str(out), "yolo")
    report.lost = flag_losses(splits, 0, "YOLO", "those boxes are written as ordinary boxes")
    ids_doc = _ids_sidecar(splits, file_names)
    if len({a.category_ids for a in splits.values()}) > 1:
        report.lost.append("COCO category ids: the splits disagree, so none are kept")
    if ids_doc is not None:
        refuse_existing([out / IDS_FILE], overwrite, out)
    bar = tqdm(total=sum(len(a) for a in splits.values()), desc="write YOLO", disable=not progress)
    for s, ann in splits.items():
        for i, fn in enumerate(file_names[s]):
            h, w = ann.image_hw(i)
            place_image(ann.image_path(i), out / "images" / s / fn, images)
            t = ann.target(i)
            lf = out / "labels" / s / (Path(fn).stem + ".txt")
            atomic_write_text(lf, _yolo_lines(t.to_yolo((w, h)), t.labels))
            report.files.append(str(lf))
            bar.update(1)
        report.images += len(ann)
        report.boxes += ann.num_boxes
    bar.close()
    if ids_doc is not None:
        atomic_write_text(out / IDS_FILE, json.dumps(ids_doc, indent=1) + "\n")
        report.files.append(str(out / IDS_FILE))
    doc: dict[str, Any] = {keys[s]: f"images/{s}" for s in splits}
    header = ""
    missing = [k for k in ("train", "val") if k not in doc]
    if missing and doc:
        only = next(iter(doc.values()))
        doc = {"train": doc.get("train", only), "val": doc.get("val", only), **doc}
        which = ", ".join(sorted(splits))
        note = (
            f"the source has no {' and no '.join(repr(k) for k in missing)} split, so "
            f"data.yaml lists {only} as {' and '.join(missing)} too (Ultralytics needs both "
            "keys); make a real validation split with 'yolo2retina split'"
        )
        report.remarks.append(note)
        header = (
            f"# Written by yolo2retina from a source with only the split(s) {which}:\n# {note}.\n"
        )
    doc["nc"] = len(names)
    doc["names"] = list(names)
    atomic_write_text(
        out / "data.yaml", header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    )
    report.files.append(str(out / "data.yaml"))
    return report


#: The adapter registered as ``"yolo"``.
ADAPTER = YoloFormat()
