"""Where the COCO files of a dataset are: split JSONs, and the folder their images are in.

Layouts: Roboflow ``{split}/_annotations.coco.json`` with the images beside it; COCO and
mmdetection ``annotations/instances_{split}.json`` with images in ``{split}/``,
``images/{split}/`` or ``images/``; a folder of ``{split}.json`` files; a single JSON.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from yolo2retina.errors import DatasetError
from yolo2retina.formats._common import IDS_FILE, split_candidates
from yolo2retina.formats._files import path_kind

#: The file name Roboflow (and :func:`~yolo2retina.formats.coco.write_coco`) gives each
#: split's JSON.
ROBOFLOW_JSON_NAME = "_annotations.coco.json"


def json_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if p.is_file() and p.name != IDS_FILE)


#: Prefixes of the COCO files that hold no object-detection boxes (``captions_train2017``,
#: ``person_keypoints_val2017``, ``panoptic_val2017``, ``stuff_train2017``, the test-dev
#: ``image_info_test2017``). A folder that has them beside ``instances_*.json`` is read
#: through the instances files only.
OTHER_COCO_PREFIXES = ("captions_", "person_keypoints_", "panoptic_", "stuff_", "image_info_")


def detection_jsons(folder: Path) -> tuple[dict[str, Path], list[Path]]:
    """``({split: json}, skipped)`` for the COCO files of one folder.

    With any ``instances_*.json`` present those are the detection files (split
    ``instances_train2017`` -> ``train2017``) and every other JSON is skipped; otherwise
    every JSON whose name does not start with one of :data:`OTHER_COCO_PREFIXES` is a
    split named by its stem.
    """
    files = json_files(folder) if path_kind(folder) == "dir" else []
    inst = [f for f in files if f.stem.startswith("instances_")]
    keep = inst or [f for f in files if not f.stem.startswith(OTHER_COCO_PREFIXES)]
    return {f.stem.removeprefix("instances_"): f for f in keep}, [f for f in files if f not in keep]


def find_json(path: Path, split: str | None) -> Path:
    kind = path_kind(path)
    if kind == "file":
        return path
    if kind == "missing":
        raise DatasetError(f"{path}: no such COCO JSON file or folder")
    if kind != "dir":
        raise DatasetError(f"{path}: is not a regular file or a folder")
    if split is None:
        here, _ = detection_jsons(path)
        if len(here) == 1:
            return next(iter(here.values()))
        found = coco_splits(path)
        if len(found) == 1:
            return find_json(path, found[0])
        raise DatasetError(
            f"{path}: "
            + (
                f"holds splits {list(found)}; pass split= (CLI: --split)"
                if found
                else "no single .json file found"
            )
        )
    ann_jsons, _ = detection_jsons(path / "annotations")
    root_jsons, _ = detection_jsons(path)
    for s in split_candidates(split):
        cands = [path / s / ROBOFLOW_JSON_NAME]
        cands += [root_jsons[s]] if s in root_jsons else []
        cands += [ann_jsons[s]] if s in ann_jsons else []
        cands += sorted((path / "annotations").glob(f"instances_{s}*.json"))
        if (path / s).is_dir() and len(json_files(path / s)) == 1:
            cands.append(json_files(path / s)[0])
        for c in cands:
            if c.is_file():
                return c
    raise DatasetError(
        f"{path}: no COCO JSON for split '{split}'; found splits {list(coco_splits(path))}"
    )


def coco_splits(path: Path) -> tuple[str, ...]:
    """Split folders with one JSON; ``annotations/instances_{split}.json`` (or, with no
    instances file, ``annotations/{split}.json``); several ``{split}.json`` in ``path``.

    Captions, keypoints, panoptic, stuff and image-info files are not splits.
    """
    if path_kind(path) != "dir":
        return ()
    found = {d.name for d in path.iterdir() if d.is_dir() and len(json_files(d)) == 1}
    found.discard("annotations")
    found |= set(detection_jsons(path / "annotations")[0])
    here = detection_jsons(path)[0]
    if len(here) > 1:
        found |= set(here)
    return tuple(sorted(found))


def layout_images_root(file: Path, file_names: Sequence[Any]) -> Path:
    """The folder ``file_name`` values are relative to, found from the layout.

    Tried in order, and the first folder that holds the first images named in the JSON
    (up to 5 are looked at) wins, else the JSON's folder ``P``:
    ``P`` (Roboflow, CVAT, a JSON beside its images), ``P/images/{T}``, ``P/{T}``,
    ``P/images``, and when ``P`` is named ``annotations`` (COCO, mmdetection) its parent
    ``R``: ``R/images/{T}``, ``R/{T}`` (COCO-2017 ``train2017/``), ``R/images``, ``R``;
    ``T`` is the JSON's stem without ``instances_`` (``instances_val2017.json`` ->
    ``val2017``). Names that are absolute or contain ``..`` are not used for the search.
    """
    here = file.parent
    token = file.stem.removeprefix("instances_")
    cands = [here, here / "images" / token, here / token, here / "images"]
    if here.name == "annotations":
        up = here.parent
        cands += [up / "images" / token, up / token, up / "images", up]
    probe = [
        fn
        for fn in file_names[:50]
        if type(fn) is str and fn and not os.path.isabs(fn) and ".." not in fn and "\x00" not in fn
    ][:5]
    if not probe:
        return here
    for c in cands:
        if path_kind(c) == "dir" and any(path_kind(c / fn) == "file" for fn in probe):
            return c
    return here
