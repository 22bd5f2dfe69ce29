"""The YOLOv8n row of bench/real_accuracy.py: Ultralytics YOLOv8n trained from its yaml
under the same CPU budget, scored with yolo2retina's ``coco_map`` on the same val split.

Optional: it needs ``ultralytics`` (AGPL; installed only in a bench venv, never a
dependency), and runs on a copy of the data, because Ultralytics writes ``labels/*.cache``
beside the labels.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: The recipe name of this row.
YOLO = "yolov8n"


def run_yolov8n(
    data_yaml: Path, work: Path, args: argparse.Namespace, say: Callable[[str], None]
) -> dict[str, Any]:
    """YOLOv8n from its yaml under the same budget, scored with our coco_map on our val split.

    Raises:
        ImportError: ultralytics is not installed.
    """
    from yolo2retina.train_loop import recall_at

    img_size = args.img_size or 1024
    budget_s = args.minutes * 60.0
    last, epochs, wall = _train_yolo(data_yaml, work, img_size, args)
    say(f"trained {epochs} epochs in {wall / 60:.1f} min (final validation included); {last}")
    metrics = _score_yolo(data_yaml, last, img_size, args)
    final = {
        "epoch": epochs,
        "train_seconds": round(wall, 1),
        "budget_fraction": round(wall / budget_s, 3),
        "map50": float(metrics.map50),
        "map": float(metrics.map),
        "recall50": recall_at(metrics, 0.5),
        "mar100": float(metrics.mar_100),
        "val_loss": None,
        "train_loss": None,
    }
    return {
        "description": "Ultralytics YOLOv8n from yolov8n.yaml, its default augmentation",
        "system": "ultralytics YOLOv8n",
        "img_size": img_size,
        "settings": {"batch_size": args.yolo_batch, "time_hours": budget_s / 3600.0},
        "hflip_only": False,
        "anchor_sizes": None,
        "seconds_per_step": None,
        "over_budget": wall > budget_s,
        "epochs": epochs,
        "train_seconds": round(wall, 1),
        "checkpoints": [final],
        "final": final,
    }


def _train_yolo(
    data_yaml: Path, work: Path, img_size: int, args: argparse.Namespace
) -> tuple[Path, int, float]:
    """Train YOLOv8n from random weights for the budget: ``(last.pt, epochs, wall seconds)``."""
    from ultralytics import YOLO as UltralyticsYOLO  # type: ignore[import-not-found,unused-ignore]

    model = UltralyticsYOLO("yolov8n.yaml")  # the architecture only: random weights
    t0 = time.perf_counter()
    model.train(
        data=str(data_yaml),
        epochs=10_000,  # `time` overrides it: Ultralytics fits its epochs to the budget
        time=args.minutes / 60.0,
        imgsz=img_size,
        batch=args.yolo_batch,
        device=args.device,
        workers=args.workers,
        seed=args.seed,
        project=str(work / YOLO),
        name="train",
        exist_ok=True,
        pretrained=False,
        amp=False,
        plots=False,
        val=False,
        verbose=False,
    )
    wall = time.perf_counter() - t0
    trainer = model.trainer
    return Path(trainer.last), int(getattr(trainer, "epoch", -1)) + 1, wall


def _score_yolo(data_yaml: Path, last: Path, img_size: int, args: argparse.Namespace) -> Any:
    """coco_map of the YOLOv8n checkpoint ``last`` on our val split (all detections)."""
    from ultralytics import YOLO as UltralyticsYOLO  # type: ignore[import-not-found,unused-ignore]

    from yolo2retina.coco_metric import coco_map
    from yolo2retina.dataset import DetectionDataset
    from yolo2retina.target import Target

    val = DetectionDataset.from_path(data_yaml, split="val")
    scorer = UltralyticsYOLO(str(last))
    preds = []
    for i in range(len(val)):
        res = scorer.predict(
            str(val.image_path(i)),
            imgsz=img_size,
            conf=0.001,
            iou=0.7,
            max_det=300,
            device=args.device,
            verbose=False,
        )[0]
        boxes = res.boxes
        preds.append(
            Target(
                boxes.xyxy.cpu().numpy().astype(np.float32),
                boxes.cls.cpu().numpy().astype(np.int64),
                boxes.conf.cpu().numpy().astype(np.float32),
            )
        )
    return coco_map(val.annotations, preds)
