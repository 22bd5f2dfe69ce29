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

Modules: :mod:`~yolo2retina.formats.data_yaml` (``data.yaml``),
:mod:`~yolo2retina.formats.darknet` (``obj.data``), :mod:`~yolo2retina.formats.yolo_layout`
(where images and labels are), :mod:`~yolo2retina.formats.yolo_labels` (one label file) and
:mod:`~yolo2retina.formats.yolo_writer`; their public names are re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from yolo2retina.annotations import Annotations, AnnotationsBuilder, LoadReport
from yolo2retina.errors import DatasetError, ImageReadError
from yolo2retina.formats._common import IDS_FILE as IDS_FILE
from yolo2retina.formats._common import split_candidates
from yolo2retina.formats._files import (
    CLASS_NAME_FILES,
    find_class_names,
    path_kind,
    quote,
)
from yolo2retina.formats.base import ImageMode, WriteReport
from yolo2retina.formats.cache import LoadCache, ReportMark, stat_runs
from yolo2retina.formats.darknet import find_obj_data
from yolo2retina.formats.darknet import load_obj_data as load_obj_data
from yolo2retina.formats.data_yaml import MAX_YAML_NODES as MAX_YAML_NODES
from yolo2retina.formats.data_yaml import DataYaml as DataYaml
from yolo2retina.formats.data_yaml import load_data_yaml as load_data_yaml
from yolo2retina.formats.yolo_ids import read_sidecar_ids
from yolo2retina.formats.yolo_labels import CLIP_TOLERANCE as CLIP_TOLERANCE
from yolo2retina.formats.yolo_labels import parse_clean_texts, parse_label_text, read_label_text
from yolo2retina.formats.yolo_layout import (
    NOT_REGULAR,
    Run,
    find_yaml,
    flat_paths,
    folder_sources,
    folder_splits,
    has_label_txt,
    image_runs,
    images_from_list,
    index_file,
    label_files,
    label_runs,
    ordered_runs,
    runs_of,
    unmatched_label_files,
)
from yolo2retina.formats.yolo_layout import image_to_label_path as image_to_label_path
from yolo2retina.formats.yolo_writer import write_yolo as write_yolo
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


def read_yolo(
    path: str | os.PathLike[str],
    split: str | None = None,
    *,
    class_names: Sequence[str] | None = None,
    strict: bool = False,
    cache: bool = True,
) -> Annotations:
    """Load a YOLO split into flat :class:`Annotations`.

    Args:
        path: an Ultralytics ``data.yaml`` or a Darknet / CVAT ``obj.data``; a folder
            that holds one (it is used, and ``split=None`` then means ``train``); or a
            folder without one (``images/`` + ``labels/``, or a flat folder with labels
            beside the images, and ``classes.txt``, ``obj.names`` or ``classes.names``).
        split: ``"train"``, ``"val"``, ``"test"`` (a key of the yaml or a split folder;
            ``valid`` and ``validation`` find ``val`` and the other way round). ``None``
            (the default, as for every reader): ``train`` when the path names splits
            (a data.yaml, ``images/{split}/`` or ``{split}/images/`` folders), else the
            whole folder.
        class_names: override the class names (required when no yaml or classes.txt exists).
        strict: turn clips and drops into errors.
        cache: use and write the load cache (:mod:`~yolo2retina.formats.cache`): the files
            are still listed and ``stat``-ed, but unchanged label files and image headers are
            not read again. ``False`` neither reads nor writes it.

    Boxes slightly outside the image (up to 1%) are clipped, boxes with no area after
    clipping or once stored as float32, and rows that repeat an earlier row's values are
    dropped; all are counted in ``report``. Images with an empty or missing label file
    are kept as background. Two images that share a label file (``a.jpg`` and ``a.png``
    in one folder) are an error.

    ``path`` may be relative, absolute, ``.`` or reached through a symlink: the result
    is the same. Image paths are absolute, with the dataset root's symlinks resolved.

    Raises:
        DatasetError: listing every problem as ``file:line: message``.
    """
    scan = _scan(Path(path), split, class_names)
    lc = _load_cache(scan, class_names, strict) if cache and not scan.problems else None
    if lc is not None and (hit := lc.load(scan.report)) is not None:
        return hit
    mark = ReportMark.of(scan.report)
    ann = _parse(scan, class_names, strict)
    if lc is not None:
        lc.store(ann, mark)
    return ann


@attrs.frozen
class _Scan:
    """What listing a YOLO split found, before any label file or image header is read."""

    src: Path
    split: str | None
    dy: DataYaml | None
    names: list[str]
    image_runs: list[Run]  # the images (absolute, in Path order), folder by folder
    label_runs: list[Run]  # the label file of each image (it may not exist)
    shared: set[str]  # images that share a label file (a problem)
    report: LoadReport
    problems: list[str]


