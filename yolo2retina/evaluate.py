"""Temporary shim: moved to :mod:`yolo2retina.coco_metric` (the metric),
:mod:`yolo2retina.confusion` (the confusion matrix) and :mod:`yolo2retina.evaluation`
(running a model, writing an evaluation folder)."""

from __future__ import annotations

from yolo2retina.coco_metric import AREA_RANGES as AREA_RANGES
from yolo2retina.coco_metric import IOU_THRESHOLDS as IOU_THRESHOLDS
from yolo2retina.coco_metric import MAX_DETS as MAX_DETS
from yolo2retina.coco_metric import RECALL_THRESHOLDS as RECALL_THRESHOLDS
from yolo2retina.coco_metric import ClassMetrics as ClassMetrics
from yolo2retina.coco_metric import Metrics as Metrics
from yolo2retina.coco_metric import coco_map as coco_map
from yolo2retina.confusion import confusion_matrix as confusion_matrix
from yolo2retina.evaluation import evaluate as evaluate
from yolo2retina.evaluation import predict_dataset as predict_dataset
from yolo2retina.evaluation import write_evaluation as write_evaluation

__all__ = [
    "AREA_RANGES",
    "IOU_THRESHOLDS",
    "MAX_DETS",
    "RECALL_THRESHOLDS",
    "ClassMetrics",
    "Metrics",
    "coco_map",
    "confusion_matrix",
    "evaluate",
    "predict_dataset",
    "write_evaluation",
]
