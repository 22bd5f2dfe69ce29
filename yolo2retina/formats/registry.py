"""The format registry: adapters that read and write datasets, looked up by name.

Built-in adapters (``yolo``, ``voc``, ``coco``) are registered when this module is
imported; plug-ins are loaded on the first lookup.
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
from pathlib import Path
from typing import Any

from yolo2retina.errors import DatasetError, FormatNotFoundError
from yolo2retina.formats.base import FormatAdapter as FormatAdapter
from yolo2retina.formats.base import ImageMode as ImageMode
from yolo2retina.formats.base import WriteReport as WriteReport
from yolo2retina.formats.coco import ADAPTER as _COCO
from yolo2retina.formats.voc import ADAPTER as _VOC
from yolo2retina.formats.yolo import ADAPTER as _YOLO

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

#: The formats that ship with the package, registered when this module is imported.
_BUILTINS: tuple[FormatAdapter, ...] = (_YOLO, _VOC, _COCO)

_REGISTRY: dict[str, FormatAdapter] = {a.name: a for a in _BUILTINS}
_plugins = {"loaded": False}


def _ensure_plugins() -> None:
    """Load the entry-point plug-ins once, on the first lookup (importing them can be slow)."""
    if not _plugins["loaded"]:
        _plugins["loaded"] = True
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
    _ensure_plugins()
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
    _ensure_plugins()
    get_format(name)
    del _REGISTRY[name]


def reload_plugins() -> None:
    """Forget every registered format and scan built-ins and entry points again."""
    _REGISTRY.clear()
    _REGISTRY.update((a.name, a) for a in _BUILTINS)
    _plugins["loaded"] = False
    _ensure_plugins()


def list_formats() -> list[str]:
    """Names of all registered formats, sorted."""
    _ensure_plugins()
    return sorted(_REGISTRY)


def get_format(name: str) -> FormatAdapter:
    """The adapter registered as ``name``.

    Raises:
        FormatNotFoundError: unknown name; the message lists the known formats.
    """
    _ensure_plugins()
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
    _ensure_plugins()
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
