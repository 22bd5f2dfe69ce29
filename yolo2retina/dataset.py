"""A torch Dataset over loaded annotations, and the collate function for DataLoader."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from yolo2retina.annotations import Annotations, LoadReport
from yolo2retina.errors import ConfigError, ImageReadError
from yolo2retina.image import image_to_tensor, load_image
from yolo2retina.target import Target

__all__ = ["CocoDataset", "DetectionDataset", "Sample", "VocDataset", "YoloDataset", "collate"]

#: ``(image, target)`` as torchvision detection models and transforms v2 take them.
Sample = tuple[Any, dict[str, Any]]
Transforms = Callable[[Any, dict[str, Any]], tuple[Any, dict[str, Any]]]


class DetectionDataset(Dataset[Sample]):
    """Images and targets in torchvision's detection convention, over any :class:`Annotations`.

    Each sample is ``(image, target)``:

    * ``image``: ``tv_tensors.Image`` ``(3, H, W) float32`` in ``[0, 1]``, RGB, EXIF-corrected;
    * ``target["boxes"]``: ``tv_tensors.BoundingBoxes`` ``(N, 4)`` XYXY, ``canvas_size=(H, W)``;
    * ``target["labels"]``: ``(N,) int64`` in ``0..K-1`` (``label_offset..K-1+label_offset``
      with a ``label_offset``);
    * ``target["image_id"]``: ``int``, the index of the image in this dataset, or with
      ``image_id="source"`` the source's own id (the COCO ``images[].id``; ``0..N-1`` for
      formats without ids), which torchvision's reference ``CocoEvaluator`` and
      pycocotools' ``loadRes`` match against the ground-truth JSON;
    * ``target["source_image_id"]``: ``int``, the source's id, always present.

    Any ``torchvision.transforms.v2`` pipeline can be passed as ``transforms``.

    Labels: RetinaNet and FCOS take ``0..K-1`` with no background class (the default,
    ``label_offset=0``; build them with ``num_classes=K``). Faster R-CNN, Mask R-CNN,
    Keypoint R-CNN and SSD reserve label 0 for the background: pass ``label_offset=1``
    (labels ``1..K``), build the model with ``num_classes=K + 1``
    (:attr:`num_model_classes`), and subtract ``label_offset`` from predicted labels to get
    class indices back. Without the offset, class 0 trains as background and is never
    predicted.

    Args:
        annotations: loaded annotations (from any format reader).
        transforms: called as ``transforms(image, target)``.
        max_size: decode images so their longer side is at most this (boxes follow).
        include_ignored: keep crowd/difficult boxes in training targets (default: drop them).
        label_offset: added to every label in ``target["labels"]``: ``0`` (RetinaNet, FCOS)
            or ``1`` (models with a background class at 0).
        image_id: what ``target["image_id"]`` holds: ``"index"`` (the default) or
            ``"source"`` (the COCO id).

    Raises:
        ConfigError: ``label_offset`` is not ``0`` or ``1``, or ``image_id`` is neither
            ``"index"`` nor ``"source"``.
    """

    def __init__(
        self,
        annotations: Annotations,
        transforms: Transforms | None = None,
        *,
        max_size: int | None = None,
        include_ignored: bool = False,
        label_offset: int = 0,
        image_id: Literal["index", "source"] = "index",
    ) -> None:
        if image_id not in ("index", "source"):
            raise ConfigError(f"image_id must be 'index' or 'source', got {image_id!r}")
        if type(label_offset) is not int or label_offset not in (0, 1):
            raise ConfigError(
                f"label_offset must be 0 (RetinaNet, FCOS: labels 0..K-1) or 1 (Faster R-CNN, "
                f"Mask R-CNN, SSD: label 0 is the background), got {label_offset!r}"
            )
        self.annotations = annotations
        self.transforms = transforms
        self.max_size = max_size
        self.include_ignored = include_ignored
        self.label_offset = label_offset
        self.image_id = image_id

    @classmethod
    def from_path(
        cls,
        path: str | os.PathLike[str],
        *,
        format: str = "auto",
        split: str | None = None,
        transforms: Transforms | None = None,
        **kwargs: Any,
    ) -> DetectionDataset:
        """Load any registered format (YOLO, VOC, COCO, plug-ins) from a path.

        ``class_names``, ``strict``, ``cache`` and format options (``images_root=``...) go
        to the reader (:func:`~yolo2retina.formats.load_annotations`); ``max_size``,
        ``include_ignored``, ``label_offset`` and ``image_id`` to the dataset.
        """
        from yolo2retina.formats import load_annotations

        dataset_kw = {
            k: kwargs.pop(k)
            for k in ("max_size", "include_ignored", "label_offset", "image_id")
            if k in kwargs
        }
        return cls(
            load_annotations(path, format=format, split=split, **kwargs), transforms, **dataset_kw
        )

    # -- read-only views of the annotations (no image is decoded) -------------------

    def __len__(self) -> int:
        return len(self.annotations)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names, index = label."""
        return self.annotations.class_names

    @property
    def num_model_classes(self) -> int:
        """``num_classes`` for the torchvision model: ``K + label_offset``."""
        return len(self.class_names) + self.label_offset

    @property
    def num_boxes(self) -> int:
        """Total boxes in the split."""
        return self.annotations.num_boxes

    @property
    def report(self) -> LoadReport:
        """What the reader clipped, dropped or skipped."""
        return self.annotations.report

    def image_path(self, i: int) -> Path:
        """Path of image ``i``."""
        return self.annotations.image_path(i)

    def image_hw(self, i: int) -> tuple[int, int]:
        """``(height, width)`` of image ``i`` after EXIF orientation (from the header)."""
        return self.annotations.image_hw(i)

    def target(self, i: int) -> Target:
        """The :class:`Target` of image ``i``, in the original image frame."""
        return self.annotations.target(i)

    # -- samples -----------------------------------------------------------------------

    def __getitem__(self, i: int) -> Sample:
        path = self.annotations.image_path(i)
        h, w = self.annotations.image_hw(i)
        img = load_image(path, max_size=self.max_size)
        target = self.annotations.target(i)
        if not self.include_ignored and target.flags is not None:
            target = target.select(~target.ignore_mask())
        boxes = target.boxes
        dw, dh = img.size
        if (dh, dw) != (h, w):
            if self.max_size is None:
                raise ImageReadError(
                    f"{path}: decoded size {dw}x{dh} differs from header size {w}x{h}"
                )
            boxes = boxes * np.array([dw / w, dh / h, dw / w, dh / h], dtype=np.float32)
        image = image_to_tensor(img)
        source_id = int(self.annotations.image_ids[self.annotations._check(i)])
        out = {
            "boxes": tv_tensors.BoundingBoxes(
                torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)),
                format=tv_tensors.BoundingBoxFormat.XYXY,
                canvas_size=(dh, dw),
            ),
            "labels": torch.from_numpy(target.labels + self.label_offset),
            "image_id": int(i) if self.image_id == "index" else source_id,
            "source_image_id": source_id,
        }
        if self.transforms is not None:
            return self.transforms(image, out)
        return image, out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} images, {self.num_boxes} boxes, "
            f"classes={list(self.class_names)})"
        )


