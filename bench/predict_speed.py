"""CPU prediction speed: 1024-px tiles and a 12-MP photo with ``tile="auto"``, step by step.

Two workloads, each timed from the JPEG on disk to the merged detections:

* ``tile``: a ``--tile-size`` JPEG (a crop of the photo, quality 95), one image per call;
* ``photo``: the 12-MP phone photo (the first of the real varroa project's unlabelled
  photos when ``../shared/data`` is present, else a generated 4080x3072 JPEG), cut into
  overlapping tiles as ``predict(..., tile="auto")`` does for a model trained on
  1024-px tiles whose boxes' 90th percentile is 25.4 px (the real varroa set).

Each row splits the time into the steps of :func:`yolo2retina.prediction.predict`:
``decode`` (:func:`~yolo2retina.image.load_image`, EXIF-upright), ``to-tensor``
(:func:`~yolo2retina.image.image_to_tensor`), ``model`` (cropping and padding the tiles,
the model's resize and normalisation, backbone, head and its per-image NMS) and ``merge``
(:func:`~yolo2retina.prediction.outputs_to_targets` and, for tiles,
:func:`~yolo2retina.prediction.merge_tile_outputs`, the same calls predict makes). Engines: PyTorch eager fp32, the
same with the model in ``channels_last`` memory format (both under
``torch.inference_mode``), and onnxruntime when it and the package's ONNX export are
installed (otherwise the row says why not).

The model is an untrained RetinaNet (``weights=None``, seed 0): a forward pass costs the
same whatever the weights, but an untrained head finds next to nothing, so the NMS inside
the model and the merge run at their floor; a trained model on a busy board adds a few
milliseconds there. A last table times ``image_to_tensor`` against the 0.1 formula
(HWC uint8 copy -> permute -> float -> divide) on the same images, with a bit-equality check.

Run from the repository root::

    python bench/predict_speed.py --threads 1                  # resnet50_fpn, 1024-px input
    python bench/predict_speed.py --backbone resnet18_fpn --img-size 512 --out speed.json

Times are wall clock (what a user waits): each engine first runs the tile once untimed,
then the tile rows are medians of ``--repeats`` runs and the photo rows of
``--photo-repeats`` (each photo run is already ~20 tiles). On a shared machine compare
rows of the same run, not runs. The ONNX export (with its parity check) is not timed.
"""

from __future__ import annotations

import argparse
import copy
import functools
import importlib.util
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from yolo2retina.atomic import atomic_write_text
from yolo2retina.backbones import BACKBONES
from yolo2retina.image import image_to_tensor, load_image
from yolo2retina.model import BuiltRetinaNet, build_retinanet
from yolo2retina.prediction import crop_tile, merge_tile_outputs, outputs_to_targets
from yolo2retina.tiling import resolve_tile, tile_windows

REAL_PHOTOS = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "data"
    / "varroa-sticky-board-yolo"
    / "unlabelled-photos"
)
#: sqrt(w * h) of the real varroa training boxes, 90th percentile (tile="auto"'s overlap).
BOX_P90_PX = 25.4
STEPS = ("decode", "to_tensor", "model", "merge")

#: A detection engine: a list of ``(3, H, W) float32`` tensors -> torchvision-style outputs.
Engine = Callable[[list[torch.Tensor]], Sequence[Mapping[str, torch.Tensor]]]


# -- inputs ----------------------------------------------------------------------------------


