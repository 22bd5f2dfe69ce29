"""yolo2retina: from a YOLO / VOC / COCO export to a torchvision RetinaNet."""

from __future__ import annotations

from yolo2retina._version import __version__
from yolo2retina.annotations import Annotations, LoadReport
from yolo2retina.dataset import DetectionDataset, YoloDataset, collate
from yolo2retina.errors import DatasetError, Yolo2RetinaError
from yolo2retina.target import Target

__all__ = [
    "Annotations",
    "DatasetError",
    "DetectionDataset",
    "LoadReport",
    "Target",
    "Yolo2RetinaError",
    "YoloDataset",
    "__version__",
    "collate",
]
