"""Accuracy on the real varroa tiles under a fixed CPU budget: training recipes compared.

Each recipe trains a RetinaNet from random weights on the train split of a real dataset
(default: ``../shared/data/varroa-sticky-board-yolo``) for ``--minutes`` of training time,
and is scored on the val split with yolo2retina's own evaluator (``coco_map``, equal to
pycocotools) at checkpoints as the budget is spent (``--evals``, default every quarter):
mAP@0.5, mAP@[.5:.95] and the recall at IoU 0.5 (100 detections per image).

Recipes (``--recipes``, comma-separated):

* ``baseline``: the CLI's recipe before issue 14: SGD lr 0.01, no warmup, horizontal flips
  only, 800 px.
* ``tiles``: AdamW lr 1e-3, warmup 50 (``yolo2retina.train.SCRATCH_CONFIG``'s optimizer)
  with the default augmentation, on whole tiles at 1024 px (the tiles' size).
* ``crop``: ``tiles`` trained on 512 px crops (``--crop-size 512``; half of ``--img-size``).
* ``default``: ``crop`` with a 128-channel FPN and head (``--fpn-channels 128``) and the
  batch loss normaliser (``--loss-norm batch``): what ``yolo2retina train`` uses from
  random weights (``SCRATCH_CONFIG`` and ``SCRATCH_MODEL``).
* ``torchvision-loss``: ``default`` with torchvision's per-image loss normaliser.
* ``yolov8n``: Ultralytics YOLOv8n from ``yolov8n.yaml`` (random weights, nothing downloaded)
  with its own default augmentation, under the same budget (its ``time=`` setting), scored
  with ``coco_map`` on the same val images. Only when ``ultralytics`` is importable (it is
  AGPL and never a dependency); skipped with the reason otherwise.

All recipes fit anchors to the training boxes, as ``yolo2retina train`` does. The budget
counts training only (data loading and augmentation included, validation not). The number
of epochs is chosen up front from a timed probe of a few steps, so that the learning-rate
schedule ends with the budget, as a user who knows their time would set it; the time
really spent is reported. ``--img-size`` sets every recipe's size.

The data is first copied (as YOLO, images copied) into a temporary folder: Ultralytics
writes ``labels/*.cache`` beside the labels, and nothing may be written into ../shared.

Usage:
    python bench/real_accuracy.py --minutes 30 --torch-threads 2          # the full run
    python bench/real_accuracy.py --minutes 1 --recipes baseline,default  # a look
    python bench/real_accuracy.py --minutes 0.1 --max-train-images 4 --max-val-images 2 \\
        --img-size 128 --recipes default                                   # CI-sized

It prints a table (Markdown) and writes JSON (``--out``, default bench/out/real_accuracy.json).
Recipes run one after another; to use both cores of a 2-core machine, run two processes
with ``--torch-threads 1`` and different ``--recipes`` and ``--out``, then merge their JSON
into one table with ``--combine a.json b.json ...`` (which trains nothing).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from real_accuracy_report import combine, machine, table  # bench/ is sys.path[0]
from real_accuracy_yolo import YOLO, run_yolov8n

from yolo2retina.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "varroa-sticky-board-yolo" / "data.yaml"
DEFAULT_OUT = REPO / "bench" / "out" / "real_accuracy.json"


@attrs.frozen
class Recipe:
    """One training recipe: TrainConfig settings, image size, and the flip-only baseline.

    ``crop_fraction`` sets ``crop_size`` to that fraction of the image size (512 at 1024).
    """

    description: str
    settings: dict[str, Any]
    img_size: int
    hflip_only: bool = False
    crop_fraction: float | None = None
    fpn_channels: int = 256


def recipes() -> dict[str, Recipe]:
    """The RetinaNet recipes by name (``yolov8n`` is handled apart).

    ``default`` is built from ``SCRATCH_CONFIG`` and ``SCRATCH_MODEL``, so that it is always
    what ``yolo2retina train`` runs from random weights.
    """
    from yolo2retina.train_config import SCRATCH_CONFIG, SCRATCH_MODEL

    default = {**SCRATCH_CONFIG, "augment": "default"}
    whole = {k: v for k, v in default.items() if k not in ("crop_size", "loss_norm")}
    narrow = int(SCRATCH_MODEL["fpn_channels"])
    return {
        "baseline": Recipe(
            "the CLI before issue 14: SGD lr 0.01, no warmup, horizontal flips, 800 px",
            {"optimizer": "sgd", "lr": 0.01, "warmup_iters": 0, "augment": "none"},
            800,
            hflip_only=True,
        ),
        "tiles": Recipe(
            "AdamW lr 1e-3, warmup 50, augment default, whole 1024 px tiles", whole, 1024
        ),
        "crop": Recipe(
            "tiles on crops of half the image size (512 px at 1024)",
            whole,
            1024,
            crop_fraction=0.5,
        ),
        "default": Recipe(
            f"the from-scratch default: crop with a {narrow}-channel FPN and head",
            default,
            1024,
            fpn_channels=narrow,
        ),
        "torchvision-loss": Recipe(
            "default with torchvision's per-image loss normaliser",
            {**default, "loss_norm": "torchvision"},
            1024,
            fpn_channels=narrow,
        ),
    }


def recipe_names(text: str) -> list[str]:
    """``--recipes``: comma-separated names, each known."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    known = [*recipes(), YOLO]
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown recipe(s) {', '.join(bad) or '(none)'}; choose from {', '.join(known)}"
        )
    return names


