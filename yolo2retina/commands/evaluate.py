"""``yolo2retina evaluate``: score a checkpoint or an exported .onnx model on a dataset
split, COCO-style."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from yolo2retina.cli import add_output_flags, fraction, positive_int
from yolo2retina.commands import add_images_root, add_no_cache, add_threads

if TYPE_CHECKING:
    from yolo2retina.annotations import Annotations
    from yolo2retina.coco_metric import Metrics
    from yolo2retina.target import Target

NAME = "evaluate"
HELP = (
    "Score a trained checkpoint or an exported .onnx model on a dataset split: print the "
    "COCO mAP table and write metrics.json, predictions.json (COCO results), PR curves and "
    "a confusion matrix."
)

_ORIGIN = {
    "given": "given with --score-threshold",
    "validation": "chosen on the validation set at training; --score-threshold overrides",
    "default": "the default; this checkpoint records none",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add this command's options."""
    p.add_argument(
        "--data", required=True, help="dataset: data.yaml, dataset folder, VOC folder or COCO .json"
    )
    p.add_argument(
        "--weights",
        required=True,
        help="checkpoint written by training (best.pt), or a model.onnx from 'yolo2retina "
        "export' (runs through onnxruntime, as predict runs it)",
    )
    p.add_argument("--split", default="val", help="split to evaluate (default: val)")
    p.add_argument(
        "--out",
        default=None,
        help="output folder, outside the dataset (default: eval-<split> beside the checkpoint)",
    )
    p.add_argument("--format", default="auto", help="dataset format (default: auto-detect)")
    add_images_root(p)
    add_no_cache(p)
    p.add_argument(
        "--batch-size", type=positive_int, default=4, help="images per forward pass (default: 4)"
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="torch device, e.g. cpu or cuda (default: cpu); for an .onnx model: cpu, cuda or auto",
    )
    add_threads(p)
    p.add_argument(
        "--max-size",
        type=positive_int,
        default=None,
        help="decode images at most this large (longer side); boxes are mapped back",
    )
    p.add_argument(
        "--score-threshold",
        type=fraction,
        default=None,
        help="lowest score counted in the confusion matrix; default: the threshold training "
        "chose on the validation set (recorded in the checkpoint or the .onnx sidecar, what "
        "predict uses), else 0.3; the mAP does not depend on it",
    )
    p.add_argument("--no-plots", action="store_true", help="write no PNGs")
    p.add_argument(
        "--pycocotools-compat",
        action="store_true",
        help="score like pycocotools where a ground-truth annotation id is 0 (such a match "
        "counts as a false positive); see docs/evaluation.md",
    )
    add_output_flags(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Evaluate one checkpoint (or exported model) on one split."""
    from yolo2retina.coco_metric import coco_map
    from yolo2retina.commands import dataset_format, reader_options
    from yolo2retina.dataset import DetectionDataset
    from yolo2retina.device import torch_threads
    from yolo2retina.errors import ConfigError
    from yolo2retina.evaluation import predict_dataset
    from yolo2retina.formats import load_annotations
    from yolo2retina.outputs import check_output_dir, check_output_files, dataset_folders
    from yolo2retina.predictor import Predictor
    from yolo2retina.score_threshold import predict_score_threshold

    out = Path(args.out) if args.out else Path(args.weights).parent / f"eval-{args.split}"
    fmt = dataset_format(args.data, args.format)
    ann = load_annotations(args.data, format=fmt, split=args.split, **reader_options(args, fmt))
    check_output_dir(  # refuse before the model runs; write_evaluation checks again
        out,
        inputs=dataset_folders(ann, args.data),
        exist_ok=args.exist_ok,
        overwrite=args.overwrite,
    )
    check_output_files([out / "metrics.json", out / "predictions.json"], overwrite=args.overwrite)
    # a checkpoint's model goes to --device; an .onnx model runs through onnxruntime on the
    # providers --device names (Predictor.from_onnx), as predict runs it
    predictor = Predictor.from_checkpoint(args.weights, device=args.device, threads=args.threads)
    if tuple(ann.class_names) != tuple(predictor.class_names):
        raise ConfigError(
            f"{args.weights} was trained on classes {list(predictor.class_names)} but "
            f"{args.data} ({args.split}) has {list(ann.class_names)}"
        )
    score, origin = predict_score_threshold(
        args.score_threshold, predictor.meta, where=str(args.weights)
    )
    print(f"confusion-matrix score threshold {score:.3g} ({_ORIGIN[origin]})")
    dataset = DetectionDataset(ann, max_size=args.max_size)
    with torch_threads(args.threads):
        preds = predict_dataset(
            predictor.model,
            dataset,
            batch_size=args.batch_size,
            device=None,  # where the model is: --device, or the CPU tensors onnxruntime takes
            progress=not args.quiet,
        )
    metrics = coco_map(ann, preds, pycocotools_compat=args.pycocotools_compat)
    print(metrics)
    _write(args, out, metrics, preds, ann, score)
    print(f"wrote {out}/metrics.json, predictions.json" + ("" if args.no_plots else " and plots"))
    return 0


def _write(
    args: argparse.Namespace,
    out: Path,
    metrics: Metrics,
    preds: list[Target],
    ann: Annotations,
    score: float,
) -> None:
    """:func:`~yolo2retina.evaluation.write_evaluation`, its warnings printed as notes."""
    from yolo2retina.evaluation import write_evaluation

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_evaluation(
            out,
            metrics,
            preds,
            ann,
            plots=not args.no_plots,
            score_threshold=score,
            extra={"data": str(args.data), "split": args.split, "weights": str(args.weights)},
            exist_ok=args.exist_ok,
            overwrite=args.overwrite,
        )
    for w in caught:
        print(f"note: {w.message}", file=sys.stderr)
