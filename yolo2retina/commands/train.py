"""``yolo2retina train``: train a RetinaNet on a dataset, or on the built-in demo board."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

# The choices are plain names: ``--help`` must not import torch to list them.
from yolo2retina.choices import (
    AMP_MODES,
    AUGMENT_POLICIES,
    BACKBONES,
    LOSS_NORMS,
    METRICS,
    OPTIMIZERS,
)

if TYPE_CHECKING:
    from yolo2retina.train import FitResult, TrainConfig

NAME = "train"
HELP = (
    "Train a RetinaNet on a YOLO / VOC / COCO dataset. Without --data, generate the "
    "synthetic varroa sticky board into the run folder and train a small model on it "
    "(a few minutes on a CPU)."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add this command's options."""
    _data_arguments(p)
    _model_arguments(p)
    _run_arguments(p)
    _optimizer_arguments(p)
    _augment_arguments(p)
    _precision_and_stopping_arguments(p)


def _data_arguments(p: argparse.ArgumentParser) -> None:
    from yolo2retina.commands import add_images_root, add_no_cache

    p.add_argument(
        "--data",
        default=None,
        help="data.yaml, dataset folder, VOC folder or COCO .json with train and val splits "
        "(default: generate the synthetic sticky board demo into OUT/data)",
    )
    p.add_argument("--format", default="auto", help="dataset format (default: auto-detect)")
    add_images_root(p)
    add_no_cache(p)
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: 12; demo: 6)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per step and per process (default: 4; demo: 2)",
    )
    p.add_argument(
        "--img-size",
        type=int,
        default=None,
        help="longer image side the model sees, in pixels (default: 800; demo: 128)",
    )


def _model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backbone",
        choices=BACKBONES,
        default=None,
        help="network body (default: resnet50_fpn with --weights; resnet18_fpn from scratch "
        "and in the demo)",
    )
    p.add_argument(
        "--fpn-channels",
        type=int,
        default=None,
        metavar="N",
        help="width of the FPN and of the head's convolutions (default: 256, torchvision's, "
        "which --weights DEFAULT needs; 128 from scratch: about 2x cheaper steps on a CPU)",
    )
    p.add_argument(
        "--weights",
        default=None,
        metavar="PATH",
        help="start from these weights: a checkpoint or state-dict file, or DEFAULT to "
        "download torchvision's COCO weights (default: random initialisation)",
    )
    p.add_argument(
        "--weights-backbone",
        default=None,
        metavar="PATH",
        help="backbone weights: a state-dict file, or DEFAULT to download ImageNet weights",
    )
    p.add_argument(
        "--anchors",
        choices=("auto", "default"),
        default="auto",
        help="auto: fit anchor sizes to the training boxes and print their coverage; "
        "default: torchvision's 32-512 px anchors (default: auto)",
    )


def _run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="run folder for best.pt, last.pt, metrics.jsonl and curves.png; refused when it "
        "holds an earlier run (see --overwrite) or lies inside the dataset folder "
        "(default: runs/train, or runs/train2, ... if taken; with --resume: the checkpoint's folder)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the earlier run in --out: its best.pt, last.pt, metrics.jsonl and "
        "curves.png are deleted when training starts (default: refuse)",
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="CKPT",
        help="continue an interrupted run from its last.pt (same data, model and settings; "
        "the data's class names must be the checkpoint's)",
    )
    p.add_argument(
        "--device",
        choices=("auto", "cuda", "mps", "cpu"),
        default="auto",
        help="where to train (default: auto = cuda, then mps, then cpu)",
    )


def _optimizer_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate (default: 0.001 from random weights, 0.01 with --weights)",
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        metavar="STEPS",
        help="optimizer steps of linear learning-rate warmup; short runs from scratch "
        "need some (default: 50 from random weights, 0 with --weights)",
    )
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default=None,
        help="optimizer (default: adamw from random weights, sgd with --weights)",
    )


def _augment_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--augment",
        choices=AUGMENT_POLICIES,
        default=None,
        help="training augmentation: none; light = flips and quarter turns; default = light "
        "plus scale jitter, colour jitter and crops; strong = wider ranges "
        "(docs/augmentation.md lists every step; default: default)",
    )
    p.add_argument(
        "--crop-size",
        type=int,
        default=None,
        metavar="N",
        help="train on N-px crops of the img-size image, for tiles much larger than the "
        "objects; validation and prediction still see whole images; 0: whole images "
        "(default: 512 from scratch, else no crop beyond the policy's own)",
    )
    p.add_argument(
        "--loss-norm",
        choices=LOSS_NORMS,
        default=None,
        help="divide the loss by each image's own foreground-anchor count (torchvision) or by "
        "a moving average of the batch's count (batch; steadier with sparse images) "
        "(default: torchvision)",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="data-loading processes (default: 2; demo: 0)"
    )


