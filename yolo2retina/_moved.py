"""Old module paths of the 0.1 layout, kept importable for one release.

``import yolo2retina.evaluate`` (moved to :mod:`yolo2retina.evaluation` and friends) still
works: a meta-path finder answers for the old dotted name with a small stand-in module that
warns once (:class:`DeprecationWarning`) and looks every attribute up in the new modules.
The stand-in never replaces or changes the new modules, and nothing here imports them before
the old name is asked for, so ``import yolo2retina`` stays light.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence
from typing import Any

#: old dotted module name -> the modules that now hold its names, searched in order.
MOVED: dict[str, tuple[str, ...]] = {
    "yolo2retina.curves": ("yolo2retina.plots.curves",),
    "yolo2retina.datasets": ("yolo2retina.synthetic",),
    "yolo2retina.draw": ("yolo2retina.plots.boxes",),
    "yolo2retina.evaluate": (
        "yolo2retina.coco_metric",
        "yolo2retina.confusion",
        "yolo2retina.evaluation",
    ),
    "yolo2retina.export": ("yolo2retina.prediction_writers", "yolo2retina.predict_folder"),
    "yolo2retina.predict": (
        "yolo2retina.prediction",
        "yolo2retina.tiling",
        "yolo2retina.counts",
        "yolo2retina.predictor",
    ),
}


class _Loader(importlib.abc.Loader):
    def __init__(self, targets: Sequence[str]) -> None:
        self.targets = tuple(targets)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default: a fresh, empty module

    def exec_module(self, module: types.ModuleType) -> None:
        targets = [importlib.import_module(t) for t in self.targets]
        warnings.warn(
            f"{module.__name__} moved to {', '.join(self.targets)}; import from there "
            "(the old path goes in a later release)",
            DeprecationWarning,
            stacklevel=2,
        )

        def __getattr__(name: str) -> Any:
            for target in targets:
                if hasattr(target, name):
                    return getattr(target, name)
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")

        public = [n for t in targets for n in getattr(t, "__all__", ())]
        module.__dict__.update(
            __getattr__=__getattr__,
            __all__=sorted(set(public)),
            __doc__=f"Moved to {', '.join(self.targets)}.",
        )


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        targets = MOVED.get(fullname)
        if targets is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Loader(targets))


def install() -> None:
    """Put the finder on :data:`sys.meta_path` (once)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
