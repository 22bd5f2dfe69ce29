"""Reader for Ultralytics / Darknet YOLO label files.

Layouts:

* **Ultralytics**: a ``data.yaml`` with ``path``, ``train``/``val``/``test`` and
  ``names``; images under ``.../images/...`` and labels under the matching
  ``.../labels/...`` folder.
* **Darknet / flat**: a folder of images with a ``.txt`` label file beside each and a
  ``classes.txt`` with one class name per line.

Rows are ``class cx cy w h`` (normalized to the EXIF-corrected image size) or
segmentation polygons ``class x1 y1 ... xn yn`` (converted to their enclosing box).
"""

from __future__ import annotations

import os
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
    as_splits,
    atomic_write_text,
    common_names,
    flag_losses,
    fmt_number,
    place_image,
    read_classes_txt,
    refuse_existing,
    split_candidates,
    unique_names,
)
from yolo2retina.formats.registry import ImageMode, WriteReport
from yolo2retina.image import IMAGE_EXTENSIONS, read_image_hw

__all__ = [
    "ADAPTER",
    "DataYaml",
    "YoloFormat",
    "image_to_label_path",
    "load_data_yaml",
    "read_yolo",
    "write_yolo",
]

#: Normalized coordinates may lie this far outside [0, 1] (1% of the image) and are clipped.
CLIP_TOLERANCE = 0.01


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
    """

    def __init__(
        self,
        file: Path,
        root: Path,
        splits: dict[str, list[Path]],
        class_names: list[str],
        notes: list[str],
    ) -> None:
        self.file = file
        self.root = root
        self.splits = splits
        self.class_names = class_names
        self.notes = notes


def _parse_names(file: Path, raw: dict[str, Any]) -> list[str]:
    names = raw.get("names")
    nc = raw.get("nc")
    if names is None:
        raise DatasetError(f"{file}: no 'names' key (the list of class names)")
    if isinstance(names, dict):
        try:
            keyed = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise DatasetError(f"{file}: 'names' keys must be integer class ids") from None
        if sorted(keyed) != list(range(len(keyed))):
            raise DatasetError(
                f"{file}: 'names' ids must be 0..{len(keyed) - 1}, got {sorted(keyed)}"
            )
        out = [keyed[i] for i in range(len(keyed))]
    elif isinstance(names, list):
        out = [str(n) for n in names]
    else:
        raise DatasetError(f"{file}: 'names' must be a list or an {{id: name}} mapping")
    if nc is not None:
        try:
            nc_int = int(nc)
        except (TypeError, ValueError):
            raise DatasetError(f"{file}: 'nc' must be an integer, got {nc!r}") from None
        if nc_int != len(out):
            raise DatasetError(f"{file}: nc is {nc_int} but 'names' lists {len(out)} classes")
    if len(set(out)) != len(out):
        raise DatasetError(f"{file}: 'names' has duplicate class names: {out}")
    return out


def _resolve_root(file: Path, raw: dict[str, Any]) -> tuple[Path, list[str]]:
    here = file.parent
    declared = raw.get("path")
    if declared in (None, ""):
        return here, []
    p = Path(str(declared)).expanduser()
    root = p if p.is_absolute() else (here / p)
    if root.is_dir():
        return root.resolve(), []
    looked = [root]
    candidates = []
    name = Path(str(declared).rstrip("/\\")).name
    if name:
        candidates.append(here / name)
    candidates.append(here)
    for c in candidates:
        looked.append(c)
        if c.is_dir() and any((c / str(s)).exists() for s in _split_values(raw)):
            note = (
                f"{file}: path '{declared}' does not exist; "
                f"using '{c.resolve()}' found beside the yaml"
            )
            return c.resolve(), [note]
    raise DatasetError(
        f"{file}: dataset path '{declared}' does not exist. Looked in: "
        + ", ".join(str(x) for x in looked)
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
            dataset path that cannot be found (the message lists where it looked).
    """
    f = Path(file)
    try:
        raw = yaml.safe_load(f.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise DatasetError(f"{f}: data.yaml not found") from None
    except yaml.YAMLError as e:
        raise DatasetError(f"{f}: invalid YAML: {e}") from None
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
            p = Path(s).expanduser()
            q = p if p.is_absolute() else root / p
            if not q.exists() and s.startswith("../"):
                q = root / s[3:]  # Roboflow writes ../train/images next to the yaml
            resolved.append(q)
        splits[key] = resolved
    return DataYaml(f, root, splits, class_names, notes)


def _list_images(folder: Path) -> list[Path]:
    out = []
    for dirpath, _, files in os.walk(folder):
        for name in files:
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                out.append(Path(dirpath) / name)
    return sorted(out)


def _images_from_list(list_file: Path, root: Path, problems: list[str]) -> list[Path]:
    out = []
    for lineno, line in enumerate(list_file.read_text(encoding="utf-8-sig").splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        p = Path(s)
        if not p.is_absolute():
            # Ultralytics: "./x.jpg" is relative to the list's folder; otherwise try root too.
            cand = [list_file.parent / p, root / p]
            p = next((c for c in cand if c.exists()), cand[0])
        if not p.exists():
            problems.append(f"{list_file}:{lineno}: image '{s}' does not exist")
            continue
        out.append(p)
    return out


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
        return np.zeros((0, 4)), np.zeros(0, np.int64)
    if any(len(t) != 5 for _, t in lines):
        return None
    try:
        arr = np.array([t for _, t in lines], dtype=np.float64)
    except ValueError:
        return None
    cls = arr[:, 0]
    norm = box_ops.cxcywh_to_xyxy(arr[:, 1:])
    ok = (
        np.isfinite(arr).all()
        and bool((cls == np.floor(cls)).all())
        and bool(((cls >= 0) & (cls < num_classes)).all())
        and bool((arr[:, 3:] > 0).all())
        and bool(((norm >= 0) & (norm <= 1)).all())
        and len({tuple(t) for _, t in lines}) == len(lines)
    )
    if not ok:
        return None
    xyxy = box_ops.xyxy_norm_to_xyxy(norm, image_wh)
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
        return np.zeros((0, 4)), np.zeros(0, np.int64)
    lines = [
        (n, toks) for n, toks in enumerate((ln.split() for ln in text.splitlines()), 1) if toks
    ]
    fast = _parse_clean_boxes(lines, image_wh, num_classes)
    if fast is not None:
        return fast
    rows: list[np.ndarray] = []
    cls_ids: list[int] = []
    linenos: list[int] = []
    seen: dict[tuple[str, ...], int] = {}
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
            problems.append(f"{where}: '{bad[0]}' is not a number")
            continue
        fv = np.array(vals, dtype=np.float64)
        if not np.isfinite(fv).all():
            problems.append(f"{where}: NaN or infinite value")
            continue
        c = fv[0]
        if c != int(c) or c < 0:
            problems.append(f"{where}: class id '{toks[0]}' is not a non-negative integer")
            continue
        if int(c) >= num_classes:
            problems.append(f"{where}: class id {int(c)} >= number of classes {num_classes}")
            continue
        key = tuple(toks)
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
                problems.append(f"{where}: zero-area box (w={toks[3]}, h={toks[4]})")
                continue
            norm = box_ops.cxcywh_to_xyxy(coords)[0]
        else:
            norm = box_ops.polygon_norm_to_xyxy(coords, (1.0, 1.0))[0]
            if norm[2] <= norm[0] or norm[3] <= norm[1]:
                problems.append(f"{where}: zero-area polygon")
                continue
        if (norm < -CLIP_TOLERANCE).any() or (norm > 1 + CLIP_TOLERANCE).any():
            problems.append(
                f"{where}: box edges {np.round(norm, 4).tolist()} lie outside [0, 1] "
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
        return np.zeros((0, 4)), np.zeros(0, np.int64)
    norm_xyxy = np.clip(np.stack(rows), 0.0, 1.0)
    xyxy = box_ops.clip_xyxy(box_ops.xyxy_norm_to_xyxy(norm_xyxy, image_wh), image_wh)
    keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    for i in np.flatnonzero(~keep):
        msg = f"{label}:{linenos[i]}: zero-area box in pixels"
        if strict:
            problems.append(msg)
        else:
            report.note("dropped_zero_area", msg + " (dropped)")
    return xyxy[keep], np.asarray(cls_ids, dtype=np.int64)[keep]


def _read_classes_txt(folder: Path, stop: Path) -> list[str] | None:
    d = folder
    while True:
        f = d / "classes.txt"
        if f.is_file():
            return read_classes_txt(f)
        if d == stop or d.parent == d:
            return None
        d = d.parent


def _folder_sources(folder: Path, split: str | None) -> tuple[list[Path], list[str]]:
    if split:
        for c in (folder / "images" / split, folder / split / "images", folder / split):
            if c.is_dir():
                return [c], []
        if any(
            (folder / s).is_dir() or (folder / "images" / s).is_dir()
            for s in ("train", "val", "valid", "test")
        ):
            raise DatasetError(
                f"{folder}: no '{split}' split. Looked for images/{split}, {split}/images and {split}"
            )
    if (folder / "images").is_dir():
        return [folder / "images"], []
    return [folder], []


def read_yolo(
    source: str | os.PathLike[str],
    split: str | None = "train",
    *,
    class_names: Sequence[str] | None = None,
    strict: bool = False,
) -> Annotations:
    """Load a YOLO split into flat :class:`Annotations`.

    Args:
        source: an Ultralytics ``data.yaml``, or a folder (Ultralytics ``images/`` +
            ``labels/`` layout, or a flat Darknet folder with ``classes.txt``).
        split: ``"train"``, ``"val"``, ``"test"`` (a key of the yaml), or ``None`` for
            a whole flat folder.
        class_names: override the class names (required when no yaml or classes.txt exists).
        strict: turn clips and drops into errors.

    Boxes slightly outside the image (up to 1%) are clipped, boxes with no area after
    clipping and exact duplicate rows are dropped; all are counted in ``report``.
    Images with an empty or missing label file are kept as background.

    Raises:
        DatasetError: listing every problem as ``file:line: message``.
    """
    src = Path(source)
    problems: list[str] = []
    report = LoadReport(source=str(src) + (f" [{split}]" if split else ""))
    names: list[str] | None = list(class_names) if class_names is not None else None
    image_files: list[Path] = []
    if src.is_file() and src.suffix.lower() in (".yaml", ".yml"):
        dy = load_data_yaml(src)
        report.details.extend(dy.notes)
        names = names or dy.class_names
        if split is None or split not in dy.splits:
            raise DatasetError(
                f"{src}: no split '{split}'; the yaml defines {sorted(dy.splits) or 'none'}"
            )
        for entry in dy.splits[split]:
            if entry.is_dir():
                image_files += _list_images(entry)
            elif entry.is_file() and entry.suffix == ".txt":
                image_files += _images_from_list(entry, dy.root, problems)
            elif entry.is_file() and entry.suffix.lower() in IMAGE_EXTENSIONS:
                image_files.append(entry)
            else:
                problems.append(f"{src}: split '{split}' entry '{entry}' does not exist")
        image_dirs = [e for e in dy.splits[split] if e.is_dir()]
    elif src.is_dir():
        image_dirs, _ = _folder_sources(src, split)
        for d in image_dirs:
            image_files += _list_images(d)
        if names is None:
            names = _read_classes_txt(image_dirs[0], src)
            if names is None:
                raise DatasetError(
                    f"{src}: no data.yaml or classes.txt found; pass class_names=[...]"
                )
    else:
        raise DatasetError(f"{src}: not a data.yaml or a folder")
    if names is None:
        raise DatasetError(f"{src}: no class names found; pass class_names=[...]")
    image_files = sorted(
        dict.fromkeys(p.resolve() if not p.is_absolute() else p for p in image_files)
    )

    # label files without an image
    label_stems = {image_to_label_path(p) for p in image_files}
    for d in dict.fromkeys(image_to_label_path(d / "x.jpg").parent for d in image_dirs):
        if not d.is_dir():
            continue
        for dirpath, _, files in os.walk(d):
            for fn in files:
                lp = Path(dirpath) / fn
                if fn.endswith(".cache"):
                    report.note("skipped_files", f"{lp}: Ultralytics cache file (ignored)")
                elif fn.endswith(".txt") and fn != "classes.txt" and lp not in label_stems:
                    problems.append(f"{lp}: label file has no image")

    builder = AnnotationsBuilder()
    for img in image_files:
        try:
            h, w = read_image_hw(img)
        except ImageReadError as e:
            problems.append(str(e))
            continue
        label = image_to_label_path(img)
        if label.is_file():
            xyxy, labels = _parse_label_file(label, (w, h), len(names), strict, report, problems)
        else:
            report.note("missing_label_files", f"{label}: missing (image kept as background)")
            xyxy, labels = np.zeros((0, 4)), np.zeros(0, np.int64)
        builder.add(img, (h, w), xyxy, labels)
    if problems:
        raise DatasetError(f"cannot load YOLO dataset {src}", problems)
    return builder.build(names, report)


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


class YoloFormat:
    """Ultralytics / Darknet YOLO adapter (reader: :func:`read_yolo`, writer: :func:`write_yolo`)."""

    name = "yolo"
    description = "Ultralytics / Darknet YOLO (data.yaml + images/ + labels/, or flat .txt folders)"

    def detect(self, path: Path) -> bool:
        """A yaml file, or a folder with a yaml, ``labels/`` or ``.txt`` labels beside images."""
        if path.is_file():
            return path.suffix.lower() in (".yaml", ".yml")
        if not path.is_dir():
            return False
        if _find_yaml(path) is not None or (path / "labels").is_dir():
            return True
        if _has_label_txt(path):
            return True
        return any(
            (d / "images").is_dir() and (d / "labels").is_dir()
            for d in path.iterdir()
            if d.is_dir()
        )

    def splits(self, path: Path) -> tuple[str, ...]:
        """Split keys of the data.yaml, or ``images/{split}`` / ``{split}/images`` folders."""
        yml = path if path.is_file() else _find_yaml(path) if path.is_dir() else None
        if yml is not None:
            return tuple(k for k in ("train", "val", "test") if k in load_data_yaml(yml).splits)
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
        if path.is_dir() and (yml := _find_yaml(path)) is not None:
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


def write_yolo(
    annotations: Annotations | Mapping[str, Annotations],
    dst: str | os.PathLike[str],
    *,
    images: ImageMode = "copy",
    overwrite: bool = False,
    progress: bool = False,
) -> WriteReport:
    """Write an Ultralytics dataset: ``data.yaml``, ``images/{split}/``, ``labels/{split}/``.

    Background images get an empty label file. The yaml has no ``path`` key, so
    Ultralytics and :func:`read_yolo` resolve splits beside it; a ``valid`` split is
    listed under the ``val`` key. YOLO cannot hold crowd/difficult/truncated flags
    (those boxes are written as ordinary boxes), COCO category ids or image ids: the
    returned report's ``lost`` says which were dropped.

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
    cat = {a.category_ids for a in splits.values()} - {None}
    if cat and cat != {tuple(range(len(names)))}:
        report.lost.append("COCO category ids (YOLO keeps only the class order)")
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
    doc: dict[str, Any] = {keys[s]: f"images/{s}" for s in splits}
    doc["nc"] = len(names)
    doc["names"] = list(names)
    atomic_write_text(out / "data.yaml", yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    report.files.append(str(out / "data.yaml"))
    return report


#: The adapter registered as ``"yolo"``.
ADAPTER = YoloFormat()