def generated_photo(path: Path, size_wh: tuple[int, int], seed: int = 0) -> Path:
    """Write a photo-like JPEG (smooth background, fine noise, dark specks) of ``size_wh``."""
    rng = np.random.default_rng(seed)
    w, h = size_wh
    base = rng.integers(150, 230, (max(2, h // 100), max(2, w // 100), 3), dtype=np.uint8)
    smooth = Image.fromarray(base).resize((w, h), Image.Resampling.BILINEAR)
    a = np.asarray(smooth, dtype=np.int16) + rng.integers(-10, 11, (h, w, 1), dtype=np.int16)
    for x, y in zip(rng.integers(0, w, 300), rng.integers(0, h, 300), strict=True):
        a[y : y + 18, x : x + 18] -= 90  # mite-sized dark specks
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def pick_photo(choice: str, size_wh: tuple[int, int], tmp: Path) -> tuple[Path, str]:
    """The photo to time and a label: ``auto`` (real when present), ``generated`` or a path."""
    if choice == "auto":
        real = sorted(REAL_PHOTOS.glob("*.jpg")) if REAL_PHOTOS.is_dir() else []
        if real:
            return real[0], f"real: {real[0].name}"
        choice = "generated"
    if choice == "generated":
        w, h = size_wh
        return generated_photo(tmp / "photo.jpg", size_wh), f"generated {w}x{h} JPEG"
    path = Path(choice)
    if not path.is_file():
        raise SystemExit(f"--photo {choice}: no such file")
    return path, path.name


def cut_tile(photo: Path, side: int, tmp: Path) -> Path:
    """A ``side``-px crop from the middle of the upright photo, saved as a JPEG (q 95)."""
    img = load_image(photo)
    w, h = img.size
    x0, y0 = max(0, (w - side) // 2), max(0, (h - side) // 2)
    path = tmp / "tile.jpg"
    img.crop((x0, y0, min(w, x0 + side), min(h, y0 + side))).save(path, quality=95)
    return path


# -- engines ---------------------------------------------------------------------------------


def torch_engine(model: torch.nn.Module) -> Engine:
    def run(batch: list[torch.Tensor]) -> Sequence[Mapping[str, torch.Tensor]]:
        with torch.inference_mode():
            out: Sequence[Mapping[str, torch.Tensor]] = model(batch)
        return out

    return run


def onnx_engine(
    model: BuiltRetinaNet, meta: Mapping[str, Any], threads: int, tmp: Path
) -> tuple[Engine | None, str]:
    """The model exported with :func:`~yolo2retina.onnx_export.export_onnx` and run by
    :class:`~yolo2retina.onnx_runtime.OnnxDetector` on ``threads`` threads, or ``None``
    and why not. The export (with its parity check) is not timed."""
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
        return None, "not available: onnx/onnxruntime not installed (the onnx extra)"
    if importlib.util.find_spec("yolo2retina.onnx_runtime") is None:
        return None, "not available: yolo2retina.onnx_runtime is not in this version"
    import onnxruntime as ort

    from yolo2retina.model import LoadedModel, build_args
    from yolo2retina.onnx_export import export_onnx
    from yolo2retina.onnx_runtime import OnnxDetector

    loaded = LoadedModel(model, ("varroa",), build_args(model), dict(meta), tmp / "model.pt")
    path = export_onnx(loaded, tmp / "model.onnx")
    detector = OnnxDetector(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # as torch.set_num_threads does for PyTorch
    options.inter_op_num_threads = 1
    detector.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return detector, ""


# -- the two workloads -----------------------------------------------------------------------


def time_tile(path: Path, engine: Engine, score_threshold: float) -> dict[str, float]:
    """Seconds per step for one tile: decode, to-tensor, model, outputs -> Target."""
    t0 = time.perf_counter()
    img = load_image(path)
    t1 = time.perf_counter()
    x = image_to_tensor(img).as_subclass(torch.Tensor)
    t2 = time.perf_counter()
    outs = engine([x])
    t3 = time.perf_counter()
    outputs_to_targets(outs, [(int(x.shape[1]), int(x.shape[2]))], score_threshold=score_threshold)
    t4 = time.perf_counter()
    return {"decode": t1 - t0, "to_tensor": t2 - t1, "model": t3 - t2, "merge": t4 - t3}


def time_photo(
    path: Path, engine: Engine, meta: Mapping[str, Any], batch_size: int, score_threshold: float
) -> dict[str, float]:
    """Seconds per step for one photo with ``tile="auto"``, plus ``tiles`` (a count)."""
    t0 = time.perf_counter()
    img = load_image(path)
    t1 = time.perf_counter()
    x = image_to_tensor(img).as_subclass(torch.Tensor)
    t2 = time.perf_counter()
    hw = (int(x.shape[1]), int(x.shape[2]))
    tile, min_overlap = resolve_tile("auto", meta)
    assert tile is not None
    windows = tile_windows(hw, tile, 0.0, min_overlap_px=min_overlap)
    runs = []
    for s in range(0, len(windows), batch_size):
        chunk = windows[s : s + batch_size].tolist()
        runs.append((chunk, engine([crop_tile(x, w, tile) for w in chunk])))
    t3 = time.perf_counter()
    merge_tile_outputs(runs, windows, hw, score_threshold)
    t4 = time.perf_counter()
    steps = {"decode": t1 - t0, "to_tensor": t2 - t1, "model": t3 - t2, "merge": t4 - t3}
    return {**steps, "tiles": float(len(windows))}


def summarise(samples: list[dict[str, float]]) -> dict[str, float]:
    """The median of each step and of the total over the runs ``samples``."""
    out = {f"{k}_ms": 1e3 * statistics.median(s[k] for s in samples) for k in STEPS}
    total = statistics.median(sum(s[k] for k in STEPS) for s in samples)
    out["total_ms"] = 1e3 * total
    out["img_per_s"] = 1.0 / total
    if "tiles" in samples[0]:
        out["tiles"] = samples[0]["tiles"]
    return out


# -- image_to_tensor, old against new --------------------------------------------------------


def image_to_tensor_0_1(img: Image.Image) -> torch.Tensor:
    """``image_to_tensor`` as 0.1 computed it (RGB input): copy, permute, float, divide."""
    a = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(a.copy()).permute(2, 0, 1).to(torch.float32).div_(255.0)


def old_new_ms(
    old: Callable[[], object], new: Callable[[], object], seconds: float
) -> tuple[float, float]:
    """Median milliseconds per call of ``old`` and ``new``, timed in alternating rounds.

    Alternating short rounds (about 20 of each in ``seconds``) let a busy machine's load
    fall on both alike; the ratio is the figure to read.
    """
    old()
    new()
    t0 = time.perf_counter()
    old()
    n = max(1, int(seconds / 40 / max(time.perf_counter() - t0, 1e-6)))
    rounds: dict[Callable[[], object], list[float]] = {old: [], new: []}
    for _ in range(20):
        for fn, times in rounds.items():
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            times.append((time.perf_counter() - t0) / n)
    return 1e3 * statistics.median(rounds[old]), 1e3 * statistics.median(rounds[new])


def conversion_rows(photo: Path, seconds: float) -> list[dict[str, Any]]:
    """``image_to_tensor`` now and in 0.1 on a 640x480 and a 1024-px image and the photo."""
    rng = np.random.default_rng(0)
    images = {
        "640x480 random": Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)),
        "1024x1024 random": Image.fromarray(rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)),
    }
    photo_img = load_image(photo)
    images[f"{photo_img.width}x{photo_img.height} photo"] = photo_img
    rows = []
    for name, img in images.items():
        same = torch.equal(image_to_tensor(img).as_subclass(torch.Tensor), image_to_tensor_0_1(img))
        old, new = old_new_ms(
            functools.partial(image_to_tensor_0_1, img),
            functools.partial(image_to_tensor, img),
            seconds,
        )
        rows.append({"image": name, "old_ms": old, "new_ms": new, "same_bits": same})
    return rows


# -- the report ------------------------------------------------------------------------------


def print_tables(rows: list[dict[str, Any]], conversions: list[dict[str, Any]]) -> None:
    print(
        "| workload | engine | img/s | decode ms | to-tensor ms | model ms | merge ms | total ms |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['workload']} | {r['engine']} | {r['skipped']} | | | | | |")
            continue
        cells = [f"{r['img_per_s']:.3g}"] + [f"{r[f'{k}_ms']:.1f}" for k in STEPS]
        print(
            f"| {r['workload']} | {r['engine']} | "
            + " | ".join(cells)
            + f" | {r['total_ms']:.1f} |"
        )
    print()
    print("| image_to_tensor | 0.1 formula ms | now ms | speed-up | same bits |")
    print("|---|---:|---:|---:|---|")
    for c in conversions:
        speedup = c["old_ms"] / c["new_ms"]
        same = "yes" if c["same_bits"] else "NO"
        print(f"| {c['image']} | {c['old_ms']:.2f} | {c['new_ms']:.2f} | {speedup:.2f}x | {same} |")


# -- main ------------------------------------------------------------------------------------


def parse_size(text: str) -> tuple[int, int]:
    """``"4080x3072"`` -> ``(4080, 3072)``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"expected a positive size, got {text!r}")
    return w, h


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--backbone", choices=BACKBONES, default="resnet50_fpn")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per tile row (median)")
    ap.add_argument("--photo-repeats", type=int, default=1, help="timed runs per photo row")
    ap.add_argument("--tile-size", type=int, default=1024, help="tile side in px (1024)")
    ap.add_argument("--img-size", type=int, default=1024, help="the model's input size (1024)")
    ap.add_argument("--batch-size", type=int, default=4, help="tiles per model call (4)")
    ap.add_argument(
        "--photo",
        default="auto",
        help="'auto' (a real varroa photo when ../shared/data is present), 'generated' or a path",
    )
    ap.add_argument(
        "--photo-size", type=parse_size, default=(4080, 3072), help="size of a generated photo"
    )
    ap.add_argument("--score-threshold", type=float, default=0.3, help="predict's default")
    ap.add_argument("--convert-seconds", type=float, default=4.0, help="time per conversion row")
    ap.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    for name in ("threads", "repeats", "photo_repeats", "tile_size", "img_size", "batch_size"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def make_engines(
    args: argparse.Namespace, meta: Mapping[str, Any], tmp: Path
) -> list[tuple[str, Engine | None, str]]:
    """``(name, engine or None, why not)`` for eager fp32, eager channels-last, onnxruntime."""
    torch.manual_seed(0)
    model = build_retinanet(
        num_classes=1, backbone=args.backbone, min_size=args.img_size, max_size=args.img_size
    ).eval()
    onnx, why_not = onnx_engine(model, meta, args.threads, tmp)
    channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    return [
        ("torch eager fp32", torch_engine(model), ""),
        ("torch eager fp32 channels-last", torch_engine(channels_last), ""),
        ("onnxruntime", onnx, why_not),
    ]


def engine_rows(
    args: argparse.Namespace, tile: Path, photo: Path, tmp: Path
) -> list[dict[str, Any]]:
    """Rows per engine (eager fp32, eager channels-last, onnxruntime): the tile, the photo.

    Each engine runs the tile once untimed first (the photo's tiles have the tile's shape,
    so that warms both up). The engines then take turns, run by run, so that a change in
    a shared machine's load falls on all of them alike.
    """
    meta = {
        "train_image_size": args.img_size,
        "source_image_size": args.tile_size,
        "box_size_px": {"p90": BOX_P90_PX},
    }
    engines = make_engines(args, meta, tmp)
    ready = [(name, e) for name, e, _ in engines if e is not None]
    for _, e in ready:
        time_tile(tile, e, args.score_threshold)  # warm-up
    tile_label, photo_label = f"{args.tile_size}-px tile", "photo, tile=auto"
    workloads: list[tuple[str, Callable[[Engine], dict[str, float]], int]] = [
        (tile_label, lambda e: time_tile(tile, e, args.score_threshold), args.repeats),
        (
            photo_label,
            lambda e: time_photo(photo, e, meta, args.batch_size, args.score_threshold),
            args.photo_repeats,
        ),
    ]
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    for label, run, repeats in workloads:
        for _ in range(repeats):
            for name, e in ready:
                samples.setdefault((label, name), []).append(run(e))
                print(
                    f"  {label:<18} {name:<32} {samples[label, name][-1]['model']:9.2f} s model",
                    flush=True,
                )
    rows: list[dict[str, Any]] = []
    for name, _, why_not in engines:
        for label, _, _ in workloads:
            row: dict[str, Any] = {"workload": label, "engine": name}
            found = samples.get((label, name))
            rows.append({**row, **summarise(found)} if found else {**row, "skipped": why_not})
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        photo, photo_label = pick_photo(args.photo, args.photo_size, tmp)
        tile = cut_tile(photo, args.tile_size, tmp)
        with Image.open(photo) as im:
            photo_wh = im.size
        print(
            f"{args.backbone} (untrained, weights=None), input {args.img_size} px, "
            f"{args.threads} torch thread(s), median of {args.repeats}; photo: {photo_label}"
        )
        rows = engine_rows(args, tile, photo, tmp)
        conversions = conversion_rows(photo, args.convert_seconds)
    print()
    print_tables(rows, conversions)
    if args.out is not None:
        report = {
            "machine": {
                "cpu_count": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "backbone": args.backbone,
            "weights": None,
            "img_size": args.img_size,
            "tile_size": args.tile_size,
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "photo_repeats": args.photo_repeats,
            "photo": {"source": photo_label, "size_wh": list(photo_wh)},
            "rows": rows,
            "image_to_tensor": conversions,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