def _precision_and_stopping_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--amp",
        choices=AMP_MODES,
        default="auto",
        help="mixed precision on CUDA (default: auto = bf16 where supported, else fp16)",
    )
    p.add_argument(
        "--metric",
        choices=METRICS,
        default="map50",
        help="validation metric that picks best.pt (default: map50)",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=None,
        help="stop after this many validations without improvement (default: never)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def run(args: argparse.Namespace) -> int:
    """Build the config, train, and print the final validation figures."""
    from yolo2retina.train import (
        DEMO_CONFIG,
        DEMO_MODEL,
        SCRATCH_CONFIG,
        SCRATCH_MODEL,
        run_training,
    )

    demo = args.data is None and args.resume is None
    scratch = args.weights is None and args.resume is None
    config = _config(args, demo=demo)
    if demo:
        model = dict(DEMO_MODEL)
    elif scratch:
        model = {**SCRATCH_MODEL, "img_size": 800}
    else:  # torchvision's detector, which --weights DEFAULT has
        model = {"backbone": "resnet50_fpn", "img_size": 800}
    if args.backbone is not None:
        model["backbone"] = args.backbone
    if args.img_size is not None:
        model["img_size"] = args.img_size
    if args.fpn_channels is not None:
        model["fpn_channels"] = args.fpn_channels
    if scratch:
        recipe = DEMO_CONFIG if demo else SCRATCH_CONFIG
        print(_recipe_line(config, recipe, args.weights_backbone, demo=demo, model=model))
    options: dict[str, Any] = {}
    if args.images_root is not None:
        from yolo2retina.commands import dataset_format, reader_options

        if args.data is None:
            print(
                "error: --images-root needs --data (see 'yolo2retina train --help')",
                file=sys.stderr,
            )
            return 2
        options = reader_options(args, dataset_format(args.data, args.format))
    if args.no_cache:  # the datasets load through load_annotations, which takes it for any format
        options["cache"] = False
    result = run_training(
        args.data,
        config,
        format=args.format,
        reader_options=options,
        weights=args.weights,
        weights_backbone=args.weights_backbone,
        anchors=args.anchors,
        **model,
    )
    _print_result(result)
    return 0


def _config(args: argparse.Namespace, *, demo: bool) -> TrainConfig:
    """The run's settings: the resumed run's own, or the recipe's, and what was given."""
    from yolo2retina.train import (
        DEMO_CONFIG,
        SCRATCH_CONFIG,
        TrainConfig,
        next_run_dir,
        resume_config,
    )

    given = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "warmup_iters": args.warmup,
        "optimizer": args.optimizer,
        "num_workers": args.workers,
        "patience": args.patience,
        "augment": args.augment,
        "crop_size": args.crop_size,
        "loss_norm": args.loss_norm,
        "overwrite": args.overwrite,  # never inherited from the resumed run
    }
    if args.resume is not None:
        device = args.device if args.device != "auto" else None  # else: the run's own
        return resume_config(args.resume, out_dir=args.out, device=device, **given)
    settings: dict[str, Any] = {}
    if demo:
        settings = dict(DEMO_CONFIG)
    elif args.weights is None:
        settings = dict(SCRATCH_CONFIG)
    settings["out_dir"] = str(args.out or next_run_dir("runs/train"))
    settings |= {k: v for k, v in given.items() if v is not None}
    if args.crop_size == 0:  # whole images, also over the from-scratch recipe's crops
        settings["crop_size"] = None
    settings |= {"device": args.device, "amp": args.amp, "metric": args.metric, "seed": args.seed}
    return TrainConfig.from_dict(settings)


def _print_result(result: FitResult) -> None:
    final = result.final
    written = [
        n
        for n in ("best.pt", "last.pt", "metrics.jsonl", "curves.png")
        if (result.out_dir / n).exists()
    ]
    print(f"run folder: {result.out_dir} ({', '.join(written)})")
    if "map50" in final:
        print(f"final val mAP@0.5: {final['map50']:.3f}  (mAP@[.5:.95]: {final['map']:.3f})")
    elif "val_loss" in final:
        print(f"final val loss: {final['val_loss']:.4f}")
    if result.best_metric is not None:
        print(f"best {result.metric}: {result.best_metric:.4f} at epoch {result.best_epoch}")


def _recipe_line(
    config: Any,
    recipe: dict[str, Any],
    weights_backbone: str | None,
    *,
    demo: bool,
    model: dict[str, Any] | None = None,
) -> str:
    """One line: the recipe of a run from random weights (and its model, if given), and why."""
    warmup = (
        f"{config.warmup_iters} steps"
        if config.warmup_iters or not config.warmup_epochs
        else f"{config.warmup_epochs:g} epochs"
    )
    crop = f", {config.crop_size} px crops" if config.crop_size is not None else ""
    used = (
        f"{config.optimizer} lr {config.lr:g}, warmup {warmup}, augment {config.augment}{crop}, "
        f"loss norm {config.loss_norm}"
    )
    if model is not None:
        used = (
            f"{model['backbone']} ({model.get('fpn_channels', 256)}-channel FPN) at "
            f"{model['img_size']} px, {used}"
        )
    keys = ("optimizer", "lr", "warmup_iters")
    if all(getattr(config, k) == recipe[k] for k in keys if k in recipe):
        why = (
            f"{'the demo' if demo else 'the from-scratch'} recipe: a warmed-up AdamW is steadier "
            "than SGD at lr 0.01 from random weights, a few dozen images need augmentation, "
            "small crops and a narrow head buy more steps per CPU-minute, and the batch loss "
            "normaliser keeps crops without objects from making loss spikes"
        )
    else:
        default = f"{recipe['optimizer']} lr {recipe['lr']:g}, warmup {recipe['warmup_iters']}"
        why = f"your settings; the from-scratch default is {default}"
    start = (
        f"no pretrained detector weights (backbone from {weights_backbone}): training with"
        if weights_backbone is not None
        else "no pretrained weights: training from scratch with"
    )
    return f"{start} {used} ({why}); pass --weights DEFAULT to start from COCO weights"
