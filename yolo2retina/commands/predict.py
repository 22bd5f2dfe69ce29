"""``yolo2retina predict``: detect, count and draw on image files with a trained checkpoint."""

from __future__ import annotations

import argparse
import sys

from yolo2retina.cli import add_output_flags, fraction, positive_int
from yolo2retina.commands import add_threads

NAME = "predict"
HELP = (
    "Detect and count objects in images with a trained checkpoint or an exported .onnx "
    "model; write drawings and exports."
)


_ORIGIN = {
    "given": "given with --score",
    "validation": "chosen on the validation set at training; --score overrides",
    "default": "the default; this checkpoint records none",
}


def _tile(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto' or a number of pixels, got {value!r}"
        ) from None
    if n < 16:
        raise argparse.ArgumentTypeError(f"tile must be >= 16 pixels, got {n}")
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add this command's options."""
    p.add_argument(
        "--weights",
        required=True,
        help="checkpoint file (best.pt / last.pt), or a model.onnx from 'yolo2retina export' "
        "(runs through onnxruntime)",
    )
    p.add_argument(
        "--source",
        required=True,
        nargs="+",
        help="image file(s), folder(s) (searched recursively) or glob pattern(s)",
    )
    p.add_argument(
        "--out",
        required=True,
        help="output folder (created): new or empty (see --exist-ok), outside the sources",
    )
    p.add_argument(
        "--tile",
        type=_tile,
        default=None,
        help="cut images into overlapping NxN tiles at full resolution ('auto': the "
        "checkpoint's training size); default: whole images",
    )
    p.add_argument(
        "--overlap", type=fraction, default=0.2, help="tile overlap as a fraction (default 0.2)"
    )
    p.add_argument(
        "--score",
        type=fraction,
        default=None,
        help="minimum confidence to keep, 0-1; default: the threshold training chose on the "
        "validation set (best F1 at IoU 0.5, recorded in the checkpoint and in an .onnx "
        "model's sidecar), else 0.3 (checkpoints without one)",
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=4, help="images or tiles per model call"
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="torch device, e.g. cpu or cuda (default cpu); for an .onnx model: cpu, cuda or auto",
    )
    add_threads(p)
    p.add_argument(
        "--save-txt",
        action="store_true",
        help="write labels/<stem>.txt: 'class cx cy w h conf' rows (Ultralytics layout)",
    )
    p.add_argument(
        "--save-json", action="store_true", help="write predictions.json (COCO results format)"
    )
    p.add_argument(
        "--save-voc",
        action="store_true",
        help="write voc/: a Pascal VOC dataset of the predictions (images symlinked)",
    )
    p.add_argument("--no-draw", action="store_true", help="do not write <stem>.png drawings")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_output_flags(p)


def run(args: argparse.Namespace) -> int:
    """Predict every image; exit 1 if any image could not be read."""
    import os

    from tqdm import tqdm

    from yolo2retina.device import torch_threads
    from yolo2retina.image import find_images
    from yolo2retina.predict_folder import predict_to_folder
    from yolo2retina.predictor import Predictor
    from yolo2retina.score_threshold import predict_score_threshold

    sources: list[str] = []
    for src in args.source:  # folders stay folders: the output may not lie inside them
        found = find_images(src)  # fails early when nothing matches
        sources += [src] if os.path.isdir(src) else [str(f) for f in found]
    predictor = Predictor.from_checkpoint(args.weights, device=args.device, threads=args.threads)
    score, origin = predict_score_threshold(args.score, predictor.meta, where=args.weights)
    print(f"score threshold {score:.3g} ({_ORIGIN[origin]})")
    with torch_threads(args.threads):
        result = predict_to_folder(
            predictor,
            predictor.class_names,
            sources,
            args.out,
            score_threshold=score,
            tile=args.tile,
            overlap=args.overlap,
            batch_size=args.batch_size,
            save_txt=args.save_txt,
            save_json=args.save_json,
            save_voc=args.save_voc,
            draw_images=not args.no_draw,
            exist_ok=args.exist_ok,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            log=tqdm.write,
        )
    totals = ", ".join(f"{v} {k}" for k, v in result.totals().items())
    n_ok = len(result.predictions) - len(result.failed)
    print(f"{n_ok} image(s): {totals}; counts in {result.out_dir / 'counts.csv'}")
    if result.failed:
        print(f"{len(result.failed)} image(s) could not be read:", file=sys.stderr)
        for f in result.failed:
            print(f"  {f.error}", file=sys.stderr)
        return 1
    return 0
