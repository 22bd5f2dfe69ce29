"""The format registry: adapters that read and write datasets, looked up by name.

Built-in adapters (``yolo``, ``voc``, ``coco``) are registered on first use.
Third-party adapters plug in through the entry-point group ``yolo2retina.formats``:
a package declares, in its ``pyproject.toml``::

    [project.entry-points."yolo2retina.formats"]
    labelme = "my_package.labelme:ADAPTER"

where ``ADAPTER`` is an object that satisfies :class:`FormatAdapter` (or a class or
function that returns one when called with no arguments). ``pip install`` of the
package is enough; nothing has to be imported by hand.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

from yolo2retina.annotations import Annotations
from yolo2retina.errors import DatasetError, FormatNotFoundError

__all__ = [
    "ENTRY_POINT_GROUP",
    "FormatAdapter",
    "ImageMode",
    "WriteReport",
    "detect_format",
    "get_format",
    "list_formats",
    "register_format",
    "reload_plugins",
    "unregister_format",
]

#: The entry-point group that third-party format plug-ins register under.
ENTRY_POINT_GROUP = "yolo2retina.formats"

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


_REGISTRY: dict[str, FormatAdapter] = {}
_BUILTINS = ("yolo", "voc", "coco")
_state = {"builtins": False, "plugins": False}


def _ensure_loaded() -> None:
    if not _state["builtins"]:
        _state["builtins"] = True
        from yolo2retina.formats import coco, voc, yolo

        for mod in (yolo, voc, coco):
            adapter = mod.ADAPTER
            if adapter.name not in _REGISTRY:
                _REGISTRY[adapter.name] = adapter
    if not _state["plugins"]:
        _state["plugins"] = True
        _load_plugins()


def _load_plugins() -> None:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            adapter = obj() if isinstance(obj, type) or not hasattr(obj, "read") else obj
            _check_adapter(adapter)
            if adapter.name in _REGISTRY:
                raise ValueError(f"format name '{adapter.name}' is already registered")
            _REGISTRY[adapter.name] = adapter
        except Exception as e:  # a broken plug-in must not break the library
            dist = ep.dist.name if ep.dist is not None else "unknown distribution"
            warnings.warn(
                f"yolo2retina: format plug-in '{ep.name}' = '{ep.value}' from {dist} "
                f"was not registered: {e}",
                RuntimeWarning,
                stacklevel=3,
            )


def _check_adapter(adapter: Any) -> None:
    missing = [
        a
        for a in ("name", "description", "detect", "splits", "read", "write")
        if not hasattr(adapter, a)
    ]
    if missing:
        raise TypeError(f"{adapter!r} is not a FormatAdapter: missing {', '.join(missing)}")
    if not isinstance(adapter.name, str) or not adapter.name:
        raise TypeError(f"{adapter!r}: 'name' must be a non-empty string")


def register_format(adapter: FormatAdapter) -> FormatAdapter:
    """Register a format adapter under ``adapter.name``; usable as a class decorator.

    Raises:
        ValueError: a format of that name is already registered.
        TypeError: ``adapter`` lacks a :class:`FormatAdapter` attribute.

    Example:
        >>> @register_format  # doctest: +SKIP
        ... class LabelMe: ...
    """
    _ensure_loaded()
    obj = adapter() if isinstance(adapter, type) else adapter
    _check_adapter(obj)
    if obj.name in _REGISTRY:
        raise ValueError(
            f"format '{obj.name}' is already registered ({_REGISTRY[obj.name]!r}); "
            "unregister_format() it first or choose another name"
        )
    _REGISTRY[obj.name] = obj
    return adapter


def unregister_format(name: str) -> None:
    """Remove a registered format (built-ins come back after :func:`reload_plugins`)."""
    _ensure_loaded()
    get_format(name)
    del _REGISTRY[name]


def reload_plugins() -> None:
    """Forget every registered format and scan built-ins and entry points again."""
    _REGISTRY.clear()
    _state["builtins"] = False
    _state["plugins"] = False
    _ensure_loaded()


def list_formats() -> list[str]:
    """Names of all registered formats, sorted."""
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_format(name: str) -> FormatAdapter:
    """The adapter registered as ``name``.

    Raises:
        FormatNotFoundError: unknown name; the message lists the known formats.
    """
    _ensure_loaded()
    key = name.lower()
    if key not in _REGISTRY:
        raise FormatNotFoundError(
            f"format '{name}' is not registered. Available formats: {', '.join(list_formats())}"
        )
    return _REGISTRY[key]


def detect_format(path: str | os.PathLike[str], *, option: str = "format=") -> str:
    """The name of the one registered format that recognises ``path``.

    A ``data.yaml`` or a folder of ``.txt`` label files is YOLO, ``.xml`` files are VOC,
    a ``.json`` file is COCO.

    Args:
        path: the dataset path.
        option: how errors name the way to choose a format: ``"format="`` in the library,
            the flag (``"--format"``, ``"--from"``) in the CLI.

    Raises:
        DatasetError: the path does not exist, no format recognises it, or several do
            (then pass ``format=`` explicitly).
    """
    _ensure_loaded()
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    found = []
    for name in sorted(_REGISTRY):
        try:
            if _REGISTRY[name].detect(p):
                found.append(name)
        except OSError:
            continue
    if len(found) == 1:
        return found[0]
    if not found:
        raise DatasetError(
            f"{p}: cannot tell the dataset format (expected a data.yaml or .txt labels for "
            f"YOLO, .xml files for VOC, a .json file for COCO); pass {option} one of "
            f"{', '.join(list_formats())}"
        )
    raise DatasetError(
        f"{p}: ambiguous dataset format: it looks like {' and '.join(found)}; "
        f"pass {option} one of {', '.join(found)}"
    )
