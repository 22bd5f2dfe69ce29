"""Temporary shim: moved to yolo2retina.tiling, yolo2retina.prediction, yolo2retina.counts
and yolo2retina.predictor (issue 12); the lead replaces it with the old-path alias."""

from __future__ import annotations

from yolo2retina.counts import count_labels as count_labels
from yolo2retina.counts import counts_table as counts_table
from yolo2retina.prediction import DetectionModel as DetectionModel
from yolo2retina.prediction import ImageInput as ImageInput
from yolo2retina.prediction import ImagePrediction as ImagePrediction
from yolo2retina.prediction import iter_predict as iter_predict
from yolo2retina.prediction import predict as predict
from yolo2retina.predictor import Predictor as Predictor
from yolo2retina.tiling import CONTAIN_FRACTION as CONTAIN_FRACTION
from yolo2retina.tiling import COVER_FRACTION as COVER_FRACTION
from yolo2retina.tiling import EDGE_MARGIN_FRACTION as EDGE_MARGIN_FRACTION
from yolo2retina.tiling import MERGE_IOU as MERGE_IOU
from yolo2retina.tiling import MIN_EDGE_MARGIN_PX as MIN_EDGE_MARGIN_PX
from yolo2retina.tiling import TileArg as TileArg
from yolo2retina.tiling import merge_tile_detections as merge_tile_detections
from yolo2retina.tiling import resolve_tile as resolve_tile
from yolo2retina.tiling import tile_windows as tile_windows

__all__ = [
    "ImagePrediction",
    "Predictor",
    "count_labels",
    "counts_table",
    "iter_predict",
    "merge_tile_detections",
    "predict",
    "resolve_tile",
    "tile_windows",
]
