"""Fitted against default anchors on the real varroa boards: two bounded CPU training runs.

Run from the repository root (needs ../shared/data, not part of the package):

    python examples/varroa_anchor_training.py --epochs 4 --min-size 800

Both runs use the same backbone, seed, data order, optimiser and schedule; only the anchors
differ (torchvision's 32-512 px against ``fit_anchors`` on the training split). Each prints
its anchor coverage, then both runs' val losses and mAP are compared at the end. On two CPU
cores an epoch of the 34 training tiles at 800 px takes a few minutes with resnet18_fpn.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from yolo2retina.augment import augmentation
from yolo2retina.dataset import YoloDataset
from yolo2retina.model import build_args, build_retinanet
from yolo2retina.train import TrainConfig, fit

DEFAULT_YAML = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "varroa-sticky-board-yolo"
).resolve() / "data.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_YAML, help="varroa data.yaml")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run")
    parser.add_argument("--min-size", type=int, default=800, help="the model's min_size")
    parser.add_argument("--backbone", default="resnet18_fpn", help="backbone of both runs")
    parser.add_argument("--batch-size", type=int, default=2, help="images per step")
    parser.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=Path("runs/varroa-anchors"), help="run folder")
    parser.add_argument(
        "--anchors",
        nargs="+",
        choices=("default", "auto"),
        default=["default", "auto"],
        help="which runs to do (run them in two processes to use two machines or cores)",
    )
    args = parser.parse_args()
    if not args.data.is_file():
        parser.error(f"{args.data}: not found")
    torch.set_num_threads(args.threads)

    # flips and quarter turns (boards have no up); they keep the mites' size and the scale
    train = YoloDataset(args.data, "train", augmentation("light"))
    val = YoloDataset(args.data, "val")
    results = {}
    for anchors in args.anchors:
        torch.manual_seed(0)
        model = build_retinanet(
            num_classes=len(train.class_names),
            backbone=args.backbone,
            min_size=args.min_size,
            max_size=max(1333, args.min_size),
            anchor_sizes="auto" if anchors == "auto" else None,
            dataset=train,
        )
        config = TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            optimizer="adamw",
            lr=args.lr,
            weight_decay=0.05,
            warmup_iters=30,
            num_workers=0,
            seed=0,
            out_dir=str(args.out / anchors),
            augment="light",  # recorded in the checkpoints; the transforms are set above
            overwrite=True,  # a second run of the example replaces its own earlier runs
        )
        print(f"\n=== {anchors} anchors: {model.anchor_generator.sizes}")
        start = time.perf_counter()
        result = fit(model, train, val, config, model_args=build_args(model))
        results[anchors] = (result, time.perf_counter() - start)

    print("\nanchors   val_loss  (cls / box)         map50   map     wall")
    for anchors, (result, wall) in results.items():
        f = result.final
        print(
            f"{anchors:8s}  {f.get('val_loss', float('nan')):8.4f}  "
            f"({f.get('val_classification', float('nan')):.4f} / "
            f"{f.get('val_bbox_regression', float('nan')):.4f})  "
            f"{f.get('map50', float('nan')):6.3f}  {f.get('map', float('nan')):6.3f}  {wall:5.0f}s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
