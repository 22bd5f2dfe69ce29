"""yolo2retina: from a YOLO / VOC / COCO export to a torchvision RetinaNet.

The data flows one way: a format reader gives :class:`Annotations` (flat arrays of
:class:`Target` boxes and labels), a :class:`DetectionDataset` turns them into torchvision
samples, :func:`build_retinanet` and :func:`fit` train a model, :func:`yolo2retina.evaluate.evaluate` scores it and
:class:`Predictor` runs it on new photos. (``evaluate``, ``predict`` and ``draw`` are
functions of the modules of the same names: ``from yolo2retina.predict import predict``.)

Example:
    >>> from yolo2retina import Target
    >>> Target.from_coco([[10, 20, 30, 40]], [0]).boxes.tolist()
    [[10.0, 20.0, 40.0, 60.0]]
"""

from __future__ import annotations

from yolo2retina._version import __version__
from yolo2retina.anchors import AnchorFit, fit_anchors
from yolo2retina.annotations import Annotations, LoadReport
from yolo2retina.dataset import CocoDataset, DetectionDataset, VocDataset, YoloDataset, collate
from yolo2retina.errors import DatasetError, Yolo2RetinaError
from yolo2retina.evaluate import Metrics, coco_map
from yolo2retina.formats import list_formats, load_annotations, register_format, write_annotations
from yolo2retina.model import build_retinanet, load_model
from yolo2retina.predict import Predictor
from yolo2retina.target import Target
from yolo2retina.train import TrainConfig, fit

__all__ = [
    "AnchorFit",
    "Annotations",
    "CocoDataset",
    "DatasetError",
    "DetectionDataset",
    "LoadReport",
    "Metrics",
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
    "fit",
    "fit_anchors",
    "list_formats",
    "load_annotations",
    "load_model",
    "register_format",
    "write_annotations",
]
