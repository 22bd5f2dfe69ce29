"""COCO instances JSON: reader, writers (dataset and detection results) and adapter.

Categories: sorted by id, category ``k`` in that order becomes label ``k``; the original
ids are kept in :attr:`Annotations.category_ids` so predictions can be exported with
them (:func:`write_coco_results`). Declared categories that no annotation uses are kept
(``blood-cells-coco`` declares an unused id 0 and gets 3 classes).

Boxes: ``bbox`` ``[x, y, w, h]`` floats -> XYXY pixels. ``iscrowd=1`` becomes
:data:`~yolo2retina.target.FLAG_CROWD` (left out of training targets by default, an
ignore region in evaluation). The non-standard keys ``"difficult": 1`` and
``"truncated": 1``, which :func:`write_coco` writes for VOC flags, are read back.
Images with no annotation are kept as background. Each box keeps its annotation ``id`` in
:attr:`Annotations.annotation_ids` (Roboflow exports start at 0, which pycocotools
mis-scores; see ``coco_map(..., pycocotools_compat=True)``).

Paths: ``file_name`` is relative to ``images_root`` (default: the JSON's folder, resolved
once so every way of naming it gives the same result). An absolute ``file_name`` or a
``..`` that leaves the root is refused, before it is looked at, unless
``allow_outside_root=True``; only regular files are ever opened (a FIFO or
``/dev/stdin`` is refused after a ``stat``).

Values are never coerced: a ``bbox`` must be a list of four JSON numbers, flags ``0``,
``1``, ``false`` or ``true``, ids integers and image sizes whole numbers.

The JSON is parsed with ``orjson`` when installed, else :mod:`json`, with the cyclic GC
paused, and the columns are pulled into NumPy arrays in bulk; no per-annotation object
outlives the call. Files over 8 MiB are read a block at a time and their ``annotations``
array is parsed in 256 KiB pieces cut between top-level objects (each cut is verified by
parsing; anything unusual falls back to one whole-file parse), with ``msgspec`` when it is
installed, so neither the whole file nor a million annotation dicts exist at once.

Parsing is in :mod:`~yolo2retina.formats.coco_json`, columns in
:mod:`~yolo2retina.formats.coco_columns`, labels and the grouped boxes in
:mod:`~yolo2retina.formats.coco_boxes`, file finding in
:mod:`~yolo2retina.formats.coco_layout` and the writers in
:mod:`~yolo2retina.formats.coco_writer` (re-exported here).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy.typing as npt

from yolo2retina.annotations import Annotations, LoadReport
from yolo2retina.errors import DatasetError
from yolo2retina.formats._files import path_kind
from yolo2retina.formats.base import ImageMode, WriteReport
from yolo2retina.formats.coco_boxes import categories_of, link_boxes
from yolo2retina.formats.coco_columns import ann_columns
from yolo2retina.formats.coco_images import ImageTable, ReadOptions, cached_read, image_table
from yolo2retina.formats.coco_json import CHUNK_BYTES as CHUNK_BYTES
from yolo2retina.formats.coco_json import load_coco
from yolo2retina.formats.coco_layout import (
    OTHER_COCO_PREFIXES as OTHER_COCO_PREFIXES,
)
from yolo2retina.formats.coco_layout import (
    ROBOFLOW_JSON_NAME as ROBOFLOW_JSON_NAME,
)
from yolo2retina.formats.coco_layout import (
    coco_splits,
    detection_jsons,
    find_json,
    json_files,
)
from yolo2retina.formats.coco_writer import coco_category_ids as coco_category_ids
from yolo2retina.formats.coco_writer import write_coco as write_coco
from yolo2retina.formats.coco_writer import write_coco_results as write_coco_results

__all__ = [
    "ADAPTER",
    "ROBOFLOW_JSON_NAME",
    "CocoFormat",
    "coco_category_ids",
    "read_coco",
    "write_coco",
    "write_coco_results",
]


class CocoFormat:
    """COCO adapter (see the module docstring for conventions)."""

    name = "coco"
    description = "COCO instances JSON (one .json per split; Roboflow folders too)"

    def detect(self, path: Path) -> bool:
        """A ``.json`` file, or a folder with ``.json`` files (directly, in split folders or
        in ``annotations/``)."""
        kind = path_kind(path)
        if kind == "file":
            return path.suffix.lower() == ".json"
        if kind != "dir":
            return False
        if json_files(path) or (
            (path / "annotations").is_dir() and json_files(path / "annotations")
        ):
            return True
        return any(d.is_dir() and (d / ROBOFLOW_JSON_NAME).is_file() for d in path.iterdir())

    def splits(self, path: Path) -> tuple[str, ...]:
        """Split folders with one JSON; ``annotations/instances_{split}.json`` (or, with no
        instances file, ``annotations/{split}.json``); several ``{split}.json`` in ``path``.

        Captions, keypoints, panoptic, stuff and image-info files are not splits.
        """
        return coco_splits(path)

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
        """Load one split; see :func:`read_coco`."""
        return read_coco(path, split, class_names=class_names, strict=strict, cache=cache, **kwargs)

    def write(
        self,
        splits: Mapping[str, Annotations],
        dst: Path,
        *,
        images: ImageMode = "copy",
        overwrite: bool = False,
        progress: bool = False,
    ) -> WriteReport:
        """Write splits as Roboflow-style COCO folders; see :func:`write_coco`."""
        return write_coco(splits, dst, images=images, overwrite=overwrite, progress=progress)


def read_coco(
    path: str | os.PathLike[str],
    split: str | None = None,
    *,
    class_names: Sequence[str] | None = None,
    strict: bool = False,
    images_root: str | os.PathLike[str] | None = None,
    allow_outside_root: bool = False,
    verify_images: bool = True,
    progress: bool = False,
    cache: bool = True,
) -> Annotations:
    """Load a COCO instances JSON into flat :class:`Annotations`.

    Args:
        path: a ``.json`` file, or a folder with ``{split}/_annotations.coco.json``
            (Roboflow), ``annotations/instances_{split}*.json`` (COCO, mmdetection),
            ``annotations/{split}.json`` or ``{split}.json``. Captions, keypoints,
            panoptic, stuff and image-info files beside them are skipped and counted in
            ``report.skipped_files``.
        split: the split to find in a folder (``val``, ``valid`` and ``validation`` find
            each other; ``val`` finds ``instances_val2017.json``). ``None``: a single JSON,
            or the folder's only split.
        class_names: fix the class order by category *name* (must name every category).
        strict: turn clips and drops into errors.
        images_root: folder that ``file_name`` is relative to. Default: found from the
            layout (the JSON's folder; ``images/{T}``, ``{T}`` or ``images`` beside it or
            beside its ``annotations/`` folder, ``T`` being the JSON's stem without
            ``instances_``; see ``docs/formats/coco.md``); a choice other than the JSON's
            folder is noted in ``report.details``.
        allow_outside_root: accept absolute ``file_name`` values and ``..`` escapes.
        verify_images: read every image header and check ``width``/``height`` against it
            (after EXIF orientation). ``False`` trusts the JSON and touches no image.
        progress: show a progress bar while image headers are read.
        cache: use and write the load cache (:mod:`~yolo2retina.formats.cache`), keyed by
            the JSON's ``stat``, the options and, with ``verify_images``, every image's
            ``stat``. ``False`` neither reads nor writes it.

    Raises:
        DatasetError: naming the file and the record: duplicate image or annotation ids,
            an annotation whose ``image_id`` or ``category_id`` does not exist, a
            ``width``/``height`` that disagrees with the image, a malformed ``bbox``, a
            value of the wrong type, a ``file_name`` outside the root or not a regular
            file, two images with one file; or naming the file: invalid, non-UTF-8 or
            too deeply nested JSON, a file with no ``bbox`` (captions, panoptic).
    """
    found = find_json(Path(path), split)
    # One absolute, link-free folder: a relative path, `.`, an absolute path and a path
    # through a symlinked folder give the same image paths and messages. The file name is
    # kept, so a symlinked JSON still finds the images beside the link.
    file = Path(os.path.realpath(found.parent)) / found.name
    skipped: list[str] = []
    if path_kind(path) == "dir":  # say which other COCO files of this split were left out
        token = file.stem.removeprefix("instances_")
        for other in detection_jsons(file.parent)[1]:
            if split is None or other.stem.endswith("_" + token):
                skipped.append(
                    f"{other}: not an object-detection (instances) file; read {file.name} "
                    "instead (skipped)"
                )
    opt = ReadOptions(class_names, strict, images_root, allow_outside_root, verify_images, progress)
    ann = (
        cached_read(file, opt, lambda: _read_coco(file, opt)) if cache else _read_coco(file, opt)[0]
    )
    for line in skipped:
        ann.report.note("skipped_files", line)
    return ann


def _read_coco(file: Path, opt: ReadOptions) -> tuple[Annotations, ImageTable]:
    # Millions of short-lived dicts: the cyclic GC would rescan them over and over.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _parse(file, opt)
    finally:
        if gc_was_enabled:
            gc.enable()


def _parse(file: Path, opt: ReadOptions) -> tuple[Annotations, ImageTable]:
    data, extras, cols = load_coco(file)
    images, anns, cats = _sections(file, data)
    del data
    report = LoadReport(source=str(file))
    categories = categories_of(file, cats, opt.class_names)
    table = image_table(file, images, opt, report)
    del images, cats
    if cols is None:
        cols = ann_columns(anns, _record_at(file, anns), extras)
    del anns  # let the parsed records go
    columns: list[npt.NDArray[Any]] = list(cols)
    del cols  # link_boxes drops each column once it is used
    return link_boxes(file, columns, categories, table, opt.strict, report), table


def _sections(file: Path, data: Any) -> tuple[list[Any], list[Any], list[Any]]:
    """The ``images``, ``annotations`` and ``categories`` lists of a parsed file."""
    if not isinstance(data, dict):
        raise DatasetError(f"{file}: expected a JSON object with 'images' and 'annotations'")
    images = _as_list(file, "images", data.get("images"))
    anns = _as_list(file, "annotations", data.get("annotations", []))
    if anns and not any(isinstance(a, dict) and "bbox" in a for a in anns):
        raise DatasetError(
            f"{file}: no bbox in this file: none of its {len(anns)} annotations has a 'bbox', "
            "so it is not a COCO object-detection (instances) file; captions and panoptic "
            "files hold no boxes"
        )
    cats = _as_list(file, "categories", data.get("categories"))
    return images, anns, cats


def _as_list(file: Path, key: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise DatasetError(f"{file}: '{key}' must be a list")
    return value


def _record_at(file: Path, anns: list[Any]) -> Callable[[int], str]:
    """Location text of annotation record ``i``, for errors while its columns are built."""

    def at_record(i: int) -> str:
        a = anns[i]
        aid = a.get("id", "?") if isinstance(a, dict) else "?"
        return f"{file}: annotations[{i}] (id {aid})"

    return at_record


#: The adapter registered as ``"coco"``.
ADAPTER = CocoFormat()