class YoloDataset(DetectionDataset):
    """A :class:`DetectionDataset` over a YOLO export.

    Args:
        path: an Ultralytics ``data.yaml`` or a folder (see :func:`~yolo2retina.formats.yolo.read_yolo`).
        split: ``"train"``, ``"val"`` or ``"test"`` (``valid`` and ``validation`` are
            aliases of ``val``); ``None`` (the default of every dataset class): ``train``
            when the source names splits, else the whole folder.
        transforms: a ``torchvision.transforms.v2`` pipeline or any ``f(image, target)``.
        class_names: override the class names.
        strict: turn clips and drops into errors.
        max_size: decode images so their longer side is at most this.
        label_offset: ``1`` for models whose label 0 is the background (Faster R-CNN,
            SSD); see :class:`DetectionDataset`.
        image_id: ``"source"`` puts the COCO image id in ``target["image_id"]``.
        cache: use the load cache (:mod:`~yolo2retina.formats.cache`); ``False`` neither
            reads nor writes it.

    Example:
        >>> ds = YoloDataset("data.yaml", split="val")  # doctest: +SKIP
        >>> image, target = ds[0]  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        split: str | None = None,
        transforms: Transforms | None = None,
        *,
        class_names: Sequence[str] | None = None,
        strict: bool = False,
        max_size: int | None = None,
        label_offset: int = 0,
        image_id: Literal["index", "source"] = "index",
        cache: bool = True,
    ) -> None:
        from yolo2retina.formats.yolo import read_yolo

        super().__init__(
            read_yolo(path, split, class_names=class_names, strict=strict, cache=cache),
            transforms,
            max_size=max_size,
            label_offset=label_offset,
            image_id=image_id,
        )


def collate(batch: Sequence[Sample]) -> tuple[list[Any], list[dict[str, Any]]]:
    """DataLoader ``collate_fn``: a list of images and a list of targets.

    torchvision detection models take images of different sizes, so images are not
    stacked.
    """
    images = [s[0] for s in batch]
    targets = [s[1] for s in batch]
    return images, targets


class VocDataset(DetectionDataset):
    """A :class:`DetectionDataset` over a Pascal VOC dataset.

    Difficult boxes are flagged and left out of training targets unless
    ``include_ignored=True``.

    Args:
        path: the VOC root (``Annotations/`` + ``JPEGImages/`` + ``ImageSets/Main``) or a
            flat folder of ``.xml`` files beside their images
            (see :func:`~yolo2retina.formats.voc.read_voc`).
        split: a name in ``ImageSets/Main`` or a split sub-folder (``val``, ``valid`` and
            ``validation`` find each other); ``None`` (the default) for every file.
        transforms: a ``torchvision.transforms.v2`` pipeline or any ``f(image, target)``.
        class_names: fix the class order (default: ``classes.txt`` or sorted names).
        strict: turn clips and drops into errors.
        max_size: decode images so their longer side is at most this.
        include_ignored: keep difficult boxes in training targets.
        label_offset: ``1`` for models whose label 0 is the background (Faster R-CNN,
            SSD); see :class:`DetectionDataset`.
        image_id: ``"source"`` puts the COCO image id in ``target["image_id"]``.
        images_root: the folder ``<filename>`` is relative to, for annotations kept apart
            from their images (default: ``JPEGImages/`` or the ``.xml`` files' folder).
        allow_outside_root: accept ``<filename>`` values that leave that folder.

    Example:
        >>> ds = VocDataset("VOCdevkit/VOC2012", split="val")  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        split: str | None = None,
        transforms: Transforms | None = None,
        *,
        class_names: Sequence[str] | None = None,
        strict: bool = False,
        max_size: int | None = None,
        include_ignored: bool = False,
        label_offset: int = 0,
        image_id: Literal["index", "source"] = "index",
        images_root: str | os.PathLike[str] | None = None,
        allow_outside_root: bool = False,
    ) -> None:
        from yolo2retina.formats.voc import read_voc

        annotations = read_voc(
            path,
            split,
            class_names=class_names,
            strict=strict,
            images_root=images_root,
            allow_outside_root=allow_outside_root,
        )
        super().__init__(
            annotations,
            transforms,
            max_size=max_size,
            include_ignored=include_ignored,
            label_offset=label_offset,
            image_id=image_id,
        )


