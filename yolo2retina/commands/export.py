"""``yolo2retina export``: write a trained checkpoint as an ONNX model and its JSON sidecar."""

from __future__ import annotations

import argparse
from pathlib import Path

from yolo2retina.cli import add_output_flags, positive_int

NAME = "export"
HELP = "Export a trained checkpoint to ONNX (model.onnx + model.onnx.json) for ONNX Runtime."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add this command's options."""
    p.add_argument("--weights", required=True, help="checkpoint file (best.pt / last.pt)")
    p.add_argument(
        "--format", choices=("onnx",), default="onnx", help="export format (default onnx)"
    )
    p.add_argument(
        "--out",
        default=None,
        help="model file to write, ending in .onnx (default: the checkpoint's name with "
        ".onnx); the sidecar goes to <out>.json",
    )
    p.add_argument(
        "--img-size",
        type=positive_int,
        default=None,
        help="longer image side the runtime resizes to (default: the checkpoint's)",
    )
    p.add_argument("--opset", type=positive_int, default=None, help="ONNX opset (default 18)")
    add_output_flags(p, folder=False)


def run(args: argparse.Namespace) -> int:
    """Export; print where the model and its sidecar went."""
    from yolo2retina.onnx_export import DEFAULT_OPSET, export_onnx, sidecar_path

    out = args.out if args.out is not None else Path(args.weights).with_suffix(".onnx")
    path = export_onnx(
        args.weights,
        out,
        img_size=args.img_size,
        opset=DEFAULT_OPSET if args.opset is None else args.opset,
        overwrite=args.overwrite,
    )
    print(f"wrote {path} and {sidecar_path(path)}")
    return 0
