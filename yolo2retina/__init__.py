"""yolo2retina: from a YOLO / VOC / COCO export to a torchvision RetinaNet.

The data flows one way: a format reader gives :class:`Annotations` (flat arrays of
:class:`Target` boxes and labels), a :class:`DetectionDataset` turns them into torchvision
samples, :func:`build_retinanet` and :func:`fit` train a model, :func:`evaluate` scores it and
:class:`Predictor` (or :func:`predict`) runs it on new photos; :func:`draw` shows the boxes.
Where each feature lives: ``docs/architecture.md``.

``import yolo2retina`` is light: the names below are loaded on first use, and torch and
torchvision only load with a dataset, a model, training or prediction
(:class:`DetectionDataset`, :func:`build_retinanet`, :func:`fit`, :class:`Predictor`, ...).
Reading, writing, checking and scoring annotations (:func:`load_annotations`,
:func:`coco_map`, :mod:`yolo2retina.formats`, ...) never imports torch.

Example:
    >>> from yolo2retina import Target
    >>> Target.from_coco([[10, 20, 30, 40]], [0]).boxes.tolist()
    [[10.0, 20.0, 40.0, 60.0]]
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from yolo2retina import _moved
from yolo2retina._version import __version__

_moved.install()  # old module paths of 0.1 (yolo2retina.evaluate, ...) still import, with a warning

if TYPE_CHECKING:  # what mypy and IDEs see; at run time __getattr__ loads these on first use
    from yolo2retina.anchors import AnchorFit, fit_anchors
    from yolo2retina.annotations import Annotations, LoadReport
    from yolo2retina.coco_metric import Metrics, coco_map
    from yolo2retina.dataset import (
        CocoDataset,
        DetectionDataset,
        VocDataset,
        YoloDataset,
        collate,
    )
    from yolo2retina.errors import (
        AnnotationError,
        ConfigError,
        DatasetError,
        FormatNotFoundError,
        ImageReadError,
        NonFiniteLossError,
        Yolo2RetinaError,
    )
    from yolo2retina.evaluation import evaluate
    from yolo2retina.formats import (
        list_formats,
        load_annotations,
        register_format,
        write_annotations,
    )
    from yolo2retina.model import build_retinanet, load_model
    from yolo2retina.plots import draw
    from yolo2retina.prediction import predict
    from yolo2retina.predictor import Predictor
    from yolo2retina.target import Target
    from yolo2retina.train import TrainConfig, fit

__all__ = [
    "AnchorFit",
    "AnnotationError",
    "Annotations",
    "CocoDataset",
    "ConfigError",
    "DatasetError",
    "DetectionDataset",
    "FormatNotFoundError",
    "ImageReadError",
    "LoadReport",
    "Metrics",
    "NonFiniteLossError",
    "Predictor",
    "Target",
    "TrainConfig",
    "VocDataset",
    "Yolo2RetinaError",
    "YoloDataset",
    "__version__",
    "build_retinanet",
    "coco_map",
    "collate",
    "draw",
    "evaluate",
    "fit",
    "fit_anchors",
    "list_formats",
    "load_annotations",
    "load_model",
    "predict",
    "register_format",
    "write_annotations",
]

#: The module each lazily loaded public name comes from. The modules of the first group
#: need only NumPy, Pillow and the like; those of the second import torch and torchvision.
_LAZY: dict[str, str] = {
    "AnchorFit": "yolo2retina.anchors",
    "fit_anchors": "yolo2retina.anchors",
    "Annotations": "yolo2retina.annotations",
    "LoadReport": "yolo2retina.annotations",
    "AnnotationError": "yolo2retina.errors",
    "ConfigError": "yolo2retina.errors",
    "DatasetError": "yolo2retina.errors",
    "FormatNotFoundError": "yolo2retina.errors",
    "ImageReadError": "yolo2retina.errors",
    "NonFiniteLossError": "yolo2retina.errors",
    "Yolo2RetinaError": "yolo2retina.errors",
    "Metrics": "yolo2retina.coco_metric",
    "coco_map": "yolo2retina.coco_metric",
    "draw": "yolo2retina.plots",
    "list_formats": "yolo2retina.formats",
    "load_annotations": "yolo2retina.formats",
    "register_format": "yolo2retina.formats",
    "write_annotations": "yolo2retina.formats",
    "Target": "yolo2retina.target",
    # torch and torchvision from here on
    "CocoDataset": "yolo2retina.dataset",
    "DetectionDataset": "yolo2retina.dataset",
    "VocDataset": "yolo2retina.dataset",
    "YoloDataset": "yolo2retina.dataset",
    "collate": "yolo2retina.dataset",
    "build_retinanet": "yolo2retina.model",
    "load_model": "yolo2retina.model",
    "Predictor": "yolo2retina.predictor",
    "predict": "yolo2retina.prediction",
    "evaluate": "yolo2retina.evaluation",
    "TrainConfig": "yolo2retina.train",
    "fit": "yolo2retina.train",
}


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (PEP 562), then keep it here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    """The module's attributes, including the public names not loaded yet."""
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """The package module: importing a moved 0.1 module (``yolo2retina.evaluate``) must not
    replace the function of the same name here, which the import system would otherwise do
    by setting the submodule as an attribute of its parent."""

    def __setattr__(self, name: str, value: Any) -> None:
        moved = isinstance(value, types.ModuleType) and value.__name__ in _moved.MOVED
        if moved and name in _LAZY:
            return  # `from yolo2retina import evaluate` stays the function
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