class CocoDataset(DetectionDataset):
    """A :class:`DetectionDataset` over a COCO instances JSON.

    Crowd boxes are flagged and left out of training targets unless
    ``include_ignored=True``; ``annotations.category_ids`` keeps the original ids.

    Args:
        path: a ``.json`` file or a folder with one JSON per split
            (see :func:`~yolo2retina.formats.coco.read_coco`).
        split: the split to find in a folder (``val``, ``valid`` and ``validation`` find
            each other); ``None`` (the default) for a single JSON.
        transforms: a ``torchvision.transforms.v2`` pipeline or any ``f(image, target)``.
        class_names: fix the class order by category name.
        strict: turn clips and drops into errors.
        images_root: folder ``file_name`` is relative to (default: the JSON's folder).
        max_size: decode images so their longer side is at most this.
        include_ignored: keep crowd boxes in training targets.
        label_offset: ``1`` for models whose label 0 is the background (Faster R-CNN,
            SSD); see :class:`DetectionDataset`.
        image_id: ``"source"`` puts the COCO image id in ``target["image_id"]``.
        cache: use the load cache (:mod:`~yolo2retina.formats.cache`); ``False`` neither
            reads nor writes it.

    Example:
        >>> ds = CocoDataset("coco/annotations/instances_val2017.json",
        ...                  images_root="coco/val2017")  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        split: str | None = None,
        transforms: Transforms | None = None,
        *,
        class_names: Sequence[str] | None = None,
        strict: bool = False,
        images_root: str | os.PathLike[str] | None = None,
        max_size: int | None = None,
        include_ignored: bool = False,
        label_offset: int = 0,
        image_id: Literal["index", "source"] = "index",
        cache: bool = True,
    ) -> None:
        from yolo2retina.formats.coco import read_coco

        super().__init__(
            read_coco(
                path,
                split,
                class_names=class_names,
                strict=strict,
                images_root=images_root,
                cache=cache,
            ),
            transforms,
            max_size=max_size,
            include_ignored=include_ignored,
            label_offset=label_offset,
            image_id=image_id,
        )
