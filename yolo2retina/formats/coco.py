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
outlives the call. Files over 8 MiB have their ``annotations`` array parsed in 4 MiB
pieces cut between top-level objects (each cut is verified by parsing; anything unusual
falls back to one whole-file parse), so a million annotation dicts never exist at once.
"""

from __future__ import annotations

import gc
import importlib
import itertools
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter, methodcaller
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm.auto import tqdm

from yolo2retina import boxes as box_ops
from yolo2retina.annotations import Annotations, LoadReport
from yolo2retina.errors import DatasetError, ImageReadError
from yolo2retina.formats._common import (
    IDS_FILE,
    as_splits,
    atomic_write_bytes,
    check_pixel_boxes,
    common_names,
    not_regular,
    path_kind,
    place_image,
    quote,
    refuse_existing,
    split_candidates,
    unique_names,
)
from yolo2retina.formats.registry import ImageMode, WriteReport
from yolo2retina.image import read_image_hw
from yolo2retina.target import FLAG_CROWD, FLAG_DIFFICULT, FLAG_TRUNCATED, Target

__all__ = [
    "ADAPTER",
    "ROBOFLOW_JSON_NAME",
    "CocoFormat",
    "coco_category_ids",
    "read_coco",
    "write_coco",
    "write_coco_results",
]

#: The file name Roboflow (and :func:`write_coco`) gives each split's JSON.
ROBOFLOW_JSON_NAME = "_annotations.coco.json"


def _load_json(file: Path) -> tuple[Any, set[str]]:
    """The parsed JSON and which of the optional flag keys occur anywhere in the text.

    orjson parses bytes; the stdlib parser gets ``str`` (as ``json.load`` does), so the
    text is never held twice.
    """
    try:
        orjson: Any = importlib.import_module("orjson")
    except ImportError:
        orjson = None
    try:
        if orjson is not None:
            raw = file.read_bytes()
            if raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            extras = {k for k in ("difficult", "truncated") if f'"{k}"'.encode() in raw}
            return orjson.loads(raw), extras
        text = file.read_text(encoding="utf-8-sig")
        extras = {k for k in ("difficult", "truncated") if f'"{k}"' in text}
        return json.loads(text), extras
    except OSError as e:
        raise DatasetError(f"{file}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise DatasetError(f"{file}: not UTF-8 text: {e}") from None
    except RecursionError:  # the stdlib parser recurses once per nesting level
        raise DatasetError(f"{file}: invalid JSON: nested too deeply to parse") from None
    except ValueError as e:  # json.JSONDecodeError and orjson.JSONDecodeError
        line, col = getattr(e, "lineno", 0), getattr(e, "colno", 0)
        msg = getattr(e, "msg", str(e))
        raise DatasetError(f"{file}:{line}:{col}: invalid JSON: {msg}") from None


def _as_list(file: Path, key: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise DatasetError(f"{file}: '{key}' must be a list")
    return value


def _json_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if p.is_file() and p.name != IDS_FILE)


#: Prefixes of the COCO files that hold no object-detection boxes (``captions_train2017``,
#: ``person_keypoints_val2017``, ``panoptic_val2017``, ``stuff_train2017``, the test-dev
#: ``image_info_test2017``). A folder that has them beside ``instances_*.json`` is read
#: through the instances files only.
OTHER_COCO_PREFIXES = ("captions_", "person_keypoints_", "panoptic_", "stuff_", "image_info_")


def _detection_jsons(folder: Path) -> tuple[dict[str, Path], list[Path]]:
    """``({split: json}, skipped)`` for the COCO files of one folder.

    With any ``instances_*.json`` present those are the detection files (split
    ``instances_train2017`` -> ``train2017``) and every other JSON is skipped; otherwise
    every JSON whose name does not start with one of :data:`OTHER_COCO_PREFIXES` is a
    split named by its stem.
    """
    files = _json_files(folder) if path_kind(folder) == "dir" else []
    inst = [f for f in files if f.stem.startswith("instances_")]
    keep = inst or [f for f in files if not f.stem.startswith(OTHER_COCO_PREFIXES)]
    return {f.stem.removeprefix("instances_"): f for f in keep}, [f for f in files if f not in keep]


def _find_json(path: Path, split: str | None) -> Path:
    kind = path_kind(path)
    if kind == "file":
        return path
    if kind == "missing":
        raise DatasetError(f"{path}: no such COCO JSON file or folder")
    if kind != "dir":
        raise DatasetError(f"{path}: is not a regular file or a folder")
    if split is None:
        here, _ = _detection_jsons(path)
        if len(here) == 1:
            return next(iter(here.values()))
        found = CocoFormat().splits(path)
        if len(found) == 1:
            return _find_json(path, found[0])
        raise DatasetError(
            f"{path}: "
            + (
                f"holds splits {list(found)}; pass split= (CLI: --split)"
                if found
                else "no single .json file found"
            )
        )
    ann_jsons, _ = _detection_jsons(path / "annotations")
    root_jsons, _ = _detection_jsons(path)
    for s in split_candidates(split):
        cands = [path / s / ROBOFLOW_JSON_NAME]
        cands += [root_jsons[s]] if s in root_jsons else []
        cands += [ann_jsons[s]] if s in ann_jsons else []
        cands += sorted((path / "annotations").glob(f"instances_{s}*.json"))
        if (path / s).is_dir() and len(_json_files(path / s)) == 1:
            cands.append(_json_files(path / s)[0])
        for c in cands:
            if c.is_file():
                return c
    raise DatasetError(
        f"{path}: no COCO JSON for split '{split}'; found splits {list(CocoFormat().splits(path))}"
    )


def _layout_images_root(file: Path, file_names: Sequence[Any]) -> Path:
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


def _column(
    records: list[Any],
    getter: Callable[[Any], Any],
    dtype: type[np.generic],
    bad: Callable[[int], str],
    types: tuple[type, ...] | None = (int, float, bool),
) -> npt.NDArray[Any]:
    """Pull one field of every record into an array; on failure name the first bad record.

    ``types`` are the Python types accepted (ids: ``int`` only, so ``2.5`` or ``"2"`` is an
    error rather than a silent conversion); ``None`` skips that extra pass (flags, whose
    values are range-checked afterwards).
    """
    try:
        out = np.fromiter(map(getter, records), dtype=dtype, count=len(records))
        if types is None or set(map(type, map(getter, records))) <= set(types):
            return out
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
        pass
    for i, r in enumerate(records):
        try:
            v = getter(r)
            if types is not None and type(v) not in types:
                raise TypeError
            np.asarray(v, dtype=dtype).item()
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
            raise DatasetError(bad(i)) from None
    raise DatasetError(bad(0))  # pragma: no cover - fromiter failed but no record did


def _dupes(ids: npt.NDArray[np.int64]) -> list[int]:
    s = np.sort(ids)
    return [int(v) for v in np.unique(s[1:][s[1:] == s[:-1]])]


def _index_of(
    sorted_keys: npt.NDArray[np.int64], order: npt.NDArray[np.int64], values: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    pos = np.searchsorted(sorted_keys, values)
    pos_c = np.minimum(pos, max(len(sorted_keys) - 1, 0))
    found = (
        (pos < len(sorted_keys)) & (sorted_keys[pos_c] == values)
        if len(sorted_keys)
        else (np.zeros(len(values), bool))
    )
    return (order[pos_c] if len(order) else pos_c), found


def _id_columns(
    anns: list[Any], at: Callable[[int], str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """``id``, ``image_id`` and ``category_id`` columns.

    ``np.array`` of the values both converts and type-checks in one pass: any float,
    string or missing value gives a non-integer dtype (or an exception), and only then
    are the records walked one by one to name the bad one.
    """
    m = len(anns)
    out = []
    for key in ("id", "image_id", "category_id"):
        try:
            col: npt.NDArray[Any] | None = np.array(list(map(itemgetter(key), anns)))
        except (KeyError, TypeError, ValueError, OverflowError):
            col = None
        # "u" (a value >= 2**63) would wrap around in int64: walk those records too
        if col is None or col.dtype.kind != "i" or col.shape != (m,):
            col = _column(
                anns,
                itemgetter(key),
                np.int64,
                _message(at, f"missing or non-integer '{key}'"),
                (int,),
            )
        out.append(col.astype(np.int64, copy=False))
    return out[0], out[1], out[2]


def _message(at: Callable[[int], str], text: str) -> Callable[[int], str]:
    return lambda i: f"{at(i)}: {text}"


_NUMBER_TYPES = frozenset({int, float})


def _bboxes(anns: list[Any], at: Callable[[int], str]) -> npt.NDArray[np.float64]:
    """``(M, 4) float64`` bbox column; a bbox that is not a list of 4 JSON numbers is an
    error naming it (a string ``"1234"`` or ``[true, 0, 5, 5]`` is not converted)."""
    m = len(anns)
    bboxes = list(map(methodcaller("get", "bbox"), anns))
    try:
        if set(map(type, bboxes)) <= {list}:
            lens = np.fromiter(map(len, bboxes), np.int64, count=m)
            if bool((lens == 4).all()) and (
                set(map(type, itertools.chain.from_iterable(bboxes))) <= _NUMBER_TYPES
            ):
                flat = np.fromiter(itertools.chain.from_iterable(bboxes), np.float64, count=4 * m)
                return flat.reshape(m, 4)
    except (TypeError, ValueError, OverflowError):
        pass
    for i, b in enumerate(bboxes):
        if b is None:
            raise DatasetError(f"{at(i)}: no 'bbox'")
        try:
            if type(b) is not list or len(b) != 4 or not set(map(type, b)) <= _NUMBER_TYPES:
                raise ValueError
            np.asarray(b, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise DatasetError(
                f"{at(i)}: malformed bbox {quote(b)}: expected [x, y, width, height] numbers"
            ) from None
    raise DatasetError(f"{at(0)}: malformed bbox")  # pragma: no cover


def _flag_column(anns: list[Any], key: str, at: Callable[[int], str]) -> npt.NDArray[np.int64]:
    """``(M,) int64`` 0/1 column of an optional flag key (absent = 0).

    Only ``0``, ``1``, ``false`` and ``true`` are flags; ``0.5``, ``1.9`` or ``"1"`` are
    errors naming the record rather than values rounded or cast into a flag.
    """
    values = list(map(methodcaller("get", key, 0), anns))
    if set(map(type, values)) <= {int, bool}:
        try:
            col = np.fromiter(values, np.int64, count=len(values))
        except OverflowError:  # beyond int64: certainly not a flag
            pass
        else:
            if bool(((col == 0) | (col == 1)).all()):
                return col
    for i, v in enumerate(values):
        if type(v) not in (int, bool) or v not in (0, 1):
            raise DatasetError(f"{at(i)}: '{key}' must be 0 or 1, got {quote(v)}")
    raise DatasetError(f"{at(0)}: bad '{key}'")  # pragma: no cover


def _pixels_column(
    records: list[Any], key: str, bad: Callable[[int], str]
) -> npt.NDArray[np.int64]:
    """``(N,) int64`` image width or height (absent = 0): whole numbers only, so ``640.5``,
    ``"640"`` or ``true`` are errors rather than truncated or cast."""
    values = list(map(methodcaller("get", key, 0), records))
    try:
        if set(map(type, values)) <= {int}:
            return np.fromiter(values, np.int64, count=len(values))
    except OverflowError:
        pass
    out = np.zeros(len(values), np.int64)
    for i, v in enumerate(values):
        ok = type(v) is int or (type(v) is float and math.isfinite(v) and v.is_integer())
        if not ok or not -(2**62) < v < 2**62:
            raise DatasetError(f"{bad(i)}, got {quote(v)}")
        out[i] = int(v)
    return out


_Columns = tuple[
    npt.NDArray[np.int64],  # annotation ids
    npt.NDArray[np.int64],  # image ids
    npt.NDArray[np.int64],  # category ids
    npt.NDArray[np.int64],  # iscrowd
    npt.NDArray[np.float64],  # (M, 4) xywh
    npt.NDArray[np.uint8],  # flags
]


def _ann_columns(anns: list[Any], at: Callable[[int], str], extras: set[str]) -> _Columns:
    """Every annotation field the reader needs, as arrays (errors name the record)."""
    ann_ids, ann_img, ann_cat = _id_columns(anns, at)
    crowd = _flag_column(anns, "iscrowd", at)
    xywh = _bboxes(anns, at)
    flags = np.where(crowd != 0, FLAG_CROWD, 0).astype(np.uint8)
    for key, bit in (("difficult", FLAG_DIFFICULT), ("truncated", FLAG_TRUNCATED)):
        if key not in extras:  # the key appears nowhere in the file: skip a pass
            continue
        v = _flag_column(anns, key, at)
        flags |= np.where(v != 0, bit, 0).astype(np.uint8)
    return ann_ids, ann_img, ann_cat, crowd, xywh, flags


#: Files larger than this have their annotations array parsed in pieces of this size.
CHUNK_BYTES = 4 << 20
_ANN_ARRAY = re.compile(rb'"annotations"\s*:\s*\[\s*')
_BETWEEN = re.compile(rb"\}\s*,\s*\{")
_ARRAY_END = re.compile(rb"\}\s*\]")


def _chunked(
    raw: bytes, loads: Callable[[bytes], Any], extras: set[str]
) -> tuple[Any, _Columns] | None:
    """Parse the annotations array piece by piece, so its dicts never all live at once.

    Pieces are cut between two top-level objects (``}, {``) and each is parsed as its own
    JSON array; a cut in the wrong place (inside a string or a nested list) cannot parse,
    and any surprise returns ``None`` so the caller parses the whole file instead.
    """
    m = _ANN_ARRAY.search(raw)
    if m is None or raw[m.end() : m.end() + 1] != b"{":
        return None
    pos, n = m.end(), len(raw)
    parts: list[_Columns] = []
    end: int | None = None
    while end is None:
        piece: Any = None
        cuts = _BETWEEN.finditer(raw, pos + CHUNK_BYTES) if pos + CHUNK_BYTES < n else iter(())
        for tries, cut in enumerate(cuts):  # a cut inside a string or nested list fails
            if tries == 16:
                break
            try:
                piece = loads(b"[" + raw[pos : cut.start() + 1] + b"]")
            except (ValueError, RecursionError):
                continue
            nxt = cut.end() - 1
            break
        if piece is None:  # the last piece: find the "}]" that closes the array
            for tries, close in enumerate(_ARRAY_END.finditer(raw, pos)):
                if tries == 64:
                    return None
                try:
                    piece = loads(b"[" + raw[pos : close.start() + 1] + b"]")
                except (ValueError, RecursionError):
                    continue
                end = close.end() - 1
                break
            else:
                return None
        try:
            parts.append(_ann_columns(piece, lambda i: "", extras))
        except (DatasetError, AttributeError, TypeError):
            return None
        del piece
        if end is None:
            pos = nxt
    try:
        data = loads(raw[: m.end()] + raw[end:])
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("annotations") != []:
        return None  # the array found was not the top-level one
    cols = tuple(np.concatenate([p[k] for p in parts]) for k in range(6))
    return data, cols  # type: ignore[return-value]


def _load_coco(file: Path) -> tuple[Any, set[str], _Columns | None]:
    """Parse a COCO file: large ones in pieces (columns returned), small ones whole."""
    try:
        size = file.stat().st_size
    except OSError as e:
        raise DatasetError(f"{file}: cannot read: {e.strerror}") from None
    if size > 2 * CHUNK_BYTES:
        try:
            orjson: Any = importlib.import_module("orjson")
            loads = orjson.loads
        except ImportError:
            loads = json.loads
        raw = file.read_bytes()
        if raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        extras = {k for k in ("difficult", "truncated") if f'"{k}"'.encode() in raw}
        got = _chunked(raw, loads, extras)
        del raw
        if got is not None:
            return got[0], extras, got[1]
    data, extras = _load_json(file)
    return data, extras, None


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
        if _json_files(path) or (
            (path / "annotations").is_dir() and _json_files(path / "annotations")
        ):
            return True
        return any(d.is_dir() and (d / ROBOFLOW_JSON_NAME).is_file() for d in path.iterdir())

    def splits(self, path: Path) -> tuple[str, ...]:
        """Split folders with one JSON; ``annotations/instances_{split}.json`` (or, with no
        instances file, ``annotations/{split}.json``); several ``{split}.json`` in ``path``.

        Captions, keypoints, panoptic, stuff and image-info files are not splits.
        """
        if path_kind(path) != "dir":
            return ()
        found = {d.name for d in path.iterdir() if d.is_dir() and len(_json_files(d)) == 1}
        found.discard("annotations")
        found |= set(_detection_jsons(path / "annotations")[0])
        here = _detection_jsons(path)[0]
        if len(here) > 1:
            found |= set(here)
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
        """Load one split; see :func:`read_coco`."""
        return read_coco(path, split, class_names=class_names, strict=strict, **kwargs)

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
    source: str | os.PathLike[str],
    split: str | None = None,
    *,
    class_names: Sequence[str] | None = None,
    strict: bool = False,
    images_root: str | os.PathLike[str] | None = None,
    allow_outside_root: bool = False,
    verify_images: bool = True,
    progress: bool = False,
) -> Annotations:
    """Load a COCO instances JSON into flat :class:`Annotations`.

    Args:
        source: a ``.json`` file, or a folder with ``{split}/_annotations.coco.json``
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

    Raises:
        DatasetError: naming the file and the record: duplicate image or annotation ids,
            an annotation whose ``image_id`` or ``category_id`` does not exist, a
            ``width``/``height`` that disagrees with the image, a malformed ``bbox``, a
            value of the wrong type, a ``file_name`` outside the root or not a regular
            file, two images with one file; or naming the file: invalid, non-UTF-8 or
            too deeply nested JSON, a file with no ``bbox`` (captions, panoptic).
    """
    found = _find_json(Path(source), split)
    # One absolute, link-free folder: a relative path, `.`, an absolute path and a path
    # through a symlinked folder give the same image paths and messages. The file name is
    # kept, so a symlinked JSON still finds the images beside the link.
    file = Path(os.path.realpath(found.parent)) / found.name
    skipped: list[str] = []
    if path_kind(source) == "dir":  # say which other COCO files of this split were left out
        token = file.stem.removeprefix("instances_")
        for other in _detection_jsons(file.parent)[1]:
            if split is None or other.stem.endswith("_" + token):
                skipped.append(
                    f"{other}: not an object-detection (instances) file; read {file.name} "
                    "instead (skipped)"
                )
    # Millions of short-lived dicts: the cyclic GC would rescan them over and over.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        ann = _read_coco(
            file, class_names, strict, images_root, allow_outside_root, verify_images, progress
        )
    finally:
        if gc_was_enabled:
            gc.enable()
    for line in skipped:
        ann.report.note("skipped_files", line)
    return ann


def _read_coco(
    file: Path,
    class_names: Sequence[str] | None,
    strict: bool,
    images_root: str | os.PathLike[str] | None,
    allow_outside_root: bool,
    verify_images: bool,
    progress: bool,
) -> Annotations:
    data, extras, cols = _load_coco(file)
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
    report = LoadReport(source=str(file))
    problems: list[str] = []

    # -- categories -> labels 0..K-1 in id order ------------------------------------
    cat_ids = _column(
        cats,
        itemgetter("id"),
        np.int64,
        lambda i: f"{file}: categories[{i}]: missing or non-integer 'id'",
        (int,),
    )
    cat_names: list[str] = []
    for i, c in enumerate(cats):
        if not isinstance(c.get("name"), str):
            raise DatasetError(f"{file}: categories[{i}]: missing or non-string 'name'")
        cat_names.append(c["name"])
    if dup := _dupes(cat_ids):
        raise DatasetError(f"{file}: duplicate category ids {dup}")
    order = np.argsort(cat_ids, kind="stable")
    if class_names is not None:
        by_name = {cat_names[i]: int(cat_ids[i]) for i in range(len(cats))}
        if sorted(by_name) != sorted(class_names) or len(set(class_names)) != len(class_names):
            raise DatasetError(
                f"{file}: class_names {list(class_names)} must list each category name once: "
                f"{sorted(by_name)}"
            )
        names = list(class_names)
        category_ids = [by_name[n] for n in names]
        order = np.array([int(np.flatnonzero(cat_ids == c)[0]) for c in category_ids], np.int64)
    else:
        names = [cat_names[i] for i in order]
        category_ids = [int(cat_ids[i]) for i in order]
    cat_sorted = cat_ids[order]
    cat_sort2 = np.argsort(cat_sorted, kind="stable")
    cat_keys = cat_sorted[cat_sort2]

    # -- images ------------------------------------------------------------------------
    n = len(images)
    img_ids = _column(
        images,
        itemgetter("id"),
        np.int64,
        lambda i: f"{file}: images[{i}]: missing or non-integer 'id'",
        (int,),
    )
    if dup := _dupes(img_ids):
        shown = ", ".join(str(d) for d in dup[:10])
        raise DatasetError(
            f"{file}: duplicate image ids: {shown}" + (" ..." if len(dup) > 10 else "")
        )
    widths = _pixels_column(
        images, "width", lambda i: f"{file}: images[{i}]: 'width' is not a whole number"
    )
    heights = _pixels_column(
        images, "height", lambda i: f"{file}: images[{i}]: 'height' is not a whole number"
    )
    file_names = list(map(methodcaller("get", "file_name"), images))
    if images_root is not None:
        root = os.path.realpath(images_root)
    else:
        root = str(_layout_images_root(file, file_names))
        if root != str(file.parent):
            report.details.append(
                f"{file}: images are read from {root} (found from the folder layout; "
                "images_root= or --images-root chooses another)"
            )
    root_sep = root.rstrip(os.sep) + os.sep
    # Fast path for plain relative names; only the unusual ones are looked at closely.
    paths = [root_sep + fn if type(fn) is str else "" for fn in file_names]
    unusual = [
        i
        for i, fn in enumerate(file_names)
        if type(fn) is not str
        or not fn
        or not fn.isascii()
        or ".." in fn
        or "./" in fn
        or "//" in fn
        or "\x00" in fn
        or fn[0] in "/\\"
        or fn[1:2] == ":"
    ]
    for i in unusual:
        fn = file_names[i]
        where = f"{file}: images[{i}] (id {img_ids[i]})"
        paths[i] = ""  # until it passes: a refused name is never looked at
        if not isinstance(fn, str) or not fn:
            problems.append(f"{where}: missing 'file_name'")
            continue
        if "\x00" in fn:
            problems.append(f"{where}: file_name {quote(fn)} contains a NUL byte")
            continue
        try:
            os.fsencode(fn)
        except UnicodeError:
            problems.append(f"{where}: file_name {quote(fn)} is not a valid file name here")
            continue
        full = os.path.normpath(os.path.join(root, fn))
        if not allow_outside_root and not full.startswith(root_sep):
            how = "is absolute" if os.path.isabs(fn) else "escapes the images root"
            problems.append(
                f"{where}: file_name {quote(fn)} {how} ({root}); pass allow_outside_root=True "
                "to accept files outside it"
            )
            continue
        paths[i] = full
    first: dict[str, int] = {}
    for i, path in enumerate(paths):
        if path and (j := first.setdefault(path, i)) != i:
            problems.append(
                f"{file}: images[{i}] (id {img_ids[i]}): file_name {quote(file_names[i])} is "
                f"the same file as images[{j}] (id {img_ids[j]}); one file cannot be two images"
            )
    hw = np.stack([heights, widths], axis=1) if n else np.zeros((0, 2), np.int64)
    if verify_images:
        for i in tqdm(range(n), desc="image headers", disable=not progress):
            if not paths[i]:
                continue
            why = not_regular(paths[i])
            if why is not None:  # a FIFO or /dev/stdin would block the header read
                problems.append(f"{file}: images[{i}] (id {img_ids[i]}): {paths[i]} {why}")
                continue
            try:
                h, w = read_image_hw(paths[i])
            except ImageReadError as e:
                problems.append(f"{file}: images[{i}] (id {img_ids[i]}): {e}")
                continue
            if (widths[i], heights[i]) not in ((0, 0), (w, h)):
                problems.append(
                    f"{file}: images[{i}] (id {img_ids[i]}, {file_names[i]}): width x height "
                    f"{widths[i]}x{heights[i]} but the image is {w}x{h} (after EXIF orientation)"
                )
            hw[i] = (h, w)
    else:
        for i in np.flatnonzero((widths <= 0) | (heights <= 0)).tolist():
            problems.append(
                f"{file}: images[{i}] (id {img_ids[i]}): no positive width/height "
                "(verify_images=False cannot read it from the image)"
            )
    if problems:
        raise DatasetError(f"cannot load COCO file {file}", problems)

    # -- annotations, in bulk --------------------------------------------------------------
    def at_record(i: int) -> str:
        a = anns[i]
        aid = a.get("id", "?") if isinstance(a, dict) else "?"
        return f"{file}: annotations[{i}] (id {aid})"

    if cols is None:
        cols = _ann_columns(anns, at_record, extras)
    anns, data = [], None  # let the parsed records go
    ann_ids, ann_img, ann_cat, _crowd, xywh, flags = cols
    del cols

    def at(i: int) -> str:
        return f"{file}: annotations[{i}] (id {int(ann_ids[i])})"

    if dup := _dupes(ann_ids):
        shown = ", ".join(str(d) for d in dup[:10])
        raise DatasetError(
            f"{file}: duplicate annotation ids: {shown}" + (" ..." if len(dup) > 10 else "")
        )
    img_sorted = np.argsort(img_ids, kind="stable")
    img_index, found = _index_of(img_ids[img_sorted], img_sorted, ann_img)
    for i in np.flatnonzero(~found).tolist():
        problems.append(f"{at(int(i))}: image_id {int(ann_img[i])} is not in 'images'")
    pos, found_c = _index_of(cat_keys, cat_sort2, ann_cat)
    for i in np.flatnonzero(~found_c).tolist():
        problems.append(f"{at(int(i))}: category_id {int(ann_cat[i])} is not in 'categories'")
    labels = pos.astype(np.int64)
    with np.errstate(invalid="ignore"):
        malformed = ~np.isfinite(xywh).all(1) | (xywh[:, 2] < 0) | (xywh[:, 3] < 0)
    for i in np.flatnonzero(malformed).tolist():
        problems.append(
            f"{at(int(i))}: malformed bbox {xywh[i].tolist()} (needs finite x, y and width, height >= 0)"
        )
    if problems:
        raise DatasetError(f"cannot load COCO file {file}", problems)

    xyxy = box_ops.xywh_to_xyxy(xywh)
    del xywh
    boxes_wh = hw[img_index][:, ::-1]
    keep = check_pixel_boxes(xyxy, boxes_wh, at, strict=strict, report=report, problems=problems)
    if problems:
        raise DatasetError(f"cannot load COCO file {file}", problems)

    # -- group boxes by image (stable: annotation order kept within an image) ----------
    kept_img = img_index[keep]
    perm = np.argsort(kept_img, kind="stable")
    counts = np.bincount(kept_img, minlength=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    report.images = n
    report.boxes = int(offsets[-1])
    report.background_images = int((counts == 0).sum())
    return Annotations(
        paths=np.asarray(paths, dtype=np.str_).reshape(-1),
        image_hw_array=hw,
        offsets=offsets,
        boxes=xyxy[keep][perm].astype(np.float32),
        labels=labels[keep][perm],
        flags=flags[keep][perm],
        class_names=tuple(names),
        image_ids=img_ids,
        category_ids=tuple(category_ids),
        annotation_ids=ann_ids[keep][perm],
        report=report,
    )


def coco_category_ids(annotations: Annotations) -> list[int]:
    """COCO category id of each label: the original ids when known, else ``1..K``."""
    if annotations.category_ids is not None:
        return [int(c) for c in annotations.category_ids]
    return list(range(1, annotations.num_classes + 1))


def _coco_image_ids(annotations: Annotations) -> list[int]:
    ids = annotations.image_ids
    if len(np.unique(ids)) == len(ids):
        return [int(i) for i in ids]
    return list(range(len(ids)))


def _coco_dict(ann: Annotations, file_names: Sequence[str]) -> dict[str, Any]:
    cat_ids = coco_category_ids(ann)
    img_ids = _coco_image_ids(ann)
    xywh = box_ops.xyxy_to_xywh(ann.boxes).tolist()
    owners = ann.image_index().tolist()
    labels = ann.labels.tolist()
    flags = ann.flags.tolist()
    records = []
    for k in range(ann.num_boxes):
        b = xywh[k]
        rec: dict[str, Any] = {
            "id": k + 1,
            "image_id": img_ids[owners[k]],
            "category_id": cat_ids[labels[k]],
            "bbox": b,
            "area": b[2] * b[3],
            "segmentation": [],
            "iscrowd": 1 if flags[k] & FLAG_CROWD else 0,
        }
        if flags[k] & FLAG_DIFFICULT:
            rec["difficult"] = 1
        if flags[k] & FLAG_TRUNCATED:
            rec["truncated"] = 1
        records.append(rec)
    hw = ann.image_hw_array.tolist()
    return {
        "info": {"description": "written by yolo2retina"},
        "licenses": [],
        "categories": [
            {"id": c, "name": n, "supercategory": "none"}
            for c, n in zip(cat_ids, ann.class_names, strict=True)
        ],
        "images": [
            {"id": img_ids[i], "file_name": file_names[i], "height": hw[i][0], "width": hw[i][1]}
            for i in range(len(ann))
        ],
        "annotations": records,
    }


def write_coco(
    annotations: Annotations | Mapping[str, Annotations],
    dst: str | os.PathLike[str],
    *,
    images: ImageMode = "copy",
    overwrite: bool = False,
    progress: bool = False,
) -> WriteReport:
    """Write COCO folders: ``dst/{split}/_annotations.coco.json`` with the images beside it.

    Category ids are the original ones when ``annotations.category_ids`` is set, else
    ``1..K``; image ids are ``annotations.image_ids`` when unique. Crowd flags become
    ``iscrowd``; difficult/truncated flags are kept in non-standard ``"difficult"`` /
    ``"truncated"`` keys (other COCO tools ignore them).

    Args:
        annotations: one split (written as ``train``) or a mapping split name -> split.
        dst: output folder.
        images: ``"copy"``, ``"symlink"`` or ``"hardlink"``.
        overwrite: replace existing files (otherwise nothing is written).
        progress: show a progress bar.
    """
    splits = as_splits(annotations)
    out = Path(dst)
    common_names(splits)
    file_names = unique_names(splits, across_splits=False)
    plan = []
    for s in splits:
        plan.append(out / s / ROBOFLOW_JSON_NAME)
        plan += [out / s / fn for fn in file_names[s]]
    refuse_existing(plan, overwrite, out)
    report = WriteReport(str(out), "coco")
    bar = tqdm(total=sum(len(a) for a in splits.values()), desc="write COCO", disable=not progress)
    for s, ann in splits.items():
        for i, fn in enumerate(file_names[s]):
            place_image(ann.image_path(i), out / s / fn, images)
            bar.update(1)
        f = out / s / ROBOFLOW_JSON_NAME
        atomic_write_bytes(f, json.dumps(_coco_dict(ann, file_names[s])).encode("utf-8"))
        report.files.append(str(f))
        report.images += len(ann)
        report.boxes += ann.num_boxes
        if len(np.unique(ann.image_ids)) != len(ann):
            report.lost.append(f"{s}: image ids were not unique; renumbered 0..{len(ann) - 1}")
    bar.close()
    return report


def write_coco_results(
    predictions: Sequence[Target], annotations: Annotations, path: str | os.PathLike[str]
) -> Path:
    """Write detections as a COCO results JSON (``[{image_id, category_id, bbox, score}]``).

    ``predictions[i]`` belongs to image ``i`` of ``annotations``; image and category ids
    are the ones :func:`write_coco` writes (original COCO ids when known), so the file
    can be scored with ``pycocotools`` against the ground truth JSON.

    Raises:
        DatasetError: the number of predictions differs from the number of images, or a
            prediction has no scores or a label outside the classes.
    """
    if len(predictions) != len(annotations):
        raise DatasetError(
            f"{len(predictions)} predictions for {len(annotations)} images in {path}"
        )
    cat_ids = coco_category_ids(annotations)
    img_ids = _coco_image_ids(annotations)
    out = []
    for i, t in enumerate(predictions):
        if len(t) == 0:
            continue
        if t.scores is None:
            raise DatasetError(f"prediction {i} ({annotations.image_path(i)}) has no scores")
        if int(t.labels.max()) >= len(cat_ids):
            raise DatasetError(
                f"prediction {i}: label {int(t.labels.max())} >= {len(cat_ids)} classes"
            )
        for b, lab, sc in zip(
            t.to_coco().tolist(), t.labels.tolist(), t.scores.tolist(), strict=True
        ):
            out.append(
                {"image_id": img_ids[i], "category_id": cat_ids[lab], "bbox": b, "score": sc}
            )
    p = Path(path)
    atomic_write_bytes(p, json.dumps(out).encode("utf-8"))
    return p


#: The adapter registered as ``"coco"``.
ADAPTER = CocoFormat()
