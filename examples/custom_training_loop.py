"""Use yolo2retina's data path inside your own training loop.

`YoloDataset` + `collate` give samples in torchvision's detection convention, so your own
torchvision transforms v2 augmentation and your own loop work unchanged.

    python examples/custom_training_loop.py                     # on a generated sticky board
    python examples/custom_training_loop.py --data my/data.yaml --epochs 5
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision.models.detection import retinanet_resnet50_fpn
from torchvision.transforms import v2

from yolo2retina import YoloDataset, collate


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", help="a data.yaml (default: generate a small synthetic sticky board)")
    p.add_argument("--epochs", type=int, default=1, help="epochs to train")
    p.add_argument("--steps", type=int, default=None, help="stop each epoch after this many steps")
    p.add_argument("--img-size", type=int, default=320, help="model input size (min and max side)")
    p.add_argument("--batch-size", type=int, default=2, help="images per step")
    p.add_argument("--fast", action="store_true", help="tiny run for CI: 64-px images, 2 steps")
    return p


def main(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    if args.fast:
        args.img_size, args.steps = 64, 2
    if args.data is None:
        from yolo2retina.synthetic import synthetic_sticky_board

        tmp = Path(tempfile.mkdtemp(prefix="y2r-example-"))
        args.data = synthetic_sticky_board(
            tmp, n_images=8 if args.fast else 32, image_size=args.img_size, seed=0
        )

    # Your own augmentation: any transforms v2 pipeline takes our samples as they are.
    train_tf = v2.Compose(
        [
            v2.RandomHorizontalFlip(p=0.5),
            v2.RandomPhotometricDistort(p=0.5),
            v2.RandomIoUCrop(),
            v2.Resize((args.img_size, args.img_size)),
            v2.SanitizeBoundingBoxes(),
        ]
    )
    train = YoloDataset(args.data, split="train", transforms=train_tf)
    print(train.report)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, collate_fn=collate)

    # Plain torchvision model: no download (weights=None, weights_backbone=None).
    model = retinanet_resnet50_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=len(train.class_names),
        min_size=args.img_size,
        max_size=args.img_size,
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9, weight_decay=1e-4)

    model.train()
    for epoch in range(args.epochs):
        for step, (images, targets) in enumerate(loader):
            losses = model(images, targets)
            loss = sum(losses.values())
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            parts = ", ".join(f"{k}={v.item():.3f}" for k, v in losses.items())
            print(f"epoch {epoch} step {step}: loss={loss.item():.3f} ({parts})")
            if args.steps is not None and step + 1 >= args.steps:
                break


if __name__ == "__main__":
    main(get_args_parser().parse_args())
