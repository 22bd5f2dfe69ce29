"""The bee lab's notebook, end to end, on the real varroa sticky-board export.

Load the YOLOv8 export, look at a few samples with their boxes, split 8:1:1, fit anchors,
fine-tune RetinaNet, evaluate, and count mites on the unlabelled phone photos.

    python examples/varroa_from_yolov8.py                  # about an hour on 2 CPU cores
    python examples/varroa_from_yolov8.py --fast           # a tiny smoke run (CI)
    python examples/varroa_from_yolov8.py --weights coco_retinanet.pth --device cuda

Run it from the repository root; the data lives in ../shared/data (see its README).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from yolo2retina import (
    DetectionDataset,
    Predictor,
    TrainConfig,
    YoloDataset,
    build_retinanet,
    fit,
    fit_anchors,
)
from yolo2retina.augment import augmentation, set_train_resize
from yolo2retina.evaluation import evaluate
from yolo2retina.model import build_args
from yolo2retina.plots import draw
from yolo2retina.split import split_dataset

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "varroa-sticky-board-yolo"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA / "data.yaml", help="the YOLOv8 data.yaml")
    p.add_argument(
        "--photos", type=Path, default=DATA / "unlabelled-photos", help="photos to count"
    )
    p.add_argument("--out", type=Path, default=Path("runs/varroa-example"), help="output folder")
    p.add_argument("--img-size", type=int, default=1024, help="model input size (tiles are 1024)")
    p.add_argument("--backbone", default="resnet18_fpn", help="RetinaNet backbone")
    p.add_argument("--weights", default=None, help="pretrained checkpoint / state dict, or DEFAULT")
    p.add_argument("--epochs", type=int, default=30, help="training epochs")
    p.add_argument("--device", default="auto", help="auto, cuda, mps or cpu")
    p.add_argument("--fast", action="store_true", help="tiny smoke run: 256 px, 1 epoch, 4 images")
    return p


def main(args: argparse.Namespace) -> int:
    if not args.data.is_file():
        print(f"{args.data} not found (the real data lives in ../shared/data)", file=sys.stderr)
        return 1
    out: Path = args.out
    if args.fast:
        args.img_size, args.epochs = 256, 1

    # 1. Load the YOLOv8 export. The yaml's `path` points at the labeller's machine; the
    #    reader finds dataset_1/ beside the yaml and says so in the report.
    full = YoloDataset(args.data, split="train")
    print(full.report)

    # 2. Look at a few samples with their boxes drawn.
    for i in range(2):
        draw(full.image_path(i), full.target(i), full.class_names, out / "samples" / f"{i}.png")
    print(f"drew 2 samples into {out / 'samples'}")

    # 3. Split every labelled image 8:1:1 (deterministic; no file is moved).
    split = split_dataset(args.data, out / "split", ratios=(0.8, 0.1, 0.1), seed=0, overwrite=True)
    print(split)
    train = YoloDataset(split.data_yaml, split="train")
    val = YoloDataset(split.data_yaml, split="val")
    test = YoloDataset(split.data_yaml, split="test")
    if args.fast:
        train = DetectionDataset(train.annotations.subset(range(4)))
        val = DetectionDataset(val.annotations.subset(range(2)))
        test = DetectionDataset(test.annotations.subset(range(2)))

    # 4. Augment the training tiles: flips, quarter turns (boards have no up), scale and
    #    colour jitter, and crops that keep the boxes they cut (docs/augmentation.md).
    aug = augmentation("default", img_size=args.img_size)
    train.transforms = aug

    # 5. Fit anchors to the mites as the model will see them after its own resize.
    anchors = fit_anchors(train, min_size=args.img_size, max_size=args.img_size)
    print(anchors)

    # 6. Fine-tune RetinaNet (weights=None trains from scratch; pass a COCO checkpoint to
    #    fine-tune: everything but the class logits loads). The augmentation sets the scale,
    #    so the model takes the training images as they come (validation still resizes).
    model = build_retinanet(
        num_classes=len(train.class_names),
        backbone=args.backbone,
        weights=args.weights,
        min_size=args.img_size,
        max_size=args.img_size,
        anchor_sizes=anchors.sizes,
        aspect_ratios=anchors.aspect_ratios,
    )
    if aug.sets_scale:
        set_train_resize(model, False)
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=2,
        optimizer="adamw",
        lr=1e-3,
        weight_decay=0.05,
        warmup_iters=0 if args.fast else 50,
        num_workers=0 if args.fast else 2,
        device=args.device,
        out_dir=str(out / "train"),
        augment="default",  # recorded in the checkpoint; the transforms are set above
        overwrite=True,  # a second run of the example replaces its own earlier run
    )
    result = fit(model, train, val, config, model_args=build_args(model))

    # 7. Evaluate the best checkpoint on the held-out test split.
    predictor = Predictor.from_checkpoint(result.best_checkpoint)
    print(evaluate(predictor.model, test, progress=not args.fast))

    # 8. Count mites on the unlabelled phone photos: tiles at training resolution.
    photos = sorted(args.photos.glob("*.jpg"))[: 1 if args.fast else None]
    for photo, found in zip(photos, predictor.predict(photos, tile="auto"), strict=True):
        counts = predictor.counts(found)
        draw(photo, found, predictor.class_names, out / "predictions" / f"{photo.stem}.png")
        print(f"{photo.name}: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(get_args_parser().parse_args()))