def _scan(src: Path, split: str | None, class_names: Sequence[str] | None) -> _Scan:
    """List a split's images and check its label folders (the part a cached load repeats)."""
    problems: list[str] = []
    src_kind = path_kind(src)
    dy = _index(src, src_kind)
    if dy is not None:
        split = dy.resolve_split(split)
        report = LoadReport(source=f"{src} [{split}]")
        names = (list(class_names) if class_names is not None else None) or dy.class_names
        found, image_dirs = _index_images(dy, src, split, problems)
        report.details.extend(dy.notes)
    elif src_kind == "dir":
        report = LoadReport(source=str(src) + (f" [{split}]" if split else ""))
        names, found, image_dirs, split = _folder_images(src, split, class_names, report, problems)
    else:
        raise DatasetError(f"{src}: not a data.yaml, an obj.data or a folder")
    # Image paths and the label folders walked below are both absolute and normalized the
    # same way (symlinks kept), so a label file is matched to its image however `path`
    # was spelled.
    runs = ordered_runs(found)  # listed absolute and normalized
    lruns = label_runs(runs)
    shared = label_files(runs, lruns, problems)
    unmatched_label_files(image_dirs, lruns, report, problems)
    return _Scan(src, split, dy, names, runs, lruns, shared, report, problems)


def _load_cache(scan: _Scan, class_names: Sequence[str] | None, strict: bool) -> LoadCache:
    """The cache entry of this split, keyed by the stat of every file the parse reads (the
    index file, the ids sidecar, the images, the label files; folder by folder)."""
    files: list[str] = []
    source = os.path.realpath(scan.src)
    if scan.dy is not None:
        source = os.path.realpath(scan.dy.file)  # a folder and its data.yaml: one entry
        files.append(source)
        if not scan.dy.darknet:
            files.append(os.path.join(os.path.realpath(scan.dy.file.parent), IDS_FILE))
    options = {
        "split": scan.split,
        "strict": strict,
        "class_names": None if class_names is None else list(class_names),
        "names": scan.names,
        "images": sum(len(names) for _, names in scan.image_runs),
    }
    stats = stat_runs([*runs_of(files), *scan.image_runs, *scan.label_runs])
    return LoadCache("yolo", source, scan.split, options, stats)


def _parse(scan: _Scan, class_names: Sequence[str] | None, strict: bool) -> Annotations:
    """Read every image header and label file of a scanned split (raises its problems).

    Three passes keep the per-file cost low: headers and label texts are read in image
    order, the clean label files are parsed together (:func:`parse_clean_texts`), and the
    rest (anything to clip, drop or report) are parsed one by one in image order, so the
    problems and the report's details come out in that order.
    """
    every = flat_paths(scan.image_runs)
    category_ids, image_ids = read_sidecar_ids(scan.dy, class_names, every, scan.report)
    images = [img for img in every if img not in scan.shared]
    labels = [
        lb
        for img, lb in zip(every, flat_paths(scan.label_runs), strict=True)
        if img not in scan.shared
    ]
    read = [_read_image_and_label(img, lb) for img, lb in zip(images, labels, strict=True)]
    texts = [r.text for r in read if r.text is not None]
    wh = np.array([r.wh for r in read if r.text is not None], np.int64).reshape(-1, 2)
    fast_boxes, fast_labels, fast_counts, clean = parse_clean_texts(texts, wh, len(scan.names))
    fast_ends = np.cumsum(fast_counts).tolist()
    ok_paths: list[str] = []
    hws: list[tuple[int, int]] = []
    ids: list[int | None] = []
    boxes: list[npt.NDArray[np.float32]] = []
    classes: list[npt.NDArray[np.int64]] = []
    k = 0  # index among the files with a text
    for img, label, r in zip(images, labels, read, strict=True):
        scan.problems.extend(r.problems)
        if r.problems:
            k += r.text is not None
            continue
        if r.text is None:
            scan.report.note("missing_label_files", f"{label}: missing (image kept as background)")
            xyxy, cls = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        elif clean[k]:
            start = fast_ends[k - 1] if k else 0
            xyxy, cls = fast_boxes[start : fast_ends[k]], fast_labels[start : fast_ends[k]]
        else:
            xyxy, cls = parse_label_text(
                label, r.text, r.wh, len(scan.names), strict, scan.report, scan.problems
            )
        k += r.text is not None
        ok_paths.append(img)
        hws.append((r.wh[1], r.wh[0]))
        ids.append(image_ids.get(img))
        boxes.append(xyxy)
        classes.append(cls)
    if scan.problems:
        raise DatasetError(f"cannot load YOLO dataset {scan.src}", scan.problems)
    builder = AnnotationsBuilder()
    builder.add_images(ok_paths, hws, boxes, classes, image_ids=ids)
    return builder.build(scan.names, scan.report, category_ids=category_ids)


@attrs.frozen
class _Read:
    """An image's ``(width, height)`` and its label file's text (``None``: no label file),
    or the problems that stop it."""

    wh: tuple[int, int] = (0, 0)
    text: str | None = None
    problems: list[str] = attrs.field(factory=list)


