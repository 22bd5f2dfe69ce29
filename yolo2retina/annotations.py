"""Flat, array-backed storage for the annotations of a whole dataset.

A dataset of N images and M boxes is held in a handful of NumPy arrays, never in
per-image Python objects. DataLoader workers fork the process and read these
arrays without touching Python reference counts, so pages are not copied on read
(the problem described in PyTorch issue 13246).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, get_args

import attrs
import numpy as np
import numpy.typing as npt

from yolo2retina.errors import AnnotationError, ConfigError, DatasetError
from yolo2retina.target import Target

__all__ = ["Annotations", "AnnotationsBuilder", "LoadReport", "NoteKind"]

#: The counters of :class:`LoadReport` that :meth:`LoadReport.note` counts an event in.
NoteKind = Literal[
    "clipped", "dropped_zero_area", "dropped_duplicates", "missing_label_files", "skipped_files"
]


@attrs.define
class LoadReport:
    """What a reader fixed, dropped or skipped while loading, so nothing is silent.

    Attributes:
        source: what was loaded (a data.yaml, a folder or a JSON file).
        images: images loaded.
        background_images: images with no boxes (kept).
        boxes: boxes kept.
        clipped: boxes moved inside the image (slightly outside, within tolerance).
        dropped_zero_area: boxes dropped because they had no area after clipping.
        dropped_duplicates: exact duplicate rows dropped.
        missing_label_files: images without a label file (kept as background).
        skipped_files: files that were ignored on purpose (e.g. Ultralytics ``*.cache``).
        details: one ``file:line: what happened`` line per clip, drop or skip.
    """

    source: str = ""
    images: int = 0
    background_images: int = 0
    boxes: int = 0
    clipped: int = 0
    dropped_zero_area: int = 0
    dropped_duplicates: int = 0
    missing_label_files: int = 0
    skipped_files: int = 0
    details: list[str] = attrs.field(factory=list)

    @property
    def changed(self) -> int:
        """Boxes clipped or dropped: the count that ``strict=True`` turns into errors."""
        return self.clipped + self.dropped_zero_area + self.dropped_duplicates

    def note(self, kind: NoteKind, detail: str) -> None:
        """Count one event of ``kind`` (the counter's name) and remember its detail line.

        Raises:
            ConfigError: ``kind`` is not one of :data:`NoteKind`'s counter names.
        """
        match kind:
            case "clipped":
                self.clipped += 1
            case "dropped_zero_area":
                self.dropped_zero_area += 1
            case "dropped_duplicates":
                self.dropped_duplicates += 1
            case "missing_label_files":
                self.missing_label_files += 1
            case "skipped_files":
                self.skipped_files += 1
            case _:  # a plug-in reader without type checking may pass any string
                raise ConfigError(
                    f"LoadReport.note: unknown kind {kind!r}; expected one of "
                    f"{', '.join(get_args(NoteKind))}"
                )
        self.details.append(detail)

    def __str__(self) -> str:
        lines = [
            f"Loaded {self.source}" if self.source else "Load report",
            f"  images:              {self.images} ({self.background_images} background)",
            f"  boxes:               {self.boxes}",
            f"  clipped:             {self.clipped}",
            f"  dropped (zero area): {self.dropped_zero_area}",
            f"  dropped (duplicate): {self.dropped_duplicates}",
            f"  missing label files: {self.missing_label_files} (kept as background)",
        ]
        if self.skipped_files:
            lines.append(f"  skipped files:       {self.skipped_files}")
        if self.details:
            shown = self.details[:10]
            lines.append("  details:")
            lines += [f"    {d}" for d in shown]
            if len(self.details) > len(shown):
                lines.append(f"    ... and {len(self.details) - len(shown)} more (report.details)")
        return "\n".join(lines)


def _ro(a: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


def _ro_ids(a: npt.ArrayLike | None) -> npt.NDArray[np.int64] | None:
    if a is None:
        return None
    out = np.array(a, dtype=np.int64, copy=True).reshape(-1)
    out.flags.writeable = False
    return out


def _names(value: Sequence[str]) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


@attrs.frozen(eq=False)
class Annotations:
    """The annotations of one dataset split, in flat arrays.

    Nothing here decodes an image: sizes come from image headers at load time.

    Attributes:
        paths: ``(N,)`` unicode array of absolute image paths.
        image_hw_array: ``(N, 2) int64`` image (height, width) after EXIF orientation.
        offsets: ``(N + 1,) int64``; image ``i`` owns boxes ``offsets[i]:offsets[i+1]``.
        boxes: ``(M, 4) float32`` XYXY pixels.
        labels: ``(M,) int64`` in ``0..K-1``.
        flags: ``(M,) uint8`` per-box flag bits (see :mod:`yolo2retina.target`).
        class_names: the K class names, index = label.
        image_ids: ``(N,) int64`` ids from the source (COCO ids) or ``0..N-1``.
        category_ids: original category id per label (COCO), or ``None``.
        annotation_ids: ``(M,) int64`` original annotation id per box (COCO ``id``), or
            ``None`` for formats without annotation ids.
        report: the :class:`LoadReport` of the reader.
    """

    paths: npt.NDArray[np.str_] = attrs.field(converter=_ro)
    image_hw_array: npt.NDArray[np.int64] = attrs.field(converter=_ro)
    offsets: npt.NDArray[np.int64] = attrs.field(converter=_ro)
    boxes: npt.NDArray[np.float32] = attrs.field(converter=_ro)
    labels: npt.NDArray[np.int64] = attrs.field(converter=_ro)
    flags: npt.NDArray[np.uint8] = attrs.field(converter=_ro)
    class_names: tuple[str, ...] = attrs.field(converter=_names)
    image_ids: npt.NDArray[np.int64] = attrs.field(converter=_ro)
    category_ids: tuple[int, ...] | None = None
    annotation_ids: npt.NDArray[np.int64] | None = attrs.field(default=None, converter=_ro_ids)
    report: LoadReport = attrs.field(factory=LoadReport)

    def __attrs_post_init__(self) -> None:
        n, m = self.paths.shape[0], self.boxes.shape[0]
        ok = (
            self.image_hw_array.shape == (n, 2)
            and self.offsets.shape == (n + 1,)
            and self.boxes.shape == (m, 4)
            and self.labels.shape == (m,)
            and self.flags.shape == (m,)
            and self.image_ids.shape == (n,)
            and (self.annotation_ids is None or self.annotation_ids.shape == (m,))
            and (n == 0 or (int(self.offsets[0]) == 0 and int(self.offsets[-1]) == m))
        )
        if not ok:
            raise DatasetError("inconsistent annotation arrays")
        if self.category_ids is not None and len(self.category_ids) != len(self.class_names):
            raise DatasetError("category_ids and class_names differ in length")
        if m and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.class_names)):
            raise DatasetError(f"labels must lie in 0..{len(self.class_names) - 1}")

    def __len__(self) -> int:
        return int(self.paths.shape[0])

    @property
    def num_boxes(self) -> int:
        """Total number of boxes M."""
        return int(self.boxes.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes K."""
        return len(self.class_names)

    def _check(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"image index {i} out of range for {n} images")
        return i % n

    def image_path(self, i: int) -> Path:
        """Absolute path of image ``i``."""
        return Path(str(self.paths[self._check(i)]))

    def image_hw(self, i: int) -> tuple[int, int]:
        """``(height, width)`` of image ``i`` after EXIF orientation."""
        h, w = self.image_hw_array[self._check(i)]
        return int(h), int(w)

    def box_slice(self, i: int) -> slice:
        """The slice of the flat box arrays that belongs to image ``i``."""
        i = self._check(i)
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def target(self, i: int) -> Target:
        """The :class:`Target` of image ``i`` (copies of the flat arrays)."""
        s = self.box_slice(i)
        flags = self.flags[s]
        return Target(
            self.boxes[s].copy(), self.labels[s].copy(), None, flags.copy() if flags.any() else None
        )

    def targets(self) -> Iterator[Target]:
        """Iterate over the targets of all images in order."""
        for i in range(len(self)):
            yield self.target(i)

    def boxes_per_image(self) -> npt.NDArray[np.int64]:
        """``(N,) int64`` number of boxes of each image."""
        return np.diff(self.offsets)

    def image_index(self) -> npt.NDArray[np.int64]:
        """``(M,) int64`` image index of each box."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.boxes_per_image())

    def subset(self, indices: Sequence[int] | npt.NDArray[np.integer]) -> Annotations:
        """A new :class:`Annotations` with only the given images, in the given order."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        counts = self.boxes_per_image()[idx]
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        if len(idx):
            starts = self.offsets[idx]
            box_idx = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
        else:
            box_idx = np.zeros(0, dtype=np.int64)
        return attrs.evolve(
            self,
            paths=self.paths[idx],
            image_hw_array=self.image_hw_array[idx],
            offsets=offsets,
            boxes=self.boxes[box_idx],
            labels=self.labels[box_idx],
            flags=self.flags[box_idx],
            image_ids=self.image_ids[idx],
            annotation_ids=None if self.annotation_ids is None else self.annotation_ids[box_idx],
        )


class AnnotationsBuilder:
    """Collects per-image arrays from a reader and packs them into :class:`Annotations` once."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.hws: list[tuple[int, int]] = []
        self.ids: list[int] = []
        self._boxes: list[npt.NDArray[np.float32]] = []
        self._labels: list[npt.NDArray[np.int64]] = []
        self._flags: list[npt.NDArray[np.uint8]] = []
        self._counts: list[int] = []

    def add(
        self,
        path: str | Path,
        image_hw: tuple[int, int],
        boxes: npt.ArrayLike,
        labels: npt.ArrayLike,
        flags: npt.ArrayLike | None = None,
        *,
        image_id: int | None = None,
    ) -> None:
        """Append one image with its ``(n, 4)`` XYXY boxes and ``(n,)`` labels.

        Boxes are checked in float32, the dtype they are stored in, so that every
        :meth:`Annotations.target` builds: a reader that lets a degenerate box through gets
        an error naming the image here rather than a nameless one during training.

        Raises:
            AnnotationError: a box is not finite with ``x1 < x2`` and ``y1 < y2`` in float32.
        """
        with np.errstate(over="ignore", invalid="ignore"):
            b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        ok = np.isfinite(b).all(axis=1) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        if not ok.all():
            j = int(np.flatnonzero(~ok)[0])
            raise AnnotationError(
                str(path),
                f"box {j} {b[j].tolist()} is not a valid XYXY box once stored as float32 "
                "(needs finite x1 < x2 and y1 < y2)",
            )
        lab = np.asarray(labels, dtype=np.int64).reshape(-1)
        f = (
            np.zeros(len(lab), np.uint8)
            if flags is None
            else np.asarray(flags, np.uint8).reshape(-1)
        )
        self.ids.append(len(self.paths) if image_id is None else int(image_id))
        self.paths.append(str(path))
        self.hws.append((int(image_hw[0]), int(image_hw[1])))
        self._boxes.append(b)
        self._labels.append(lab)
        self._flags.append(f)
        self._counts.append(len(lab))

    def add_images(
        self,
        paths: Sequence[str],
        image_hws: Sequence[tuple[int, int]],
        boxes: Sequence[npt.NDArray[np.float32]],
        labels: Sequence[npt.NDArray[np.int64]],
        *,
        image_ids: Sequence[int | None] | None = None,
    ) -> None:
        """Append many images at once: :meth:`add` for each, with one check for all boxes.

        Args:
            paths: the image files.
            image_hws: ``(height, width)`` of each.
            boxes: ``(n_i, 4) float32`` XYXY boxes of each image.
            labels: ``(n_i,) int64`` labels of each image.
            image_ids: each image's id (``None``: its position, as in :meth:`add`).

        Raises:
            AnnotationError: as :meth:`add`, naming the image of the first bad box.
        """
        counts = [len(lab) for lab in labels]
        if not (len(paths) == len(image_hws) == len(boxes) == len(labels)):
            raise ValueError("add_images: paths, image_hws, boxes and labels differ in length")
        b = (
            np.concatenate(boxes).astype(np.float32, copy=False).reshape(-1, 4)
            if boxes
            else np.zeros((0, 4), np.float32)
        )
        if len(b) != sum(counts):
            raise ValueError("add_images: boxes and labels differ in length")
        ok = np.isfinite(b).all(axis=1) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
        if not ok.all():
            first = int(np.flatnonzero(~ok)[0])
            i = int(np.searchsorted(np.cumsum(counts), first, side="right"))
            self.add(paths[i], image_hws[i], boxes[i], labels[i])  # raises, naming it
        base = len(self.paths)
        ids = image_ids if image_ids is not None else [None] * len(paths)
        self.ids.extend(base + k if v is None else int(v) for k, v in enumerate(ids))
        self.paths.extend(map(str, paths))
        self.hws.extend((int(h), int(w)) for h, w in image_hws)
        self._boxes.append(b)
        self._labels.append(
            np.concatenate(labels).astype(np.int64, copy=False) if labels else np.zeros(0, np.int64)
        )
        self._flags.append(np.zeros(len(b), np.uint8))
        self._counts.extend(counts)

    def build(
        self,
        class_names: Sequence[str],
        report: LoadReport | None = None,
        *,
        category_ids: Sequence[int] | None = None,
    ) -> Annotations:
        """Pack everything added so far."""
        offsets = np.zeros(len(self._counts) + 1, dtype=np.int64)
        np.cumsum(np.asarray(self._counts, dtype=np.int64), out=offsets[1:])
        report = report if report is not None else LoadReport()
        report.images = len(self.paths)
        report.boxes = int(offsets[-1])
        report.background_images = sum(1 for c in self._counts if c == 0)
        return Annotations(
            paths=np.asarray(self.paths, dtype=np.str_).reshape(-1),
            image_hw_array=np.asarray(self.hws, dtype=np.int64).reshape(-1, 2),
            offsets=offsets,
            boxes=np.concatenate(self._boxes) if self._boxes else np.zeros((0, 4), np.float32),
            labels=np.concatenate(self._labels) if self._labels else np.zeros(0, np.int64),
            flags=np.concatenate(self._flags) if self._flags else np.zeros(0, np.uint8),
            class_names=tuple(class_names),
            image_ids=np.asarray(self.ids, dtype=np.int64),
            category_ids=None if category_ids is None else tuple(int(c) for c in category_ids),
            report=report,
        )
