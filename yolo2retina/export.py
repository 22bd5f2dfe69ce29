"""Temporary shim: moved to yolo2retina.prediction_writers and yolo2retina.predict_folder
(issue 12); the lead replaces it with the old-path alias."""

from __future__ import annotations

from yolo2retina.predict_folder import PredictRun as PredictRun
from yolo2retina.predict_folder import counts_line as counts_line
from yolo2retina.predict_folder import predict_to_folder as predict_to_folder
from yolo2retina.prediction_writers import (
    predictions_to_annotations as predictions_to_annotations,
)
from yolo2retina.prediction_writers import write_counts_csv as write_counts_csv
from yolo2retina.prediction_writers import write_predictions_coco as write_predictions_coco
from yolo2retina.prediction_writers import write_predictions_voc as write_predictions_voc
from yolo2retina.prediction_writers import write_yolo_txt as write_yolo_txt
from yolo2retina.prediction_writers import yolo_txt_lines as yolo_txt_lines

__all__ = [
    "PredictRun",
    "counts_line",
    "predict_to_folder",
    "predictions_to_annotations",
    "write_counts_csv",
    "write_predictions_coco",
    "write_predictions_voc",
    "write_yolo_txt",
    "yolo_txt_lines",
]