def positive_float(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number; got {text}")
    return value


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data.yaml (or any format)")
    p.add_argument("--format", default="auto", help="dataset format (default: auto-detect)")
    p.add_argument(
        "--minutes", type=positive_float, default=30.0, help="training budget per recipe"
    )
    p.add_argument(
        "--recipes",
        type=recipe_names,
        default=[*recipes(), YOLO],
        help=f"comma-separated, of: {', '.join([*recipes(), YOLO])} (default: all)",
    )
    p.add_argument("--evals", type=int, default=4, help="validations over the budget")
    p.add_argument(
        "--img-size", type=int, default=None, help="every recipe's size (default: its own)"
    )
    p.add_argument("--max-train-images", type=int, default=None, help="first N train images")
    p.add_argument("--max-val-images", type=int, default=None, help="first N val images")
    p.add_argument("--backbone", default="resnet18_fpn", help="RetinaNet backbone")
    p.add_argument("--batch-size", type=int, default=2, help="RetinaNet images per step")
    p.add_argument("--yolo-batch", type=int, default=16, help="YOLOv8n images per step")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--torch-threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--probe-steps", type=int, default=3, help="timed steps to size the epochs")
    p.add_argument("--seed", type=int, default=0, help="seed of every recipe")
    p.add_argument("--device", default="cpu", help="cpu (the budget is CPU time), or cuda")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results")
    p.add_argument("--work", type=Path, default=None, help="keep the data copy and runs here")
    p.add_argument(
        "--combine",
        type=Path,
        nargs="+",
        default=None,
        metavar="JSON",
        help="merge earlier runs' JSON into one table and --out (trains nothing)",
    )
    return p


# -- data -------------------------------------------------------------------------------------


def copy_data(args: argparse.Namespace, dst: Path) -> tuple[Path, dict[str, int]]:
    """The train and val splits (cut to the ``--max-*`` counts) as a YOLO dataset in ``dst``."""
    from yolo2retina.errors import DatasetError
    from yolo2retina.formats import load_annotations, write_annotations

    splits = {}
    for split, limit in (("train", args.max_train_images), ("val", args.max_val_images)):
        ann = None
        for name in (split, "valid") if split == "val" else (split,):
            try:
                ann = load_annotations(args.data, format=args.format, split=name)
                break
            except (DatasetError, KeyError) as e:
                why = str(e).splitlines()[0] if str(e) else type(e).__name__
                continue
        if ann is None:
            raise SystemExit(f"{args.data}: no {split} split ({why})")
        if limit is not None:
            ann = ann.subset(range(min(limit, len(ann))))
        splits[split] = ann
    write_annotations(splits, dst, "yolo", images="copy")
    return dst / "data.yaml", {s: len(a) for s, a in splits.items()}


# -- the RetinaNet recipes ------------------------------------------------------------------


def _cycle(loader: Any) -> Iterator[Any]:
    while True:
        yield from loader


def seconds_per_step(setup: Any, config: Any, steps: int) -> float:
    """Median wall time of one training step (data, forward, backward, optimizer step).

    Runs on a copy of the model, so the run itself starts from the same weights and
    BatchNorm statistics; the first step (allocations, warm-up) is not counted.
    """
    from torch.utils.data import DataLoader

    from yolo2retina.dataset import collate
    from yolo2retina.losses import loss_normalisation

    model = copy.deepcopy(setup.model)
    model.train()
    loader = DataLoader(
        setup.train,
        batch_size=config.batch_size,
        shuffle=True,
        collate_fn=collate,
        num_workers=config.num_workers,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    times = []
    batches = _cycle(loader)
    with loss_normalisation(model, config.loss_norm):
        for i in range(steps + 1):
            t0 = time.perf_counter()
            images, targets = next(batches)
            imgs = [im.as_subclass(torch.Tensor) for im in images]
            tgts = [
                {"boxes": t["boxes"].as_subclass(torch.Tensor), "labels": t["labels"]}
                for t in targets
            ]
            loss = sum(model(imgs, tgts).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if i:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_recipe(
    name: str,
    recipe: Recipe,
    data_yaml: Path,
    work: Path,
    args: argparse.Namespace,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Train one recipe under the budget; its checkpoints' metrics."""
    from torchvision.transforms import v2

    from yolo2retina.train_recipe import prepare_training

    budget_s = args.minutes * 60.0
    img_size = args.img_size or recipe.img_size
    config = _recipe_config(recipe, img_size, work / name, args)
    setup = prepare_training(
        data_yaml,
        config,
        backbone=args.backbone,
        img_size=img_size,
        fpn_channels=recipe.fpn_channels,
        anchors="auto",
        log=say,
    )
    if recipe.hflip_only:  # the old CLI: one random horizontal flip, the model resizes
        setup.train.transforms = v2.RandomHorizontalFlip(0.5)
        say("augment: replaced by one random horizontal flip (the CLI before issue 14)")
    step_s = seconds_per_step(setup, config, args.probe_steps)
    epoch_s = step_s * math.ceil(len(setup.train) / config.batch_size)
    config = _fit_budget(config, step_s, len(setup.train), args, say)
    result = setup.fit(config, log=say)
    checkpoints = _checkpoints(result.history, budget_s)
    return {
        "description": recipe.description,
        "system": "yolo2retina RetinaNet " + args.backbone,
        "img_size": img_size,
        "fpn_channels": recipe.fpn_channels,
        "settings": {k: v for k, v in config.to_dict().items() if k in _SHOWN},
        "hflip_only": recipe.hflip_only,
        "anchor_sizes": setup.model_args.get("anchor_sizes"),
        "seconds_per_step": round(step_s, 3),
        "over_budget": epoch_s > budget_s,
        "epochs": config.epochs,
        "train_seconds": round(result.train_seconds, 1),
        "checkpoints": checkpoints,
        "final": checkpoints[-1] if checkpoints else None,
    }


def _recipe_config(recipe: Recipe, img_size: int, out_dir: Path, args: argparse.Namespace) -> Any:
    """The recipe's TrainConfig for one epoch (the budget sets the epochs later)."""
    from yolo2retina.train_config import TrainConfig

    settings = dict(recipe.settings)
    if recipe.crop_fraction is not None:
        settings["crop_size"] = max(1, round(img_size * recipe.crop_fraction))
    fixed = {"batch_size": args.batch_size, "num_workers": args.workers, "seed": args.seed}
    return TrainConfig(
        **{**settings, **fixed},  # --batch-size wins over SCRATCH_CONFIG's
        epochs=1,
        device=args.device,
        metric="map50",
        out_dir=out_dir,
        progress=True,
    )


def _fit_budget(
    config: Any, step_s: float, images: int, args: argparse.Namespace, say: Callable[[str], None]
) -> Any:
    """``config`` with the epochs that fit the budget at ``step_s`` seconds per step."""
    budget_s = args.minutes * 60.0
    steps_per_epoch = math.ceil(images / config.batch_size)
    epoch_s = step_s * steps_per_epoch
    epochs = max(1, math.floor(budget_s / epoch_s))
    if epoch_s > budget_s:
        say(
            f"note: one epoch takes about {epoch_s / 60:.1f} min, more than the budget; "
            "training one epoch (use --max-train-images or a smaller --img-size)"
        )
    val_every = max(1, math.ceil(epochs / max(args.evals, 1)))
    say(
        f"probe: {step_s:.2f} s per step of {config.batch_size}, {steps_per_epoch} steps per "
        f"epoch: {epochs} epochs in {args.minutes:g} min, validating every {val_every}"
    )
    return attrs.evolve(config, epochs=epochs, val_every=val_every)


def _checkpoints(history: Sequence[dict[str, Any]], budget_s: float) -> list[dict[str, Any]]:
    """One entry per validated epoch: its metrics and the training time spent so far."""
    checkpoints, spent = [], 0.0
    for record in history:
        spent += float(record["train_seconds"])
        if "map50" not in record:
            continue
        checkpoints.append(
            {
                "epoch": record["epoch"],
                "train_seconds": round(spent, 1),
                "budget_fraction": round(spent / budget_s, 3),
                "map50": record["map50"],
                "map": record["map"],
                "recall50": record.get("recall50"),
                "mar100": record.get("mar100"),
                "val_loss": record.get("val_loss"),
                "train_loss": record.get("train_loss"),
            }
        )
    return checkpoints


_SHOWN = (
    "optimizer",
    "lr",
    "weight_decay",
    "warmup_iters",
    "batch_size",
    "augment",
    "crop_size",
    "loss_norm",
    "epochs",
    "val_every",
)


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.combine is not None:
        merged = combine(args.combine)
        print(table(merged["recipes"], merged["skipped"]))
        atomic_write_text(args.out, json.dumps(merged, indent=2) + "\n")
        print(f"wrote {args.out}")
        return 0
    if not args.data.exists():
        print(f"{args.data}: not found (the real data lives in ../shared/data)", file=sys.stderr)
        return 1
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    started = time.time()
    if args.work is not None and args.work.exists() and any(args.work.iterdir()):
        print(f"{args.work}: --work must be a new or empty folder", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="real_accuracy_") as tmp:
        work = args.work.resolve() if args.work is not None else Path(tmp)
        data_yaml, counts = copy_data(args, work / "data")
        print(f"data: {args.data} -> {data_yaml} ({counts['train']} train, {counts['val']} val)")
        results, skipped = run_all(args, data_yaml, work)
    report = {
        "data": str(args.data),
        "images": counts,
        "minutes": args.minutes,
        "budget_counts": "training time only (data loading and augmentation included)",
        "evaluator": "yolo2retina.coco_metric.coco_map (equal to pycocotools)",
        "machine": machine(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "wall_seconds": round(time.time() - started, 1),
        "recipes": results,
        "skipped": skipped,
    }
    text = table(results, skipped)
    print(f"\n{text}\n")
    m = report["machine"]
    print(
        f"budget {args.minutes:g} min of training per recipe; {m['cpu_count']} CPUs, "
        f"{m['torch_threads']} torch threads; torch {m['torch']}"
    )
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def run_all(
    args: argparse.Namespace, data_yaml: Path, work: Path
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Each recipe of ``args.recipes`` in turn: its results, and why any was skipped."""
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    known = recipes()
    for name in args.recipes:

        def say(line: str, name: str = name) -> None:
            print(f"[{name}] {line}", flush=True)

        print(f"\n=== {name}: {args.minutes:g} min", flush=True)
        if name == YOLO:
            try:
                results[name] = run_yolov8n(data_yaml, work, args, say)
            except ImportError as e:
                skipped[name] = f"ultralytics is not importable ({e})"
                say(f"skipped: {skipped[name]}")
            continue
        results[name] = run_recipe(name, known[name], data_yaml, work, args, say)
    return results, skipped


if __name__ == "__main__":
    raise SystemExit(main())
