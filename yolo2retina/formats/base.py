"""What a dataset format provides: the adapter protocol and the values it passes around.

Adapters import this module (never :mod:`~yolo2retina.formats.registry`, which imports the
built-in adapters to register them), so format modules and the registry form no cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

from yolo2retina.annotations import Annotations

__all__ = ["FormatAdapter", "ImageMode", "WriteReport"]

#: How a writer puts images into the output dataset.
ImageMode = Literal["copy", "symlink", "hardlink"]


@attrs.define
class WriteReport:
    """What a writer wrote, and what the target format could not hold.

    Attributes:
        destination: the output folder.
        format: the format written.
        images: images written (all splits).
        boxes: boxes written (all splits).
        files: every annotation file written.
        lost: one line per kind of information the format cannot hold
            (e.g. ``"3 crowd flags (YOLO has no crowd marker; written as ordinary boxes)"``).
        remarks: what else the writer decided, for the user to know (e.g. a single split
            also listed as ``val``).
    """

    destination: str
    format: str
    images: int = 0
    boxes: int = 0
    files: list[str] = attrs.field(factory=list)
    lost: list[str] = attrs.field(factory=list)
    remarks: list[str] = attrs.field(factory=list)

    def __str__(self) -> str:
        lines = [
            f"Wrote {self.format} dataset to {self.destination}: "
            f"{self.images} images, {self.boxes} boxes, {len(self.files)} annotation files"
        ]
        lines += [f"  lost: {line}" for line in self.lost]
        lines += [f"  note: {line}" for line in self.remarks]
        return "\n".join(lines)


@runtime_checkable
class FormatAdapter(Protocol):
    """What a dataset format provides. Adapters parse and write annotations only.

    They never decode pixels: image sizes come from
    :func:`yolo2retina.image.read_image_hw`, which reads headers.

    Attributes:
        name: the registry name, lower case (``"coco"``).
        description: one line shown by :func:`list_formats` users.
    """

    name: str
    description: str

    def detect(self, path: Path) -> bool:
        """Whether ``path`` looks like a dataset of this format (cheap: no parsing)."""
        ...

    def splits(self, path: Path) -> tuple[str, ...]:
        """The split names found at ``path``; ``()`` when ``path`` holds a single split."""
        ...

    def read(
        self,
        path: Path,
        split: str | None = None,
        *,
        class_names: Sequence[str] | None = None,
        strict: bool = False,
        **kwargs: Any,
    ) -> Annotations:
        """Load one split of the dataset at ``path``."""
        ...

    def write(
        self,
        splits: Mapping[str, Annotations],
        dst: Path,
        *,
        images: ImageMode = "copy",
        overwrite: bool = False,
        progress: bool = False,
    ) -> WriteReport:
        """Write one or more named splits into the folder ``dst``."""
        ...