def _read_image_and_label(img: str, label: str) -> _Read:
    """Read one image's header and its label file's text."""
    try:
        h, w = read_image_hw(img)
    except ImageReadError as e:
        return _Read(problems=[str(e)])
    label_kind = path_kind(label)
    if label_kind == "missing":
        return _Read((w, h))
    if label_kind != "file":
        return _Read((w, h), problems=[f"{label}: {NOT_REGULAR}"])
    problems: list[str] = []
    text = read_label_text(label, problems)
    return _Read((w, h), text, problems)


def _index(src: Path, src_kind: str) -> DataYaml | None:
    """The parsed data.yaml or obj.data that ``src`` is or holds; ``None`` for neither."""
    yml = find_yaml(src) if src_kind == "dir" else src if src_kind == "file" else None
    is_yaml = yml is not None and yml.suffix.lower() in (".yaml", ".yml")
    if src_kind == "dir" and yml is None:
        yml = find_obj_data(src)
    if yml is not None and is_yaml:
        return load_data_yaml(yml)
    if yml is not None and yml.suffix.lower() == ".data":
        return load_obj_data(yml)
    return None


def _index_images(
    dy: DataYaml, src: Path, split: str, problems: list[str]
) -> tuple[list[Run], list[Path]]:
    """``(image files as runs, image folders)`` of a split of a data.yaml or obj.data."""
    if split not in dy.splits:
        raise DatasetError(
            f"{src}: no split '{split}'; {dy.file.name} defines {sorted(dy.splits) or 'none'}"
        )
    image_files: list[Run] = []
    kinds = {entry: path_kind(entry) for entry in dy.splits[split]}
    for entry, kind in kinds.items():
        if kind == "dir":
            image_files += image_runs(entry, problems)
        elif kind == "file" and entry.suffix == ".txt":
            listed = images_from_list(entry, dy.root, problems, darknet=dy.darknet)
            image_files += runs_of(map(str, listed))
        elif kind == "file" and entry.suffix.lower() in IMAGE_EXTENSIONS:
            image_files += runs_of([os.path.abspath(entry)])
        elif kind != "missing":
            problems.append(
                f"{src}: split '{split}' entry {quote(str(entry))} is not a folder, "
                "a .txt image list or an image file"
            )
        else:
            problems.append(f"{src}: split '{split}' entry {quote(str(entry))} does not exist")
    return image_files, [e for e, kind in kinds.items() if kind == "dir"]


def _folder_images(
    src: Path,
    split: str | None,
    class_names: Sequence[str] | None,
    report: LoadReport,
    problems: list[str],
) -> tuple[list[str], list[Run], list[Path], str | None]:
    """``(class names, image files as runs, image folders, split)`` of a folder without an
    index file."""
    root = Path(os.path.realpath(src))
    if split is None and (named := folder_splits(root)):
        split = "train"  # like a data.yaml: a folder with named splits means train
        report.source = f"{src} [{split}]"
        if not any(s in named for s in split_candidates(split)):
            raise DatasetError(f"{src}: holds splits {list(named)}; pass split= (CLI: --split)")
    image_dirs = folder_sources(root, split, src)
    image_files: list[Run] = []
    for d in image_dirs:
        image_files += image_runs(d, problems)
    names = list(class_names) if class_names is not None else find_class_names(image_dirs[0], root)
    if names is None:
        raise DatasetError(
            f"{src}: no data.yaml, obj.data or class-names file "
            f"({', '.join(CLASS_NAME_FILES)}) found; pass class_names=[...]"
        )
    return names, image_files, image_dirs, split


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
        if find_yaml(path) is not None or (path / "labels").is_dir():
            return True
        if find_obj_data(path) is not None:
            return True
        if has_label_txt(path):
            return True
        return any(
            (d / "images").is_dir() and (d / "labels").is_dir()
            for d in path.iterdir()
            if d.is_dir()
        )

    def splits(self, path: Path) -> tuple[str, ...]:
        """Split keys of the data.yaml or obj.data, or ``images/{split}`` / ``{split}/images``
        folders."""
        yml = index_file(path)
        if yml is not None:
            dy = load_obj_data(yml) if yml.suffix.lower() == ".data" else load_data_yaml(yml)
            return tuple(k for k in ("train", "val", "test") if k in dy.splits)
        return folder_splits(path)

    def read(
        self,
        path: Path,
        split: str | None = None,
        *,
        class_names: Sequence[str] | None = None,
        strict: bool = False,
        cache: bool = True,
        **kwargs: Any,
    ) -> Annotations:
        """Load one split with :func:`read_yolo` (a folder's data.yaml is used when present)."""
        if kwargs:
            raise TypeError(f"read_yolo() got unexpected options {sorted(kwargs)}")
        src = path
        if path.is_dir() and (yml := index_file(path)) is not None:
            src = yml
        if src.is_file() and split is None:
            split = "train"
        if split is not None and split not in self.splits(path):
            split = next((s for s in split_candidates(split) if s in self.splits(path)), split)
        return read_yolo(src, split, class_names=class_names, strict=strict, cache=cache)

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


#: The adapter registered as ``"yolo"``.
ADAPTER = YoloFormat()
